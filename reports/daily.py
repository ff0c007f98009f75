"""The daily report: per department and per queue, as a stable JSON object or a zh-CN table.

JSON keys are documented in docs/metrics.md; new keys may be added, existing ones keep their
meaning. Every queue entry carries its ``pbx`` (a queue name may be on several PBXes, for one
department or for different ones: issue 14); the table shows it when there are several.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from callcenter.domain.directory import Directory
from callcenter.domain.metrics import (CaseFact, DailyFigures, Figures, MetricSettings, TaskFact, TaskFigures,
                                       case_figures, daily_figures, finish_case_figures, task_figures)
from callcenter.domain.records import CallRecord
from callcenter.settings import Settings
from callcenter.workdays import build_calendar

from . import coverage
from .text import grid


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tz)
    return start, start + timedelta(days=1)


def metric_settings(settings: Settings) -> MetricSettings:
    t = settings.thresholds
    return MetricSettings(t.short_abandon_seconds, tuple(t.service_level_seconds), t.exclude_short_abandons)


def opening_hours(settings: Settings):
    calendar = build_calendar(settings)
    cache: dict[str | None, tuple] = {}

    def is_open(department: str | None, at: datetime) -> bool:
        if department not in cache:
            cache[department] = tuple((w.start, w.end) for w in settings.hours_of(department))
        return calendar.within_business_hours(at, cache[department])
    return is_open


def build(day: date, records: list[CallRecord], settings: Settings,
          tasks: list[TaskFact] | None = None, now: datetime | None = None,
          cases: list[CaseFact] | None = None, pending_wrapups: dict[str, int] | None = None,
          posts: list[dict] | None = None, figures: DailyFigures | None = None,
          task_groups: dict | None = None, case_counts: dict | None = None) -> dict:
    """The report for one day. `tasks` (follow-up tasks created or closed that day), `cases` and
    `pending_wrapups` add the follow-up and first-ask figures; `now` judges what is overdue;
    `posts` (reports/coverage.py) adds the A/B coverage per post and, rolled up, per department.
    `figures`, when given, are the day's call figures already counted (by SQL aggregates:
    callcenter/storage/report_queries.py) and `records` is not read; likewise `task_groups`
    (`metrics.task_figures_from_groups`) replaces `tasks`, and `case_counts` (per department,
    the counts of `metrics.case_figures`) replaces `cases`."""
    directory: Directory = settings.directory()
    tz = ZoneInfo(settings.timezone)
    ms = metric_settings(settings)
    if figures is None:
        figures = daily_figures(records, directory, opening_hours(settings), ms)
    start, end = day_bounds(day, tz)
    by_task = task_groups if task_groups is not None else task_figures(tasks or [], start, end, now or end)
    keys = {(pbx, queue): figures.queue_department[(pbx, queue)] for pbx, queue in figures.queues}
    for pbx, queue, department in by_task:
        keys.setdefault((pbx, queue or f"department:{department}"), department)
    queues = []
    by_department: dict[str, tuple[Figures, TaskFigures]] = {}
    all_tasks = TaskFigures()
    for (pbx, queue), department in sorted(keys.items()):
        f = figures.queues.get((pbx, queue), Figures())
        tf = TaskFigures()
        for (t_pbx, t_queue, t_dept), value in by_task.items():
            if t_pbx == pbx and (t_queue or f"department:{t_dept}") == queue:
                tf.add(value)
        all_tasks.add(tf)
        queues.append({"queue": queue, "pbx": pbx, "department": department,
                       "department_name": directory.department_names.get(department),
                       **f.as_dict(ms), **tf.as_dict()})
        if department is not None:
            dept_f, dept_t = by_department.setdefault(department, (Figures(), TaskFigures()))
            dept_f.add(f)
            dept_t.add(tf)
    if case_counts is not None:
        by_case = finish_case_figures({d: dict(c) for d, c in case_counts.items()}, pending_wrapups or {},
                                      settings.cases.escalation_target)
    else:
        by_case = case_figures(cases or [], pending_wrapups or {}, start, end, now or end,
                               settings.cases.escalation_target)
    for department in by_case:
        by_department.setdefault(department, (Figures(), TaskFigures()))
    no_cases = case_figures([], {"": 0}, start, end, end, settings.cases.escalation_target)[""]
    by_post = coverage.department_figures(posts) if posts is not None else {}
    for department in by_post:
        by_department.setdefault(department, (Figures(), TaskFigures()))
    no_posts = coverage.NO_POSTS if posts is not None else {}
    departments = [{"department": d, "name": directory.department_names.get(d, d), **f.as_dict(ms), **tf.as_dict(),
                    **by_case.get(d, no_cases), **by_post.get(d, no_posts)} for d, (f, tf) in sorted(by_department.items())]
    return {
        "date": day.isoformat(),
        "timezone": settings.timezone,
        "definitions": {
            "connect_rate": "answered / (offered" + (" - short_abandoned)" if ms.exclude_short_abandons else ")"),
            "offered": "queue stints entered during the department's business hours on a workday",
            "short_abandoned": f"abandoned after waiting less than {ms.short_abandon_seconds:g} s",
            "service_level": "answered within N s / connect-rate denominator, N = "
                             + ", ".join(f"{s:g}" for s in ms.service_level_seconds),
            "totals": "each call once, by its last stint",
            "tasks_created": "follow-up tasks whose first missed call was this day",
            "tasks_contacted_in_time_rate": "tasks_contacted_in_time / tasks_created (caller reached by the deadline, "
                                            f"{settings.followup.contact_workdays} workday(s))",
            "tasks_overdue": "tasks created this day, past their deadline without contact at report time",
            "tasks_closed": "tasks closed this day, by outcome",
            "resolution_rate": "resolved_in_time / cases_due: cases resolved on the call or by their "
                               "deadline, over cases resolved on a call this day or due this day "
                               "(out-of-scope cases excluded)",
            "first_contact_resolution_rate": "resolved_first_contact / cases_opened",
            "escalation_rate": f"escalated_12345 / cases_closed, target <= {settings.cases.escalation_target:.0%}",
            "wrapup_pending": f"answered calls without a disposition after {settings.cases.wrapup_minutes:g} minutes",
            **({"coverage": coverage.DEFINITION} if posts is not None else {}),
        },
        "departments": departments,
        "queues": queues,
        "unmapped_queues": [q["queue"] for q in queues if q["department"] is None],
        "totals": {**figures.totals.as_dict(ms), **all_tasks.as_dict()},
        **({"posts": posts} if posts is not None else {}),
    }


COLUMNS = [("offered", "呼入"), ("answered", "接通"), ("abandoned", "放弃"), ("short_abandoned", "短放弃"),
           ("timed_out", "超时"), ("no_agent", "无人值守"), ("ivr_abandoned", "IVR挂机"),
           ("after_hours", "非工作时间"), ("connect_rate", "接通率")]


def render_table(report: dict) -> str:
    def pct(v):
        return "—" if v is None else f"{v * 100:.1f}%"

    def row(label, entry):
        cells = [pct(entry[k]) if k == "connect_rate" else str(entry[k]) for k, _ in COLUMNS]
        return [label] + cells

    lines = [f"热线日报 {report['date']}（{report['timezone']}）", ""]
    header = ["部门"] + [title for _, title in COLUMNS]
    rows = [row(d["name"], d) for d in report["departments"]]
    rows.append(row("合计", report["totals"]))
    lines += grid(header, rows)
    lines += ["", "按队列"]
    several = len({q["pbx"] for q in report["queues"]}) > 1       # the PBX shown when there are several
    qrows = [row(f"{q['queue']}（{q['department_name'] or '未配置'}）" + (f" @{q['pbx']}" if several else ""), q)
             for q in report["queues"]]
    lines += grid(["队列"] + [title for _, title in COLUMNS], qrows)
    if report["unmapped_queues"]:
        unmapped = [f"{q['queue']}@{q['pbx']}" if several else q["queue"]
                    for q in report["queues"] if q["department"] is None]
        lines += ["", "未配置的队列：" + "、".join(unmapped)]
    lines += coverage.table_lines(report)
    lines += ["", "口径：接通率 = " + report["definitions"]["connect_rate"]]
    return "\n".join(lines)
