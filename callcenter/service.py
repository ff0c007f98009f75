"""The composition root and the one ordered inbound pipe.

PBX adapters put what they receive on one queue; a single consumer translates it into domain
events, feeds the call and presence trackers, commits completed calls and closed sessions, and
only then hands them to whoever acts on them (``on_calls_committed``). Listeners of raw domain
events (``subscribe``) run in order too; an exception in one is logged and counted and the stream
goes on. Storing runs beside the consumer (one flush at a time, in order): events that arrive
during a commit are tracked and pushed to the panel at once, not held behind the database. If the
database is unavailable the records (and trackers' results) are kept and retried every
`database.retry_seconds` while ingest goes on; at shutdown what is still held goes to the journal
(callcenter/journal.py, through `Service` as a holder): nothing is dropped.

Calls completed outside the stream (the queue_log and CDR readers) come in through `submit`; its
`submit_filters` may leave some out (the hotline probes' own calls, callcenter/probes/), and the
calls a filter left out are told to the `on_dropped` listeners as (PBX, call ids): the reader that
submitted them forgets them, so its read position moves on past them.
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
from .domain.validation import mask_numbers
from .domain.calls import CallTracker
from .domain.presence import AgentSession, PresenceTracker
from .domain.records import CallRecord
from .settings import PbxEndpoint, Settings
from .service_held import HeldRecords
from .storage.health import describe, is_unavailable
from .storage.store import Store

log = logging.getLogger(__name__)
EventListener = Callable[[ev.Event], None]
CommitListener = Callable[[list[CallRecord]], Awaitable[None]]
DropListener = Callable[[str, list[str]], None]       # (pbx, call ids) a submit filter left out


class Service(HeldRecords):
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
        self.tracker_names: list[str] = []
        self.unsaved_calls: list[CallRecord] = []
        # callables that may hold back completed records and return the rest (callcenter/queuelog/
        # holds partly-seen calls until queue_log has their facts; they come back through `submit`)
        self.record_filters: list[Callable[[list[CallRecord]], list[CallRecord]]] = []
        # callables that drop records completed outside the stream before they are stored (the
        # hotline probes' own calls: callcenter/probes/); what they drop is told to drop_listeners
        self.submit_filters: list[Callable[[list[CallRecord]], list[CallRecord]]] = []
        self.drop_listeners: list[DropListener] = []   # `on_dropped`: the queue_log and CDR readers
        self.unsaved_sessions: list[AgentSession] = []
        self.messages_processed = 0
        self.calls_committed = 0
        self.handler_errors = 0
        self._busy = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._consumer: asyncio.Task | None = None
        self._flusher: asyncio.Task | None = None     # storing what the consumer completed, beside it
        self.received: datetime | None = None         # when the inbox entry being processed arrived
        self._stored_batches = 0                      # flushes that stored something (progress)
        self._observe = getattr(self.clock, "observe", None)   # a replay's clock follows the stream
        self.checkpointer = None      # callcenter/checkpointer.py: open state across restarts (bootstrap)
        self.name = "service"         # as a holder of held writes (callcenter/journal.py)
        self.retry_seconds = store.options.retry_seconds
        self._retry_at: float | None = None          # the database failed: next try (loop time)
        self._flush_lock = asyncio.Lock()
        self._retrying: asyncio.Task | None = None   # a retry off the consumer while the database is away
        self.rejected: list = []                     # records the database refused (not an outage)

    # --- wiring -------------------------------------------------------------------------------

    def subscribe(self, listener: EventListener) -> None:
        self.listeners.append(listener)

    def on_calls_committed(self, listener: CommitListener) -> None:
        self.commit_listeners.append(listener)

    def add_tracker(self, tracker, persist: Callable[[list], Awaitable[None]], name: str = "results") -> None:
        """Another pure tracker fed in order; its results are persisted after the calls commit.
        ``persist`` raising an error that says the database is unavailable keeps them for retry."""
        self.trackers.append((tracker, [], persist))
        self.tracker_names.append(name)

    def on_dropped(self, listener: DropListener) -> None:
        """`listener(pbx, call_ids)` is told the calls of `pbx` a submit filter left out (once per
        PBX and filter); a reader that submitted them stops waiting to see them stored."""
        self.drop_listeners.append(listener)

    def submit(self, records: list[CallRecord]) -> None:
        """Calls completed outside the stream (queue_log reconciliation) join the same commit
        path as the stream's: stored idempotently, then the commit listeners run. Those a submit
        filter leaves out are told to the `on_dropped` listeners."""
        for keep in self.submit_filters:
            if not records:
                break
            kept = keep(records)
            if len(kept) != len(records):
                self._tell_dropped(records, kept)
            records = kept
        if records:
            self.unsaved_calls.extend(records)
            self.sink("", [], self.clock.now())

    def _tell_dropped(self, records: list[CallRecord], kept: list[CallRecord]) -> None:
        left = {(r.pbx, r.id) for r in kept}
        dropped: dict[str, dict[str, None]] = {}       # pbx -> call ids, in order, once each
        for r in records:
            if (r.pbx, r.id) not in left:
                dropped.setdefault(r.pbx, {})[r.id] = None
        for pbx, call_ids in dropped.items():
            for listener in self.drop_listeners:
                try:
                    listener(pbx, list(call_ids))
                except Exception:
                    self.handler_errors += 1
                    log.exception("drop listener %r failed", listener)

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
        if self.checkpointer is not None:
            await self.checkpointer.restore()          # open calls and sessions, before any event
        self._consumer = asyncio.get_running_loop().create_task(self._consume(), name="consumer")
        if self.checkpointer is not None:
            self.checkpointer.start()
        for client in self.clients.values():
            client.start()

    async def stop(self) -> None:
        for client in self.clients.values():
            await client.stop()
        await self._drain(timeout=5)
        if self._flusher is not None and not self._flusher.done():
            # the flush under way: let it finish within the same bound (a hung database: cancelled)
            await asyncio.wait({self._flusher}, timeout=self.store.options.stop_seconds if self.store.health.ok else 0.5)
            if not self._flusher.done():
                self._flusher.cancel()
                await asyncio.wait({self._flusher}, timeout=1)
        # bounded: a dead database cannot hold the stop (one known to be down gets a brief try)
        stop_seconds = self.store.options.stop_seconds if self.store.health.ok else min(0.5, self.store.options.stop_seconds)
        try:
            await asyncio.wait_for(self._flush(force=True), stop_seconds)
        except asyncio.TimeoutError:
            pass
        if self._retrying is not None and not self._retrying.done():
            self._retrying.cancel()
            await asyncio.wait({self._retrying}, timeout=1)
        if self.unsaved_calls or self.unsaved_sessions:
            log.warning("%d completed calls and %d sessions not stored at stop; they go to the journal",
                        len(self.unsaved_calls), len(self.unsaved_sessions))
        if self.checkpointer is not None:
            try:
                await asyncio.wait_for(self.checkpointer.stop(), 3)   # the open state, after the last flush
            except (Exception, asyncio.TimeoutError):
                log.exception("the final checkpoint failed; the last periodic one stands")

    async def settled(self, timeout: float | None = None) -> None:
        """Wait until everything received so far is processed and committed."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def _drain(self, timeout: float) -> None:
        """Stop the consumer once the inbox is processed (or at once when the database is known
        to be away, or after ``timeout``: a consumer stuck on a hung database is cancelled, its
        records stay held, and what is left in the inbox is processed here)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (self._busy or not self.inbox.empty()) and loop.time() < deadline and self._consumer \
                and not self._consumer.done() and self.store.health.ok:
            await asyncio.sleep(0.01)
        # cancelled again until it ends: Python 3.11's wait_for can swallow a cancellation that
        # arrives as its inner get() completes
        while self._consumer and not self._consumer.done():
            self._consumer.cancel()
            await asyncio.wait({self._consumer}, timeout=0.1)
        while not self.inbox.empty():
            pbx, items, received = self.inbox.get_nowait()
            records: list[CallRecord] = []
            sessions: list[AgentSession] = []
            for item in items:
                self._process(pbx, item, received, records, sessions)
            self.unsaved_calls.extend(records)
            self.unsaved_sessions.extend(sessions)
        self._busy = False

    # --- the pipe -----------------------------------------------------------------------------

    async def _consume(self) -> None:
        inbox = self.inbox
        while True:
            if self.unsaved_calls or self.unsaved_sessions:
                try:
                    first = await asyncio.wait_for(inbox.get(), self.retry_seconds)
                except asyncio.TimeoutError:
                    self._kick_flush()         # the database was down: retry what we hold
                    self._maybe_idle()
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
            self._busy = False
            self._kick_flush()
            self._maybe_idle()
            await asyncio.sleep(0)                  # let the listeners' pushes go out between batches

    def _kick_flush(self) -> None:
        """Store what is held in the background (one flush at a time); the consumer goes on."""
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_held(), name="service-flush")

    async def _flush_held(self) -> None:
        while self.unsaved_calls or self.unsaved_sessions or any(r for _, r, _ in self.trackers):
            progress = self._stored_batches
            await self._flush()
            if self._retry_at is not None or self._stored_batches == progress:
                break                               # the database failed (retried later), or nothing went
        self._maybe_idle()

    def _maybe_idle(self) -> None:
        flushing = self._flusher is not None and not self._flusher.done() \
            and self._flusher is not asyncio.current_task()
        if self.inbox.empty() and not self._busy and not flushing and not self.unsaved_calls:
            self._idle.set()

    def _process(self, pbx, item, received, records, sessions) -> None:
        try:
            event = item if isinstance(item, ev.Event) else translate(pbx, item, received)
        except Exception:
            self.handler_errors += 1
            log.exception("cannot translate AMI message %r", mask_numbers(str(item)[:200]))
            return
        self.messages_processed += 1
        if event is None:
            return
        self.received = received
        if self._observe is not None:
            self._observe(event.at)
        try:
            done = self.calls.feed(event)
            for keep in self.record_filters:
                done = keep(done) if done else done
            records.extend(done)
            sessions.extend(self.presence.feed(event))
            for tracker, results, _ in self.trackers:
                results.extend(tracker.feed(event))
        except Exception:
            self.handler_errors += 1
            log.exception("call tracking failed on %s", mask_numbers(repr(event)))
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                self.handler_errors += 1
                log.exception("event listener %r failed on %s", listener, mask_numbers(repr(event)))

    async def _flush(self, force: bool = False) -> None:
        """Store what is held: completed calls and sessions, then the trackers' results. After a
        failure nothing is tried again for `retry_seconds` (unless ``force``), and while the
        database is known to be away the retry runs beside the consumer: ingest goes on."""
        if not force:
            loop = asyncio.get_running_loop()
            if (self._retry_at is not None and loop.time() < self._retry_at) or self._flush_lock.locked():
                return                              # not yet, or a retry is under way
            if not self.store.health.ok:
                if self._retrying is None or self._retrying.done():
                    self._retrying = loop.create_task(self._flush(force=True), name="service-retry")
                return
        async with self._flush_lock:
            if not await self._flush_records():
                return                              # results may depend on the calls: they wait
            for (_, results, persist), name in zip(self.trackers, self.tracker_names):
                if not results:
                    continue
                batch = results[:]
                del results[:len(batch)]
                try:
                    await persist(batch)
                    self._stored_batches += 1
                except Exception as exc:
                    if is_unavailable(exc):
                        results[:0] = batch             # kept, in order, for the retry
                        self._failed(exc, f"{len(batch)} {name}")
                        return
                    self.handler_errors += 1
                    log.exception("persisting %d %s failed", len(batch), name)

    def _failed(self, exc: Exception, what: str) -> None:
        self._retry_at = asyncio.get_running_loop().time() + self.retry_seconds
        if not is_unavailable(exc):                 # unavailability is logged once by store.health
            log.error("storing %s failed; kept for retry: %s", what, describe(exc))

    async def _flush_records(self) -> bool:
        """True when nothing is held any more."""
        if not self.unsaved_calls and not self.unsaved_sessions:
            self._retry_at = None
            return True
        calls, sessions = self.unsaved_calls[:], self.unsaved_sessions[:]
        stored = calls
        try:
            await self.store.save_calls(calls)
            await self.store.save_sessions(sessions)
        except Exception as exc:
            if is_unavailable(exc):
                self._failed(exc, f"{len(calls)} calls and {len(sessions)} sessions")
                return False
            try:                                        # rejected, not an outage: find the bad ones
                stored = await self._one_by_one(calls, sessions)
            except Exception as again:
                self._failed(again, f"{len(calls)} calls and {len(sessions)} sessions")
                return False
        self._retry_at = None
        del self.unsaved_calls[:len(calls)]             # more may have come meanwhile
        del self.unsaved_sessions[:len(sessions)]
        self._stored_batches += 1
        self.calls_committed += len(stored)
        for listener in self.commit_listeners:
            try:
                await listener(stored)
            except Exception:
                self.handler_errors += 1
                log.exception("commit listener %r failed", listener)
        return True

