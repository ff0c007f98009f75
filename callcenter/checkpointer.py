"""Durable open state: the service's open calls and agent sessions survive a restart.

`Checkpointer` belongs to one `Service`. At start (after the migration, before any PBX event is
consumed) it restores the last checkpoint into the call and presence trackers, so a call begun
before a stop and ended after the restart is one record with its real start, and a login
session open across the restart stays one session. Every ``interval`` seconds, and at shutdown
after the last flush, it saves the trackers' open state (callcenter/domain/tracker_state.py),
but only when nothing completed is still waiting to be stored (so a checkpoint never holds a
call whose completion is lost). Other open state registered with `add_part` (the agent desk's:
callcenter/domain/desk_state.py) is saved and restored with them. It also records the observation
windows: the service running, and each PBX link from its resync to its loss
(callcenter/storage/checkpoints.py).
"""
from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import timedelta

from .aio import cancel_and_wait
from .domain import events as ev
from .domain.tracker_state import calls_from_state, calls_to_state, presence_from_state, presence_to_state
from .storage import checkpoints as cp
from .storage.health import describe, is_unavailable

log = logging.getLogger(__name__)


def stale_after(interval: float) -> timedelta:
    """A heartbeat older than this means its process is gone (three missed checkpoints)."""
    return timedelta(seconds=max(3 * interval, 5.0))


class Checkpointer:
    def __init__(self, service, store, clock, interval: float = 10, resume: bool = True):
        self.service = service
        self.store = store
        self.clock = clock
        self.interval = interval
        # False for a replay or the demo: a recorded or simulated stream is complete in itself,
        # so its open state is neither resumed nor saved (observation windows are still kept)
        self.resume = resume
        self.instance = uuid.uuid4().hex
        self.links: dict[str, int] = {}                 # pbx -> open link window id
        self.service_window: int | None = None
        self.saved = 0                                   # checkpoints written (tests, health)
        # more open state saved and restored with the trackers': name -> (to_state() -> dict | None,
        # from_state(dict) -> count); the agent desk's (callcenter/domain/desk_state.py) registers here
        self.parts: dict[str, tuple] = {}
        self._changes: list[tuple[str, str, object]] = []   # ("up"|"down", pbx, at), in stream order
        self._up: set[str] = set()                       # PBXes whose link is up, in stream order
        self._first: dict[str, object] = {}              # pbx -> first event of a session not yet resynced
        self._last: dict[str, str] = {}
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    # --- lifecycle (called by Service.start / Service.stop) ----------------------------------

    async def restore(self) -> None:
        service = self.service
        trackers = ((cp.CALLS, calls_from_state, service.calls), (cp.PRESENCE, presence_from_state, service.presence))
        for name, apply, tracker in trackers if self.resume else ():
            loaded = await cp.load_state(self.store, name)
            if loaded is None:
                continue
            state, saved_at = loaded
            try:
                added = apply(tracker, state)
            except Exception:
                log.exception("checkpoint %r of %s cannot be read; starting without it", name, saved_at)
                continue
            log.info("resumed %d open %s from the checkpoint of %s", added,
                     "calls" if name == cp.CALLS else "queue members", saved_at.isoformat())
        for name, (_, apply) in self.parts.items() if self.resume else ():
            loaded = await cp.load_state(self.store, name)
            if loaded is None:
                continue
            try:
                added = apply(loaded[0])
            except Exception:
                log.exception("checkpoint %r of %s cannot be read; starting without it", name, loaded[1])
                continue
            log.info("resumed %d %s from the checkpoint of %s", added, name, loaded[1].isoformat())
        self.service_window = await cp.open_window(self.store, self.instance, "service", "", self.clock.now())

    def add_part(self, name: str, to_state, from_state) -> None:
        """Save ``to_state()`` with every checkpoint (None: not this time) and restore it at start
        with ``from_state(state)``, before any event."""
        self.parts[name] = (to_state, from_state)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="checkpointer")

    async def stop(self) -> None:
        """After the service's last flush: the final checkpoint, and every window closed."""
        await cancel_and_wait(self._task)
        now = self.clock.now()
        for pbx in sorted(self._up):
            self._changes.append(("down", pbx, now))
        self._up.clear()
        await self.save()
        if self.service_window is not None:
            await cp.close_window(self.store, self.service_window, self.clock.now())
            self.service_window = None

    # --- inputs ------------------------------------------------------------------------------

    def on_event(self, event: ev.Event) -> None:
        """A listener of the service's ordered stream: a link window is confirmed by the resync
        after a login and opens at the first event of that session (events can come before the
        snapshot's answer); it closes when the link is lost."""
        pbx = event.pbx
        if isinstance(event, ev.Resynced):
            if pbx not in self._up:
                self._up.add(pbx)
                self._changes.append(("up", pbx, min(self._first.pop(pbx, event.at), event.at)))
                self._wake.set()
        elif isinstance(event, ev.LinkLost):
            self._first.pop(pbx, None)
            if pbx in self._up:
                self._up.discard(pbx)
                self._changes.append(("down", pbx, event.at))
                self._wake.set()
        elif pbx not in self._up:
            self._first.setdefault(pbx, event.at)

    # --- work --------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.save()
            except Exception as exc:
                if is_unavailable(exc):             # the database is away: health logs it once
                    log.debug("checkpoint postponed: %s", describe(exc))
                else:
                    log.exception("checkpoint failed; next try in %.0f s", self.interval)

    async def save(self) -> None:
        async with self._lock:
            await self._save()

    async def _save(self) -> None:
        store, now = self.store, self.clock.now()
        while self._changes:
            kind, pbx, at = self._changes[0]
            if kind == "up" and pbx not in self.links:
                self.links[pbx] = await cp.open_window(store, self.instance, "link", pbx, at)
            elif kind == "down" and pbx in self.links:
                await cp.close_window(store, self.links[pbx], at)
                del self.links[pbx]
            self._changes.pop(0)
        await cp.heartbeat(store, [*self.links.values(), *([self.service_window] if self.service_window else [])], now)
        service = self.service
        if not self.resume or service.unsaved_calls or service.unsaved_sessions:
            return              # completed records still held: the last checkpoint stays valid
        states = {cp.CALLS: calls_to_state(service.calls), cp.PRESENCE: presence_to_state(service.presence)}
        for name, (save, _) in self.parts.items():
            if (state := save()) is not None:
                states[name] = state
        unchanged = []
        for name, state in states.items():
            text = json.dumps(state, ensure_ascii=False, separators=(",", ":"))
            if self._last.get(name) == text:
                unchanged.append(name)
                continue
            await cp.save_state(store, name, text, now, self.instance)
            self._last[name] = text
        if unchanged:
            await cp.touch(store, unchanged, now, self.instance)
        self.saved += 1
