"""The daily report's reads beside the call counts (callcenter/storage/report_queries.py), as SQL
aggregates or bounded lists: follow-up tasks and first-ask cases of the day (`task_groups`,
`case_counts`; the domain keeps the rates: callcenter/domain/work_figures.py), the day's lost
calls (`_lost_calls`) and their callback status (`lost_call_tasks`), and per agent the wrap-up
compliance (`agent_wrapups`; answered calls and talk time come with the stint counts); and the
SQL expressions both modules use (a span in whole microseconds, the local hour). Stints' waits
and talk times are stored with them (migration 0016: `wait_us`, `talk_us`)."""
from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, literal_column, or_, select, text

from ..domain.metrics import LOST_OUTCOMES, LostCall, limit_lost
from ..domain.work_figures import CASE_COUNTS, task_figures_from_groups
from . import tables as t


def _micros(dialect: str, later: str, earlier: str) -> str:
    """SQL for (later - earlier) in whole microseconds, exactly (timestamps stored as UTC)."""
    if dialect == "postgresql":
        return f"CAST(EXTRACT(EPOCH FROM ({later} - {earlier})) * 1000000 AS BIGINT)"
    # SQLite keeps 'YYYY-MM-DD HH:MM:SS.ffffff': the seconds of the day and the microseconds from
    # the digits (substr), whole days by julianday of the dates only when they differ (strftime or
    # julianday on every row cost ~0.15 s per 55,000 rows; strftime also rounds fractions)
    def day_us(x: str) -> str:
        return (f"((CAST(substr({x}, 12, 2) AS INTEGER) * 3600 + CAST(substr({x}, 15, 2) AS INTEGER) * 60"
                f" + CAST(substr({x}, 18, 2) AS INTEGER)) * 1000000 + CAST(substr({x}, 21, 6) AS INTEGER))")
    days = (f"(CASE WHEN substr({later}, 1, 10) = substr({earlier}, 1, 10) THEN 0 ELSE"
            f" CAST(julianday(substr({later}, 1, 10)) - julianday(substr({earlier}, 1, 10)) AS INTEGER) END)")
    return f"({days} * 86400000000 + {day_us(later)} - {day_us(earlier)})"


def _hour(dialect: str, column: str, start: datetime) -> str:
    """SQL for the local hour (0-23) of `column` in the day starting at `start` (the zone's UTC
    offset is constant over the day: `open_intervals` checked it). SQLite: from the stored
    text's hour and minute digits (strftime would cost a fifth of the report)."""
    if dialect == "postgresql":
        return f"CAST(floor((EXTRACT(EPOCH FROM {column}) - {int(start.timestamp())}) / 3600) AS INTEGER)"
    offset = int(start.utcoffset().total_seconds()) % 86400
    return (f"(((CAST(substr({column}, 12, 2) AS INTEGER) * 3600 + CAST(substr({column}, 15, 2) AS INTEGER) * 60"
            f" + CAST(substr({column}, 18, 2) AS INTEGER) + {offset}) % 86400) / 3600)")


@asynccontextmanager
async def report_connection(store):
    """A connection for the report's reads. PostgreSQL: random_page_cost 1.1 for this transaction
    (the default, 4, prices a disk seek: the planner would hash-join every stint of the table
    rather than look up the day's through the covering index), and work_mem 64 MB (the default
    4 MB sent the sort of a 50,000-call day's stints for "last stint" to disk)."""
    async with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            await conn.execute(text("SET LOCAL random_page_cost = 1.1"))
            await conn.execute(text("SET LOCAL work_mem = '64MB'"))
        yield conn


async def task_groups(store, start: datetime, end: datetime, now: datetime) -> dict:
    """`metrics.task_figures` of the tasks first missed or closed in [start, end), by SQL."""
    c = t.tasks.c
    in_time = and_(c.contacted_at.is_not(None), c.contacted_at <= c.deadline)
    async with report_connection(store) as conn:
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
    async with report_connection(store) as conn:
        rows = (await conn.execute(select(c.department, *columns.values()).where(
            opened | and_(c.closed_at >= start, c.closed_at < end) | and_(c.deadline >= start, c.deadline < end)
            | and_(c.status == "open", c.deadline < end)).group_by(c.department))).all()
    out = {}
    for department, *values in rows:
        counts = out[department] = dict.fromkeys(CASE_COUNTS, 0)
        counts.update({k: int(v) for k, v in zip(columns, values)})
    return out


CHUNK = 5000                   # ids per IN list (SQLite allows 32,766 parameters, asyncpg 32,767)


