"""Every call queue_log shows finished is stored, once, with the PBX's own figures.

One `QueueLogReconciler` per PBX with `queue_log` configured, started with the service:

- It holds back the records the call tracker completes with `reconciled = true` (calls open
  across a gap in the AMI view: start-up, restart, link drop) until queue_log has finished the
  same call (or `queue_log_settle` seconds passed), then merges them (`domain.queue_log.reconcile`).
- A call queue_log shows finished that the service neither tracks nor has stored, `settle`
  seconds after it was read, is created from queue_log alone (`domain.queue_log.record_from`):
  the calls of a downtime, and those whose channels the AMI view never saw.
- Both go through `Service.submit`, the same commit path as the stream's records, so follow-up
  tasks and cases are created for them. Writes are keyed by (PBX, call id): never twice. A call
  the service's submit filters leave out (a hotline probe's) is forgotten (`forget`, a
  `Service.on_dropped` listener).
- The read position (inode, offset of the oldest line of a call not yet stored) is kept in
  `queue_log_positions`; a restart reads again from there and skips what is already stored. On a
  first start (no position) the whole file is read, but calls that finished before this process
  started are left to `callcenter import-queue-log`.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from ..aio import cancel_and_wait, every
from ..domain import events as ev
from ..domain.queue_log import QueueLogCalls, QueueLogError, parse_line, reconcile, record_from
from ..domain.records import CallRecord
from ..storage import positions
from ..storage import tables as t
from .tail import Position, Tail

log = logging.getLogger(__name__)


class QueueLogReconciler:
    def __init__(self, service, store, endpoint, clock):
        self.service = service
        self.store = store
        self.clock = clock
        self.pbx = endpoint.id
        self.path = endpoint.queue_log
        self.poll = endpoint.queue_log_poll
        self.settle = endpoint.queue_log_settle
        self.directory = service.directory
        self.fold = QueueLogCalls()
        self.names: dict[str, str] = {}                    # member name -> agent, learned from presence
        self.held: dict[str, tuple[CallRecord, float]] = {}   # call id -> (record, release by loop time)
        self.finished: dict[str, float] = {}               # call id -> loop time read finished
        self.submitted: dict[str, int] = {}                # call id -> first offset, until seen stored
        self.tail: Tail | None = None
        self.since = None                                  # first start: calls finished before are history
        self.created = 0                                   # calls created from queue_log alone
        self.merged = 0                                    # partly-seen calls completed from it
        self.bad_lines = 0
        self._stopped = False
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._saved: tuple[int, int] | None = None
        service.record_filters.append(self.hold)
        service.subscribe(self.on_event)
        service.on_dropped(self.forget)

    # --- wiring -------------------------------------------------------------------------------

    def hold(self, records: list[CallRecord]) -> list[CallRecord]:
        """Service record filter: calls of this PBX that were open across a gap in the AMI view
        wait for queue_log's facts (from the service's start: the first resync can come before
        this reconciler's start)."""
        if self._stopped:
            return records
        keep = []
        release_at = asyncio.get_running_loop().time() + self.settle
        tracker = self.service.calls
        for record in records:
            if record.pbx == self.pbx and (tracker.spanned_gap(record.pbx, record.id) or record.reconciled):
                self.held[record.id] = (record, release_at)
            else:
                keep.append(record)
        return keep

    def forget(self, pbx: str, call_ids: list[str]) -> None:
        """Service drop listener: calls of this PBX it submitted and a submit filter left out (the
        hotline probes') will never be stored; the read position no longer waits for them."""
        if pbx == self.pbx:
            for callid in call_ids:
                self.submitted.pop(callid, None)

    def on_event(self, event: ev.Event) -> None:
        """Queue members seen over AMI teach which member name is which agent (queue_log only
        has the name)."""
        members = event.members if isinstance(event, ev.Resynced) else (
            (event,) if isinstance(event, ev.MemberState) else ())
        for m in members:
            if m.pbx == self.pbx and m.member_name:
                agent = self.directory.agent_of(m.interface, m.member_name, m.pbx)
                if agent:
                    self.names[m.member_name] = agent

    async def start(self) -> None:
        position = await self._load_position()
        self._saved = (position.inode, position.offset) if position else None
        if position is None:
            self.since = self.clock.now() - timedelta(seconds=1)
        self.tail = Tail(self.path, position, from_end=False)
        self._task = asyncio.get_running_loop().create_task(
            every(self.poll, self.pass_once, log, f"queue_log {self.path}: reconciliation pass"),
            name=f"queue-log-{self.pbx}")
        log.info("queue_log %s for %s: reading from %s", self.path, self.pbx,
                 f"offset {position.offset}" if position else "the start (first run)")

    async def stop(self) -> None:
        """Release what is held (merged with what queue_log says so far) into the service's last
        flush, and keep the position."""
        self._stopped = True
        await cancel_and_wait(self._task)
        async with self._lock:
            try:
                self._read()
                self._learn_present()
            except Exception:
                log.exception("queue_log %s: reading at stop failed", self.path)
            ready = [self._merge(callid) for callid in list(self.held)]
            self.service.submit(ready)
            try:
                await self._save_position()
            except Exception:
                log.exception("queue_log %s: saving the position failed; the last one stands", self.path)
        if self.tail:
            self.tail.close()

    # --- one pass -----------------------------------------------------------------------------

    def _learn_present(self) -> None:
        """Members present now (also those resumed from a checkpoint) name their agents too."""
        for m in self.service.presence.members.values():
            if m.pbx == self.pbx and m.member_name and m.agent:
                self.names.setdefault(m.member_name, m.agent)

    async def pass_once(self) -> int:
        """Read new lines, release held calls, create the missing ones; returns calls submitted."""
        async with self._lock:
            self._read()
            self._learn_present()
            now = asyncio.get_running_loop().time()
            ready = [self._merge(callid) for callid, (_, release_at) in list(self.held.items())
                     if now >= release_at or self._done(callid)]
            candidates = [callid for callid, read_at in self.finished.items()
                          if now - read_at >= self.settle and callid not in self.held
                          and (self.pbx, callid) not in self.service.calls.channels]
            pending = {r.id for r in self.service.unsaved_calls if r.pbx == self.pbx}
            stored = await self.store.stored_call_ids(self.pbx, candidates + list(self.submitted))
            for callid in list(self.submitted):
                if callid in stored:
                    del self.submitted[callid]
            for callid in candidates:
                call = self.fold.calls.get(callid)
                self.finished.pop(callid, None)
                if call is None or not call.finished:
                    continue                               # it went on in another queue
                self.fold.drop(callid)
                if callid in stored or callid in pending:
                    continue
                if self.since is not None and call.last_at is not None and call.last_at < self.since:
                    continue                               # history from before the first start
                ready.append(record_from(self.pbx, call, self.directory, self.names))
                self.submitted[callid] = call.first_offset
                self.created += 1
                log.info("queue_log %s: call %s was not seen over AMI; stored from queue_log", self.pbx, callid)
            self.service.submit(ready)
            await self._save_position()
            return len(ready)

    def _read(self) -> None:
        if self.tail is None:
            return
        now = asyncio.get_running_loop().time()
        for offset, text in self.tail.read():
            if not text.strip():
                continue
            try:
                line = parse_line(text)
            except QueueLogError as exc:
                self.bad_lines += 1
                log.warning("queue_log %s: byte %d: %s; line skipped", self.path, offset, exc)
                continue
            for call in self.fold.feed(line, offset):
                self.finished[call.callid] = now

    def _done(self, callid: str) -> bool:
        call = self.fold.calls.get(callid)
        return call is not None and call.finished

    def _merge(self, callid: str) -> CallRecord:
        record, _ = self.held.pop(callid)
        call = self.fold.calls.get(callid)
        merged = reconcile(record, call, self.directory, self.names)
        if call is not None:
            self.submitted[callid] = call.first_offset
            self.fold.drop(callid)
            self.finished.pop(callid, None)
        self.merged += 1
        log.info("queue_log %s: call %s seen partly; completed from queue_log (%s, agents %s)", self.pbx, callid,
                 merged.outcome.value, [s.agent for s in merged.stints if s.agent] or "none")
        return merged

    # --- the database -------------------------------------------------------------------------

    async def _load_position(self) -> Position | None:
        saved = await positions.load(self.store, t.queue_log_positions, self.pbx)
        return Position(*saved) if saved else None

    async def _save_position(self) -> None:
        """The oldest line of a call not yet known stored: reading again from there loses nothing."""
        if self.tail is None or self.tail.position is None:
            return
        offsets = [o for o in (self.fold.first_open_offset(), min(self.submitted.values(), default=None))
                   if o is not None]
        offset = min(offsets + [self.tail.position.offset])
        if (self.tail.position.inode, offset) == self._saved:
            return
        inode = self.tail.position.inode
        await positions.save(self.store, t.queue_log_positions, self.pbx, self.path, inode, offset, self.clock.now())
        self._saved = (inode, offset)
