"""The daily report: per department and per queue (and the posts, agents and lost calls of the
day), as a stable JSON object or a zh-CN table (reports/text.py `render_daily`).

JSON keys are documented in docs/metrics.md; new keys may be added, existing ones keep their
meaning. The zh-CN titles, notes, targets and checks are reports/daily_notes.py's. Every queue entry carries its ``pbx`` (a queue name may be on several PBXes, for one
department or for different ones: issue 14); the table shows it when there are several.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from callcenter.domain.directory import Directory
from callcenter.domain.metrics import (CASE_COUNTS, CaseFact, DailyFigures, Figures, MetricSettings, TaskFact,
                                       TaskFigures, case_figures, daily_figures, finish_case_figures, micros_below,
                                       task_figures)
from callcenter.domain.records import CallRecord
from callcenter.domain.validation import mask_number
from callcenter.domain.work_figures import callback_status
from callcenter.settings import Settings
from callcenter.workdays import build_calendar

from . import coverage, daily_notes


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
          task_groups: dict | None = None, case_counts: dict | None = None,
          lost_tasks: dict | None = None, agent_wrapups: dict | None = None, agent_time: dict | None = None,
          sections: dict | None = None) -> dict:
    """The report for one day. `tasks` (follow-up tasks created or closed that day), `cases` and
    `pending_wrapups` add the follow-up and first-ask figures; `now` judges what is overdue and,
    before the day's end, makes the report "in progress" as of then; `posts`
    (reports/coverage.py) adds the A/B coverage per post and, rolled up, per department.
    `figures`, when given, are the day's call figures already counted (by SQL aggregates:
    callcenter/storage/report_queries.py) and `records` is not read; likewise `task_groups`
    (`metrics.task_figures_from_groups`) replaces `tasks`, and `case_counts` (per department,
    the counts of `metrics.case_figures`) replaces `cases`. `lost_tasks` ((pbx, call id) ->
    follow-up link), `agent_wrapups` (agent -> (due, in time)) and `agent_time` (agent -> (login,
    pause)) complete the lost calls and the agents (report_queries.daily_report_inputs reads them
    all). `sections` (e.g. "ivr", "probes", "trend") are merged into the report as they are."""
    directory: Directory = settings.directory()
    tz = ZoneInfo(settings.timezone)
    ms = metric_settings(settings)
    if figures is None:
        figures = daily_figures(records, directory, opening_hours(settings), ms, tz,
                                settings.reports.lost_calls_per_department)
    start, end = day_bounds(day, tz)
    by_task = task_groups if task_groups is not None else task_figures(tasks or [], start, end, now or end)
    goal = daily_notes.targets(settings)
    rows, by_department, all_tasks = queue_figures(figures, by_task)
    queues = [checked({"queue": queue, "pbx": pbx, "department": department,
                        "department_name": directory.department_names.get(department),
                        **f.as_dict(ms), **tf.as_dict()}, goal) for pbx, queue, department, f, tf in rows]
    if case_counts is not None:
        counts = {d: dict(c) for d, c in case_counts.items()}
        by_case = finish_case_figures(counts, pending_wrapups or {}, settings.cases.escalation_target)
    else:
        by_case = case_figures(cases or [], pending_wrapups or {}, start, end, now or end,
                               settings.cases.escalation_target)
    for department in by_case:
        by_department.setdefault(department, (Figures(), TaskFigures()))
    no_cases = case_figures([], {"": 0}, start, end, end, settings.cases.escalation_target)[""]
    all_cases = {k: sum(c.get(k, 0) for c in by_case.values()) for k in CASE_COUNTS}
    all_cases = finish_case_figures({"": all_cases}, {}, settings.cases.escalation_target)[""]
    by_post = coverage.department_figures(posts) if posts is not None else {}
    for department in by_post:
        by_department.setdefault(department, (Figures(), TaskFigures()))
    no_posts = coverage.NO_POSTS if posts is not None else {}
    all_posts = coverage.department_figures([{**p, "department": ""} for p in posts]).get("", no_posts) \
        if posts else no_posts
    departments = [checked({"department": d, "name": directory.department_names.get(d, d), **f.as_dict(ms),
                             **tf.as_dict(), **by_case.get(d, no_cases), **by_post.get(d, no_posts)}, goal)
                   for d, (f, tf) in sorted(by_department.items())]
    in_progress = now is not None and now < end
    report = {
        "date": day.isoformat(),
        "timezone": settings.timezone,
        "title": f"政务服务热线日报 {day.isoformat()}",
        "generated_at": now.astimezone(tz).isoformat() if now is not None else None,
        "in_progress": in_progress,
        "as_of": now.astimezone(tz).isoformat() if in_progress else None,
        "targets": goal,
        "definitions": _definitions(settings, ms, posts is not None),
        "notes": daily_notes.notes(settings, ms, posts is not None),
        "departments": departments,
        "queues": queues,
        "unmapped_queues": [q["queue"] for q in queues if q["department"] is None],
        "totals": checked({**figures.totals.as_dict(ms), **all_tasks.as_dict(), **all_cases, **all_posts}, goal),
        "agents": agent_rows(settings, figures, agent_wrapups, agent_time),
        "lost_calls": _lost_calls(figures, directory, tz, lost_tasks, now or end, ms),
        **({"posts": posts} if posts is not None else {}),
    }
    report.update(sections or {})
    return report


def queue_figures(figures, task_groups: dict) -> tuple[list[tuple], dict[str, tuple[Figures, TaskFigures]], TaskFigures]:
    """The report's queue rows, (pbx, queue, department, Figures, TaskFigures) in order: every
    queue with calls or follow-up tasks (a task with no queue on its department's row,
    "department:ID"), each task group counted on its queue's row; with each department's sums
    (department -> (Figures, TaskFigures)) and the tasks of all rows. The daily report and the
    period roll-ups (reports/period.py) both key their rows so."""
    keys = {(pbx, queue): figures.queue_department[(pbx, queue)] for pbx, queue in figures.queues}
    for pbx, queue, department in task_groups:
        keys.setdefault((pbx, queue or f"department:{department}"), department)
    rows, by_department, all_tasks = [], {}, TaskFigures()
    for (pbx, queue), department in sorted(keys.items()):
        f = figures.queues.get((pbx, queue), Figures())
        tf = TaskFigures()
        for (t_pbx, t_queue, t_dept), value in task_groups.items():
            if t_pbx == pbx and (t_queue or f"department:{t_dept}") == queue:
                tf.add(value)
        all_tasks.add(tf)
        rows.append((pbx, queue, department, f, tf))
        if department is not None:
            dept_f, dept_t = by_department.setdefault(department, (Figures(), TaskFigures()))
            dept_f.add(f)
            dept_t.add(tf)
    return rows, by_department, all_tasks


def checked(entry: dict, goal: dict) -> dict:
    entry["checks"] = daily_notes.checks(entry, goal)
    return entry


def agent_rows(settings: Settings, figures: DailyFigures, wrapups: dict | None, times: dict | None) -> list[dict]:
    """One entry per configured agent and per agent met in the day's figures."""
    names = {a.id: a.name for a in settings.agents}
    department = {}
    for post in settings.posts:
        for agent in (post.a, post.b):
            department.setdefault(agent, post.department)
    ids = list(names) + sorted((set(figures.agents) | set(wrapups or {}) | set(times or {})) - set(names))
    out = []
    for agent in ids:
        answered, talk_us = figures.agents.get(agent, (0, 0))
        due, done = (wrapups or {}).get(agent, (0, 0))
        login, pause = (times or {}).get(agent, (timedelta(0), timedelta(0)))
        out.append({"agent": agent, "name": names.get(agent), "department": department.get(agent),
                    "answered": answered, "talk_seconds": round(talk_us / 1e6, 1),
                    "average_talk_seconds": round(talk_us / 1e6 / answered, 1) if answered else None,
                    "login_seconds": None if times is None else round(login.total_seconds(), 1),
                    "pause_seconds": None if times is None else round(pause.total_seconds(), 1),
                    "wrapups_due": None if wrapups is None else due,
                    "wrapups_in_time": None if wrapups is None else done,
                    "wrapup_compliance": round(done / due, 4) if wrapups is not None and due else None})
    return out


