"""Follow-up tasks: every unanswered call becomes someone's task with a deadline (pure).

One open task per caller number and department: repeat misses attach to it. A dissatisfied
survey rating (issue 12) is such a task too, opened by callcenter/followup/ratings.py; an answered
call does not close it (NOT_CLOSED_BY_A_CALL). `plan_for_call`
turns one committed call into decisions (open, attach, close) given the open tasks that exist;
the follow-up service applies them in one transaction. Nothing here reads a clock or a database.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Callable, Protocol

from .records import CallRecord, Outcome, Stint, StintEnd


class Reason(StrEnum):
    ABANDONED = "abandoned"            # hung up while waiting in a queue
    IVR_ABANDONED = "ivr_abandoned"    # hung up in the IVR after choosing a department
    TIMED_OUT = "timed_out"
    NO_AGENT = "no_agent"
    AFTER_HOURS = "after_hours"
    RING_NO_ANSWER = "ring_no_answer"  # a callback attempt the caller did not pick up
    CALLBACK_REQUEST = "callback_request"  # the caller asked to be called back (IVR, voicemail)
    DISSATISFIED = "dissatisfied"      # a 不满意 survey rating: contact, then rectification (issue 12)


class Closure(StrEnum):
    CALLER_CALLED_AGAIN = "caller_called_again"   # automatic: answered inbound call
    CALLBACK_COMPLETED = "callback_completed"     # automatic: answered callback
    RESOLVED = "reached_resolved"
    FOLLOW_UP = "reached_needs_follow_up"
    UNREACHABLE = "unreachable"
    WRONG_NUMBER = "wrong_number"


MANUAL_CLOSURES = frozenset({Closure.RESOLVED, Closure.FOLLOW_UP, Closure.UNREACHABLE, Closure.WRONG_NUMBER})
_REASON_OF_END = {StintEnd.ABANDONED: Reason.ABANDONED, StintEnd.TIMED_OUT: Reason.TIMED_OUT,
                  StintEnd.NO_AGENT: Reason.NO_AGENT, StintEnd.UNKNOWN: Reason.ABANDONED}


@dataclass(frozen=True)
class Policy:
    contact_workdays: int = 1
    short_abandon_seconds: float = 5
    short_abandons_create_tasks: bool = True
    withheld_create_tasks: bool = False
    max_attempts: int = 3
    retry_spacing_minutes: float = 30       # business minutes between callback attempts
    warn_before_minutes: float = 120        # warn the assignee this long before the deadline


@dataclass(frozen=True)
class Miss:
    """One unanswered contact behind a task."""
    pbx: str
    call_id: str
    reason: Reason
    at: datetime
    queue: str | None
    short: bool = False


@dataclass
class OpenTask:
    id: int
    caller_num: str
    department: str
    deadline: datetime
    reason: str = ""


# tasks a later answered call does not close: the caller being served again is not the follow-up owed
NOT_CLOSED_BY_A_CALL = frozenset({Reason.DISSATISFIED})


@dataclass(frozen=True)
class Assignment:
    agent: str | None                 # None: the department's pool
    via: str                          # "case_owner", "post_a", "post_b" or "pool"


@dataclass(frozen=True)
class OpenNew:
    caller_num: str
    department: str
    miss: Miss
    pooled_from_unmapped: bool = False


@dataclass(frozen=True)
class Attach:
    task_id: int
    miss: Miss


@dataclass(frozen=True)
class Close:
    task_id: int
    closure: Closure
    at: datetime
    pbx: str
    call_id: str


@dataclass(frozen=True)
class Skip:
    """A miss that, by policy, creates no task (recorded and flagged on the call)."""
    department: str
    miss: Miss
    why: str


Decision = OpenNew | Attach | Close | Skip


class OwnerLookup(Protocol):
    def __call__(self, caller_num: str, department: str) -> str | None: ...


@dataclass
class Posts:
    """The department's posts in order: (A, B) agent ids."""
    by_department: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


def assign(department: str, caller_num: str, posts: Posts, owner_of: OwnerLookup,
           available: Callable[[str], bool]) -> Assignment:
    """The caller's case owner; else the first post's A if available, else its B if available;
    else the department pool."""
    owner = owner_of(caller_num, department)
    if owner:
        return Assignment(owner, "case_owner")
    for a, b in posts.by_department.get(department, []):
        if available(a):
            return Assignment(a, "post_a")
        if available(b):
            return Assignment(b, "post_b")
    return Assignment(None, "pool")


def _department_of_miss(record: CallRecord, stint: Stint | None, department_of_queue) -> str | None:
    if stint is not None:
        return stint.department
    if record.ivr_queue:
        return department_of_queue(record.pbx, record.ivr_queue) or record.department
    return record.department


def plan_for_call(record: CallRecord, open_tasks: dict[tuple[str, str], OpenTask], policy: Policy,
                  department_of_queue: Callable[[str, str], str | None],
                  service_office: str | None) -> list[Decision]:
    """Decisions for one committed call. `open_tasks` is keyed by (caller number, department)."""
    decisions: list[Decision] = []
    number = record.caller_num
    # answered stints reach the caller: close the open task of each answering department
    for stint in record.stints:
        if stint.end is StintEnd.ANSWERED and stint.department:
            task = open_tasks.get((number, stint.department))
            if task is not None and task.reason not in NOT_CLOSED_BY_A_CALL:
                decisions.append(Close(task.id, Closure.CALLER_CALLED_AGAIN,
                                       stint.answered_at or record.started_at, record.pbx, record.id))
    miss = _miss_of(record, policy)
    if miss is None:
        return decisions
    stint = record.stints[-1] if record.stints else None
    department = _department_of_miss(record, stint, department_of_queue)
    unmapped = department is None
    if unmapped:
        department = service_office
    if department is None:
        return decisions
    if record.withheld and not policy.withheld_create_tasks:
        return decisions + [Skip(department, miss, "withheld_number")]
    if miss.short and not policy.short_abandons_create_tasks:
        return decisions + [Skip(department, miss, "short_abandon")]
    task = open_tasks.get((number, department))
    if task is not None and not any(isinstance(d, Close) and d.task_id == task.id for d in decisions):
        decisions.append(Attach(task.id, miss))
    else:
        decisions.append(OpenNew(number, department, miss, pooled_from_unmapped=unmapped))
    return decisions


def _miss_of(record: CallRecord, policy: Policy) -> Miss | None:
    """The unanswered part of a call, if the call ended unanswered."""
    if record.outcome is Outcome.AFTER_HOURS:
        return Miss(record.pbx, record.id, Reason.AFTER_HOURS, record.started_at, None)
    if record.outcome is Outcome.ABANDONED_IVR:
        # the department is the one chosen in the IVR, else the one whose hotline was dialled
        return Miss(record.pbx, record.id, Reason.IVR_ABANDONED, record.started_at, record.ivr_queue or None)
    if not record.stints:
        return None
    last = record.stints[-1]
    if last.end is StintEnd.ANSWERED:
        return None
    if record.after_hours:
        return Miss(record.pbx, record.id, Reason.AFTER_HOURS, last.entered_at, last.queue)
    reason = _REASON_OF_END.get(last.end, Reason.ABANDONED)
    wait = last.wait_seconds or 0.0
    short = reason is Reason.ABANDONED and wait < policy.short_abandon_seconds
    return Miss(record.pbx, record.id, reason, last.left_at or last.entered_at, last.queue, short)
