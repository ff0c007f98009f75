"""Runs what acts on committed calls (first-ask cases, then follow-up tasks, then callback
results) off the ingest path, in batches.

The database is the queue: the ingest consumer only signals that calls were committed (and hands
over callback results, which wait in memory for the next pass); this worker reads unclaimed
calls oldest first. Each step claims a batch (``UPDATE calls SET flag = true WHERE ... AND flag =
false RETURNING id``) and applies its decisions for the whole batch in the same transaction.
When a batch fails, its calls are retried one per transaction, so one poison call cannot sink its
batch; a call whose step raises `pipeline.max_attempts` times (over successive passes) is parked:
its flag is set so every later call proceeds, `call_failures` keeps the step, the count and the
last error, one log line names it, and `callcenter calls parked` and /api/health list it. A
database that is down or times out is not a poison: the pass stops and the next tick retries.

Passes run after every commit and at least every `pipeline.tick_seconds` (retries, and callback
attempts still pending after the ring timeout plus a margin, which expire). ``stop()`` lets the
running batch finish and stops between batches; ``finish()`` then catches up for at most
`pipeline.stop_seconds`; whatever is still unclaimed waits for the next start, which catches up
in the background.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from sqlalchemy import false, func, or_, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from .domain.records import CallRecord
from .storage import tables as t
from .storage.health import is_unavailable

log = logging.getLogger(__name__)


class Step(Protocol):
    """What the cases and follow-up services offer the pipeline."""
    name: str            # "cases", "followup"
    flag: str            # the calls column that says it is done: cases_done, followup_done

    async def apply(self, conn, records: list[CallRecord], careful: bool) -> None:
        """Decide and write for `records` (already claimed) inside `conn`'s transaction.
        `careful`: one call alone, so a conflict with another instance may use a savepoint."""


def transient(exc: BaseException) -> bool:
    """A database that is away (down, locked, timed out): retry later, never blame the call."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if is_unavailable(exc):                         # asyncpg's CannotConnectNow, admin shutdown, ...
        return True
    return isinstance(exc, (OperationalError, InterfaceError, PoolTimeout, OSError, ConnectionError,
                            asyncio.TimeoutError, TimeoutError))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "-"
    return f"{type(exc).__name__}: {text[:300]}"


async def claim_batch(conn, records: list[CallRecord], flag: str) -> list[CallRecord]:
    """Claim every call of `records` still unclaimed for `flag`; returns those this transaction got."""
    column = t.calls.c[flag]
    got: set[tuple[str, str]] = set()
    for pbx in sorted({r.pbx for r in records}):
        ids = [r.id for r in records if r.pbx == pbx]
        rows = await conn.execute(update(t.calls).where(
            t.calls.c.pbx == pbx, t.calls.c.id.in_(ids), column == false()).values({flag: True})
            .returning(t.calls.c.id))
        got.update((pbx, row[0]) for row in rows)
    return [r for r in records if (r.pbx, r.id) in got]


