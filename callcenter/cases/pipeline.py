"""Committed calls to first-ask cases, a batch at a time: the part of `Cases` that
callcenter/aftercommit.py runs (``name``, ``flag``, ``apply``).

One query finds the open cases of all the batch's callers; the case rules
(callcenter/domain/cases.py) decide per call in order; cases opened by the batch live in memory
under negative ids (a later answer of the batch joins them there) until one INSERT ... RETURNING
writes them, then their events and call links, one statement each. A single call (``careful``)
is written as it goes, with a savepoint where another instance may have opened the same case.
"""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from ..domain import cases as rules
from ..domain.records import CallRecord
from ..storage import tables as t


def _event_row(case_id: int, version: int, at: datetime, kind: str, actor: str, detail: dict) -> dict:
    return {"case_id": case_id, "version": version, "at": at, "kind": kind, "actor": actor,
            "detail": json.dumps(detail, ensure_ascii=False)}


def _link_row(case_id: int, a: rules.Answered) -> dict:
    return {"pbx": a.pbx, "call_id": a.call_id, "seq": a.seq, "case_id": case_id, "agent": a.agent,
            "answered_at": a.at, "disposition": None, "disposed_at": None}


class CasePipeline:
    """Mixed into `Cases` (callcenter/cases/service.py), which supplies the store, `_bump` and `_event`."""

    name = "cases"                                      # as a step of callcenter/aftercommit.py
    flag = "cases_done"

    async def process_pending(self) -> int:
        """Join or open the cases of every committed call not yet seen, in batches; returns how
        many. (The running service does this through callcenter/aftercommit.py.)"""
        from ..aftercommit import Runner
        return await Runner(self.store, self.settings.pipeline, self.clock).run(self)

    async def _process(self, record: CallRecord) -> None:
        """One call in a transaction of its own."""
        async with self.store.begin() as conn:
            if await self.store.claim(conn, record, self.flag):
                await self.apply(conn, [record], careful=True)

    async def apply(self, conn, records: list[CallRecord], careful: bool = False) -> None:
        """Claimed calls' answered stints to cases, in the caller's transaction: one query for
        the open cases of all their callers, events and call links written together. `careful`:
        a case opened meanwhile by another instance is joined (savepoint) instead of failing."""
        records = [r for r in records if r.caller_num]
        if not records:
            return
        open_cases = await self._open_cases(conn, {r.caller_num for r in records})
        events: list[dict] = []
        links: list[dict] = []
        new: dict[int, dict] = {}          # cases opened by this batch, under negative ids until written
        for record in records:
            case_id: int | None = None
            for decision in rules.plan_for_answered(record, open_cases):
                if isinstance(decision, rules.OpenCase):
                    key = (record.caller_num, decision.department)
                    if not careful:
                        case_id = open_cases[key] = -(len(new) + 1)
                        new[case_id] = self._case_row(record, decision)
                        events.append(self._opened_event(case_id, record, decision))
                        links.append(_link_row(case_id, decision.answered))
                        continue
                    try:
                        async with conn.begin_nested():
                            case_id = open_cases[key] = await self._open(conn, record, decision)
                        continue
                    except IntegrityError:                 # opened meanwhile elsewhere: join it
                        case_id = open_cases[key] = (await self._open_cases(conn, record.caller_num))[key]
                elif decision.case_id is not None:
                    case_id = decision.case_id
                if case_id < 0:                            # opened in this batch: joined in memory
                    new[case_id]["version"] += 1
                    events.append(self._joined_event(case_id, new[case_id]["version"], decision.answered))
                    links.append(_link_row(case_id, decision.answered))
                else:
                    await self._join(conn, case_id, decision.answered, events, links)
        if new:
            placeholders = list(new)
            result = await conn.execute(insert(t.cases).returning(t.cases.c.id, sort_by_parameter_order=True),
                                        [new[p] for p in placeholders])
            ids = dict(zip(placeholders, (row[0] for row in result)))
            for row in events + links:
                if row["case_id"] < 0:
                    row["case_id"] = ids[row["case_id"]]
        if events:
            await conn.execute(insert(t.case_events), events)
        if links:
            await conn.execute(self.store._insert(t.case_calls).on_conflict_do_nothing(), links)

    async def _open_cases(self, conn, numbers) -> dict[tuple[str, str], int]:
        numbers = [numbers] if isinstance(numbers, str) else sorted(numbers)
        out: dict[tuple[str, str], int] = {}
        for chunk in range(0, len(numbers), 500):
            rows = (await conn.execute(select(t.cases.c.id, t.cases.c.caller_num, t.cases.c.department).where(
                t.cases.c.caller_num.in_(numbers[chunk:chunk + 500]), t.cases.c.status == "open"))).all()
            out.update({(r.caller_num, r.department): r.id for r in rows})
        return out

    async def owners_of(self, conn, numbers) -> dict[tuple[str, str], str | None]:
        """(caller, department) -> owner of the open case, for many callers in one query."""
        numbers = sorted(numbers)
        out: dict[tuple[str, str], str | None] = {}
        for chunk in range(0, len(numbers), 500):
            rows = (await conn.execute(select(t.cases.c.caller_num, t.cases.c.department, t.cases.c.owner).where(
                t.cases.c.caller_num.in_(numbers[chunk:chunk + 500]), t.cases.c.status == "open"))).all()
            out.update({(r.caller_num, r.department): r.owner for r in rows})
        return out

    @staticmethod
    def _case_row(record: CallRecord, d: rules.OpenCase) -> dict:
        """A new case at version 1 (its "opened" event)."""
        return dict(caller_num=d.caller_num, department=d.department, pbx=record.pbx,
                    queue=record.stints[d.answered.seq].queue, owner=d.owner, status="open", item="", disposition=None,
                    opened_at=d.answered.at, deadline=None, deadline_provisional=False, closed_at=None,
                    resolved_first_contact=False, knowledge_gap=False, work_order="", directed_to="", version=1)

    @staticmethod
    def _opened_event(case_id: int, record: CallRecord, d: rules.OpenCase) -> dict:
        return _event_row(case_id, 1, d.answered.at, "opened", d.owner or "",
                          {"pbx": record.pbx, "call_id": record.id, "owner": d.owner,
                           "transferred_in": d.answered.transferred_in})

    @staticmethod
    def _joined_event(case_id: int, version: int, a: rules.Answered) -> dict:
        return _event_row(case_id, version, a.at, "joined", a.agent or "",
                          {"pbx": a.pbx, "call_id": a.call_id, "agent": a.agent, "transferred_in": a.transferred_in})

    async def _open(self, conn, record: CallRecord, d: rules.OpenCase) -> int:
        case_id = (await conn.execute(insert(t.cases).values(**self._case_row(record, d)))).inserted_primary_key[0]
        await self._write(conn, None, [self._opened_event(case_id, record, d)], None, [_link_row(case_id, d.answered)])
        return case_id

    async def _join(self, conn, case_id: int, a: rules.Answered, events: list | None = None,
                    links: list | None = None) -> None:
        version = await self._bump(conn, case_id)
        await self._write(conn, events, [self._joined_event(case_id, version, a)], links, [_link_row(case_id, a)])

    async def _write(self, conn, events: list | None, event_rows: list, links: list | None, link_rows: list) -> None:
        """Now, or (with the batch's lists) together at the end of the batch."""
        if events is not None and links is not None:
            events.extend(event_rows)
            links.extend(link_rows)
            return
        await conn.execute(insert(t.case_events), event_rows)
        await conn.execute(self.store._insert(t.case_calls).on_conflict_do_nothing(), link_rows)
