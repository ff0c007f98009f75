"""The composition root and the one ordered inbound pipe.

PBX adapters put what they receive on one queue; a single consumer translates it into domain
events, feeds the call and presence trackers, commits completed calls and closed sessions, and
only then hands them to whoever acts on them (``on_calls_committed``). Listeners of raw domain
events (``subscribe``) run in order too; an exception in one is logged and counted and the stream
goes on. If the database is unavailable the records are kept and retried: nothing is dropped.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Awaitable, Callable

from .ami.client import AmiClient, Endpoint
from .ami.translate import translate
from .clock import SystemClock
from .domain import events as ev
from .domain.calls import CallTracker
from .domain.presence import AgentSession, PresenceTracker
from .domain.records import CallRecord
from .settings import PbxEndpoint, Settings
from .storage.store import Store

log = logging.getLogger(__name__)
EventListener = Callable[[ev.Event], None]
CommitListener = Callable[[list[CallRecord]], Awaitable[None]]


class Service:
    def __init__(self, settings: Settings, store: Store, clock=None):
        self.settings = settings
        self.store = store
        self.clock = clock or SystemClock()
        self.directory = settings.directory()
        self.calls = CallTracker(self.directory, settings.hotline_contexts())
        self.presence = PresenceTracker(self.directory)
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.clients: dict[str, AmiClient] = {}
        self.listeners: list[EventListener] = []
        self.commit_listeners: list[CommitListener] = []
        self.trackers: list[tuple[object, list, Callable[[list], Awaitable[None]]]] = []
        self.unsaved_calls: list[CallRecord] = []
        self.unsaved_sessions: list[AgentSession] = []
        self.messages_processed = 0
        self.calls_committed = 0
        self.handler_errors = 0
        self._busy = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._consumer: asyncio.Task | None = None
        self._observe = getattr(self.clock, "observe", None)   # a replay's clock follows the stream

    # --- wiring -------------------------------------------------------------------------------

    def subscribe(self, listener: EventListener) -> None:
        self.listeners.append(listener)

    def on_calls_committed(self, listener: CommitListener) -> None:
        self.commit_listeners.append(listener)

    def add_tracker(self, tracker, persist: Callable[[list], Awaitable[None]]) -> None:
        """Another pure tracker fed in order; its results are persisted after the calls commit."""
        self.trackers.append((tracker, [], persist))

    def sink(self, pbx: str, items: list, received: datetime) -> None:
        self._idle.clear()
        self.inbox.put_nowait((pbx, items, received))

    def add_pbx(self, endpoint: PbxEndpoint | Endpoint) -> AmiClient:
        if isinstance(endpoint, PbxEndpoint):
            endpoint = Endpoint(endpoint.id, endpoint.host, endpoint.port, endpoint.username,
                                endpoint.secret.get_secret_value(), endpoint.connect_timeout,
                                endpoint.action_timeout, endpoint.ping_interval, endpoint.reconnect_min,
                                endpoint.reconnect_max)
        client = self.clients[endpoint.id] = AmiClient(endpoint, self.sink, self.clock)
        return client

    async def start(self) -> None:
        await self.store.migrate()
        self._consumer = asyncio.get_running_loop().create_task(self._consume(), name="consumer")
        for client in self.clients.values():
            client.start()

    async def stop(self) -> None:
        for client in self.clients.values():
            await client.stop()
        await self.settled(timeout=10)
        if self._consumer:
            self._consumer.cancel()
            try:
                await self._consumer
            except asyncio.CancelledError:
                pass
        await self._flush()
        if self.unsaved_calls:
            log.error("%d completed calls could not be stored", len(self.unsaved_calls))

    async def settled(self, timeout: float | None = None) -> None:
        """Wait until everything received so far is processed and committed."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    # --- the pipe -----------------------------------------------------------------------------

    async def _consume(self) -> None:
        inbox = self.inbox
        while True:
            if self.unsaved_calls or self.unsaved_sessions:
                try:
                    first = await asyncio.wait_for(inbox.get(), 1.0)
                except asyncio.TimeoutError:
                    await self._flush()        # the database was down: retry what we hold
                    if not self.unsaved_calls and inbox.empty():
                        self._idle.set()
                    continue
            else:
                first = await inbox.get()
            batch = [first]
            while not inbox.empty() and len(batch) < 256:
                batch.append(inbox.get_nowait())
            self._busy = True
            records: list[CallRecord] = []
            sessions: list[AgentSession] = []
            for pbx, items, received in batch:
                for item in items:
                    self._process(pbx, item, received, records, sessions)
            self.unsaved_calls.extend(records)
            self.unsaved_sessions.extend(sessions)
            await self._flush()
            self._busy = False
            if inbox.empty() and not self.unsaved_calls:
                self._idle.set()

    def _process(self, pbx, item, received, records, sessions) -> None:
        try:
            event = item if isinstance(item, ev.Event) else translate(pbx, item, received)
        except Exception:
            self.handler_errors += 1
            log.exception("cannot translate AMI message %r", str(item)[:200])
            return
        self.messages_processed += 1
        if event is None:
            return
        if self._observe is not None:
            self._observe(event.at)
        try:
            records.extend(self.calls.feed(event))
            sessions.extend(self.presence.feed(event))
            for tracker, results, _ in self.trackers:
                results.extend(tracker.feed(event))
        except Exception:
            self.handler_errors += 1
            log.exception("call tracking failed on %r", event)
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                self.handler_errors += 1
                log.exception("event listener %r failed on %r", listener, event)

    async def _flush(self) -> None:
        await self._flush_records()
        for _, results, persist in self.trackers:
            if results:
                batch = results[:]
                results.clear()
                try:
                    await persist(batch)
                except Exception:
                    self.handler_errors += 1
                    log.exception("persisting %d results of %r failed", len(batch), persist)

    async def _flush_records(self) -> None:
        if not self.unsaved_calls and not self.unsaved_sessions:
            return
        calls, sessions = self.unsaved_calls, self.unsaved_sessions
        try:
            await self.store.save_calls(calls)
            await self.store.save_sessions(sessions)
        except Exception:
            log.exception("storing %d calls failed; kept for retry", len(calls))
            await asyncio.sleep(1)
            return
        self.unsaved_calls, self.unsaved_sessions = [], []
        self.calls_committed += len(calls)
        for listener in self.commit_listeners:
            try:
                await listener(calls)
            except Exception:
                self.handler_errors += 1
                log.exception("commit listener %r failed", listener)