class Runner:
    """Runs one step over the unclaimed calls: batches, the one-by-one fall-back, parking."""

    def __init__(self, store, cfg, clock, on_park=None):
        self.store = store
        self.cfg = cfg                       # settings.pipeline
        self.clock = clock
        self.on_park = on_park or (lambda: None)

    async def run(self, step: Step, condition=None, should_stop=None, skip: set | None = None) -> int:
        """Every pending call of `step` (those `condition` also admits), batch after batch, until
        none is left or `should_stop()`; returns how many calls were handled."""
        skip = set() if skip is None else skip
        done = 0
        while not (should_stop and should_stop()):
            n = await self.batch(step, condition, skip)
            if not n:
                break
            done += n
        return done

    async def batch(self, steps: Step | list[Step], condition=None, skip: set | None = None) -> int:
        """One batch: the oldest calls some step of `steps` has not done, every step applied to
        them in order in one transaction (the cases a call opens are there for its follow-up);
        returns how many calls it took up (0: nothing pending). When the transaction fails, each
        step retries each call in a transaction of its own, and only the calls that fail then
        count a failure (later steps leave such a call for the next pass)."""
        steps = steps if isinstance(steps, list) else [steps]
        skip = set() if skip is None else skip
        pending = or_(*(t.calls.c[step.flag] == false() for step in steps))
        if condition is not None:
            pending = pending & condition
        size = self.cfg.batch_size
        records = [r for r in await self.store.calls_where(pending, limit=size + len(skip))
                   if (r.pbx, r.id) not in skip][:size]
        if not records:
            return 0
        try:
            async with self.store.begin() as conn:
                for step in steps:
                    mine = await claim_batch(conn, records, step.flag)
                    if mine:
                        await step.apply(conn, mine, careful=len(mine) == 1)
            return len(records)
        except Exception as exc:
            if transient(exc):
                raise
            log.warning("%s: a batch of %d calls failed (%s); retrying them one by one",
                        "/".join(step.name for step in steps), len(records), _one_line(exc))
        for step in steps:
            for record in records:
                if (record.pbx, record.id) in skip:
                    continue
                try:
                    async with self.store.begin() as conn:
                        if await self.store.claim(conn, record, step.flag):
                            await step.apply(conn, [record], careful=True)
                except Exception as exc:
                    if transient(exc):
                        raise
                    skip.add((record.pbx, record.id))
                    await self.failed(step, record, exc)
        return len(records)

    async def failed(self, step: Step, record: CallRecord, exc: Exception) -> None:
        """Count one failure of `record`'s step; park it once it failed `max_attempts` times."""
        now = self.clock.now()
        error = _one_line(exc)
        f = t.call_failures.c
        key = (f.pbx == record.pbx) & (f.call_id == record.id) & (f.step == step.name)
        async with self.store.begin() as conn:
            attempts = ((await conn.execute(select(f.attempts).where(key))).scalar() or 0) + 1
            parked = attempts >= self.cfg.max_attempts
            if attempts == 1:
                await conn.execute(t.call_failures.insert().values(
                    pbx=record.pbx, call_id=record.id, step=step.name, attempts=1, parked=parked,
                    error=error, first_failed_at=now, last_failed_at=now))
            else:
                await conn.execute(update(t.call_failures).where(key).values(
                    attempts=attempts, parked=parked, error=error, last_failed_at=now))
            if parked:
                await conn.execute(update(t.calls).where(
                    t.calls.c.pbx == record.pbx, t.calls.c.id == record.id).values({step.flag: True}))
        log.debug("call %s/%s: %s step failed", record.pbx, record.id, step.name, exc_info=exc)
        if parked:
            self.on_park()
            log.error("call %s/%s parked: its %s step failed %d times; last error: %s "
                      "(listed by `callcenter calls parked`)", record.pbx, record.id, step.name, attempts, error)
        else:
            log.warning("call %s/%s: %s step failed (attempt %d of %d, retried on the next pass): %s",
                        record.pbx, record.id, step.name, attempts, self.cfg.max_attempts, error)


async def parked_calls(store) -> list[dict]:
    """Parked calls, oldest failure first: pbx, call_id, step, attempts, error, first/last failure."""
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(t.call_failures).where(t.call_failures.c.parked.is_(True))
                                   .order_by(t.call_failures.c.first_failed_at))).mappings().all()
    return [dict(r) for r in rows]


async def count_parked(store) -> int:
    async with store.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(t.call_failures)
                                   .where(t.call_failures.c.parked.is_(True)))).scalar_one()


