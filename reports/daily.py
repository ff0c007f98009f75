"""The daily report: per department and per queue, as a stable JSON object or a zh-CN table.

JSON keys are documented in docs/metrics.md; new keys may be added, existing ones keep their
meaning.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from callcenter.domain.directory import Directory
from callcenter.domain.hours import BusinessHours
from callcenter.domain.metrics import Figures, MetricSettings, daily_figures
from callcenter.domain.records import CallRecord
from callcenter.settings import Settings
from callcenter.workdays import is_workday

from .text import grid


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tz)
    return start, start + timedelta(days=1)


def metric_settings(settings: Settings) -> MetricSettings:
    t = settings.thresholds
    return MetricSettings(t.short_abandon_seconds, tuple(t.service_level_seconds), t.exclude_short_abandons)


def opening_hours(settings: Settings):
    tz = ZoneInfo(settings.timezone)
    cache: dict[str | None, BusinessHours] = {}

    def is_open(department: str | None, at: datetime) -> bool:
        if department not in cache:
            cache[department] = BusinessHours(
                tuple((w.start, w.end) for w in settings.hours_of(department)), tz)
        return cache[department].is_open(at, is_workday)
    return is_open


def build(day: date, records: list[CallRecord], settings: Settings) -> dict:
    directory: Directory = settings.directory()
    ms = metric_settings(settings)
    figures = daily_figures(records, directory, opening_hours(settings), ms)
    queues = []
    by_department: dict[str, Figures] = {}
    for (pbx, queue), f in sorted(figures.queues.items()):
        department = figures.queue_department[(pbx, queue)]
        queues.append({"queue": queue, "pbx": pbx, "department": department,
                       "department_name": directory.department_names.get(department), **f.as_dict(ms)})
        if department is not None:
            by_department.setdefault(department, Figures()).add(f)
    departments = [{"department": d, "name": directory.department_names.get(d, d), **f.as_dict(ms)}
                   for d, f in sorted(by_department.items())]
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
        },
        "departments": departments,
        "queues": queues,
        "unmapped_queues": [q["queue"] for q in queues if q["department"] is None],
        "totals": figures.totals.as_dict(ms),
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
    qrows = [row(f"{q['queue']}（{q['department_name'] or '未配置'}）", q) for q in report["queues"]]
    lines += grid(["队列"] + [title for _, title in COLUMNS], qrows)
    if report["unmapped_queues"]:
        lines += ["", "未配置的队列：" + "、".join(report["unmapped_queues"])]
    lines += ["", "口径：接通率 = " + report["definitions"]["connect_rate"]]
    return "\n".join(lines)
