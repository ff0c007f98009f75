"""Range queries for the week/month/quarter roll-ups and the daily report's 30-day trend (issue 13).

A period's figures are the per-day query builders of callcenter/storage/report_queries.py run
once over the whole date range (`call_figures`, `task_groups`, `case_counts` take any [start,
end)): each call, task and case belongs to exactly one day, so one range query is the sum of the
days, and the rates are recomputed from those summed counts, never averaged. Open cases past
their deadline are a state, counted once at the period's end (or now), not once per day.

The trend is one grouped query per figure: calls by the local day they started (each call once,
by its last stint, as the daily totals count it) and cases due by the local day of their
deadline (or of their closing when they have none). Days are buckets compared in SQL
(`CASE WHEN started_at >= day0 AND started_at < day1 THEN 0 ...`), so the query is the same on
SQLite and PostgreSQL. When the zone's UTC offset changes over the range (not in Asia/Shanghai)
the trend falls back to one `call_figures` per day.
"""
from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta

from sqlalchemy import and_, case, false, func, not_, or_, select

from ..domain.metrics import MetricSettings, micros_below
from . import tables as t
from .report_queries import HoursProfiles, agent_wrapups, call_figures, case_counts, open_intervals, task_groups

MARGIN_DAYS = 2          # business hours known this far around the range (stints entered after midnight)


def bounds(first: date, last: date, tz) -> tuple[datetime, datetime]:
    """[start, end) of the local days first..last."""
    return datetime.combine(first, time(0), tz), datetime.combine(last + timedelta(days=1), time(0), tz)


async def period_inputs(store, settings, calendar, first: date, last: date, now: datetime,
                        ms: MetricSettings) -> dict:
    """The counts of the days first..last (local dates), read (never written) from the store:
    {"figures": DailyFigures, "task_groups": ..., "case_counts": ..., "sessions", "observed",
    "agent_wrapups": agent -> (due, in time), "agent_time": agent -> (login, pause)}; the agents'
    figures as `daily_report_inputs` reads a day's, over the whole period (up to `now` while it
    runs)."""
    from ..checkpointer import stale_after
    from ..domain.coverage_figures import agent_day_time
    from .checkpoints import coverage_facts
    start, end = bounds(first, last, calendar.tz)

    async def sessions_and_time():
        # the agents' times worked out as soon as the sessions are in, while the call counts are
        # still being read (the database works on in its own threads)
        sessions, observed = await coverage_facts(store, start, end, now,
                                                  stale_after(settings.instance.checkpoint_seconds))
        return sessions, observed, agent_day_time(sessions, start, min(end, max(now, start)))
    figures, tasks, cases, wrapups, (sessions, observed, times) = await asyncio.gather(   # independent reads, at once
        call_figures(store, settings, calendar, start, end, ms, lost=False), task_groups(store, start, end, now),
        case_counts(store, start, end, now),
        agent_wrapups(store, store.dialect, start, end, now, settings.cases.wrapup_minutes), sessions_and_time())
    return {"figures": figures, "task_groups": tasks, "case_counts": cases, "sessions": sessions,
            "observed": observed, "agent_wrapups": wrapups, "agent_time": times}


# --- the trend: one grouped query per figure ------------------------------------------------------

def _inside(column, intervals):
    return or_(*[and_(column >= a, column < b) for a, b in intervals]) if intervals else false()


def _day_spans(days: list[date], tz) -> list[tuple[datetime, datetime]]:
    """[start, end) of each local day."""
    return [(datetime.combine(d, time(0), tz), datetime.combine(d + timedelta(days=1), time(0), tz)) for d in days]


