"""Applies the task rules to committed calls.

The database is the queue: every call is stored with ``followup_done = false`` and this service
claims calls (UPDATE ... WHERE followup_done = false) in the same transaction that writes their
task decisions, a batch of calls at a time (callcenter/aftercommit.py runs it, with a one-by-one
fall-back and poison calls parked). A crash between the call's commit and its task leaves the
call unclaimed, and the next pass picks it up. Two instances never both claim a call, and a
partial unique index keeps one open task per caller and department.

Every change to a task bumps its ``version`` and writes one event carrying that version, so a
task's history is one chain 1, 2, 3...; agents' closes and reassignments are compare-and-set
on it: of concurrent ones, one wins and the others get 409 with the task as it is.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Awaitable, Callable

from sqlalchemy import and_, func, insert, select, update

from ..domain import tasks as rules
from ..domain import validation
from ..storage import tables as t
from ..storage.store import Store
from .pipeline import TaskPipeline, _event_row

log = logging.getLogger(__name__)


class TaskError(Exception):
    """A request about a task that cannot be honoured (maps to HTTP 4xx)."""

    def __init__(self, message: str, status: int = 400, code: str | None = None, current: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code          # a stable machine-readable reason for API clients
        self.current = current    # a 409's task or case as it is now


async def _no_owner(number: str, department: str, conn=None) -> str | None:
    return None


def policy_from(settings) -> rules.Policy:
    f = settings.followup
    return rules.Policy(
        contact_workdays=f.contact_workdays, short_abandon_seconds=settings.thresholds.short_abandon_seconds,
        short_abandons_create_tasks=f.short_abandons_create_tasks, withheld_create_tasks=f.withheld_create_tasks,
        max_attempts=f.max_attempts, retry_spacing_minutes=f.retry_spacing_minutes,
        warn_before_minutes=f.warn_before_minutes)


class FollowUp(TaskPipeline):
    def __init__(self, store: Store, settings, calendar, clock,
                 available: Callable[[str], bool] = lambda agent: True,
                 owner_of: Callable[..., Awaitable[str | None]] | None = None,
                 owners_of: Callable[..., Awaitable[dict]] | None = None):
        self.store = store
        self.settings = settings
        self.calendar = calendar
        self.clock = clock
        self.available = available              # per_pbx (bootstrap.agent_available): available(agent, pbx)
        self.owner_of = owner_of or _no_owner   # the caller's case owner (callcenter/cases)
        self.owners_of = owners_of              # the same for many callers at once: (conn, numbers) -> {(number, department): owner}
        self.policy = policy_from(settings)
        self.directory = settings.directory()
        posts: dict[str, list[tuple[str, str]]] = {}
        self.post_pbxes: dict[tuple[str, str], set[str]] = {}     # (department, agent) -> its posts' PBXes
        for post in settings.posts:
            posts.setdefault(post.department, []).append((post.a, post.b))
            pbx = settings.post_pbx(post)[0]
            for agent in (post.a, post.b):
                self.post_pbxes.setdefault((post.department, agent), set()).add(pbx)
        self.posts = rules.Posts(posts)
        self.tasks_opened = 0

    def windows(self, department: str | None):
        return tuple((w.start, w.end) for w in self.settings.hours_of(department))

    def available_for(self, department: str) -> Callable[[str], bool]:
        """Whether a post's agent is available to take a task: on the PBX of their post in the
        department (issue 14) when `available` can tell PBXes apart, else anywhere."""
        available = self.available
        if not getattr(available, "per_pbx", False):
            return available
        return lambda agent: any(available(agent, pbx) for pbx in self.post_pbxes.get((department, agent), ()) if pbx)

    # --- calls to tasks -----------------------------------------------------------------------

    async def _close(self, conn, task_id: int, closure: rules.Closure, at: datetime, by: str, note: str,
                     detail: dict, expected: int | None = None) -> bool:
        """Close an open task (compare-and-set on its version when `expected` is given). A system
        closure of a task closed meanwhile is a no-op (False); an agent's is a 409."""
        contacted = closure not in (rules.Closure.UNREACHABLE, rules.Closure.WRONG_NUMBER)
        values = {"status": "closed", "closure": closure.value, "closed_at": at, "closed_by": by,
                  "next_attempt_at": None}
        if note:
            values["note"] = note
        if contacted:
            values["contacted_at"] = func.coalesce(t.tasks.c.contacted_at, at)
        conditions = [t.tasks.c.status == "open"]
        if expected is not None:
            conditions.append(t.tasks.c.version == expected)
        version = await self._bump(conn, task_id, *conditions, **values)
        if version is None:
            if by == "system":
                return False                    # already closed by someone else: nothing to add
            current = (await conn.execute(select(t.tasks.c.status, t.tasks.c.version)
                                          .where(t.tasks.c.id == task_id))).first()
            if current is not None and current.status == "open":
                raise TaskError(f"task {task_id} changed meanwhile (version {current.version}, not {expected})",
                                409, "version_conflict")
            raise TaskError(f"task {task_id} is already closed", 409, "already_closed")
        await self._event(conn, task_id, at, "closed", detail.get("pbx"), detail.get("call_id"),
                          {"closure": closure.value, "by": by, "note": note}, version=version)
        return True

    @staticmethod
    async def _bump(conn, task_id: int, *conditions, **values) -> int | None:
        """Apply `values` and the next version to the task if `conditions` hold (the row stays
        locked on PostgreSQL until commit); returns the new version, None when nothing matched."""
        result = await conn.execute(update(t.tasks).where(t.tasks.c.id == task_id, *conditions)
                                    .values(version=t.tasks.c.version + 1, **values).returning(t.tasks.c.version))
        return result.scalar()

    async def _event(self, conn, task_id, at, kind, pbx, call_id, detail: dict, version: int | None = None) -> int:
        """One audit event; it takes the task's next version unless `version` (already bumped) is given."""
        if version is None:
            version = await self._bump(conn, task_id)
        await conn.execute(insert(t.task_events), [_event_row(task_id, version, at, kind, pbx, call_id, detail)])
        return version

    async def _conflict(self, exc: TaskError, task_id: int) -> TaskError:
        """A 409 carries the task as it is now."""
        if exc.status == 409 and exc.current is None:
            try:
                exc.current = await self.get(task_id)
            except TaskError:
                pass
        return exc

    async def request(self, number: str, department: str, reason: rules.Reason, at: datetime, pbx: str,
                      ref: str, queue: str | None = None) -> dict:
        """A miss that is not a queue call: a callback request left in the IVR or voicemail, or a
        callback the caller did not answer. Attaches to the caller's open task, else opens one."""
        if department not in self.directory.department_names:
            raise TaskError(f"unknown department {department!r}", code="unknown_department")
        if not number:
            raise TaskError("a callback request needs the caller's number", code="missing_number")
        try:
            number = validation.phone_number(number)       # defence behind the web models
        except validation.InvalidValue as exc:
            raise TaskError(f"caller number: {exc}", code="invalid_number") from None
        async with self.store.begin() as conn:
            task_id = await self.attach_or_open(conn, number, department, rules.Miss(pbx, ref, reason, at, queue))
        return await self.get(task_id)

    async def attach_or_open(self, conn, number: str, department: str, miss: rules.Miss) -> int:
        """In `conn`'s transaction: `miss` joins the caller's open task of `department`, else opens
        one (one open task per caller and department); returns the task's id."""
        task = (await self._open_tasks(conn, number)).get((number, department))
        if task is not None:
            await self._attach(conn, task.id, miss)
            return task.id
        return await self._open(conn, rules.OpenNew(number, department, miss), self.clock.now())

    # --- agents' actions ----------------------------------------------------------------------

    async def close(self, task_id: int, closure: str, by: str, note: str = "", version: int | None = None) -> dict:
        """An agent's outcome. Concurrent closes: one wins, the others get 409 with the task as it
        is now; `version`, when given, must be the task's current version (compare-and-set)."""
        try:
            closure_ = rules.Closure(closure)
        except ValueError:
            raise TaskError(f"unknown outcome {closure!r}; one of "
                            + ", ".join(sorted(c.value for c in rules.MANUAL_CLOSURES)), code="unknown_outcome") from None
        if closure_ not in rules.MANUAL_CLOSURES:
            raise TaskError(f"outcome {closure!r} is set by the system, not by an agent", code="system_outcome")
        task = await self.get(task_id)
        try:
            if task["status"] != "open":
                raise TaskError(f"task {task_id} is already closed", 409, "already_closed", task)
            if closure_ is rules.Closure.UNREACHABLE and task["attempts"] < self.policy.max_attempts:
                raise TaskError(f"unreachable needs {self.policy.max_attempts} callback attempts; "
                                f"task {task_id} has {task['attempts']}", 409, "too_few_attempts", task)
            async with self.store.begin() as conn:
                await self._close(conn, task_id, closure_, self.clock.now(), by, note, {}, expected=version)
        except TaskError as exc:
            raise await self._conflict(exc, task_id) from None
        return await self.get(task_id)

    async def assign_to(self, task_id: int, agent: str | None, by: str, version: int | None = None,
                        reason: str = "") -> dict:
        """Compare-and-set on the task's version: `version` as given, else as read when the
        request began; concurrent reassignments: one wins, the others get 409 with the task.
        `reason` (optional): why the task changes hands, kept in its history entry."""
        if agent is not None and agent not in self.directory.agent_names:
            raise TaskError(f"unknown agent {agent!r}", code="unknown_agent")
        task = await self.get(task_id)
        expected = task["version"] if version is None else version
        try:
            async with self.store.begin() as conn:
                new = await self._bump(conn, task_id, t.tasks.c.version == expected,
                                       assignee=agent, assigned_via="manual" if agent else "pool")
                if new is None:
                    raise TaskError(f"task {task_id} changed meanwhile (expected version {expected})",
                                    409, "version_conflict")
                await self._event(conn, task_id, self.clock.now(), "assigned", None, None,
                                  {"agent": agent, "by": by, **({"reason": reason} if reason else {})},
                                  version=new)
        except TaskError as exc:
            raise await self._conflict(exc, task_id) from None
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
                            "version": e["version"], **json.loads(e["detail"] or "{}")} for e in events]
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
            "version": r["version"],
            # a dissatisfied rating's follow-up, a callback request's message (issue 12: followup/ratings.py)
            "rectify_deadline": r["rectify_deadline"].isoformat() if r.get("rectify_deadline") else None,
            "rectify_kind": r.get("rectify_kind"), "case_id": r.get("case_id"),
            "rated_agent": r.get("rated_agent"), "rated_agent_name": self.directory.agent_names.get(r.get("rated_agent")),
            "recording": r.get("recording"),
        }


def _attempt_dict(a) -> dict:
    return {"id": a["id"], "key": a["key"], "pbx": a["pbx"], "agent": a["agent"], "number": a["number"],
            "requested_at": a["requested_at"].isoformat(), "result": a["result"],
            "answered_at": a["answered_at"].isoformat() if a["answered_at"] else None,
            "ended_at": a["ended_at"].isoformat() if a["ended_at"] else None,
            "talk_seconds": a["talk_seconds"], "reason_code": a["reason_code"]}
