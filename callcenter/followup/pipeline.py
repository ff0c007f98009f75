"""Committed calls to follow-up tasks, a batch at a time: the part of `FollowUp` that
callcenter/aftercommit.py runs (``name``, ``flag``, ``apply``).

One query finds the open tasks of all the batch's callers, one their case owners; the task
rules (callcenter/domain/tasks.py) decide per call in order; tasks opened by the batch live in
memory under negative ids (a later call of the batch attaches to or closes them there) until one
INSERT ... RETURNING writes them, then their events, in one statement each. A single call
(``careful``) is written as it goes, with a savepoint where another instance may have opened
the same task.
"""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from ..domain import tasks as rules
from ..domain.records import CallRecord
from ..storage import tables as t


def _event_row(task_id: int, version: int, at, kind: str, pbx, call_id, detail: dict) -> dict:
    return {"task_id": task_id, "version": version, "at": at, "kind": kind, "pbx": pbx, "call_id": call_id,
            "detail": json.dumps(detail, ensure_ascii=False)}


def _miss_detail(miss: rules.Miss) -> dict:
    return {"reason": miss.reason.value, "queue": miss.queue, "short": miss.short}


def _opening_events(task_id: int, row: dict, d: rules.OpenNew, now: datetime) -> list[dict]:
    return [_event_row(task_id, 1, d.miss.at, "miss", d.miss.pbx, d.miss.call_id, _miss_detail(d.miss)),
            _event_row(task_id, 2, now, "assigned", None, None, {"agent": row["assignee"], "via": row["assigned_via"]})]


class _Batch:
    """Tasks opened by a batch of calls, kept in memory under negative ids until `write`: a later
    call of the batch attaches to or closes them in place (the same rules as for stored tasks,
    the same events, one version per event), then one INSERT ... RETURNING writes them all."""

    def __init__(self):
        self.new: dict[int, dict] = {}
        self.events: list[dict] = []
        self.skips: list[dict] = []

    def open(self, row: dict, d: rules.OpenNew, now: datetime) -> int:
        task_id = -(len(self.new) + 1)
        self.new[task_id] = row
        self.events.extend(_opening_events(task_id, row, d, now))
        return task_id

    def attach(self, task_id: int, miss: rules.Miss) -> None:
        row = self.new[task_id]
        row["misses"] += 1
        row["last_missed_at"] = max(row["last_missed_at"], miss.at)
        row["version"] += 1
        self.events.append(_event_row(task_id, row["version"], miss.at, "miss", miss.pbx, miss.call_id,
                                      _miss_detail(miss)))

    def close(self, task_id: int, closure: rules.Closure, at: datetime, detail: dict) -> None:
        row = self.new[task_id]
        row.update(status="closed", closure=closure.value, closed_at=at, closed_by="system", next_attempt_at=None)
        if closure not in (rules.Closure.UNREACHABLE, rules.Closure.WRONG_NUMBER):
            row["contacted_at"] = row["contacted_at"] or at
        row["version"] += 1
        self.events.append(_event_row(task_id, row["version"], at, "closed", detail.get("pbx"), detail.get("call_id"),
                                      {"closure": closure.value, "by": "system", "note": ""}))

    async def write(self, conn, store) -> None:
        if self.new:
            placeholders = list(self.new)
            result = await conn.execute(insert(t.tasks).returning(t.tasks.c.id, sort_by_parameter_order=True),
                                        [self.new[p] for p in placeholders])
            ids = dict(zip(placeholders, (row[0] for row in result)))
            for event in self.events:
                if event["task_id"] < 0:
                    event["task_id"] = ids[event["task_id"]]
        if self.events:
            await conn.execute(insert(t.task_events), self.events)
        if self.skips:
            await conn.execute(store._insert(t.skipped_misses).on_conflict_do_nothing(), self.skips)


