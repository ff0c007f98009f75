"""Applies the task rules to committed calls.

The database is the queue: every call is stored with ``followup_done = false`` and this service
claims each one (UPDATE ... WHERE followup_done = false) in the same transaction that writes its
task decisions. A crash between the call's commit and its task leaves the call unclaimed, and
the next ``process_pending`` (at start-up, and after every commit) picks it up. Two instances
never both claim a call, and a partial unique index keeps one open task per caller and
department.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Awaitable, Callable

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..domain import tasks as rules
from ..domain.records import CallRecord
from ..storage import tables as t
from ..storage.store import Store

log = logging.getLogger(__name__)


class TaskError(Exception):
    """A request about a task that cannot be honoured (maps to HTTP 4xx)."""

    def __init__(self, message: str, status: int = 400, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code          # a stable machine-readable reason for API clients


async def _no_owner(number: str, department: str, conn=None) -> str | None:
    return None


def policy_from(settings) -> rules.Policy:
    f = settings.followup
    return rules.Policy(
        contact_workdays=f.contact_workdays, short_abandon_seconds=settings.thresholds.short_abandon_seconds,
        short_abandons_create_tasks=f.short_abandons_create_tasks, withheld_create_tasks=f.withheld_create_tasks,
        max_attempts=f.max_attempts, retry_spacing_minutes=f.retry_spacing_minutes,
        warn_before_minutes=f.warn_before_minutes)


class FollowUp:
    def __init__(self, store: Store, settings, calendar, clock,
                 available: Callable[[str], bool] = lambda agent: True,
                 owner_of: Callable[..., Awaitable[str | None]] | None = None):
        self.store = store
        self.settings = settings
        self.calendar = calendar
        self.clock = clock
        self.available = available
        self.owner_of = owner_of or _no_owner   # the caller's case owner (callcenter/cases)
        self.policy = policy_from(settings)
        self.directory = settings.directory()
        posts: dict[str, list[tuple[str, str]]] = {}
        for post in settings.posts:
            posts.setdefault(post.department, []).append((post.a, post.b))
        self.posts = rules.Posts(posts)
        self.tasks_opened = 0

    def windows(self, department: str | None):
        return tuple((w.start, w.end) for w in self.settings.hours_of(department))

    # --- calls to tasks -----------------------------------------------------------------------

    async def process_pending(self) -> int:
        """Apply the rules to every committed call not yet followed up; returns how many."""
        return await self.store.each_unclaimed("followup_done", self._process)

    async def _process(self, record: CallRecord) -> None:
        async with self.store.begin() as conn:
            if not await self.store.claim(conn, record, "followup_done"):
                return                                  # another instance took it
            open_tasks = await self._open_tasks(conn, record.caller_num)
            decisions = rules.plan_for_call(record, open_tasks, self.policy,
                                            self.directory.department_of_queue, self.settings.service_office)
            for decision in decisions:
                await self._apply(conn, record, decision)

    async def _open_tasks(self, conn, number: str) -> dict[tuple[str, str], rules.OpenTask]:
        rows = (await conn.execute(select(t.tasks.c.id, t.tasks.c.department, t.tasks.c.deadline).where(
            t.tasks.c.caller_num == number, t.tasks.c.status == "open"))).all()
        return {(number, r.department): rules.OpenTask(r.id, number, r.department, r.deadline) for r in rows}

    async def _apply(self, conn, record: CallRecord, d: rules.Decision) -> None:
        now = self.clock.now()
        if isinstance(d, rules.OpenNew):
            try:
                async with conn.begin_nested():
                    await self._open(conn, d, now)
            except IntegrityError:                      # opened meanwhile by another instance
                existing = (await self._open_tasks(conn, d.caller_num)).get((d.caller_num, d.department))
                if existing is None:
                    raise
                await self._attach(conn, existing.id, d.miss)
        elif isinstance(d, rules.Attach):
            await self._attach(conn, d.task_id, d.miss)
        elif isinstance(d, rules.Close):
            await self._close(conn, d.task_id, d.closure, d.at, "system", "",
                              {"pbx": d.pbx, "call_id": d.call_id})
        elif isinstance(d, rules.Skip):
            await conn.execute(self.store._insert(t.skipped_misses).on_conflict_do_nothing(), [{
                "pbx": d.miss.pbx, "call_id": d.miss.call_id, "caller_num": record.caller_num,
                "department": d.department, "at": d.miss.at, "reason": d.miss.reason.value, "why": d.why}])

    async def _open(self, conn, d: rules.OpenNew, now: datetime) -> int:
        deadline = self.calendar.add_workdays(d.miss.at, self.policy.contact_workdays, self.windows(d.department))
        owner = await self.owner_of(d.caller_num, d.department, conn)
        who = rules.assign(d.department, d.caller_num, self.posts, lambda number, department: owner, self.available)
        queue = d.miss.queue or self.directory.main_queue(d.department, d.miss.pbx)
        result = await conn.execute(insert(t.tasks).values(
            caller_num=d.caller_num, department=d.department, pbx=d.miss.pbx, queue=queue, status="open", reason=d.miss.reason.value,
            created_at=now, first_missed_at=d.miss.at, last_missed_at=d.miss.at, misses=1,
            short_abandon=d.miss.short, deadline=deadline.at, deadline_provisional=deadline.provisional,
            assignee=who.agent, assigned_via=who.via, pooled_from_unmapped=d.pooled_from_unmapped,
            attempts=0, note=""))
        task_id = result.inserted_primary_key[0]
        await self._event(conn, task_id, d.miss.at, "miss", d.miss.pbx, d.miss.call_id,
                          {"reason": d.miss.reason.value, "queue": d.miss.queue, "short": d.miss.short})
        await self._event(conn, task_id, now, "assigned", None, None, {"agent": who.agent, "via": who.via})
        self.tasks_opened += 1
        return task_id

    async def _attach(self, conn, task_id: int, miss: rules.Miss) -> None:
        await conn.execute(update(t.tasks).where(t.tasks.c.id == task_id).values(
            misses=t.tasks.c.misses + 1, last_missed_at=func.max(t.tasks.c.last_missed_at, miss.at)
            if self.store.dialect == "sqlite" else func.greatest(t.tasks.c.last_missed_at, miss.at)))
        await self._event(conn, task_id, miss.at, "miss", miss.pbx, miss.call_id,
                          {"reason": miss.reason.value, "queue": miss.queue, "short": miss.short})

    async def _close(self, conn, task_id: int, closure: rules.Closure, at: datetime, by: str, note: str,
                     detail: dict) -> None:
        contacted = closure not in (rules.Closure.UNREACHABLE, rules.Closure.WRONG_NUMBER)
        values = {"status": "closed", "closure": closure.value, "closed_at": at, "closed_by": by,
                  "next_attempt_at": None}
        if note:
            values["note"] = note
        if contacted:
            values["contacted_at"] = func.coalesce(t.tasks.c.contacted_at, at)
        result = await conn.execute(update(t.tasks).where(t.tasks.c.id == task_id, t.tasks.c.status == "open")
                                    .values(**values))
        if result.rowcount != 1:
            if by == "system":
                return                      # already closed by someone else: nothing to add
            raise TaskError(f"task {task_id} is already closed", 409, "already_closed")
        await self._event(conn, task_id, at, "closed", detail.get("pbx"), detail.get("call_id"),
                          {"closure": closure.value, "by": by, "note": note})

    @staticmethod
    async def _event(conn, task_id, at, kind, pbx, call_id, detail: dict) -> None:
        await conn.execute(insert(t.task_events).values(
            task_id=task_id, at=at, kind=kind, pbx=pbx, call_id=call_id,
            detail=json.dumps(detail, ensure_ascii=False)))

    async def request(self, number: str, department: str, reason: rules.Reason, at: datetime, pbx: str,
                      ref: str, queue: str | None = None) -> dict:
        """A miss that is not a queue call: a callback request left in the IVR or voicemail, or a
        callback the caller did not answer. Attaches to the caller's open task, else opens one."""
        if department not in self.directory.department_names:
            raise TaskError(f"unknown department {department!r}", code="unknown_department")
        if not number:
            raise TaskError("a callback request needs the caller's number", code="missing_number")
        miss = rules.Miss(pbx, ref, reason, at, queue)
        async with self.store.begin() as conn:
            task = (await self._open_tasks(conn, number)).get((number, department))
            if task is not None:
                await self._attach(conn, task.id, miss)
                task_id = task.id
            else:
                task_id = await self._open(conn, rules.OpenNew(number, department, miss), self.clock.now())
        return await self.get(task_id)

    # --- agents' actions ----------------------------------------------------------------------

    async def close(self, task_id: int, closure: str, by: str, note: str = "") -> dict:
        try:
            closure_ = rules.Closure(closure)
        except ValueError:
            raise TaskError(f"unknown outcome {closure!r}; one of "
                            + ", ".join(sorted(c.value for c in rules.MANUAL_CLOSURES)), code="unknown_outcome") from None
        if closure_ not in rules.MANUAL_CLOSURES:
            raise TaskError(f"outcome {closure!r} is set by the system, not by an agent", code="system_outcome")
        task = await self.get(task_id)
        if task["status"] != "open":
            raise TaskError(f"task {task_id} is already closed", 409, "already_closed")
        if closure_ is rules.Closure.UNREACHABLE and task["attempts"] < self.policy.max_attempts:
            raise TaskError(f"unreachable needs {self.policy.max_attempts} callback attempts; "
                            f"task {task_id} has {task['attempts']}", 409, "too_few_attempts")
        async with self.store.begin() as conn:
            await self._close(conn, task_id, closure_, self.clock.now(), by, note, {})
        return await self.get(task_id)

    async def assign_to(self, task_id: int, agent: str | None, by: str) -> dict:
        if agent is not None and agent not in self.directory.agent_names:
            raise TaskError(f"unknown agent {agent!r}", code="unknown_agent")
        await self.get(task_id)
        async with self.store.begin() as conn:
            await conn.execute(update(t.tasks).where(t.tasks.c.id == task_id).values(
                assignee=agent, assigned_via="manual" if agent else "pool"))
            await self._event(conn, task_id, self.clock.now(), "assigned", None, None, {"agent": agent, "by": by})
        return await self.get(task_id)

    async def add_note(self, task_id: int, note: str, by: str) -> dict:
        await self.get(task_id)
        async with self.store.begin() as conn:
            await self._event(conn, task_id, self.clock.now(), "note", None, None, {"note": note, "by": by})
        return await self.get(task_id)

    # --- reads --------------------------------------------------------------------------------

    async def get(self, task_id: int) -> dict:
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(select(t.tasks).where(t.tasks.c.id == task_id))).mappings().first()
            if row is None:
                raise TaskError(f"no task {task_id}", 404)
            events = (await conn.execute(select(t.task_events).where(t.task_events.c.task_id == task_id)
                                         .order_by(t.task_events.c.at, t.task_events.c.id))).mappings().all()
            attempts = (await conn.execute(select(t.callback_attempts).where(
                t.callback_attempts.c.task_id == task_id).order_by(t.callback_attempts.c.id))).mappings().all()
        task = self._task_dict(row)
        task["history"] = [{"at": e["at"].isoformat(), "kind": e["kind"], "pbx": e["pbx"], "call_id": e["call_id"],
                            **json.loads(e["detail"] or "{}")} for e in events]
        task["callbacks"] = [_attempt_dict(a) for a in attempts]
        return task

    async def list(self, status: str | None = None, department: str | None = None,
                   assignee: str | None = None, caller: str | None = None, overdue: bool | None = None,
                   since: datetime | None = None, until: datetime | None = None, limit: int = 500) -> list[dict]:
        c = t.tasks.c
        conditions = []
        if status:
            conditions.append(c.status == status)
        if department:
            conditions.append(c.department == department)
        if assignee == "pool":
            conditions.append(c.assignee.is_(None))
        elif assignee:
            conditions.append(c.assignee == assignee)
        if caller:
            conditions.append(c.caller_num == caller)
        if overdue is not None:
            now = self.clock.now()
            late = (c.status == "open") & (c.deadline < now)
            conditions.append(late if overdue else ~late)
        if since:
            conditions.append(c.created_at >= since)
        if until:
            conditions.append(c.created_at < until)
        query = select(t.tasks).where(and_(*conditions)) if conditions else select(t.tasks)
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(query.order_by(c.deadline, c.id).limit(limit))).mappings().all()
        return [self._task_dict(r) for r in rows]

    def _task_dict(self, r) -> dict:
        now = self.clock.now()
        return {
            "id": r["id"], "caller_num": r["caller_num"], "department": r["department"],
            "pbx": r["pbx"], "queue": r["queue"],
            "department_name": self.directory.department_names.get(r["department"]),
            "status": r["status"], "reason": r["reason"], "created_at": r["created_at"].isoformat(),
            "first_missed_at": r["first_missed_at"].isoformat(), "last_missed_at": r["last_missed_at"].isoformat(),
            "misses": r["misses"], "short_abandon": r["short_abandon"],
            "deadline": r["deadline"].isoformat(), "deadline_provisional": r["deadline_provisional"],
            "overdue": r["status"] == "open" and r["deadline"] < now,
            "assignee": r["assignee"], "assignee_name": self.directory.agent_names.get(r["assignee"]),
            "assigned_via": r["assigned_via"], "pooled_from_unmapped": r["pooled_from_unmapped"],
            "attempts": r["attempts"],
            "next_attempt_at": r["next_attempt_at"].isoformat() if r["next_attempt_at"] else None,
            "contacted_at": r["contacted_at"].isoformat() if r["contacted_at"] else None,
            "closed_at": r["closed_at"].isoformat() if r["closed_at"] else None,
            "closure": r["closure"], "closed_by": r["closed_by"], "note": r["note"],
        }


def _attempt_dict(a) -> dict:
    return {"id": a["id"], "key": a["key"], "pbx": a["pbx"], "agent": a["agent"], "number": a["number"],
            "requested_at": a["requested_at"].isoformat(), "result": a["result"],
            "answered_at": a["answered_at"].isoformat() if a["answered_at"] else None,
            "ended_at": a["ended_at"].isoformat() if a["ended_at"] else None,
            "talk_seconds": a["talk_seconds"], "reason_code": a["reason_code"]}
