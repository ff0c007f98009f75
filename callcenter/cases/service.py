"""Cases from committed calls, dispositions, reassignment and owner routing.

Like follow-up, the database is the queue: each call is claimed once (``cases_done``) in the
transaction that joins or opens its cases, so a crash or a second instance never loses or
doubles one.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..domain import cases as rules
from ..domain.records import CallRecord
from ..followup.service import TaskError
from ..storage import tables as t
from ..storage.store import Store

log = logging.getLogger(__name__)


class Cases:
    def __init__(self, store: Store, settings, calendar, clock,
                 presence: Callable[[], dict[str, rules.Presence]] = dict,
                 gap_fallback: Callable[[str, str], tuple[str, str | None] | None] = lambda dept, pbx: None):
        self.store = store
        self.settings = settings
        self.calendar = calendar
        self.clock = clock
        self.presence = presence
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

    async def process_pending(self) -> int:
        """Join or open the cases of every committed call not yet seen; returns how many."""
        return await self.store.each_unclaimed("cases_done", self._process)

    async def _process(self, record: CallRecord) -> None:
        async with self.store.begin() as conn:
            if not await self.store.claim(conn, record, "cases_done") or not record.caller_num:
                return
            open_cases = await self._open_cases(conn, record.caller_num)
            case_id: int | None = None
            for decision in rules.plan_for_answered(record, open_cases):
                if isinstance(decision, rules.OpenCase):
                    try:
                        async with conn.begin_nested():
                            case_id = await self._open(conn, record, decision)
                        continue
                    except IntegrityError:                 # opened meanwhile elsewhere: join it
                        case_id = (await self._open_cases(conn, record.caller_num))[
                            (record.caller_num, decision.department)]
                elif decision.case_id is not None:
                    case_id = decision.case_id
                await self._join(conn, case_id, decision.answered)

    async def _open_cases(self, conn, number: str) -> dict[tuple[str, str], int]:
        rows = (await conn.execute(select(t.cases.c.id, t.cases.c.department).where(
            t.cases.c.caller_num == number, t.cases.c.status == "open"))).all()
        return {(number, r.department): r.id for r in rows}

    async def _open(self, conn, record: CallRecord, d: rules.OpenCase) -> int:
        stint = record.stints[d.answered.seq]
        case_id = (await conn.execute(insert(t.cases).values(
            caller_num=d.caller_num, department=d.department, pbx=record.pbx, queue=stint.queue, owner=d.owner,
            status="open", item="", opened_at=d.answered.at, deadline_provisional=False,
            resolved_first_contact=False, knowledge_gap=False, work_order="", directed_to=""))).inserted_primary_key[0]
        await self._event(conn, case_id, d.answered.at, "opened", d.owner or "",
                          {"pbx": record.pbx, "call_id": record.id, "owner": d.owner,
                           "transferred_in": d.answered.transferred_in})
        await self._link(conn, case_id, d.answered)
        return case_id

    async def _join(self, conn, case_id: int, a: rules.Answered) -> None:
        await self._event(conn, case_id, a.at, "joined", a.agent or "",
                          {"pbx": a.pbx, "call_id": a.call_id, "agent": a.agent, "transferred_in": a.transferred_in})
        await self._link(conn, case_id, a)

    async def _link(self, conn, case_id: int, a: rules.Answered) -> None:
        await conn.execute(self.store._insert(t.case_calls).on_conflict_do_nothing(), [{
            "pbx": a.pbx, "call_id": a.call_id, "seq": a.seq, "case_id": case_id, "agent": a.agent,
            "answered_at": a.at, "disposition": None, "disposed_at": None}])

    @staticmethod
    async def _event(conn, case_id: int, at: datetime, kind: str, actor: str, detail: dict) -> None:
        await conn.execute(insert(t.case_events).values(case_id=case_id, at=at, kind=kind, actor=actor,
                                                        detail=json.dumps(detail, ensure_ascii=False)))

    # --- wrap-up ------------------------------------------------------------------------------

    async def dispose(self, pbx: str, call_id: str, agent: str, disposition: str, item: str = "",
                      work_order: str = "", directed_to: str = "", note: str = "") -> dict:
        """The agent's wrap-up of an answered call; decides the case's fate and deadline."""
        now = self.clock.now()
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
            await conn.execute(update(t.cases).where(t.cases.c.id == case["id"]).values(**values))
            await conn.execute(update(t.case_calls).where(
                t.case_calls.c.pbx == pbx, t.case_calls.c.call_id == call_id, t.case_calls.c.seq == link["seq"])
                .values(disposition=d.value, disposed_at=now))
            await self._event(conn, case["id"], now, "disposition", agent, {
                "call_id": call_id, "disposition": d.value, "item": item, "work_order": work_order,
                "directed_to": directed_to, "note": note, "owner": case["owner"],
                "by_owner": agent == case["owner"]})
        return await self.get(case["id"])

    async def close_follow_up(self, case_id: int, agent: str, note: str = "") -> dict:
        """The owner reports a follow-up case resolved (by phone, letter...)."""
        case = await self.get(case_id)
        if case["status"] != "open":
            raise TaskError(f"case {case_id} is not open", 409)
        if agent != case["owner"]:
            raise TaskError(f"only the owner ({case['owner']}) closes case {case_id}", 403)
        now = self.clock.now()
        async with self.store.begin() as conn:
            await conn.execute(update(t.cases).where(t.cases.c.id == case_id).values(
                status="resolved", closed_at=now, disposition=rules.Disposition.RESOLVED.value))
            await self._event(conn, case_id, now, "resolved", agent, {"note": note})
        return await self.get(case_id)

    async def reassign(self, case_id: int, new_owner: str, by: str, reason: str) -> dict:
        """Only the department's head moves a case, with a reason; the audit log keeps it."""
        case = await self.get(case_id)
        if self.heads.get(case["department"]) != by:
            raise TaskError(f"only the head of {case['department']} may reassign case {case_id}", 403)
        if not reason.strip():
            raise TaskError("a reassignment needs a reason")
        if new_owner not in self.directory.agent_names:
            raise TaskError(f"unknown agent {new_owner!r}")
        now = self.clock.now()
        async with self.store.begin() as conn:
            await conn.execute(update(t.cases).where(t.cases.c.id == case_id).values(owner=new_owner))
            await self._event(conn, case_id, now, "reassigned", by,
                              {"from": case["owner"], "to": new_owner, "reason": reason.strip()})
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
        department = department or (self.directory.department_of_hotline(hotline) if hotline else None)
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
        return rules.route(department, queue, case_id, owner, self.presence(), self.posts.get(department or "", []),
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
        case["history"] = [{"at": e["at"].isoformat(), "kind": e["kind"], "actor": e["actor"],
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
            "work_order": r["work_order"], "directed_to": r["directed_to"],
        }