def _runs(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """The spans merged where they touch (consecutive days become one range)."""
    out: list[list[datetime]] = []
    for a, b in sorted(spans):
        if out and out[-1][1] >= a:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _day_bucket(column, spans: list[tuple[datetime, datetime]]):
    """The index of the span [a, b) holding `column`, else NULL."""
    return case(*[(and_(column >= a, column < b), i) for i, (a, b) in enumerate(spans)], else_=None)


async def daily_call_totals(store, settings, calendar, days: list[date], ms: MetricSettings
                            ) -> dict[date, tuple[int, int, int]]:
    """Per local day of `days` (any, sorted): (offered, answered, short_abandoned) of the hotline
    totals (each call once, by its last stint; after-hours stints left out), as the daily
    report's `totals` count them."""
    if not days:
        return {}
    spans = _day_spans(days, calendar.tz)
    profiles = HoursProfiles(settings)
    first, last = days[0] - timedelta(days=MARGIN_DAYS), days[-1] + timedelta(days=MARGIN_DAYS)
    intervals = [open_intervals(calendar, w, first, last) for w in profiles.windows]
    if any(i is None for i in intervals):                # the offset changes: day by day
        out = {}
        for d, (a, b) in zip(days, spans):
            c = (await call_figures(store, settings, calendar, a, b, ms, lost=False)).totals.counts
            out[d] = (c["offered"], c["answered"], c["short_abandoned"])
        return out
    s = t.stints.alias("s")       # with its call's start and flags (migration 0016): no join
    by_profile: dict[int, list[str]] = {}
    for department, index in profiles.of_department.items():
        if index:
            by_profile.setdefault(index, []).append(department)
    whens = [(s.c.department.in_(deps), _inside(s.c.entered_at, intervals[i])) for i, deps in sorted(by_profile.items())]
    default = _inside(s.c.entered_at, intervals[0])
    is_open = case(*whens, else_=default) if whens else default
    bucket = _day_bucket(s.c.call_started_at, spans).label("day")
    short = and_(s.c.end == "abandoned", s.c.wait_us <= micros_below(ms.short_abandon_seconds))
    inner = select(bucket, case((s.c.end == "answered", 1), else_=0).label("ans"),
                   case((short, 1), else_=0).label("short")).where(
        _inside(s.c.call_started_at, _runs(spans)), s.c.is_last, not_(s.c.call_after_hours), is_open).subquery()
    query = select(inner.c.day, func.count(), func.sum(inner.c.ans), func.sum(inner.c.short)).group_by(inner.c.day)
    out = {d: (0, 0, 0) for d in days}
    async with store.engine.connect() as conn:
        for day, n, ans, short_n in (await conn.execute(query)).all():
            if day is not None:
                out[days[int(day)]] = (int(n), int(ans or 0), int(short_n or 0))
    return out


async def daily_case_totals(store, calendar, days: list[date]) -> dict[date, tuple[int, int]]:
    """Per local day of `days`: (cases_due, resolved_in_time) over all departments, as
    `case_counts` counts them for that day (due: deadline that day, or no deadline and closed
    that day)."""
    if not days:
        return {}
    spans = _day_spans(days, calendar.tz)
    runs = _runs(spans)
    c = t.cases.c
    due_at = case((c.deadline.is_not(None), c.deadline), else_=c.closed_at)
    in_time = and_(c.status == "resolved", or_(c.deadline.is_(None),
                                                and_(c.closed_at.is_not(None), c.closed_at <= c.deadline)))
    inner = select(_day_bucket(due_at, spans).label("day"), case((in_time, 1), else_=0).label("ok")).where(
        c.status != "out_of_scope",
        or_(and_(c.deadline.is_not(None), _inside(c.deadline, runs)),
            and_(c.deadline.is_(None), _inside(c.closed_at, runs)))).subquery()
    query = select(inner.c.day, func.count(), func.sum(inner.c.ok)).group_by(inner.c.day)
    out = {d: (0, 0) for d in days}
    async with store.engine.connect() as conn:
        for day, n, ok in (await conn.execute(query)).all():
            if day is not None:
                out[days[int(day)]] = (int(n), int(ok or 0))
    return out