async def lost_call_tasks(store, calls: list[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """(pbx, call id) -> the follow-up task its miss joined ({"status", "contacted_at",
    "deadline", "closure"}) or why it has none ({"skipped": why}); bounded lists (the report's
    lost calls); task_events has no index on call_id, so it is read in as few passes as possible."""
    e, s, k = t.task_events.c, t.skipped_misses.c, t.tasks.c
    out: dict[tuple[str, str], dict] = {}
    async with report_connection(store) as conn:
        for pbx in sorted({p for p, _ in calls}):
            ids = sorted({c for p, c in calls if p == pbx})
            for i in range(0, len(ids), CHUNK):
                chunk = ids[i:i + CHUNK]
                for row in (await conn.execute(select(s.call_id, s.why).where(
                        s.pbx == pbx, s.call_id.in_(chunk)))).all():
                    out[(pbx, row.call_id)] = {"skipped": row.why}
                for row in (await conn.execute(select(e.call_id, k.status, k.contacted_at, k.deadline, k.closure)
                                               .select_from(t.task_events.join(t.tasks, k.id == e.task_id)).where(
                        e.kind == "miss", e.pbx == pbx, e.call_id.in_(chunk)))).all():
                    out[(pbx, row.call_id)] = {"status": row.status, "contacted_at": row.contacted_at,
                                               "deadline": row.deadline, "closure": row.closure}
    return out


async def agent_wrapups(store, dialect: str, start: datetime, end: datetime, now: datetime,
                        wrapup_minutes: float) -> dict[str, tuple[int, int]]:
    """Per agent, over the answered calls of the day's calls that opened or joined a case and
    whose wrap-up time has run out by `now`: (due, done in time: a disposition within
    `wrapup_minutes` of answering)."""
    c = t.calls.alias("c")
    cc = t.case_calls.alias("cc")
    limit = int(wrapup_minutes * 60 * 1_000_000)
    in_time = and_(cc.c.disposed_at.is_not(None),
                   literal_column(_micros(dialect, "cc.disposed_at", "cc.answered_at")) <= limit)
    due = cc.c.answered_at <= now - timedelta(minutes=wrapup_minutes)
    async with report_connection(store) as conn:
        rows = (await conn.execute(select(
            cc.c.agent, func.sum(case((due, 1), else_=0)), func.sum(case((and_(due, in_time), 1), else_=0)))
            .select_from(c.join(cc, and_(cc.c.pbx == c.c.pbx, cc.c.call_id == c.c.id)))
            .where(c.c.started_at >= start, c.c.started_at < end, cc.c.agent.is_not(None))
            .group_by(cc.c.agent))).all()
    return {agent: (int(n or 0), int(ok or 0)) for agent, n, ok in rows}


async def _lost_calls(conn, dialect, start, end, per_department: int | None) -> list[LostCall]:
    """The day's calls nobody answered, placed by their last stint: each department's first
    `per_department` in time order (`metrics.limit_lost`), by a window function in SQL."""
    c, s = t.calls.alias("c"), t.stints.alias("s")
    joined = c.outerjoin(s, and_(s.c.pbx == c.c.pbx, s.c.call_id == c.c.id, s.c.is_last))   # placed by its last stint
    department = func.coalesce(s.c.department, c.c.department)
    call_id = c.c.id.collate("C") if dialect == "postgresql" else c.c.id
    pbx = c.c.pbx.collate("C") if dialect == "postgresql" else c.c.pbx
    rank = func.row_number().over(partition_by=department, order_by=[c.c.started_at, pbx, call_id])
    inner = select(       # only columns of ix_calls_day: SQLite reads the day's calls from that index
        c.c.pbx, c.c.id, c.c.started_at, department.label("department"),
        func.coalesce(s.c.queue, c.c.ivr_queue).label("queue"), c.c.outcome,
        s.c.wait_us.label("wait"),
        rank.label("rank"),
    ).select_from(joined).where(
        c.c.started_at >= start, c.c.started_at < end, c.c.outcome.in_([o.value for o in LOST_OUTCOMES])).subquery()
    query = select(*[col for col in inner.c if col.name != "rank"])
    if per_department is not None:
        query = query.where(inner.c.rank <= per_department)
    rows = (await conn.execute(query)).all()
    callers: dict[tuple[str, str], str] = {}
    for pbx_id in sorted({r[0] for r in rows}):
        ids = sorted({r[1] for r in rows if r[0] == pbx_id})
        for i in range(0, len(ids), 500):
            callers.update(((pbx_id, k), n) for k, n in (await conn.execute(select(c.c.id, c.c.caller_num).where(
                c.c.pbx == pbx_id, c.c.id.in_(ids[i:i + 500])))).all())
    return limit_lost([LostCall(r[0], r[1], r[2], callers.get((r[0], r[1]), ""), r[3], r[4] or "", r[5],
                                None if r[6] is None else int(r[6])) for r in rows], per_department)
