"""First-ask responsibility (首问负责制): cases, dispositions and owner routing (pure).

The first agent who answers a caller owns the caller's matter in that department until it is
closed. Later calls join the open case; transfers never move ownership; only a head reassigns,
with a reason. Every answered call gets a disposition (wrap-up) that decides the case's fate and
deadline on the workday calendar ("1515": simple matters in 5 workdays, complex in 15).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from .records import CallRecord, StintEnd


class Disposition(StrEnum):
    RESOLVED = "resolved"                    # answered on the call
    FOLLOW_UP_SIMPLE = "follow_up_simple"    # 5 workdays
    FOLLOW_UP_COMPLEX = "follow_up_complex"  # 15 workdays
    ESCALATED_12345 = "escalated_12345"      # handed to the city hotline, with its work-order number
    OUT_OF_SCOPE = "out_of_scope"            # 涉法、涉诉、投诉: directed elsewhere
    KNOWLEDGE_GAP = "knowledge_gap"          # the knowledge base lacked the answer: 5 workdays to add it


class CaseStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    ESCALATED = "escalated"
    OUT_OF_SCOPE = "out_of_scope"


CLOSING = {Disposition.RESOLVED: CaseStatus.RESOLVED, Disposition.ESCALATED_12345: CaseStatus.ESCALATED,
           Disposition.OUT_OF_SCOPE: CaseStatus.OUT_OF_SCOPE}


@dataclass(frozen=True)
class DeadlineRule:
    simple_workdays: int = 5
    complex_workdays: int = 15
    knowledge_gap_workdays: int = 5


def workdays_for(disposition: Disposition, rule: DeadlineRule) -> int | None:
    """How many workdays the disposition gives the case (None: it closes the case)."""
    return {Disposition.FOLLOW_UP_SIMPLE: rule.simple_workdays,
            Disposition.FOLLOW_UP_COMPLEX: rule.complex_workdays,
            Disposition.KNOWLEDGE_GAP: rule.knowledge_gap_workdays}.get(disposition)


class DispositionError(ValueError):
    pass


def check_disposition(disposition: str, work_order: str, directed_to: str, item: str,
                      items: list[str]) -> Disposition:
    """Validate a wrap-up; raises DispositionError with the reason."""
    try:
        d = Disposition(disposition)
    except ValueError:
        raise DispositionError(f"unknown disposition {disposition!r}; one of "
                               + ", ".join(x.value for x in Disposition)) from None
    if d is Disposition.ESCALATED_12345 and not work_order.strip():
        raise DispositionError("escalated_12345 needs the 12345 work-order number")
    if d is Disposition.OUT_OF_SCOPE and not directed_to.strip():
        raise DispositionError("out_of_scope needs where the caller was directed (directed_to)")
    if items and item and item not in items:
        raise DispositionError(f"unknown service item {item!r} for this department")
    return d


@dataclass(frozen=True)
class Answered:
    """One answered stint of a committed call: who answered, for which department."""
    pbx: str
    call_id: str
    seq: int
    department: str
    agent: str | None
    at: datetime
    transferred_in: bool       # this stint followed a transfer from another queue


def answered_stints(record: CallRecord) -> list[Answered]:
    out = []
    for seq, stint in enumerate(record.stints):
        if stint.end is StintEnd.ANSWERED and stint.department:
            out.append(Answered(record.pbx, record.id, seq, stint.department, stint.agent,
                                stint.answered_at or stint.entered_at,
                                transferred_in=seq > 0 and record.stints[seq - 1].end is StintEnd.ANSWERED))
    return out


@dataclass(frozen=True)
class JoinCase:
    case_id: int | None         # None: the case of the decision before (an answer after a transfer)
    answered: Answered


@dataclass(frozen=True)
class OpenCase:
    caller_num: str
    department: str
    owner: str | None
    answered: Answered


def plan_for_answered(record: CallRecord, open_cases: dict[tuple[str, str], int]) -> list[JoinCase | OpenCase]:
    """Each answered stint joins the caller's open case in its department, or opens one owned by
    the answering agent. A stint reached by transfer stays in the case of the stint before it:
    the first agent asked keeps the matter and sees what happened after the transfer."""
    decisions: list[JoinCase | OpenCase] = []
    for answered in answered_stints(record):
        key = (record.caller_num, answered.department)
        if answered.transferred_in and decisions:
            decisions.append(JoinCase(None, answered))
        elif key in open_cases:
            decisions.append(JoinCase(open_cases[key], answered))
        else:
            decisions.append(OpenCase(record.caller_num, answered.department, answered.agent, answered))
    return decisions


@dataclass(frozen=True)
class Presence:
    agent: str
    available: bool
    interfaces: tuple[str, ...]


@dataclass(frozen=True)
class Route:
    """Where a caller should go: the IVR and Asterisk honour it (preferred member first, then
    the queue)."""
    department: str | None
    queue: str | None
    case_id: int | None
    owner: str | None
    preferred_agent: str | None        # tried first, then the queue
    preferred_interfaces: tuple[str, ...]
    reason: str                        # owner_available, owner_away_post, owner_away_queue, no_case,
                                       # unknown_department, coverage_gap
    fallback: str | None = None        # during a coverage gap: "pool", "post:<id>" or "callback"


def route(department: str | None, queue: str | None, case_id: int | None, owner: str | None,
          presence: dict[str, Presence], posts: list[tuple[str, str]],
          gap_fallback: tuple[str, str | None] | None = None) -> Route:
    """`gap_fallback`: (kind, queue) when nobody on the department's posts is available."""
    if department is None:
        return Route(None, queue, None, None, None, (), "unknown_department")
    if gap_fallback is not None:
        kind, fallback_queue = gap_fallback
        return Route(department, fallback_queue or queue, case_id, owner, None, (), "coverage_gap", kind)
    if case_id is None or owner is None:
        return Route(department, queue, None, None, None, (), "no_case")
    p = presence.get(owner)
    if p is not None and p.available:
        return Route(department, queue, case_id, owner, owner, p.interfaces, "owner_available")
    for a, b in posts:
        for agent in (a, b):
            q = presence.get(agent)
            if q is not None and q.available:
                return Route(department, queue, case_id, owner, agent, q.interfaces, "owner_away_post")
    return Route(department, queue, case_id, owner, None, (), "owner_away_queue")
