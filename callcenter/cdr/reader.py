"""Every hotline call the CDR shows ending before any queue is stored, once.

One `CdrReconciler` per PBX with `cdr_csv` (and `queue_log`, which settings require) configured,
started with the service after that PBX's `QueueLogReconciler`:

- It tails Master.csv with queue_log's `Tail` (inode + offset, rotation, truncation); the
  position (offset of the oldest row not yet resolved) is kept in `cdr_positions`.
- Caller-leg rows of the hotline contexts (`domain.cdr.is_caller_leg`) wait `cdr_csv_settle`
  seconds; then a call that reached a queue is left to queue_log, and one the service tracks,
  holds, has pending or stored, or that queue_log knows (a queue that timed out ends its CDR like
  an after-hours call) is skipped. The rest is created from the row (`domain.cdr.record_from`:
  ABANDONED_IVR or AFTER_HOURS, flagged reconciled) and goes through `Service.submit`, the
  stream's commit path (follow-up tasks, cases); writes are keyed by (PBX, call id). A call the
  service's submit filters leave out (a hotline probe's) is forgotten (`forget`, a
  `Service.on_dropped` listener), so the saved position moves on past its row.
- On a first start (no position) the whole file is read, but calls that ended before this
  process started are history and left alone.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta, tzinfo

from ..aio import cancel_and_wait, every
from ..domain.cdr import CdrError, CdrRow, is_caller_leg, parse_line, reached_queue, record_from
from ..queuelog.tail import Position, Tail
from ..storage import positions
from ..storage.tables import cdr_positions

log = logging.getLogger(__name__)
NO_FILE = 0          # inode saved when the file did not exist yet: the next start reads it all


class CdrReconciler:
    def __init__(self, service, store, endpoint, clock, tz: tzinfo, queue_log=None):
        self.service = service
        self.store = store
        self.clock = clock
        self.tz = tz
        self.queue_log = queue_log                       # this PBX's QueueLogReconciler
        self.pbx = endpoint.id
        self.path = endpoint.cdr_csv
        self.poll = endpoint.cdr_csv_poll
        self.settle = endpoint.cdr_csv_settle
        self.contexts = frozenset(endpoint.hotline_contexts)
        self.pending: dict[str, tuple[CdrRow, int, float]] = {}   # call id -> (row, offset, loop time read)
        self.submitted: dict[str, int] = {}              # call id -> offset, until seen stored
        self.queued: dict[str, None] = {}                # call ids whose CDR shows a queue (newest last)
        self.tail: Tail | None = None
        self.since = None
        self.created = 0
        self.bad_lines = 0
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._saved: tuple[int, int] | None = None
        service.on_dropped(self.forget)

    def forget(self, pbx: str, call_ids: list[str]) -> None:
        """Service drop listener: calls of this PBX it submitted and a submit filter left out (the
        hotline probes') will never be stored; the read position no longer waits for them."""
        if pbx == self.pbx:
            for callid in call_ids:
                self.submitted.pop(callid, None)

    async def start(self) -> None:
        row = await self._load_position()
        position = Position(row[0], row[1]) if row and row[0] != NO_FILE else None
        self._saved = row
        if row is None:
            self.since = self.clock.now() - timedelta(seconds=1)
        self.tail = Tail(self.path, position, from_end=False)
        self._task = asyncio.get_running_loop().create_task(
            every(self.poll, self.pass_once, log, f"CDR {self.path}: reconciliation pass"), name=f"cdr-{self.pbx}")
        log.info("CDR %s for %s: reading from %s", self.path, self.pbx,
                 f"offset {position.offset}" if position else "the start" + (" (first run)" if row is None else ""))

    async def stop(self) -> None:
        """Rows still settling stay in the file: the saved position keeps them for the next start."""
        await cancel_and_wait(self._task)
        async with self._lock:
            try:
                await self._save_position()
            except Exception:
                log.exception("CDR %s: saving the position failed; the last one stands", self.path)
        if self.tail:
            self.tail.close()

    def _read(self) -> None:
        now = asyncio.get_running_loop().time()
        for offset, text in self.tail.read():
            if not text.strip():
                continue
            try:
                row = parse_line(text, self.tz)
            except CdrError as exc:
                self.bad_lines += 1
                log.warning("CDR %s: byte %d: %s; line skipped", self.path, offset, exc)
                continue
            if not is_caller_leg(row, self.contexts):
                continue
            if self.since is not None and row.end < self.since:
                continue                                  # history from before the first start
            if reached_queue(row):
                self.pending.pop(row.uniqueid, None)
                self.queued[row.uniqueid] = None
                if len(self.queued) > 10000:
                    del self.queued[next(iter(self.queued))]
            elif row.uniqueid not in self.queued:
                first = self.pending.get(row.uniqueid)
                self.pending[row.uniqueid] = (row, first[1] if first else offset, now)

    def _known_elsewhere(self, callid: str) -> bool:
        """Tracked over AMI, waiting to be stored, or a call queue_log knows."""
        if (self.pbx, callid) in self.service.calls.channels:
            return True
        if any(r.pbx == self.pbx and r.id == callid for r in self.service.unsaved_calls):
            return True
        q = self.queue_log
        return q is not None and (callid in q.fold.calls or callid in q.held or callid in q.submitted
                                  or callid in q.finished)

    async def pass_once(self) -> int:
        """Read new rows and store the settled calls nobody else has; returns calls submitted."""
        async with self._lock:
            if self.tail is None:
                return 0
            self._read()
            now = asyncio.get_running_loop().time()
            candidates = [callid for callid, (_, _, read_at) in self.pending.items() if now - read_at >= self.settle]
            stored = await self.store.stored_call_ids(self.pbx, candidates + list(self.submitted))
            for callid in list(self.submitted):
                if callid in stored:
                    del self.submitted[callid]
            ready = []
            for callid in candidates:
                row, offset, _ = self.pending.pop(callid)
                if callid in stored or self._known_elsewhere(callid):
                    continue
                record = record_from(self.pbx, row, self.service.directory.department_of_hotline(row.dst, self.pbx))
                if record is None:
                    continue
                ready.append(record)
                self.submitted[callid] = offset
                self.created += 1
                log.info("CDR %s: call %s (%s) was not seen over AMI; stored from the CDR", self.pbx, callid,
                         record.outcome.value)
            self.service.submit(ready)
            await self._save_position()
            return len(ready)

    # --- the database -------------------------------------------------------------------------

    async def _load_position(self) -> tuple[int, int] | None:
        return await positions.load(self.store, cdr_positions, self.pbx)

    async def _save_position(self) -> None:
        """The oldest row not yet resolved: reading again from there loses nothing. Before the file
        exists, NO_FILE is saved so that the next start reads all of it (not as a first start)."""
        position = self.tail.position if self.tail else None
        if position is None:
            inode, offset = NO_FILE, 0
        else:
            offsets = [o for _, o, _ in self.pending.values()] + list(self.submitted.values())
            inode, offset = position.inode, min(offsets + [position.offset])
        if (inode, offset) == self._saved:
            return
        await positions.save(self.store, cdr_positions, self.pbx, self.path, inode, offset, self.clock.now())
        self._saved = (inode, offset)
