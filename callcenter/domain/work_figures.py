"""Metric formulas of follow-up work for the daily report (pure): follow-up tasks (created,
contacted within the deadline, overdue, closures) and first-ask cases (opened, resolved on first
contact and within the deadline, resolution rate, 12345 hand-offs against their target).
Definitions are in docs/metrics.md; call figures are callcenter/domain/metrics.py's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


def _rate(part: int, whole: int) -> float | None:          # as metrics.py's (a share, 4 places)
    return round(part / whole, 4) if whole > 0 else None


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


def task_figures_from_groups(created: list[tuple], closures: list[tuple]
                             ) -> dict[tuple[str, str | None, str], TaskFigures]:
    """`task_figures` from SQL aggregates: `created` rows (pbx, queue, department, created,
    contacted_in_time, overdue) of the tasks first missed that day, `closures` rows (pbx, queue,
    department, closure, count) of the tasks closed that day (closure may be empty: the row
    still exists, as a task closed without an outcome makes one in `task_figures`)."""
    out: dict[tuple[str, str | None, str], TaskFigures] = {}
    for pbx, queue, department, n, in_time, overdue in created:
        f = out.setdefault((pbx, queue, department), TaskFigures())
        f.created += n
        f.contacted_in_time += in_time
        f.overdue += overdue
    for pbx, queue, department, closure, n in closures:
        f = out.setdefault((pbx, queue, department), TaskFigures())
        if closure:
            f.closures[closure] = f.closures.get(closure, 0) + n
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
    return finish_case_figures(out, pending_wrapups, escalation_target)


CASE_COUNTS = ("cases_opened", "resolved_first_contact", "resolved_in_time", "cases_overdue", "cases_closed",
               "escalated_12345", "out_of_scope", "knowledge_gaps", "cases_due", "wrapup_pending")


def finish_case_figures(out: dict[str, dict], pending_wrapups: dict[str, int], escalation_target: float
                        ) -> dict[str, dict]:
    """Per department: the counts of `case_figures` (or the same counts from SQL aggregates:
    callcenter/storage/report_queries.py) with the pending wrap-ups and the rates added."""
    for department, count in pending_wrapups.items():
        out.setdefault(department, dict.fromkeys(CASE_COUNTS, 0))["wrapup_pending"] = count
    for d in out.values():
        d["resolution_rate"] = _rate(d["resolved_in_time"], d["cases_due"])
        d["first_contact_resolution_rate"] = _rate(d["resolved_first_contact"], d["cases_opened"])
        d["escalation_rate"] = _rate(d["escalated_12345"], d["cases_closed"])
        d["escalation_target"] = escalation_target
        d["escalation_over_target"] = d["escalation_rate"] is not None and d["escalation_rate"] > escalation_target
    return out


# --- lost calls: their callback (follow-up task) status --------------------------------------

CALLBACK_STATUSES = ("contacted_in_time", "contacted_late", "closed_unreached", "overdue", "pending",
                     "no_task_short_abandon", "no_task_withheld_number", "no_task")


def callback_status(link: dict | None, now: datetime) -> tuple[str | None, str]:
    """(task status, callback status) of a lost call from its follow-up link (report_work_queries
    `lost_call_tasks`): the caller reached by the task's deadline or later, its task closed without
    reaching them, past the deadline without contact at `now`, still pending; or no task (a short
    abandon or withheld number the configuration does not follow up, or none at all)."""
    if link is None:
        return None, "no_task"
    if "skipped" in link:
        why = link["skipped"]
        return None, f"no_task_{why}" if f"no_task_{why}" in CALLBACK_STATUSES else "no_task"
    contacted, deadline = link["contacted_at"], link["deadline"]
    if contacted is not None:
        return link["status"], "contacted_in_time" if contacted <= deadline else "contacted_late"
    if link["status"] == "closed":
        return "closed", "closed_unreached"
    return link["status"], "overdue" if deadline < now else "pending"
