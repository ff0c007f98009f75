"""Metric formulas for the daily report (pure). Definitions are in docs/metrics.md.

Each queue stint is judged for the queue it visited: a transferred call counts as answered for
the first queue and offered again to the next. City-wide totals count each call once, by its
last stint. A stint that entered a queue outside its department's business hours counts as
after-hours, not offered.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
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
    """Counts and sums of one group of stints. Waits and talk times are summed as whole
    microseconds (exact, so the SQL aggregates of callcenter/storage/report_queries.py give the
    same sums in any order); `wait_total`/`talk_total` are those sums in seconds."""
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    answered_within: dict[float, int] = field(default_factory=dict)
    wait_us: int = 0
    talk_us: int = 0

    @property
    def wait_total(self) -> float:
        return self.wait_us / 1e6

    @property
    def talk_total(self) -> float:
        return self.talk_us / 1e6

    def add(self, other: "Figures") -> None:
        for key, value in other.counts.items():
            self.counts[key] += value
        for key, value in other.answered_within.items():
            self.answered_within[key] = self.answered_within.get(key, 0) + value
        self.wait_us += other.wait_us
        self.talk_us += other.talk_us

    def count_stint(self, stint: Stint, settings: MetricSettings) -> None:
        c = self.counts
        c["offered"] += 1
        wait = wait_micros(stint)
        if stint.end is StintEnd.ANSWERED:
            c["answered"] += 1
            self.wait_us += wait
            self.talk_us += talk_micros(stint.talk_seconds)
            for threshold in settings.service_level_seconds:
                if wait <= micros_at_most(threshold):
                    self.answered_within[threshold] = self.answered_within.get(threshold, 0) + 1
        elif stint.end is StintEnd.ABANDONED:
            c["abandoned"] += 1
            if wait <= micros_below(settings.short_abandon_seconds):
                c["short_abandoned"] += 1
        elif stint.end is StintEnd.TIMED_OUT:
            c["timed_out"] += 1
        elif stint.end is StintEnd.NO_AGENT:
            c["no_agent"] += 1
        else:
            c["unknown"] += 1

    def add_group(self, g: "StintGroup") -> None:
        """Add a group of stints counted by SQL (all inside business hours)."""
        c = self.counts
        c["offered"] += g.stints
        c["answered"] += g.answered
        c["abandoned"] += g.abandoned
        c["short_abandoned"] += g.short_abandoned
        c["timed_out"] += g.timed_out
        c["no_agent"] += g.no_agent
        c["unknown"] += g.stints - g.answered - g.abandoned - g.timed_out - g.no_agent
        for threshold, n in zip(g.thresholds, g.answered_within):
            self.answered_within[threshold] = self.answered_within.get(threshold, 0) + n
        self.wait_us += g.wait_us
        self.talk_us += g.talk_us

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


# --- waits and talk times in whole microseconds (shared with the SQL aggregates) -------------

def wait_micros(stint: Stint) -> int:
    """The stint's wait (docs/metrics.md: until answered, else until it left; 0 if neither is
    known; never negative) in microseconds: `Stint.wait_seconds` without float rounding."""
    until = stint.answered_at or stint.left_at
    if until is None:
        return 0
    return max(0, (until - stint.entered_at) // timedelta(microseconds=1))


def talk_micros(talk_seconds: float | None) -> int:
    """A stored talk time in microseconds: x * 1e6 + 0.5, truncated (SQL computes the same)."""
    return int(talk_seconds * 1e6 + 0.5) if talk_seconds else 0


def micros_at_most(seconds: float) -> int:
    """The largest m with m / 1e6 <= seconds: `wait_seconds <= seconds` iff micros <= this."""
    m = math.floor(seconds * 1e6)
    while (m + 1) / 1e6 <= seconds:
        m += 1
    while m / 1e6 > seconds:
        m -= 1
    return m


def micros_below(seconds: float) -> int:
    """The largest m with m / 1e6 < seconds: `wait_seconds < seconds` iff micros <= this."""
    m = micros_at_most(seconds)
    while m / 1e6 >= seconds:
        m -= 1
    return m


# --- the same figures from per-group counts (SQL aggregates) ---------------------------------

@dataclass(frozen=True)
class StintGroup:
    """Stints of the day's calls counted together: same (pbx, queue, department), whether each
    is its call's last stint and whether it is after-hours (the call's flag, or entered outside
    its department's business hours). Counts as in `Figures.count_stint`."""
    pbx: str
    queue: str
    department: str | None
    last: bool
    after_hours: bool
    stints: int
    answered: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    timed_out: int = 0
    no_agent: int = 0
    thresholds: tuple[float, ...] = ()
    answered_within: tuple[int, ...] = ()
    wait_us: int = 0
    talk_us: int = 0


