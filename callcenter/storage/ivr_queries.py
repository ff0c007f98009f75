"""The IVR's figures of a period as SQL aggregates over `ivr_sessions` (issue 12), for the daily
report's IVR section (reports/ivr.py). Sessions count in the period they started in.

- `session_counts`: per department, IVR entries (`/ivr` sessions), callback requests left, IVR
  hang-ups, surveys offered (every `/survey` session but a disabled one) and rated, per rating.
- `hangups_by_level`: IVR hang-ups per (department, deepest menu level reached; 0 = before any
  menu: the welcome, the closed or coverage-gap prompt, an owner route).
- `choices`: IVR sessions per (department, item, digits chosen on the way down).
- `dissatisfied`: the dissatisfied ratings, each with its follow-up task (contact deadline,
  contact time, rectification deadline).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, case, func, select

from . import tables as t


def _n(condition):
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _period(start: datetime, end: datetime):
    s = t.ivr_sessions.c
    return and_(s.started_at >= start, s.started_at < end)


async def session_counts(conn, start: datetime, end: datetime) -> dict[str | None, dict]:
    s = t.ivr_sessions.c
    ivr, survey = s.script == "ivr", s.script == "survey"
    query = select(
        s.department,
        _n(ivr).label("entries"),
        _n(and_(ivr, s.outcome == "callback_request")).label("callback_requests"),
        _n(and_(ivr, s.outcome == "hangup")).label("hangups"),
        _n(and_(survey, s.outcome != "disabled")).label("survey_offered"),
        _n(and_(survey, s.rating.isnot(None))).label("survey_rated"),
        _n(and_(survey, s.rating == "satisfied")).label("satisfied"),
        _n(and_(survey, s.rating == "basic")).label("basic"),
        _n(and_(survey, s.rating == "dissatisfied")).label("dissatisfied"),
    ).where(_period(start, end)).group_by(s.department)
    rows = (await conn.execute(query)).mappings().all()
    return {r["department"]: {k: int(v) for k, v in r.items() if k != "department"} for r in rows}


async def hangups_by_level(conn, start: datetime, end: datetime) -> dict[tuple[str | None, int], int]:
    s = t.ivr_sessions.c
    query = (select(s.department, s.level, func.count()).where(_period(start, end), s.script == "ivr",
                                                                s.outcome == "hangup")
             .group_by(s.department, s.level))
    return {(r[0], int(r[1])): int(r[2]) for r in await conn.execute(query)}


async def choices(conn, start: datetime, end: datetime) -> dict[tuple[str | None, str | None, str], int]:
    s = t.ivr_sessions.c
    query = (select(s.department, s.item, s.choice, func.count()).where(_period(start, end), s.script == "ivr",
                                                                         s.choice != "")
             .group_by(s.department, s.item, s.choice))
    return {(r[0], r[1], r[2]): int(r[3]) for r in await conn.execute(query)}


async def dissatisfied(conn, start: datetime, end: datetime) -> list[dict]:
    s, k = t.ivr_sessions.c, t.tasks.c
    query = (select(s.pbx, s.uniqueid, s.ended_at, s.caller_num, s.department, s.agent, s.queue, s.case_id,
                    s.task_id, k.deadline, k.contacted_at, k.rectify_deadline, k.rectify_kind, k.status)
             .select_from(t.ivr_sessions.outerjoin(t.tasks, k.id == s.task_id))
             .where(_period(start, end), s.script == "survey", s.rating == "dissatisfied")
             .order_by(s.ended_at, s.id))
    return [dict(r) for r in (await conn.execute(query)).mappings().all()]


async def ivr_figures(store, start: datetime, end: datetime) -> dict:
    """Every group the IVR section needs, read in one connection."""
    async with store.engine.connect() as conn:
        return {"counts": await session_counts(conn, start, end), "hangups": await hangups_by_level(conn, start, end),
                "choices": await choices(conn, start, end), "dissatisfied": await dissatisfied(conn, start, end)}
