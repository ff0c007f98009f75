"""Metric formulas for the daily report (pure). Definitions are in docs/metrics.md.

Each queue stint is judged for the queue it visited: a transferred call counts as answered for
the first queue and offered again to the next. City-wide totals count each call once, by its
last stint. A stint that entered a queue outside its department's business hours counts as
after-hours, not offered.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from .directory import Directory
from .records import CallRecord, Outcome, Stint, StintEnd

COUNTS = ("offered", "answered", "abandoned", "short_abandoned", "timed_out", "no_agent", "unknown",
          "ivr_abandoned", "after_hours")


@dataclass(frozen=True)
class MetricSettings:
    short_abandon_seconds: float = 5
    service_level_seconds: tuple[float, ...] = (15, 60)
    exclude_short_abandons: bool = False


@dataclass
class Figures:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    answered_within: dict[float, int] = field(default_factory=dict)
    wait_total: float = 0.0
    talk_total: float = 0.0

    def add(self, other: "Figures") -> None:
        for key, value in other.counts.items():
            self.counts[key] += value
        for key, value in other.answered_within.items():
            self.answered_within[key] = self.answered_within.get(key, 0) + value
        self.wait_total += other.wait_total
        self.talk_total += other.talk_total

    def count_stint(self, stint: Stint, settings: MetricSettings) -> None:
        c = self.counts
        c["offered"] += 1
        wait = stint.wait_seconds or 0.0
        if stint.end is StintEnd.ANSWERED:
            c["answered"] += 1
            self.wait_total += wait
            self.talk_total += stint.talk_seconds or 0.0
            for threshold in settings.service_level_seconds:
                if wait <= threshold:
                    self.answered_within[threshold] = self.answered_within.get(threshold, 0) + 1
        elif stint.end is StintEnd.ABANDONED:
            c["abandoned"] += 1
            if wait < settings.short_abandon_seconds:
                c["short_abandoned"] += 1
        elif stint.end is StintEnd.TIMED_OUT:
            c["timed_out"] += 1
        elif stint.end is StintEnd.NO_AGENT:
            c["no_agent"] += 1
        else:
            c["unknown"] += 1

    def as_dict(self, settings: MetricSettings) -> dict:
        c = self.counts
        denominator = c["offered"] - (c["short_abandoned"] if settings.exclude_short_abandons else 0)
        out: dict = dict(c)
        out["connect_rate"] = _rate(c["answered"], denominator)
        out["service_level"] = [
            {"seconds": s, "answered": self.answered_within.get(s, 0),
             "rate": _rate(self.answered_within.get(s, 0), denominator)}
            for s in settings.service_level_seconds]
        out["average_wait_seconds"] = round(self.wait_total / c["answered"], 1) if c["answered"] else None
        out["average_talk_seconds"] = round(self.talk_total / c["answered"], 1) if c["answered"] else None
        return out


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole > 0 else None


@dataclass
class DailyFigures:
    queues: dict[tuple[str, str], Figures]             # (pbx, queue)
    queue_department: dict[tuple[str, str], str | None]
    totals: Figures


def daily_figures(records: list[CallRecord], directory: Directory,
                  is_open: Callable[[str | None, datetime], bool], settings: MetricSettings) -> DailyFigures:
    queues: dict[tuple[str, str], Figures] = {}
    departments: dict[tuple[str, str], str | None] = {}
    totals = Figures()

    def figures(pbx: str, queue: str, department: str | None) -> Figures:
        key = (pbx, queue)
        if key not in queues:
            queues[key] = Figures()
            departments[key] = department
        return queues[key]

    for record in records:
        if not record.stints:
            department = record.department
            queue = record.ivr_queue or (directory.main_queue(department, record.pbx) if department else None)
            queue = queue or f"hotline:{record.hotline or '?'}"
            dept = directory.department_of_queue(record.pbx, queue) or department
            key = "after_hours" if (record.outcome is Outcome.AFTER_HOURS
                                    or not is_open(dept, record.started_at)) else "ivr_abandoned"
            figures(record.pbx, queue, dept).counts[key] += 1
            totals.counts[key] += 1
            continue
        counted_last = False
        for index, stint in enumerate(record.stints):
            f = figures(record.pbx, stint.queue, stint.department)
            last = index == len(record.stints) - 1
            if record.after_hours or not is_open(stint.department, stint.entered_at):
                f.counts["after_hours"] += 1
                if last:
                    totals.counts["after_hours"] += 1
                    counted_last = True
                continue
            f.count_stint(stint, settings)
            if last:
                totals.count_stint(stint, settings)
                counted_last = True
        assert counted_last
    return DailyFigures(queues, departments, totals)


# --- follow-up tasks ------------------------------------------------------------------------

@dataclass(frozen=True)
class TaskFact:
    pbx: str
    queue: str | None
    department: str
    first_missed_at: datetime
    deadline: datetime
    contacted_at: datetime | None
    closed_at: datetime | None
    closure: str | None


@dataclass
class TaskFigures:
    created: int = 0
    contacted_in_time: int = 0
    overdue: int = 0
    closures: dict[str, int] = field(default_factory=dict)

    def add(self, other: "TaskFigures") -> None:
        self.created += other.created
        self.contacted_in_time += other.contacted_in_time
        self.overdue += other.overdue
        for key, value in other.closures.items():
            self.closures[key] = self.closures.get(key, 0) + value

    def as_dict(self) -> dict:
        return {"tasks_created": self.created, "tasks_contacted_in_time": self.contacted_in_time,
                "tasks_contacted_in_time_rate": _rate(self.contacted_in_time, self.created),
                "tasks_overdue": self.overdue, "tasks_closed": dict(sorted(self.closures.items()))}


def task_figures(facts: list[TaskFact], start: datetime, end: datetime, now: datetime
                 ) -> dict[tuple[str, str | None, str], TaskFigures]:
    """Per (pbx, queue, department): tasks created in [start, end) (first missed call that day),
    how many reached the caller by their deadline, how many are past it without contact as of
    `now`, and closures in [start, end) by outcome."""
    out: dict[tuple[str, str | None, str], TaskFigures] = {}
    for f in facts:
        figures = out.setdefault((f.pbx, f.queue, f.department), TaskFigures())
        if start <= f.first_missed_at < end:
            figures.created += 1
            if f.contacted_at is not None and f.contacted_at <= f.deadline:
                figures.contacted_in_time += 1
            elif f.deadline < now and (f.contacted_at is None or f.contacted_at > f.deadline):
                figures.overdue += 1
        if f.closed_at is not None and f.closure and start <= f.closed_at < end:
            figures.closures[f.closure] = figures.closures.get(f.closure, 0) + 1
    return out


# --- first-ask cases ------------------------------------------------------------------------

@dataclass(frozen=True)
class CaseFact:
    department: str
    status: str
    opened_at: datetime
    deadline: datetime | None
    closed_at: datetime | None
    resolved_first_contact: bool
    knowledge_gap: bool


def case_figures(facts: list[CaseFact], pending_wrapups: dict[str, int], start: datetime, end: datetime,
                 now: datetime, escalation_target: float) -> dict[str, dict]:
    """Per department. Definitions in docs/metrics.md."""
    out: dict[str, dict] = {}

    def dept(name: str) -> dict:
        return out.setdefault(name, dict.fromkeys((
            "cases_opened", "resolved_first_contact", "resolved_in_time", "cases_overdue", "cases_closed",
            "escalated_12345", "out_of_scope", "knowledge_gaps", "cases_due", "wrapup_pending"), 0))

    for f in facts:
        d = dept(f.department)
        opened_today = start <= f.opened_at < end
        closed_today = f.closed_at is not None and start <= f.closed_at < end
        if opened_today:
            d["cases_opened"] += 1
            d["resolved_first_contact"] += f.resolved_first_contact
            d["knowledge_gaps"] += f.knowledge_gap
        if closed_today:
            d["cases_closed"] += 1
            d["escalated_12345"] += f.status == "escalated"
            d["out_of_scope"] += f.status == "out_of_scope"
        in_time = f.status == "resolved" and (f.deadline is None or (f.closed_at is not None and f.closed_at <= f.deadline))
        due = f.status != "out_of_scope" and (
            (f.deadline is None and f.closed_at is not None and closed_today)
            or (f.deadline is not None and start <= f.deadline < end))
        if due:
            d["cases_due"] += 1
            d["resolved_in_time"] += in_time
        if f.status == "open" and f.deadline is not None and f.deadline < min(now, end):
            d["cases_overdue"] += 1
    for department, count in pending_wrapups.items():
        dept(department)["wrapup_pending"] = count
    for d in out.values():
        d["resolution_rate"] = _rate(d["resolved_in_time"], d["cases_due"])
        d["first_contact_resolution_rate"] = _rate(d["resolved_first_contact"], d["cases_opened"])
        d["escalation_rate"] = _rate(d["escalated_12345"], d["cases_closed"])
        d["escalation_target"] = escalation_target
        d["escalation_over_target"] = d["escalation_rate"] is not None and d["escalation_rate"] > escalation_target
    return out
