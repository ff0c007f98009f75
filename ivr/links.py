"""Links stored IVR and survey sessions to their tracked calls and acts on them (issue 12).

Part of `IvrRecords` (ivr/records.py): the IVR runs on the caller's channel, so a session's
uniqueid IS the tracked call's id (`calls.id`), and the IVR's records and the AMI events describe
one call. Once the call is stored and its cases and follow-up steps have run
(callcenter/aftercommit.py), `link` fills in linkedid, the department, the case (case_calls) and
the serving agent (the answered stint), and acts (callcenter/followup/ratings.py): a dissatisfied
rating opens its follow-up, a callback request marks the call's task, a rating joins the case's
history. A session whose call is not stored within `survey_followup.link_grace_minutes` (24 h
for sessions with nothing to act on) is acted on alone. Each session is claimed (`linked_at`) in
the transaction that acts on it: once, whichever instance gets there.
"""
from __future__ import annotations

import json
import logging
from datetime import timedelta

from sqlalchemy import and_, or_, select, update

from callcenter.storage import tables as t
from callcenter.storage.health import is_unavailable

log = logging.getLogger("ivr.records")
IDLE_LINK_HOURS = 24           # sessions with nothing to act on wait this long for their call
MAX_LINK_FAILURES = 3          # a session whose linking keeps failing (not an outage) is linked alone


class Linker:
    """Mixed into `IvrRecords`, which supplies store, clock, cfg, ratings, linked, _failures, _unlinked."""

    async def link(self, limit: int = 200) -> int:
        """Act on the sessions whose call is stored and processed (or which waited long enough)."""
        s, c = t.ivr_sessions.c, t.calls.c
        now = self.clock.now()
        acts = or_(s.rating == "dissatisfied", s.outcome == "callback_request")
        ready = or_(and_(c.cases_done.is_(True), c.followup_done.is_(True)),
                    and_(acts, s.ended_at < now - timedelta(minutes=self.cfg.link_grace_minutes)),
                    s.ended_at < now - timedelta(hours=IDLE_LINK_HOURS))
        query = (select(s.id).select_from(t.ivr_sessions.outerjoin(t.calls, and_(c.pbx == s.pbx, c.id == s.uniqueid)))
                 .where(s.linked_at.is_(None), ready).order_by(s.id).limit(limit))
        async with self.store.engine.connect() as conn:
            ids = (await conn.execute(query)).scalars().all()
            waiting = (await conn.execute(select(s.id).where(s.linked_at.is_(None)).limit(1))).first()
        for session_id in ids:
            try:
                await self._link_one(session_id, now)
            except Exception as exc:
                if is_unavailable(exc):
                    raise
                failures = self._failures[session_id] = self._failures.get(session_id, 0) + 1
                log.error("IVR session %d: linking failed (%d of %d): %s", session_id, failures, MAX_LINK_FAILURES,
                          f"{type(exc).__name__}: {exc}"[:300])
                if failures >= MAX_LINK_FAILURES:
                    async with self.store.begin() as conn:
                        await conn.execute(update(t.ivr_sessions).where(s.id == session_id).values(linked_at=now))
        self._unlinked = waiting is not None or len(ids) == limit
        return len(ids)

    async def _link_one(self, session_id: int, now) -> None:
        s, c = t.ivr_sessions.c, t.calls.c
        async with self.store.begin() as conn:
            claimed = (await conn.execute(update(t.ivr_sessions).where(s.id == session_id, s.linked_at.is_(None))
                                          .values(linked_at=now).returning(*t.ivr_sessions.c))).mappings().first()
            if claimed is None:
                return                            # linked meanwhile (another instance)
            session = dict(claimed)
            call = (await conn.execute(select(c.linkedid, c.department).where(
                c.pbx == session["pbx"], c.id == session["uniqueid"]))).first()
            if call is not None:
                session["linkedid"], session["call_found"] = call.linkedid, True
                session["department"] = session["department"] or call.department
                cc = t.case_calls.c
                case = (await conn.execute(select(cc.case_id, cc.agent).where(
                    cc.pbx == session["pbx"], cc.call_id == session["uniqueid"]).order_by(cc.seq.desc()).limit(1))).first()
                if case is not None:
                    session["case_id"] = case.case_id
                    session["agent"] = session["agent"] or case.agent
                if session["agent"] is None:
                    st = t.stints.c
                    session["agent"] = (await conn.execute(select(st.agent).where(
                        st.pbx == session["pbx"], st.call_id == session["uniqueid"], st.answered_at.isnot(None))
                        .order_by(st.seq.desc()).limit(1))).scalar()
            task_id = None
            if session["rating"] == "dissatisfied":
                task_id = await self.ratings.dissatisfied(conn, session)
            if session["outcome"] == "callback_request":
                recordings = json.loads(session["recordings"] or "[]")
                task_id = await self.ratings.callback_request(conn, session, recordings[-1] if recordings else None)
            if session["rating"] and session["case_id"] is not None:
                await self.ratings.rate_case(conn, session["case_id"], session, task_id)
            await conn.execute(update(t.ivr_sessions).where(s.id == session_id).values(
                linkedid=session["linkedid"], call_found=session["call_found"], department=session["department"],
                case_id=session["case_id"], agent=session["agent"], task_id=task_id))
        self.linked += 1