@dataclass(frozen=True)
class IvrGroup:
    """The day's calls without a stint, counted together by what decides their row and cause:
    (pbx, ivr_queue, department, hotline), whether the outcome is after_hours, and for each
    hours profile whether the call started inside its business hours (`open_by_profile`)."""
    pbx: str
    ivr_queue: str
    department: str | None
    hotline: str
    after_hours_outcome: bool
    open_by_profile: tuple[bool, ...]
    calls: int


class Ambiguous(Exception):
    """(pbx, queue) rows met with several departments: the row gets the department of its first
    stint or call in call order, which grouped counts do not keep. `keys` are those rows; the
    caller finds their first department and passes it as `first_department`."""

    def __init__(self, keys: set[tuple[str, str]]):
        super().__init__(sorted(keys))
        self.keys = keys


def ivr_row(i: IvrGroup, directory: Directory) -> tuple[str, str | None]:
    """The (queue, department) row of a call without a stint, as `daily_figures` chooses it."""
    queue = i.ivr_queue or (directory.main_queue(i.department, i.pbx) if i.department else None)
    queue = queue or f"hotline:{i.hotline or '?'}"
    return queue, directory.department_of_queue(i.pbx, queue) or i.department


def grouped_figures(stint_groups: list[StintGroup], ivr_groups: list[IvrGroup], directory: Directory,
                    profile_of: Callable[[str | None], int],
                    first_department: dict[tuple[str, str], str | None] | None = None) -> DailyFigures:
    """`daily_figures` from grouped counts; `profile_of(department)` is the index of the
    department's business-hours profile in `IvrGroup.open_by_profile`. Raises `Ambiguous` when
    a row met with several departments is not in `first_department`."""
    queues: dict[tuple[str, str], Figures] = {}
    seen: dict[tuple[str, str], set] = {}
    rows = [ivr_row(i, directory) for i in ivr_groups]
    for (queue, dept), i in zip(rows, ivr_groups):
        seen.setdefault((i.pbx, queue), set()).add(dept)
    for g in stint_groups:
        seen.setdefault((g.pbx, g.queue), set()).add(g.department)
    first_department = first_department or {}
    unresolved = {k for k, depts in seen.items() if len(depts) > 1 and k not in first_department}
    if unresolved:
        raise Ambiguous(unresolved)
    departments = {k: first_department[k] if len(depts) > 1 else next(iter(depts)) for k, depts in seen.items()}
    totals = Figures()

    def figures(pbx: str, queue: str) -> Figures:
        return queues.setdefault((pbx, queue), Figures())

    for (queue, dept), i in zip(rows, ivr_groups):
        key = "after_hours" if (i.after_hours_outcome or not i.open_by_profile[profile_of(dept)]) else "ivr_abandoned"
        figures(i.pbx, queue).counts[key] += i.calls
        totals.counts[key] += i.calls
    for g in stint_groups:
        f = figures(g.pbx, g.queue)
        if g.after_hours:
            f.counts["after_hours"] += g.stints
            if g.last:
                totals.counts["after_hours"] += g.stints
            continue
        f.add_group(g)
        if g.last:
            totals.add_group(g)
    return DailyFigures(queues, departments, totals)


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


# follow-up tasks and cases: callcenter/domain/work_figures.py (re-exported for callers)
from .work_figures import (  # noqa: E402,F401
    CASE_COUNTS, CaseFact, TaskFact, TaskFigures, case_figures, finish_case_figures, task_figures,
    task_figures_from_groups)
