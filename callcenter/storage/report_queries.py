"""The daily report's figures as SQL aggregates (issue 13: a day of 50,000 calls over a database
of 1,000,000), and the read-only loading of a whole report (`daily_report_inputs`).

SQL only counts and sums per group (callcenter/domain/metrics.py `StintGroup`, `IvrGroup`); the
domain combines the groups (`grouped_figures`) with the same definitions as `daily_figures`,
which stays the reference: tests/test_report_sql.py checks both agree. Business hours become
UTC intervals (one per window and workday) compared in SQL; waits are whole microseconds.
A row (pbx, queue) met with several departments gets the first one in call order, looked up
for that row alone. When grouped counts cannot say what `daily_figures` would (a time zone whose
UTC offset changes near the day, a stint entered days away from its call's day) the day is
counted the old way, from its call records. The groups also carry the local hour the calls
started (calls_by_hour), the longest wait and the answers by wait band. One statement
(`_stint_groups`) reads the day's stints, which carry their call's start, wait, talk time and
"last stint" flag (migration 0016), from one covering index and groups them twice (the stint
groups; the answers and talk time per agent), beside the calls without a stint (`IvrGroup`).
The day's lost calls are read beside it (callcenter/storage/report_work_queries.py).
The reads run on connections of their own, all at once (`asyncio.gather`): a report is several
independent queries, and SQLite and PostgreSQL both run them in parallel.
"""
from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import String, and_, case, false, func, literal, literal_column, not_, null, or_, select, union_all

from ..domain.calendar import normalize_windows
from ..domain.metrics import (BANDS, Ambiguous, DailyFigures, IvrGroup, MetricSettings, StintGroup, daily_figures,
                              grouped_figures, ivr_row, micros_at_most, micros_below)
from . import tables as t
from .report_work_queries import (_hour, _lost_calls, agent_wrapups, case_counts,  # noqa: F401
                                  lost_call_tasks, report_connection, task_groups)

MARGIN_DAYS = 2            # stints entered up to this many days from the report's day are counted in SQL


class HoursProfiles:
    """The distinct business-hour window sets of the configuration: profile 0 is the default
    (`business_hours`), then one per distinct departmental set."""

    def __init__(self, settings):
        self.windows: list[tuple] = [normalize_windows([(w.start, w.end) for w in settings.hours_of(None)])]
        self.of_department: dict[str, int] = {}
        for d in settings.departments:
            windows = normalize_windows([(w.start, w.end) for w in settings.hours_of(d.id)])
            if windows not in self.windows:
                self.windows.append(windows)
            self.of_department[d.id] = self.windows.index(windows)

    def profile_of(self, department: str | None) -> int:
        return self.of_department.get(department, 0) if department is not None else 0


def open_intervals(calendar, windows, first: date, last: date) -> list[tuple[datetime, datetime]] | None:
    """[start, end) in UTC of every business window on the workdays first..last (local dates);
    None when the zone's UTC offset is not one constant over those days (local windows would not
    map to plain intervals)."""
    tz = calendar.tz
    offsets = {datetime.combine(first + timedelta(days=i), time(0), tz).utcoffset()
               for i in range((last - first).days + 2)}
    if len(offsets) != 1:
        return None
    out = []
    day = first
    while day <= last:
        if calendar.is_workday(day):
            out += [(datetime.combine(day, s, tz), datetime.combine(day, e, tz)) for s, e in windows]
        day += timedelta(days=1)
    return out


def _inside(column, intervals):
    return or_(*[and_(column >= a, column < b) for a, b in intervals]) if intervals else false()


async def call_figures(store, settings, calendar, start: datetime, end: datetime, ms: MetricSettings,
                       is_open=None, links: list | None = None, lost: bool = True) -> DailyFigures:
    """The figures of the calls that started in [start, end): `daily_figures` of those calls,
    computed with SQL aggregates (or, when they cannot be exact, from the records). `links`,
    `lost`: as `sql_call_figures` (links left empty when the records were counted)."""
    figures = await sql_call_figures(store, settings, calendar, start, end, ms, links, lost)
    if figures is not None:
        return figures
    if is_open is None:
        from reports.daily import opening_hours
        is_open = opening_hours(settings)
    return daily_figures(await store.calls_between(start, end), settings.directory(), is_open, ms, calendar.tz,
                         settings.reports.lost_calls_per_department)


