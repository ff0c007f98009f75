"""Survey ratings and IVR callback requests as follow-up tasks (issue 12, 好差评).

Called by the IVR records' linker (ivr/records.py) inside its transaction, once a session is
matched with its stored call (whose own follow-up step has run), or alone after
`survey_followup.link_grace_minutes`:

- `dissatisfied`: a 不满意 rating opens the caller's follow-up task in the department with reason
  ``dissatisfied``: contact within `survey_followup.contact_workdays` (the task's deadline),
  rectification within `simple_workdays` or, when the call's case is complex (disposition
  ``follow_up_complex``), `complex_workdays` (``rectify_deadline``, ``rectify_kind``), both on the
  workday calendar; with the rated agent and the case. A task the caller already has open in that
  department takes the rating instead (one open task per caller and department). The task is
  assigned as other tasks are (posts A, B, the pool), never to the agent who was rated. An
  answered call does not close it (domain/tasks.py NOT_CLOSED_BY_A_CALL).
- `callback_request`: the caller left a message (after hours, or in a coverage gap): the task of
  that call (its miss event) gets reason ``callback_request`` and the recording's name; without
  one (the call was not tracked, or its miss was skipped) one is opened or joined as for a
  callback request from the API.
- `rate_case`: the rating joins the case's history (event ``rating``).
"""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import insert, select

from ..domain import tasks as rules
from ..storage import tables as t
from .pipeline import _event_row

log = logging.getLogger(__name__)


class RatingFollowUp:
    def __init__(self, followup, cases, settings):
        self.followup = followup              # callcenter/followup/service.py FollowUp
        self.cases = cases                    # callcenter/cases/service.py Cases
        self.settings = settings
        self.cfg = settings.survey_followup

    def department_of(self, department: str | None) -> str | None:
        names = self.followup.directory.department_names
        if department in names:
            return department
        return self.settings.service_office if self.settings.service_office in names else None

    def deadlines(self, at: datetime, department: str, complex_: bool):
        """(contact, rectification) Deadlines of a dissatisfied rating given at `at`."""
        windows = self.followup.windows(department)
        calendar = self.followup.calendar
        contact = calendar.add_workdays(at, self.cfg.contact_workdays, windows)
        rectify = calendar.add_workdays(at, self.cfg.complex_workdays if complex_ else self.cfg.simple_workdays,
                                        windows)
        return contact, rectify

    async def _complex(self, conn, case_id: int | None) -> bool:
        if case_id is None:
            return False
        disposition = (await conn.execute(select(t.cases.c.disposition).where(t.cases.c.id == case_id))).scalar()
        return disposition == "follow_up_complex"

    async def dissatisfied(self, conn, s: dict) -> int | None:
        """The follow-up of a dissatisfied rating (`s`: the stored session, linked); its task id."""
        number, department = s["caller_num"], self.department_of(s["department"])
        if not number or department is None:
            log.warning("dissatisfied rating of call %s/%s: no %s; no follow-up task", s["pbx"], s["uniqueid"],
                        "caller number" if not number else "department")
            return None
        at, fu = s["ended_at"], self.followup
        complex_ = await self._complex(conn, s["case_id"])
        contact, rectify = self.deadlines(at, department, complex_)
        kind = "complex" if complex_ else "simple"
        facts = {"rectify_deadline": rectify.at, "rectify_kind": kind, "case_id": s["case_id"],
                 "rated_agent": s["agent"]}
        detail = {"reason": rules.Reason.DISSATISFIED.value, "rating": s["rating"], "agent": s["agent"],
                  "queue": s["queue"], "case_id": s["case_id"], "rectify_deadline": rectify.at.isoformat(),
                  "rectify_kind": kind}
        existing = (await fu._open_tasks(conn, number)).get((number, department))
        if existing is not None:
            version = await fu._bump(conn, existing.id, reason=rules.Reason.DISSATISFIED.value,
                                     deadline=min(existing.deadline, contact.at), **facts)
            await fu._event(conn, existing.id, at, "rating", s["pbx"], s["uniqueid"], detail, version=version)
            return existing.id
        miss = rules.Miss(s["pbx"], s["uniqueid"], rules.Reason.DISSATISFIED, at, s["queue"])
        now = fu.clock.now()
        row = fu._task_row(rules.OpenNew(number, department, miss), now, None)
        available = fu.available_for(department)
        who = rules.assign(department, number, fu.posts, lambda *_: None,
                           lambda agent: agent != s["agent"] and available(agent))
        row.update(deadline=contact.at, deadline_provisional=contact.provisional or rectify.provisional,
                   assignee=who.agent, assigned_via=who.via, **facts)
        task_id = (await conn.execute(insert(t.tasks).values(**row))).inserted_primary_key[0]
        await conn.execute(insert(t.task_events), [
            _event_row(task_id, 1, at, "rating", s["pbx"], s["uniqueid"], detail),
            _event_row(task_id, 2, now, "assigned", None, None, {"agent": who.agent, "via": who.via})])
        fu.tasks_opened += 1
        return task_id

    async def callback_request(self, conn, s: dict, recording: str | None) -> int | None:
        """Mark the task of a call whose caller left a callback request (open one if none)."""
        fu = self.followup
        e = t.task_events.c
        task_id = (await conn.execute(select(e.task_id).where(
            e.pbx == s["pbx"], e.call_id == s["uniqueid"], e.kind == "miss").order_by(e.id.desc()).limit(1))).scalar()
        at = s["ended_at"]
        if task_id is None:
            number, department = s["caller_num"], self.department_of(s["department"])
            if not number or department is None:
                log.warning("callback request of call %s/%s: no %s; no follow-up task", s["pbx"], s["uniqueid"],
                            "caller number" if not number else "department")
                return None
            task_id = await fu.attach_or_open(conn, number, department, rules.Miss(
                s["pbx"], s["uniqueid"], rules.Reason.CALLBACK_REQUEST, at, s["route_queue"]))
        values = {"reason": rules.Reason.CALLBACK_REQUEST.value}
        if recording:
            values["recording"] = recording[:255]
        version = await fu._bump(conn, task_id, **values)
        await fu._event(conn, task_id, at, "callback_request", s["pbx"], s["uniqueid"],
                        {"reason": rules.Reason.CALLBACK_REQUEST.value, "recording": recording}, version=version)
        return task_id

    async def rate_case(self, conn, case_id: int, s: dict, task_id: int | None) -> None:
        await self.cases._event(conn, case_id, s["ended_at"], "rating", s["agent"] or "",
                                {"rating": s["rating"], "pbx": s["pbx"], "call_id": s["uniqueid"],
                                 "task_id": task_id})
