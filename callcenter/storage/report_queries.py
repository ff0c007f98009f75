"""The daily report's figures as SQL aggregates (issue 13: a day of 50,000 calls over a database
of 1,000,000), and the read-only loading of a whole report (`daily_report_inputs`).

SQL only counts and sums per group (callcenter/domain/metrics.py `StintGroup`, `IvrGroup`); the
domain combines the groups (`grouped_figures`) with the same definitions as `daily_figures`,
which stays the reference: tests/test_report_sql.py checks both agree. Business hours become
UTC intervals (one per window and workday) compared in SQL; waits are whole microseconds.
A row (pbx, queue) met with several departments gets the first one in call order, looked up
for that row alone. When grouped counts cannot say what `daily_figures` would (a time zone whose
UTC offset changes near the day, a stint entered days away from its call's day) the day is
counted the old way, from its call records.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import String, and_, case, false, func, literal, literal_column, not_, or_, select, union_all

from ..domain.calendar import normalize_windows
from ..domain.metrics import (CASE_COUNTS, Ambiguous, DailyFigures, IvrGroup, MetricSettings, StintGroup,
                              daily_figures, grouped_figures, ivr_row, micros_at_most, micros_below,
                              task_figures_from_groups)
from . import tables as t

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


def _micros(dialect: str, later: str, earlier: str) -> str:
    """SQL for (later - earlier) in whole microseconds, exactly (timestamps stored as UTC)."""
    if dialect == "postgresql":
        return f"CAST(EXTRACT(EPOCH FROM ({later} - {earlier})) * 1000000 AS BIGINT)"
    # SQLite keeps 'YYYY-MM-DD HH:MM:SS.ffffff': whole seconds by strftime of the first 19
    # characters (strftime itself rounds fractions to milliseconds: .9996 s would be the next
    # second), microseconds by substr
    return (f"((CAST(strftime('%s', substr({later}, 1, 19)) AS INTEGER)"
            f" - CAST(strftime('%s', substr({earlier}, 1, 19)) AS INTEGER)) * 1000000"
            f" + CAST(substr({later}, 21, 6) AS INTEGER) - CAST(substr({earlier}, 21, 6) AS INTEGER))")


def _wait_us(dialect: str) -> str:
    until = "COALESCE(s.answered_at, s.left_at)"
    biggest = "GREATEST" if dialect == "postgresql" else "max"
    return f"(CASE WHEN {until} IS NULL THEN 0 ELSE {biggest}(0, {_micros(dialect, until, 's.entered_at')}) END)"


def _talk_us(dialect: str) -> str:
    """`metrics.talk_micros` in SQL: x * 1e6 + 0.5 truncated toward zero, NULL as 0."""
    if dialect == "postgresql":
        return "COALESCE(CAST(trunc(s.talk_seconds * 1000000 + 0.5) AS BIGINT), 0)"
    return "COALESCE(CAST(s.talk_seconds * 1000000 + 0.5 AS INTEGER), 0)"


async def call_figures(store, settings, calendar, start: datetime, end: datetime, ms: MetricSettings,
                       is_open=None) -> DailyFigures:
    """The figures of the calls that started in [start, end): `daily_figures` of those calls,
    computed with SQL aggregates (or, when they cannot be exact, from the records)."""
    figures = await sql_call_figures(store, settings, calendar, start, end, ms)
    if figures is not None:
        return figures
    if is_open is None:
        from reports.daily import opening_hours
        is_open = opening_hours(settings)
    return daily_figures(await store.calls_between(start, end), settings.directory(), is_open, ms)


async def sql_call_figures(store, settings, calendar, start: datetime, end: datetime,
                           ms: MetricSettings) -> DailyFigures | None:
    """`daily_figures` by SQL aggregates; None when grouped counts cannot give exactly that."""
    directory = settings.directory()
    profiles = HoursProfiles(settings)
    tz = calendar.tz
    first = start.astimezone(tz).date() - timedelta(days=MARGIN_DAYS)
    last = (end - timedelta(microseconds=1)).astimezone(tz).date() + timedelta(days=MARGIN_DAYS)
    intervals = [open_intervals(calendar, w, first, last) for w in profiles.windows]
    if all(i is not None for i in intervals):
        lo, hi = datetime.combine(first, time(0), tz), datetime.combine(last + timedelta(days=1), time(0), tz)
        async with store.engine.connect() as conn:
            stint_groups, outside = await _stint_groups(conn, store.dialect, profiles, intervals, start, end,
                                                        lo, hi, ms)
            if not outside:
                ivr_groups = await _ivr_groups(conn, intervals, start, end)
                try:
                    return grouped_figures(stint_groups, ivr_groups, directory, profiles.profile_of)
                except Ambiguous as exc:
                    firsts = {key: await _first_department(conn, key, ivr_groups, directory, start, end)
                              for key in exc.keys}
                return grouped_figures(stint_groups, ivr_groups, directory, profiles.profile_of, firsts)
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
    """One row per (pbx, queue, department, last, after-hours) with the counts and sums. The
    inner query works out each stint's wait, talk and flags once; on SQLite its LIMIT -1 keeps
    it a co-routine the grouping reads (not flattened, which would recompute the wait per sum)."""
    s = t.stints.alias("s")
    c = t.calls.alias("c")
    s2 = t.stints.alias("s2")
    if dialect == "postgresql":     # one pass over the day's stints (PostgreSQL hash-joins them)
        last = case((s.c.seq == func.max(s.c.seq).over(partition_by=[s.c.pbx, s.c.call_id]), 1), else_=0)
    else:                           # one look into the primary key (EXISTS (SELECT 1 ...): index only)
        later = select(literal_column("1")).where(s2.c.pbx == s.c.pbx, s2.c.call_id == s.c.call_id,
                                                 s2.c.seq > s.c.seq).exists()
        last = case((later, 0), else_=1)
    by_profile = {}
    for department, index in profiles.of_department.items():
        if index:
            by_profile.setdefault(index, []).append(department)
    whens = [(s.c.department.in_(departments), _inside(s.c.entered_at, intervals[index]))
             for index, departments in sorted(by_profile.items())]
    default = _inside(s.c.entered_at, intervals[0])
    is_open = case(*whens, else_=default) if whens else default
    waited = s.c.end.in_(("answered", "abandoned"))
    inner = select(
        s.c.pbx, s.c.queue, s.c.department, s.c.end,
        last.label("last"),
        case((or_(c.c.after_hours, not_(is_open)), 1), else_=0).label("after"),
        case((waited, literal_column(_wait_us(dialect))), else_=0).label("wait"),
        case((s.c.end == "answered", literal_column(_talk_us(dialect))), else_=0).label("talk"),
        case((or_(s.c.entered_at < lo, s.c.entered_at >= hi), 1), else_=0).label("outside"),
    ).select_from(s.join(c, and_(c.c.pbx == s.c.pbx, c.c.id == s.c.call_id))).where(
        c.c.started_at >= start, c.c.started_at < end)
    if dialect == "sqlite":
        inner = inner.limit(-1)
    x = inner.subquery("x")

    def n(condition):
        return func.sum(case((condition, 1), else_=0))

    answered = x.c.end == "answered"
    thresholds = tuple(ms.service_level_seconds)
    keys = [x.c.pbx, x.c.queue, x.c.department, x.c.last, x.c.after]
    query = select(
        *keys, func.count(),
        n(answered), n(x.c.end == "abandoned"),
        n(and_(x.c.end == "abandoned", x.c.wait <= micros_below(ms.short_abandon_seconds))),
        n(x.c.end == "timed_out"), n(x.c.end == "no_agent"),
        func.coalesce(func.sum(case((answered, x.c.wait), else_=0)), 0),
        func.coalesce(func.sum(x.c.talk), 0),
        func.coalesce(func.sum(x.c.outside), 0),
        *[n(and_(answered, x.c.wait <= micros_at_most(v))) for v in thresholds],
    ).group_by(*keys)
    groups, outside = [], 0
    for row in (await conn.execute(query)).all():
        pbx, queue, department, last, after_hours, stints, ans, ab, short, to, na, wait_us, talk_us, out = row[:14]
        outside += out
        groups.append(StintGroup(pbx, queue, department, bool(last), bool(after_hours), stints, ans, ab, short, to, na,
                                 thresholds, tuple(int(v) for v in row[14:]), int(wait_us), int(talk_us)))
    return groups, outside


async def _ivr_groups(conn, intervals, start, end):
    c = t.calls.alias("c")
    s = t.stints.alias("s")
    flags = [_inside(c.c.started_at, i).label(f"open{k}") for k, i in enumerate(intervals)]
    ah = (c.c.outcome == "after_hours").label("ah")
    keys = [c.c.pbx, c.c.ivr_queue, c.c.department, c.c.hotline, ah, *flags]
    query = select(*keys, func.count()).where(
        c.c.started_at >= start, c.c.started_at < end,
        ~select(literal_column("1")).where(s.c.pbx == c.c.pbx, s.c.call_id == c.c.id).exists()).group_by(*keys)
    return [IvrGroup(row[0], row[1], row[2], row[3], bool(row[4]), tuple(bool(x) for x in row[5:-1]), row[-1])
            for row in (await conn.execute(query)).all()]


async def task_groups(store, start: datetime, end: datetime, now: datetime) -> dict:
    """`metrics.task_figures` of the tasks first missed or closed in [start, end), by SQL."""
    c = t.tasks.c
    in_time = and_(c.contacted_at.is_not(None), c.contacted_at <= c.deadline)
    async with store.engine.connect() as conn:
        created = (await conn.execute(select(
            c.pbx, c.queue, c.department, func.count(), func.sum(case((in_time, 1), else_=0)),
            func.sum(case((in_time, 0), (c.deadline < now, 1), else_=0))).where(
            c.first_missed_at >= start, c.first_missed_at < end).group_by(c.pbx, c.queue, c.department))).all()
        closures = (await conn.execute(select(c.pbx, c.queue, c.department, c.closure, func.count()).where(
            c.closed_at >= start, c.closed_at < end).group_by(c.pbx, c.queue, c.department, c.closure))).all()
    return task_figures_from_groups([tuple(r) for r in created], [tuple(r) for r in closures])


async def case_counts(store, start: datetime, end: datetime, now: datetime) -> dict[str, dict]:
    """Per department, the counts of `metrics.case_figures` (before wrap-ups and rates), by SQL
    over the cases opened, closed or due in [start, end) and the open ones past their deadline."""
    c = t.cases.c
    opened = and_(c.opened_at >= start, c.opened_at < end)
    closed = and_(c.closed_at.is_not(None), c.closed_at >= start, c.closed_at < end)
    in_time = and_(c.status == "resolved", or_(c.deadline.is_(None),
                                                and_(c.closed_at.is_not(None), c.closed_at <= c.deadline)))
    due = and_(c.status != "out_of_scope", or_(and_(c.deadline.is_(None), closed),
                                               and_(c.deadline.is_not(None), c.deadline >= start, c.deadline < end)))
    overdue = and_(c.status == "open", c.deadline.is_not(None), c.deadline < min(now, end))

    def n(condition):
        return func.sum(case((condition, 1), else_=0))
    columns = {
        "cases_opened": n(opened), "resolved_first_contact": n(and_(opened, c.resolved_first_contact)),
        "knowledge_gaps": n(and_(opened, c.knowledge_gap)), "cases_closed": n(closed),
        "escalated_12345": n(and_(closed, c.status == "escalated")),
        "out_of_scope": n(and_(closed, c.status == "out_of_scope")),
        "cases_due": n(due), "resolved_in_time": n(and_(due, in_time)), "cases_overdue": n(overdue)}
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(c.department, *columns.values()).where(
            opened | and_(c.closed_at >= start, c.closed_at < end) | and_(c.deadline >= start, c.deadline < end)
            | and_(c.status == "open", c.deadline < end)).group_by(c.department))).all()
    out = {}
    for department, *values in rows:
        counts = out[department] = dict.fromkeys(CASE_COUNTS, 0)
        counts.update({k: int(v) for k, v in zip(columns, values)})
    return out


async def daily_report_inputs(store, settings, day: date, now: datetime) -> dict:
    """Everything `reports.daily.build` needs for `day`, read (never written) from the store:
    keyword arguments for `build` (figures, task_groups, now, case_counts, pending_wrapups, posts)."""
    from reports import coverage, daily
    from ..checkpointer import stale_after
    from ..workdays import build_calendar
    from .checkpoints import coverage_facts
    tz = ZoneInfo(settings.timezone)
    bounds = daily.day_bounds(day, tz)
    calendar = build_calendar(settings)
    figures = await call_figures(store, settings, calendar, *bounds, daily.metric_settings(settings))
    tasks = await task_groups(store, *bounds, now)
    cases = await case_counts(store, *bounds, now)
    wrapups = await store.pending_wrapups(min(now, bounds[1]) - timedelta(minutes=settings.cases.wrapup_minutes))
    sessions, observed = await coverage_facts(store, *bounds, now, stale_after(settings.instance.checkpoint_seconds))
    posts = coverage.posts(day, settings, sessions, now, observed=observed)
    return {"figures": figures, "task_groups": tasks, "now": now, "case_counts": cases, "pending_wrapups": wrapups,
            "posts": posts}