async def sql_call_figures(store, settings, calendar, start: datetime, end: datetime,
                           ms: MetricSettings, links: list | None = None, lost: bool = True) -> DailyFigures | None:
    """`daily_figures` by SQL aggregates; None when grouped counts cannot give exactly that.
    `links`, when given, gets the lost calls' follow-up links appended (`lost_call_tasks`, read
    beside the counts, on a connection of its own). `lost=False`: the lost calls are not read
    (the period roll-ups and the trend list none); `DailyFigures.lost` stays empty."""
    directory = settings.directory()
    profiles = HoursProfiles(settings)
    tz = calendar.tz
    first = start.astimezone(tz).date() - timedelta(days=MARGIN_DAYS)
    last = (end - timedelta(microseconds=1)).astimezone(tz).date() + timedelta(days=MARGIN_DAYS)
    intervals = [open_intervals(calendar, w, first, last) for w in profiles.windows]
    if all(i is not None for i in intervals):
        lo, hi = datetime.combine(first, time(0), tz), datetime.combine(last + timedelta(days=1), time(0), tz)

        async def side():         # on a connection of its own: runs beside the stint count
            if not lost:
                return []
            async with report_connection(store) as conn:
                out = await _lost_calls(conn, store.dialect, start, end, settings.reports.lost_calls_per_department)
            if links is not None:
                links.append(await lost_call_tasks(store, [(c.pbx, c.call_id) for c in out]))
            return out

        async def count():
            async with report_connection(store) as conn:
                return await _stint_groups(conn, store.dialect, profiles, intervals, start, end, lo, hi, ms)
        lost_calls, (stint_groups, outside, agents, ivr_groups) = await asyncio.gather(side(), count())
        if not outside:
            firsts = None
            try:
                grouped_figures(stint_groups, ivr_groups, directory, profiles.profile_of)
            except Ambiguous as exc:
                async with report_connection(store) as conn:
                    firsts = {key: await _first_department(conn, key, ivr_groups, directory, start, end)
                              for key in exc.keys}
            return grouped_figures(stint_groups, ivr_groups, directory, profiles.profile_of, firsts, agents,
                                   lost_calls)
    if links is not None:
        links.clear()
    return None


async def _first_department(conn, key, ivr_groups, directory, start, end):
    """The department of the first stint or stint-less call of row `key` in call order (the
    order `Store.calls_where` reads calls in, then stint order), as `daily_figures` assigns it."""
    pbx, queue = key
    s, c = t.stints.alias("s"), t.calls.alias("c")
    day = and_(c.c.started_at >= start, c.c.started_at < end)
    parts = [select(c.c.started_at.label("at"), c.c.id.label("id"), s.c.seq.label("seq"),
                    s.c.department.label("department"))
             .select_from(s.join(c, and_(c.c.pbx == s.c.pbx, c.c.id == s.c.call_id)))
             .where(day, s.c.pbx == pbx, s.c.queue == queue)]
    for ivr_queue, department, hotline in {(i.ivr_queue, i.department, i.hotline) for i in ivr_groups
                                           if i.pbx == pbx and ivr_row(i, directory)[0] == queue}:
        row_department = ivr_row(IvrGroup(pbx, ivr_queue, department, hotline, False, (), 0), directory)[1]
        s2 = t.stints.alias()
        parts.append(select(c.c.started_at, c.c.id, literal(-1), literal(row_department, String)).where(
            day, c.c.pbx == pbx, c.c.ivr_queue == ivr_queue, c.c.hotline == hotline,
            c.c.department.is_(None) if department is None else c.c.department == department,
            ~select(literal_column("1")).where(s2.c.pbx == c.c.pbx, s2.c.call_id == c.c.id).exists()))
    both = union_all(*parts).subquery()
    row = (await conn.execute(select(both.c.department).order_by(both.c.at, both.c.id, both.c.seq).limit(1))).first()
    return row[0] if row else None