class TaskPipeline:
    """Mixed into `FollowUp` (callcenter/followup/service.py), which supplies the store, the
    policy, the calendar, `_bump`, `_close` and the owner lookups."""

    name = "followup"                                   # as a step of callcenter/aftercommit.py
    flag = "followup_done"

    async def process_pending(self) -> int:
        """Apply the rules to every committed call not yet followed up, in batches; returns how many.
        (The running service does this through callcenter/aftercommit.py.)"""
        from ..aftercommit import Runner
        return await Runner(self.store, self.settings.pipeline, self.clock).run(self)

    async def _process(self, record: CallRecord) -> None:
        """One call in a transaction of its own."""
        async with self.store.begin() as conn:
            if await self.store.claim(conn, record, self.flag):
                await self.apply(conn, [record], careful=True)

    async def apply(self, conn, records: list[CallRecord], careful: bool = False) -> None:
        """The decisions for claimed calls, in the caller's transaction: one query for the open
        tasks of all their callers, one for their case owners; new tasks are built in memory
        (a later call of the batch attaches to or closes them there) and written with their
        events in one statement each. `careful`: one call, written as it goes; a task opened
        meanwhile by another instance is joined (savepoint) instead of failing the transaction."""
        numbers = {r.caller_num for r in records}
        open_tasks = await self._open_tasks(conn, numbers)
        owners = await self.owners_of(conn, numbers) if self.owners_of else None
        batch = None if careful else _Batch()
        for record in records:
            decisions = rules.plan_for_call(record, open_tasks, self.policy,
                                            self.directory.department_of_queue, self.settings.service_office)
            for decision in decisions:
                await self._apply(conn, record, decision, open_tasks, owners, batch)
        if batch is not None:
            await batch.write(conn, self.store)

    async def _open_tasks(self, conn, numbers) -> dict[tuple[str, str], rules.OpenTask]:
        numbers = [numbers] if isinstance(numbers, str) else sorted(numbers)
        out: dict[tuple[str, str], rules.OpenTask] = {}
        for chunk in range(0, len(numbers), 500):
            rows = (await conn.execute(select(t.tasks.c.id, t.tasks.c.caller_num, t.tasks.c.department,
                                              t.tasks.c.deadline, t.tasks.c.reason).where(
                t.tasks.c.caller_num.in_(numbers[chunk:chunk + 500]), t.tasks.c.status == "open"))).all()
            out.update({(r.caller_num, r.department): rules.OpenTask(r.id, r.caller_num, r.department, r.deadline,
                                                                     r.reason)
                        for r in rows})
        return out

    async def _apply(self, conn, record: CallRecord, d: rules.Decision, open_tasks: dict, owners: dict | None,
                     batch: "_Batch | None") -> None:
        now = self.clock.now()
        if isinstance(d, rules.OpenNew):
            if owners is not None:
                owner = owners.get((d.caller_num, d.department))
            else:
                owner = await self.owner_of(d.caller_num, d.department, conn)
            if batch is not None:
                task_id = batch.open(self._task_row(d, now, owner), d, now)
                self.tasks_opened += 1
            else:
                try:
                    async with conn.begin_nested():
                        task_id = await self._open(conn, d, now, owner)
                except IntegrityError:                  # opened meanwhile by another instance
                    existing = (await self._open_tasks(conn, d.caller_num)).get((d.caller_num, d.department))
                    if existing is None:
                        raise
                    await self._attach(conn, existing.id, d.miss)
                    task_id = existing.id
            open_tasks[(d.caller_num, d.department)] = rules.OpenTask(task_id, d.caller_num, d.department, now)
        elif isinstance(d, rules.Attach):
            if batch is not None and d.task_id < 0:
                batch.attach(d.task_id, d.miss)
            else:
                await self._attach(conn, d.task_id, d.miss, batch.events if batch is not None else None)
        elif isinstance(d, rules.Close):
            if batch is not None and d.task_id < 0:
                batch.close(d.task_id, d.closure, d.at, {"pbx": d.pbx, "call_id": d.call_id})
            else:
                await self._close(conn, d.task_id, d.closure, d.at, "system", "", {"pbx": d.pbx, "call_id": d.call_id})
            for key in [key for key, task in open_tasks.items() if task.id == d.task_id]:
                del open_tasks[key]
        elif isinstance(d, rules.Skip):
            skip = {"pbx": d.miss.pbx, "call_id": d.miss.call_id, "caller_num": record.caller_num,
                    "department": d.department, "at": d.miss.at, "reason": d.miss.reason.value, "why": d.why}
            if batch is not None:
                batch.skips.append(skip)
            else:
                await conn.execute(self.store._insert(t.skipped_misses).on_conflict_do_nothing(), [skip])

    def _task_row(self, d: rules.OpenNew, now: datetime, owner: str | None) -> dict:
        """A new task's row (version 2: its miss and its assignment are events 1 and 2)."""
        deadline = self.calendar.add_workdays(d.miss.at, self.policy.contact_workdays, self.windows(d.department))
        who = rules.assign(d.department, d.caller_num, self.posts, lambda number, department: owner,
                           self.available_for(d.department))
        queue = d.miss.queue or self.directory.main_queue(d.department, d.miss.pbx)
        return dict(
            caller_num=d.caller_num, department=d.department, pbx=d.miss.pbx, queue=queue, status="open",
            reason=d.miss.reason.value, created_at=now, first_missed_at=d.miss.at, last_missed_at=d.miss.at, misses=1,
            short_abandon=d.miss.short, deadline=deadline.at, deadline_provisional=deadline.provisional,
            assignee=who.agent, assigned_via=who.via, pooled_from_unmapped=d.pooled_from_unmapped,
            attempts=0, next_attempt_at=None, contacted_at=None, closed_at=None, closure=None, closed_by=None,
            note="", version=2)

    async def _open(self, conn, d: rules.OpenNew, now: datetime, owner: str | None = None) -> int:
        row = self._task_row(d, now, owner)
        task_id = (await conn.execute(insert(t.tasks).values(**row))).inserted_primary_key[0]
        await conn.execute(insert(t.task_events), _opening_events(task_id, row, d, now))
        self.tasks_opened += 1
        return task_id

    async def _attach(self, conn, task_id: int, miss: rules.Miss, events: list | None = None) -> None:
        version = await self._bump(conn, task_id, misses=t.tasks.c.misses + 1,
                                   last_missed_at=func.max(t.tasks.c.last_missed_at, miss.at)
                                   if self.store.dialect == "sqlite" else func.greatest(t.tasks.c.last_missed_at, miss.at))
        row = _event_row(task_id, version, miss.at, "miss", miss.pbx, miss.call_id, _miss_detail(miss))
        if events is None:
            await conn.execute(insert(t.task_events), [row])
        else:
            events.append(row)
