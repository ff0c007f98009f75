"""The daily figures from per-group counts (pure): the SQL aggregates of
callcenter/storage/report_queries.py count stints and stint-less calls per group; `grouped_figures`
combines the groups into exactly what `metrics.daily_figures` counts call by call."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from .directory import Directory

if TYPE_CHECKING:
    from .metrics import DailyFigures


@dataclass(frozen=True)
class StintGroup:
    """Stints of the day's calls counted together: same (pbx, queue, department, hour), whether each
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
    hour: int = 0                              # the local hour the calls started
    longest_wait_us: int = 0                   # the longest wait of the group's stints
    bands: tuple[int, ...] = (0, 0, 0, 0)      # answered by wait band (metrics.BANDS)


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
                    first_department: dict[tuple[str, str], str | None] | None = None,
                    agents: dict[str, list[int]] | None = None, lost: list | None = None) -> DailyFigures:
    """`daily_figures` from grouped counts; `profile_of(department)` is the index of the
    department's business-hours profile in `IvrGroup.open_by_profile`. Raises `Ambiguous` when
    a row met with several departments is not in `first_department`."""
    from .metrics import DailyFigures, Figures
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
    return DailyFigures(queues, departments, totals, agents or {}, lost or [])