async def _stint_groups(conn, dialect, profiles, intervals, start, end, lo, hi, ms):
    """One row per (pbx, queue, department, last, after-hours, hour) with the counts and sums, per
    agent the answered stints and their talk time, and the calls without a stint, in one
    statement. The stints carry the facts they are counted by (migration 0016: their call's start
    and after-hours flag, wait and talk in microseconds, last or not), so the day's stints and
    the per-agent counts are one range of `ix_stints_day` with no join, and the stint-less calls
    one range of the partial `ix_calls_stintless`.
    Returns (groups, stints entered outside [lo, hi), agents as {agent: [answered, talk]}, IvrGroups)."""
    x = t.stints.alias("x")
    day = and_(x.c.call_started_at >= start, x.c.call_started_at < end)
    by_profile = {}
    for department, index in profiles.of_department.items():
        if index:
            by_profile.setdefault(index, []).append(department)
    whens = [(x.c.department.in_(departments), _inside(x.c.entered_at, intervals[index]))
             for index, departments in sorted(by_profile.items())]
    default = _inside(x.c.entered_at, intervals[0])
    is_open = case(*whens, else_=default) if whens else default
    inner = select(       # the keys worked out once per stint, grouped on by name (PostgreSQL: bound values)
        x.c.pbx, x.c.queue, x.c.department, x.c.end, x.c.wait_us.label("wait"), x.c.talk_us.label("talk"),
        case((x.c.is_last, 1), else_=0).label("last"),
        case((or_(x.c.call_after_hours, not_(is_open)), 1), else_=0).label("after"),
        literal_column(_hour(dialect, "x.call_started_at", start)).label("hour"),
        case((or_(x.c.entered_at < lo, x.c.entered_at >= hi), 1), else_=0).label("outside"),
    ).where(day)
    if dialect == "sqlite":       # a co-routine the grouping reads (flattened, `after` would be worked out twice)
        inner = inner.limit(-1)
    g = inner.subquery("g")

    def n(condition):
        return func.sum(case((condition, 1), else_=0))

    answered = g.c.end == "answered"
    wait = g.c.wait
    thresholds = tuple(ms.service_level_seconds)
    keys = [g.c.pbx, g.c.queue, g.c.department, g.c.last, g.c.after, g.c.hour]
    band_limits = [micros_at_most(hi) for _, hi in BANDS if hi is not None]
    columns = [
        literal_column("0").label("kind"), *keys, func.count(),
        n(answered), n(g.c.end == "abandoned"),
        n(and_(g.c.end == "abandoned", wait <= micros_below(ms.short_abandon_seconds))),
        n(g.c.end == "timed_out"), n(g.c.end == "no_agent"),
        func.coalesce(func.sum(case((answered, wait), else_=0)), 0),
        func.coalesce(func.sum(case((answered, g.c.talk), else_=0)), 0),
        func.coalesce(func.sum(g.c.outside), 0), func.max(wait),
        *[n(and_(answered, wait <= limit)) for limit in band_limits],
        *[n(and_(answered, wait <= micros_at_most(v))) for v in thresholds],
        null().label("hotline"),
    ]
    stint_query = select(*columns).group_by(*keys)
    # per agent, in the same columns: kind 1, the agent where the queue is, count, talk
    agent_columns = [None] * len(columns)
    agent_columns[0], agent_columns[2], agent_columns[7] = literal_column("1"), x.c.agent, func.count()
    agent_columns[14] = func.coalesce(func.sum(x.c.talk_us), 0)
    agent_query = select(*[col if col is not None else null() for col in agent_columns]).where(
        day, x.c.end == "answered", x.c.agent.is_not(None), x.c.agent != "").group_by(x.c.agent)
    # the calls without a stint (`IvrGroup`), in the same columns: kind 2, pbx, ivr_queue, the call's
    # department, after_hours outcome, a bit per hours profile open at the call's start, count, hotline
    i = t.calls.alias("i")
    ivr_columns = [None] * len(columns)
    ivr_columns[:6] = [literal_column("2"), i.c.pbx, i.c.ivr_queue, i.c.department,
                       case((i.c.outcome == "after_hours", 1), else_=0), _open_mask(i.c.started_at, intervals)]
    ivr_columns[7], ivr_columns[-1] = func.count(), i.c.hotline
    mask = [ivr_columns[5]] if any(intervals) else []      # never a constant in GROUP BY
    ivr_query = select(*[col if col is not None else null() for col in ivr_columns]).where(
        i.c.stint_count == 0, i.c.started_at >= start, i.c.started_at < end).group_by(*ivr_columns[1:5], *mask,
                                                                                      i.c.hotline)
    groups, outside, agents, ivr = [], 0, {}, []
    nb = len(band_limits)
    for kind, *row in (await conn.execute(union_all(stint_query, agent_query, ivr_query))).all():
        if kind == 1:
            agents[row[1]] = [int(row[6]), int(row[13])]
            continue
        if kind == 2:
            ivr.append(IvrGroup(row[0], row[1], row[2], row[-1], bool(row[3]),
                                tuple(bool(int(row[4]) >> k & 1) for k in range(len(intervals))), int(row[6])))
            continue
        (pbx, queue, department, last, after_hours, hour, stints, ans, ab, short, to, na, wait_us, talk_us, out,
         longest) = row[:16]
        within = [int(v) for v in row[16:16 + nb]]
        bands = tuple(b - a for a, b in zip([0] + within, within + [int(ans)]))
        outside += out
        groups.append(StintGroup(pbx, queue, department, bool(last), bool(after_hours), stints, ans, ab, short, to, na,
                                 thresholds, tuple(int(v) for v in row[16 + nb:-1]), int(wait_us), int(talk_us),
                                 int(hour), int(longest or 0), bands))
    return groups, outside, agents, ivr


