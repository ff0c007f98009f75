"""Cases from committed calls, dispositions, reassignment and owner routing.

Like follow-up, the database is the queue: each call is claimed once (``cases_done``) in the
transaction that joins or opens its cases, a batch of calls at a time (callcenter/aftercommit.py),
so a crash or a second instance never loses or doubles one.

Every change to a case bumps its ``version`` and writes one audit event carrying it (one
unbroken chain); dispositions, reassignments and closes are compare-and-set on the version
(the row stays locked on PostgreSQL until commit): one of concurrent changes wins, the others
get 409 with the case as it is now.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import and_, func, insert, select, update

from ..domain import cases as rules
from ..domain import validation
from ..followup.service import TaskError
from ..storage import tables as t
from ..storage.store import Store
from .pipeline import CasePipeline, _event_row

log = logging.getLogger(__name__)


def _check(values: dict) -> None:
    """Defence behind the web models: each (checker, value, *args) or a 400 naming the field."""
    for field, (check, value, *args) in values.items():
        try:
            check(value, *args)
        except validation.InvalidValue as exc:
            raise TaskError(f"{field}: {exc}", 400, "invalid_field") from None


class Cases(CasePipeline):
    def __init__(self, store: Store, settings, calendar, clock,
                 presence: Callable[[], dict[str, rules.Presence]] = dict,
                 gap_fallback: Callable[[str, str], tuple[str, str | None] | None] = lambda dept, pbx: None):
        self.store = store
        self.settings = settings
        self.calendar = calendar
        self.clock = clock
        self.presence = presence              # per_pbx (bootstrap.presence_picture): presence(pbx) is one PBX's
        self.gap_fallback = gap_fallback      # A/B coverage: where callers go when nobody is on duty
        self.directory = settings.directory()
        cfg = settings.cases
        self.rule = rules.DeadlineRule(cfg.simple_workdays, cfg.complex_workdays, cfg.knowledge_gap_workdays)
        self.items = {d.id: d.items for d in settings.departments}
        self.heads = {d.id: d.head.id for d in settings.departments if d.head and d.head.id}
        self.posts: dict[str, list[tuple[str, str]]] = {}
        for post in settings.posts:
            self.posts.setdefault(post.department, []).append((post.a, post.b))

    def windows(self, department: str | None):
        return tuple((w.start, w.end) for w in self.settings.hours_of(department))

    # --- calls to cases -----------------------------------------------------------------------

    @staticmethod
    async def _bump(conn, case_id: int, *conditions, **values) -> int | None:
        """Apply `values` and the next version to the case if `conditions` hold (the row stays
        locked on PostgreSQL until commit); returns the new version, None when nothing matched."""
        result = await conn.execute(update(t.cases).where(t.cases.c.id == case_id, *conditions)
                                    .values(version=t.cases.c.version + 1, **values).returning(t.cases.c.version))
        return result.scalar()

    async def _event(self, conn, case_id: int, at: datetime, kind: str, actor: str, detail: dict,
                     version: int | None = None) -> int:
        """One audit event; it takes the case's next version unless `version` (already bumped) is given."""
        if version is None:
            version = await self._bump(conn, case_id)
        await conn.execute(insert(t.case_events), [_event_row(case_id, version, at, kind, actor, detail)])
        return version

    async def _conflict(self, exc: TaskError, case_id: int | None) -> TaskError:
        """A 409 carries the case as it is now."""
        if exc.status == 409 and exc.current is None and case_id is not None:
            try:
                exc.current = await self.get(case_id)
            except TaskError:
                pass
        return exc

    # --- wrap-up ------------------------------------------------------------------------------

    async def dispose(self, pbx: str, call_id: str, agent: str, disposition: str, item: str = "",
                      work_order: str = "", directed_to: str = "", note: str = "", version: int | None = None) -> dict:
        """The agent's wrap-up of an answered call; decides the case's fate and deadline. A case
        already resolved, escalated or directed elsewhere keeps its disposition (409). A call that
        already has a disposition is changed only by a request naming the case's current
        `version`; concurrent dispositions: one wins, the others get 409 with the case as it is."""
        _check({"pbx": (validation.identifier, pbx, "a PBX id"), "call_id": (validation.identifier, call_id, "a call id"),
                "agent": (validation.identifier, agent, "an agent id"),
                "item": (validation.single_line, item, 200, True),
                "work_order": (validation.single_line, work_order, validation.MAX_SHORT, True),
                "directed_to": (validation.single_line, directed_to, 200, True),
                "note": (validation.note_text, note)})
        now = self.clock.now()
        seen: int | None = None                        # the case, once known: a 409 carries it
        try:
            async with self.store.begin() as conn:
                links = (await conn.execute(select(t.case_calls).where(
                    t.case_calls.c.pbx == pbx, t.case_calls.c.call_id == call_id)
                    .order_by(t.case_calls.c.seq))).mappings().all()
                mine = [link for link in links if link["agent"] == agent] or []
                if not links:
                    raise TaskError(f"no answered call {pbx}/{call_id} with a case", 404)
                if not mine:
                    raise TaskError(f"call {call_id} was not answered by agent {agent!r}", 403)
                link = mine[-1]
                case = (await conn.execute(select(t.cases).where(t.cases.c.id == link["case_id"]))).mappings().one()
                seen = case["id"]
                if case["status"] != "open":
                    raise TaskError(f"case {case['id']} is already {case['status']} (disposition {case['disposition']}, "
                                    f"closed {case['closed_at'].isoformat() if case['closed_at'] else '—'}); "
                                    "a second disposition is not recorded", 409, "already_closed")
                if version is not None and version != case["version"]:
                    raise TaskError(f"case {case['id']} is at version {case['version']}, not {version}", 409,
                                    "version_conflict")
                if version is None and link["disposition"] is not None:
                    raise TaskError(f"call {call_id} already has the disposition {link['disposition']}; a change "
                                    "names the case's current version", 409, "already_disposed")
                try:
                    d = rules.check_disposition(disposition, work_order, directed_to, item or case["item"],
                                                self.items.get(case["department"], []))
                except rules.DispositionError as exc:
                    raise TaskError(str(exc)) from None
                values: dict = {"disposition": d.value}
                if item:
                    values["item"] = item
                if case["status"] == "open":
                    first_call = not (await conn.execute(select(func.count()).select_from(t.case_calls).where(
                        t.case_calls.c.case_id == case["id"], t.case_calls.c.answered_at < link["answered_at"]))).scalar()
                    if d in rules.CLOSING:
                        values.update(status=rules.CLOSING[d].value, closed_at=now)
                        if d is rules.Disposition.RESOLVED:
                            values["resolved_first_contact"] = first_call
                        if d is rules.Disposition.ESCALATED_12345:
                            values["work_order"] = work_order.strip()
                        if d is rules.Disposition.OUT_OF_SCOPE:
                            values["directed_to"] = directed_to.strip()
                    else:
                        days = rules.workdays_for(d, self.rule)
                        deadline = self.calendar.add_workdays(link["answered_at"], days, self.windows(case["department"]))
                        if case["deadline"] is None or deadline.at > case["deadline"] or d is rules.Disposition.KNOWLEDGE_GAP:
                            values.update(deadline=deadline.at, deadline_provisional=deadline.provisional)
                        if d is rules.Disposition.KNOWLEDGE_GAP:
                            values["knowledge_gap"] = True
                new_version = await self._bump(conn, case["id"], t.cases.c.version == case["version"], **values)
                if new_version is None:                    # PostgreSQL: another transaction got there first
                    raise TaskError(f"case {case['id']} changed meanwhile", 409, "version_conflict")
                # a first disposition only where the call still has none: the links were read before
                # the case, so another transaction may have disposed of the call in between and
                # bumped the version this one then read (PostgreSQL, READ COMMITTED)
                first = [t.case_calls.c.disposition.is_(None)] if version is None else []
                done = await conn.execute(update(t.case_calls).where(
                    t.case_calls.c.pbx == pbx, t.case_calls.c.call_id == call_id, t.case_calls.c.seq == link["seq"],
                    *first).values(disposition=d.value, disposed_at=now))
                if done.rowcount != 1:
                    raise TaskError(f"call {call_id} was disposed of meanwhile; a change names the case's current "
                                    "version", 409, "already_disposed")
                await self._event(conn, case["id"], now, "disposition", agent, {
                    "call_id": call_id, "disposition": d.value, "item": item, "work_order": work_order,
                    "directed_to": directed_to, "note": note, "owner": case["owner"],
                    "by_owner": agent == case["owner"]}, version=new_version)
        except TaskError as exc:                      # the current state, read after the rollback
            raise await self._conflict(exc, seen) from None
        return await self.get(case["id"])

    async def close_follow_up(self, case_id: int, agent: str, note: str = "", version: int | None = None) -> dict:
        """The owner reports a follow-up case resolved (by phone, letter...). Concurrent closes:
        one wins, the others get 409 with the case; `version`, if given, must be the current one."""
        case = await self.get(case_id)
        if case["status"] != "open":
            raise TaskError(f"case {case_id} is not open", 409, current=case)
        if agent != case["owner"]:
            raise TaskError(f"only the owner ({case['owner']}) closes case {case_id}", 403)
        now = self.clock.now()
        conditions = [t.cases.c.status == "open"] + ([t.cases.c.version == version] if version is not None else [])
        try:
            async with self.store.begin() as conn:
                new_version = await self._bump(conn, case_id, *conditions, status="resolved", closed_at=now,
                                               disposition=rules.Disposition.RESOLVED.value)
                if new_version is None:
                    raise TaskError(f"case {case_id} changed meanwhile (it is closed or past version {version})", 409,
                                    "version_conflict")
                await self._event(conn, case_id, now, "resolved", agent, {"note": note}, version=new_version)
        except TaskError as exc:
            raise await self._conflict(exc, case_id) from None
        return await self.get(case_id)

    async def reassign(self, case_id: int, new_owner: str, by: str, reason: str, authorised: bool = False,
                       version: int | None = None) -> dict:
        """Only the department's head moves a case, with a reason; the audit log keeps it.
        `authorised`: the caller (the web edge, callcenter/domain/access.py) has checked that `by`
        heads the case's department, so the configured head id is not required."""
        _check({"new_owner": (validation.identifier, new_owner, "an agent id"),
                "by": (validation.identifier, by, "a person's id"), "reason": (validation.note_text, reason)})
        case = await self.get(case_id)
        if not authorised and self.heads.get(case["department"]) != by:
            raise TaskError(f"only the head of {case['department']} may reassign case {case_id}", 403)
        if not reason.strip():
            raise TaskError("a reassignment needs a reason")
        if new_owner not in self.directory.agent_names:
            raise TaskError(f"unknown agent {new_owner!r}")
        now = self.clock.now()
        expected = case["version"] if version is None else version     # compare-and-set: one of concurrent wins
        try:
            async with self.store.begin() as conn:
                new_version = await self._bump(conn, case_id, t.cases.c.version == expected, owner=new_owner)
                if new_version is None:
                    raise TaskError(f"case {case_id} changed meanwhile (expected version {expected})", 409,
                                    "version_conflict")
                await self._event(conn, case_id, now, "reassigned", by,
                                  {"from": case["owner"], "to": new_owner, "reason": reason.strip()}, version=new_version)
        except TaskError as exc:
            raise await self._conflict(exc, case_id) from None
        return await self.get(case_id)

    # --- routing ------------------------------------------------------------------------------

    async def owner_of(self, caller_num: str, department: str, conn=None) -> str | None:
        """The owner of the caller's open case in the department; `conn`: inside a transaction."""
        query = select(t.cases.c.owner).where(t.cases.c.caller_num == caller_num, t.cases.c.department == department,
                                              t.cases.c.status == "open").limit(1)
        if conn is not None:
            return (await conn.execute(query)).scalar()
        async with self.store.engine.connect() as own:
            return (await own.execute(query)).scalar()

    async def route(self, caller_num: str, hotline: str | None = None, department: str | None = None,
                    pbx: str | None = None) -> rules.Route:
        """Where to send this caller: the owner of the open case if available, else the post's
        A or B (with the case shown), else the queue. One indexed lookup."""
        department = department or (self.directory.department_of_hotline(hotline, pbx) if hotline else None)
        queue = self.directory.main_queue(department, pbx or "*") if department else None
        case_id = owner = None
        if department and caller_num:
            async with self.store.engine.connect() as conn:
                row = (await conn.execute(select(t.cases.c.id, t.cases.c.owner).where(
                    t.cases.c.caller_num == caller_num, t.cases.c.department == department,
                    t.cases.c.status == "open").limit(1))).first()
            if row is not None:
                case_id, owner = row
        fallback = self.gap_fallback(department, pbx or "*") if department else None
        per_pbx = pbx and getattr(self.presence, "per_pbx", False)      # judged on the call's PBX (issue 14)
        picture = self.presence(pbx) if per_pbx else self.presence()
        return rules.route(department, queue, case_id, owner, picture, self.posts.get(department or "", []),
                           fallback)

    # --- reads --------------------------------------------------------------------------------

    async def get(self, case_id: int) -> dict:
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(select(t.cases).where(t.cases.c.id == case_id))).mappings().first()
            if row is None:
                raise TaskError(f"no case {case_id}", 404)
            calls = (await conn.execute(select(t.case_calls).where(t.case_calls.c.case_id == case_id)
                                        .order_by(t.case_calls.c.answered_at))).mappings().all()
            events = (await conn.execute(select(t.case_events).where(t.case_events.c.case_id == case_id)
                                         .order_by(t.case_events.c.at, t.case_events.c.id))).mappings().all()
        case = self._case_dict(row)
        case["calls"] = [{"pbx": c["pbx"], "call_id": c["call_id"], "agent": c["agent"],
                          "answered_at": c["answered_at"].isoformat(), "disposition": c["disposition"]} for c in calls]
        case["history"] = [{"at": e["at"].isoformat(), "kind": e["kind"], "actor": e["actor"], "version": e["version"],
                            **json.loads(e["detail"] or "{}")} for e in events]
        return case

    async def list(self, status: str | None = None, department: str | None = None, owner: str | None = None,
                   caller: str | None = None, since: datetime | None = None, until: datetime | None = None,
                   limit: int = 500) -> list[dict]:
        c = t.cases.c
        filters = {"status": (c.status, "=="), "department": (c.department, "=="), "owner": (c.owner, "=="),
                   "caller": (c.caller_num, "=="), "since": (c.opened_at, ">="), "until": (c.opened_at, "<")}
        given = {"status": status, "department": department, "owner": owner, "caller": caller,
                 "since": since, "until": until}
        conditions = []
        for name, value in given.items():
            if value is not None:
                column, op = filters[name]
                conditions.append(column == value if op == "==" else column >= value if op == ">=" else column < value)
        query = select(t.cases).where(and_(*conditions)) if conditions else select(t.cases)
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(query.order_by(c.opened_at, c.id).limit(limit))).mappings().all()
        return [self._case_dict(r) for r in rows]

    async def pending_wrapups(self, agent: str | None = None) -> list[dict]:
        """Answered calls without a disposition after the configured wrap-up time."""
        cutoff = self.clock.now() - timedelta(minutes=self.settings.cases.wrapup_minutes)
        cc = t.case_calls.c
        query = select(t.case_calls, t.cases.c.department, t.cases.c.caller_num).join(
            t.cases, t.cases.c.id == cc.case_id).where(cc.disposition.is_(None), cc.answered_at <= cutoff)
        if agent:
            query = query.where(cc.agent == agent)
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(query.order_by(cc.answered_at))).mappings().all()
        return [{"pbx": r["pbx"], "call_id": r["call_id"], "case_id": r["case_id"], "agent": r["agent"],
                 "department": r["department"], "caller_num": r["caller_num"],
                 "answered_at": r["answered_at"].isoformat()} for r in rows]

    def _case_dict(self, r) -> dict:
        now = self.clock.now()
        return {
            "id": r["id"], "caller_num": r["caller_num"], "department": r["department"],
            "department_name": self.directory.department_names.get(r["department"]),
            "pbx": r["pbx"], "queue": r["queue"], "owner": r["owner"],
            "owner_name": self.directory.agent_names.get(r["owner"]), "status": r["status"], "item": r["item"],
            "disposition": r["disposition"], "opened_at": r["opened_at"].isoformat(),
            "deadline": r["deadline"].isoformat() if r["deadline"] else None,
            "deadline_provisional": r["deadline_provisional"],
            "overdue": r["status"] == "open" and r["deadline"] is not None and r["deadline"] < now,
            "closed_at": r["closed_at"].isoformat() if r["closed_at"] else None,
            "resolved_first_contact": r["resolved_first_contact"], "knowledge_gap": r["knowledge_gap"],
            "work_order": r["work_order"], "directed_to": r["directed_to"], "version": r["version"],
        }