def _lost_calls(figures: DailyFigures, directory: Directory, tz: ZoneInfo, links: dict | None,
                now: datetime, ms: MetricSettings) -> list[dict]:
    short = micros_below(ms.short_abandon_seconds)
    out = []
    for c in figures.lost:
        task, status = callback_status(links.get((c.pbx, c.call_id)), now) if links is not None else (None, None)
        out.append({"call_id": c.call_id, "pbx": c.pbx, "at": c.at.astimezone(tz).isoformat(),
                    "caller": mask_number(c.caller_num) or "", "department": c.department,
                    "department_name": directory.department_names.get(c.department), "queue": c.queue,
                    "cause": c.cause, "wait_seconds": None if c.wait_us is None else round(c.wait_us / 1e6, 1),
                    "short_abandon": c.cause == "abandoned" and c.wait_us is not None and c.wait_us <= short,
                    "task_status": task, "callback_status": status})
    return out


def _definitions(settings: Settings, ms: MetricSettings, has_posts: bool) -> dict:
    """The English formulas (kept for API readers; the zh-CN "notes" are what the report shows)."""
    return {
        "connect_rate": "answered / (offered" + (" - short_abandoned)" if ms.exclude_short_abandons else ")"),
        "offered": "queue stints entered during the department's business hours on a workday",
        "short_abandoned": f"abandoned after waiting less than {ms.short_abandon_seconds:g} s (included in abandoned)",
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
        **({"coverage": coverage.DEFINITION} if has_posts else {}),
    }


COLUMNS = [(k, daily_notes.TITLES[k]) for k in ("offered", "answered", "abandoned", "short_abandoned", "timed_out",
                                                  "no_agent", "ivr_abandoned", "after_hours", "connect_rate")]


def render_table(report: dict) -> str:
    """The zh-CN terminal table (reports/text.py `render_daily`)."""
    from .text import render_daily
    return render_daily(report)