def _open_mask(column, intervals):
    """SQL: bit k set when `column` is inside the business hours of profile k (0 for a profile
    with no window near the day: a holiday)."""
    bits = [case((_inside(column, i), 1 << k), else_=0) for k, i in enumerate(intervals) if i]
    out = literal_column("0")
    for bit in bits:
        out = out + bit
    return out


async def daily_report_inputs(store, settings, day: date, now: datetime) -> dict:
    """Everything `reports.daily.build` needs for `day`, read (never written) from the store:
    keyword arguments for `build` (figures, task_groups, now, case_counts, pending_wrapups, posts,
    lost_tasks, agent_wrapups, agent_time)."""
    from reports import coverage, daily
    from ..checkpointer import stale_after
    from ..domain.coverage_figures import agent_day_time
    from ..workdays import build_calendar
    from .checkpoints import coverage_facts
    tz = ZoneInfo(settings.timezone)
    bounds = daily.day_bounds(day, tz)
    calendar = build_calendar(settings)

    async def calls():
        links: list = []
        figures = await call_figures(store, settings, calendar, *bounds, daily.metric_settings(settings), links=links)
        return figures, links[0] if links else await lost_call_tasks(store, [(c.pbx, c.call_id) for c in figures.lost])

    # every read on a connection of its own, all at once: the report waits for the longest, not the sum
    (figures, lost_tasks), tasks, cases, wrapups, compliance, (sessions, observed) = await asyncio.gather(
        calls(), task_groups(store, *bounds, now), case_counts(store, *bounds, now),
        store.pending_wrapups(min(now, bounds[1]) - timedelta(minutes=settings.cases.wrapup_minutes)),
        agent_wrapups(store, store.dialect, *bounds, now, settings.cases.wrapup_minutes),
        coverage_facts(store, *bounds, now, stale_after(settings.instance.checkpoint_seconds)))
    posts = coverage.posts(day, settings, sessions, now, observed=observed)
    return {"figures": figures, "task_groups": tasks, "now": now, "case_counts": cases, "pending_wrapups": wrapups,
            "posts": posts, "lost_tasks": lost_tasks, "agent_wrapups": compliance,
            "agent_time": agent_day_time(sessions, bounds[0], min(bounds[1], max(now, bounds[0])))}
