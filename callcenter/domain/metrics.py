"""Metric formulas for the daily report (pure). Definitions are in docs/metrics.md.

Each queue stint is judged for the queue it visited: a transferred call counts as answered for
the first queue and offered again to the next. City-wide totals count each call once, by its
last stint. A stint that entered a queue outside its department's business hours counts as
after-hours, not offered.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Callable

from .directory import Directory
from .records import CallRecord, Outcome, Stint, StintEnd

COUNTS = ("offered", "answered", "abandoned", "short_abandoned", "timed_out", "no_agent", "unknown",
          "ivr_abandoned", "after_hours")
BANDS = ((0, 15), (15, 30), (30, 60), (60, None))          # answered by wait, seconds: (from, to]
UNANSWERED_CAUSES = ("abandoned", "short_abandoned", "timed_out", "no_agent", "unknown", "ivr_abandoned")
LOST_OUTCOMES = (Outcome.ABANDONED, Outcome.ABANDONED_IVR, Outcome.TIMED_OUT, Outcome.NO_AGENT,
                 Outcome.AFTER_HOURS, Outcome.UNKNOWN)


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
    longest_wait_us: int | None = None                  # over offered stints (any end)
    bands: list[int] = field(default_factory=lambda: [0] * len(BANDS))      # answered, by wait
    hours: dict[int, list[int]] = field(default_factory=dict)    # hour -> [offered, answered, abandoned]

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
        self._longest(other.longest_wait_us)
        self.bands = [a + b for a, b in zip(self.bands, other.bands)]
        for hour, values in other.hours.items():
            self._hour(hour, *values)

    def _longest(self, wait_us: int | None) -> None:
        if wait_us is not None and (self.longest_wait_us is None or wait_us > self.longest_wait_us):
            self.longest_wait_us = wait_us

    def _hour(self, hour: int, offered: int, answered: int, abandoned: int) -> None:
        h = self.hours.setdefault(hour, [0, 0, 0])
        h[0] += offered
        h[1] += answered
        h[2] += abandoned

    def count_stint(self, stint: Stint, settings: MetricSettings, hour: int = 0) -> None:
        """`hour`: the local hour the stint's call started (calls_by_hour)."""
        c = self.counts
        c["offered"] += 1
        wait = wait_micros(stint)
        self._longest(wait)
        self._hour(hour, 1, stint.end is StintEnd.ANSWERED, stint.end is StintEnd.ABANDONED)
        if stint.end is StintEnd.ANSWERED:
            c["answered"] += 1
            self.bands[band_of(wait)] += 1
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
        if g.stints:
            self._longest(g.longest_wait_us)
        self.bands = [a + b for a, b in zip(self.bands, g.bands)]
        self._hour(g.hour, g.stints, g.answered, g.abandoned)

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
        out["longest_wait_seconds"] = None if self.longest_wait_us is None else round(self.longest_wait_us / 1e6, 1)
        out["wait_bands"] = [{"band": f"{lo}-{hi}" if hi else f"{lo}+", "from": lo, "to": hi, "answered": n}
                             for (lo, hi), n in zip(BANDS, self.bands)]
        out["calls_by_hour"] = [dict(zip(("hour", "offered", "answered", "abandoned"), (h, *self.hours.get(h, (0, 0, 0)))))
                                for h in range(24)]
        out["unanswered_by_cause"] = {**{k: c[k] for k in UNANSWERED_CAUSES},
                                      "abandoned": c["abandoned"] - c["short_abandoned"]}
        return out


def band_of(wait_us: int) -> int:
    """The index in BANDS of an answered stint's wait (a wait of exactly 15 s is in 0-15)."""
    for index, (_, hi) in enumerate(BANDS):
        if hi is None or wait_us <= micros_at_most(hi):
            return index
    return len(BANDS) - 1


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


@dataclass(frozen=True)
class LostCall:
    """A call of the day nobody answered (outcome in LOST_OUTCOMES), placed by its last stint."""
    pbx: str
    call_id: str
    at: datetime
    caller_num: str
    department: str | None
    queue: str
    cause: str
    wait_us: int | None                 # the last stint's wait; None without a stint


@dataclass
class DailyFigures:
    queues: dict[tuple[str, str], Figures]             # (pbx, queue)
    queue_department: dict[tuple[str, str], str | None]
    totals: Figures
    agents: dict[str, list[int]] = field(default_factory=dict)     # agent -> [answered, talk_us]
    lost: list[LostCall] = field(default_factory=list)


def lost_key(c: LostCall) -> tuple:
    return (c.at, c.pbx, c.call_id)


def limit_lost(calls: list[LostCall], per_department: int | None) -> list[LostCall]:
    """The lost calls by department, each department's first `per_department` in time order."""
    out: list[LostCall] = []
    seen: dict[str | None, int] = {}
    for c in sorted(calls, key=lost_key):
        n = seen.get(c.department, 0)
        if per_department is None or n < per_department:
            out.append(c)
        seen[c.department] = n + 1
    return sorted(out, key=lambda c: (c.department or "", lost_key(c)))


def lost_call(record: CallRecord) -> LostCall:
    last = record.stints[-1] if record.stints else None
    return LostCall(record.pbx, record.id, record.started_at, record.caller_num,
                    (last.department if last else None) or record.department,
                    last.queue if last else record.ivr_queue, record.outcome.value,
                    wait_micros(last) if last else None)


def daily_figures(records: list[CallRecord], directory: Directory,
                  is_open: Callable[[str | None, datetime], bool], settings: MetricSettings,
                  tz: tzinfo | None = None, lost_per_department: int | None = None) -> DailyFigures:
    """The reference: every call of the day counted in Python (the SQL aggregates of
    callcenter/storage/report_queries.py must agree). `tz`: the zone of calls_by_hour."""
    queues: dict[tuple[str, str], Figures] = {}
    departments: dict[tuple[str, str], str | None] = {}
    totals = Figures()
    agents: dict[str, list[int]] = {}
    lost: list[LostCall] = []

    def figures(pbx: str, queue: str, department: str | None) -> Figures:
        key = (pbx, queue)
        if key not in queues:
            queues[key] = Figures()
            departments[key] = department
        return queues[key]

    for record in records:
        if record.outcome in LOST_OUTCOMES:
            lost.append(lost_call(record))
        for stint in record.stints:
            if stint.end is StintEnd.ANSWERED and stint.agent:
                a = agents.setdefault(stint.agent, [0, 0])
                a[0] += 1
                a[1] += talk_micros(stint.talk_seconds)
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
        hour = (record.started_at.astimezone(tz) if tz else record.started_at).hour
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
            f.count_stint(stint, settings, hour)
            if last:
                totals.count_stint(stint, settings, hour)
                counted_last = True
        assert counted_last
    return DailyFigures(queues, departments, totals, agents, limit_lost(lost, lost_per_department))


# the same figures from grouped counts (SQL aggregates): callcenter/domain/metrics_groups.py
from .metrics_groups import Ambiguous, IvrGroup, StintGroup, grouped_figures, ivr_row  # noqa: E402,F401

# follow-up tasks and cases: callcenter/domain/work_figures.py (re-exported for callers)
from .work_figures import (  # noqa: E402,F401
    CASE_COUNTS, CaseFact, TaskFact, TaskFigures, case_figures, finish_case_figures, task_figures,
    task_figures_from_groups)
