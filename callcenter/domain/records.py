"""Call records: what the service concludes about one hotline call, stint by stint."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class StintEnd(StrEnum):
    ANSWERED = "answered"
    ABANDONED = "abandoned"
    TIMED_OUT = "timed_out"
    NO_AGENT = "no_agent"          # queue full, empty or unavailable (JOINEMPTY, LEAVEEMPTY, ...)
    UNKNOWN = "unknown"            # the link was down when it ended; see CallRecord.reconciled


class Outcome(StrEnum):
    ANSWERED = "answered"
    TRANSFERRED = "transferred"    # answered in one queue, then sent on to another stint
    ABANDONED = "abandoned"        # caller hung up while waiting in a queue
    ABANDONED_IVR = "abandoned_ivr"  # caller hung up before reaching any queue
    TIMED_OUT = "timed_out"
    NO_AGENT = "no_agent"
    AFTER_HOURS = "after_hours"
    UNKNOWN = "unknown"


@dataclass(slots=True)
class Stint:
    """One visit of the caller to one queue."""
    queue: str
    department: str | None
    entered_at: datetime
    left_at: datetime | None = None
    answered_at: datetime | None = None
    end: StintEnd | None = None
    agent: str | None = None          # agent id from configuration, None when unmapped
    member_name: str = ""             # the queue member's name as Asterisk logs it
    interface: str = ""
    talk_seconds: float | None = None
    completed_by: str = ""            # "agent", "caller" or "transfer" (Asterisk's Reason)
    transferred: bool = False         # answered here, then moved to another queue
    rings: int = 0                    # agents offered the call
    no_answers: list[str] = field(default_factory=list)  # members who rang without answering

    @property
    def wait_seconds(self) -> float | None:
        until = self.answered_at or self.left_at
        return None if until is None else max(0.0, (until - self.entered_at).total_seconds())


@dataclass(slots=True)
class CallRecord:
    pbx: str
    id: str                           # the caller leg's Uniqueid (queue_log's call id)
    linkedid: str
    caller_num: str
    caller_name: str
    hotline: str
    department: str | None            # from the hotline dialled, else the first stint
    started_at: datetime
    ended_at: datetime
    outcome: Outcome
    ivr_choice: str = ""
    ivr_queue: str = ""
    after_hours: bool = False
    reconciled: bool = False          # part of the call happened while the link was down
    stints: list[Stint] = field(default_factory=list)

    @property
    def withheld(self) -> bool:
        return not self.caller_num or self.caller_num in ("<unknown>", "anonymous", "Anonymous")