class AfterCommit:
    def __init__(self, store, steps: list[Step], cfg, clock, callbacks=None):
        """`steps` in order, all in one transaction per batch (follow-up sees the case a call
        opened). `callbacks`: records callback results and expires lost attempts
        (callcenter/followup/callbacks.py)."""
        self.store = store
        self.steps = steps
        self.cfg = cfg
        self.clock = clock
        self.callbacks = callbacks
        self.parked = 0                       # calls parked so far (for /api/health)
        self.runner = Runner(store, cfg, clock, on_park=self._parked)
        self.results: list = []               # callback results waiting for the next pass
        self.waiting = 0                      # calls committed since the last pass began
        self._handovers = 0                   # hand-overs of callback results so far
        self.kick = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._deadline: float | None = None
        self._running = asyncio.Lock()            # one pass at a time, whoever asks for it

    def _parked(self) -> None:
        self.parked += 1

    async def on_calls_committed(self, records) -> None:
        self.waiting += len(records)
        self.idle.clear()
        self.kick.set()

    async def add_callback_results(self, results: list) -> None:
        """The service's tracker hands callback results over (after the calls committed before
        them); a pass records them once a batch begun after the hand-over found every pending
        call (a callback may answer a call committed a moment before it)."""
        self.results.extend(results)
        self._handovers += 1
        self.idle.clear()
        self.kick.set()

    async def start(self) -> None:
        self._stopping = False
        try:
            self.parked = await count_parked(self.store)
            if self.callbacks is not None:
                await self.callbacks.expire_pending()     # answers lost while we were away
        except Exception as exc:
            log.warning("after-commit start-up checks failed (%s); the first pass retries", _one_line(exc))
        self.idle.clear()
        self.kick.set()                                # calls committed before this start
        self._task = asyncio.get_running_loop().create_task(self._run(), name="after-commit")

    async def stop(self) -> None:
        """Stop between batches (a running batch finishes: never a transaction cut half-way)."""
        self._stopping = True
        self.kick.set()
        if self._task:
            # a batch stuck on a database that hangs is cancelled (its transaction rolls back,
            # its calls stay unclaimed for the next start)
            done, _ = await asyncio.wait({self._task}, timeout=self.cfg.stop_seconds + 2)
            if not done:
                log.warning("after-commit: a batch did not finish within %.0f s of the stop; cancelled",
                            self.cfg.stop_seconds + 2)
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def finish(self, seconds: float | None = None) -> None:
        """After the service's last flush: catch up for at most `seconds` (default
        `pipeline.stop_seconds`), then record the callback results still held."""
        loop = asyncio.get_running_loop()
        self._stopping = False
        self._deadline = loop.time() + (self.cfg.stop_seconds if seconds is None else seconds)
        budget = (self.cfg.stop_seconds if seconds is None else seconds) + 2
        try:
            await asyncio.wait_for(self.run_once(), budget)     # a hung database cannot hold the stop
            if self.results:
                await asyncio.wait_for(self._record_results(), 2)
        except asyncio.TimeoutError:
            log.warning("after-commit: catching up at stop took over %.0f s; the next start goes on", budget)
        finally:
            self._deadline = None
            self._stopping = True
        left = await self._pending_count()
        if left:
            log.info("stopping with %d committed calls not yet processed; the next start catches up", left)

    async def catch_up(self) -> None:
        """Until nothing committed is left unprocessed (replays, tests)."""
        await self.run_once()

    async def settled(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.idle.wait(), timeout)

    def _should_stop(self) -> bool:
        if self._stopping:
            return True
        return self._deadline is not None and asyncio.get_running_loop().time() > self._deadline

    async def run_once(self) -> None:
        """One pass: batch after batch (each batch through every step, in order), the callback
        results held after each batch, then expiry of lost callbacks; stops between batches."""
        async with self._running:
            skip: set = set()
            try:
                while not self._should_stop():
                    handovers = self._handovers
                    handled = await self.runner.batch(self.steps, None, skip)
                    if self.results and handled < self.cfg.batch_size and handovers == self._handovers:
                        await self._record_results()      # every call committed before them is done
                    if not handled and not self.results:
                        break
                if self.callbacks is not None and not self._should_stop():
                    await self.callbacks.expire_pending()
            except Exception as exc:
                log.error("after-commit pass stopped (%s); it runs again on the next commit or tick",
                          _one_line(exc), exc_info=not transient(exc))

    async def _record_results(self) -> None:
        results, self.results = self.results, []
        if self.callbacks is not None:
            try:
                await self.callbacks.record(results)
            except Exception:
                self.results[:0] = results      # the database is away: kept for the next pass (and the journal)
                raise

    async def _pending_count(self) -> int:
        try:
            return await asyncio.wait_for(self._count_pending(), 1)
        except Exception:
            return 0

    async def _count_pending(self) -> int:
        try:
            condition = None
            for step in self.steps:
                c = t.calls.c[step.flag] == false()
                condition = c if condition is None else condition | c
            if condition is None:
                return 0
            async with self.store.engine.connect() as conn:
                return (await conn.execute(select(func.count()).select_from(t.calls).where(condition))).scalar_one()
        except Exception:
            return 0

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await asyncio.wait_for(self.kick.wait(), self.cfg.tick_seconds)
            except asyncio.TimeoutError:
                pass
            self.kick.clear()
            # under load, let a batch fill before a pass (a pass per commit would be one call per
            # transaction again); a quiet moment's lone call waits `linger_seconds` at most
            linger = asyncio.get_running_loop().time() + self.cfg.linger_seconds
            while (self.waiting < self.cfg.batch_size and not self._stopping and not self.results
                   and asyncio.get_running_loop().time() < linger):
                await asyncio.sleep(min(0.01, self.cfg.linger_seconds))
            if self._stopping:
                return
            self.waiting = 0
            await self.run_once()
            if not self.kick.is_set() and not self.results:
                self.idle.set()
