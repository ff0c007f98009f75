"""The vocabulary of the agent state machine (pure): the states, the desk policy built from the
`panel:` settings, a queue seat, the view the panel renders (`AgentView`), a pending request and the
effects the machine asks its adapter to carry out. The machine itself: agent_state.py."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

BUSY_DEVICE = frozenset({"INUSE", "BUSY", "ONHOLD", "RINGINUSE"})
FREE_DEVICE = frozenset({"NOT_INUSE", "UNAVAILABLE", "INVALID", "UNKNOWN"})


class State(str, Enum):
    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    PAUSED = "paused"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"


BUSY_STATES = frozenset({State.RINGING, State.ON_CALL, State.WRAP_UP})


@dataclass(frozen=True)
class DeskPolicy:
    pause_max: dict = field(default_factory=dict)     # reason -> maximum in seconds (absent: none)
    wrapup_seconds: float = 60
    extend_seconds: float = 60
    max_seconds: float = 300
    require_disposition: bool = False
    wrapup_reason: str = "话后处理"

    @classmethod
    def from_settings(cls, panel) -> "DeskPolicy":
        w = panel.wrapup
        return cls({r.name: r.max_minutes * 60 for r in panel.pause_reasons if r.max_minutes > 0},
                   w.seconds, w.extend_seconds, w.max_seconds, w.require_disposition, w.reason)

    @property
    def wrapup_cap(self) -> float:
        """A wrap-up never lasts longer than this in all."""
        return max(self.max_seconds, self.wrapup_seconds)


@dataclass(frozen=True)
class Pending:
    action: str                   # "pause" or "logout"
    reason: str = ""
    override_by: str | None = None
    override_reason: str = ""
    asked_at: datetime | None = None


# --- effects: what the adapter carries out -----------------------------------------------------

@dataclass(frozen=True)
class StartWrapup:
    agent: str                    # pause every queue of the agent with the wrap-up reason


@dataclass(frozen=True)
class EndWrapup:
    agent: str
    then: Pending | None          # None: lift the wrap-up pause; else carry this out instead


@dataclass(frozen=True)
class ApplyPending:
    agent: str
    pending: Pending


@dataclass(frozen=True)
class PauseOverMax:
    agent: str
    name: str
    reason: str
    since: datetime
    max_seconds: float
    key: str                      # unique per pause


@dataclass(frozen=True)
class Seat:
    """The agent as a member of one queue, as the PBX last reported it."""
    interface: str
    state_interface: str
    paused: bool
    reason: str
    since: datetime               # when this pause state (or the membership) began


def seats_paused(seats: dict, reason: str | None = None) -> bool:
    """Paused in every queue (with ``reason`` in each, if given)."""
    return bool(seats) and all(s.paused and (reason is None or s.reason == reason) for s in seats.values())


class StateError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class AgentView:
    agent: str
    name: str
    state: State
    since: datetime               # when this state began
    reason: str                   # the pause reason ("" otherwise)
    pending: str | None           # "pause" or "logout" asked during a call/ring, applied when it ends
    pending_reason: str
    call: dict | None             # ringing/on_call/wrap_up: the call (JSON-ready)
    wrapup_until: datetime | None
    queues: tuple                 # ((pbx, queue, logged_in, paused, reason), ...)
    over_max: bool                # paused longer than the reason's maximum

    def to_dict(self, now: datetime) -> dict:
        return {"agent": self.agent, "name": self.name, "state": self.state.value,
                "since": self.since.isoformat(), "seconds_in_state": round(max(0.0, (now - self.since).total_seconds())),
                "reason": self.reason, "pending": self.pending, "pending_reason": self.pending_reason,
                "call": dict(self.call) if self.call else None,
                "wrapup_until": self.wrapup_until.isoformat() if self.wrapup_until else None,
                "wrapup_seconds_left": (round(max(0.0, (self.wrapup_until - now).total_seconds()))
                                        if self.wrapup_until else None),
                "queues": [{"pbx": p, "queue": q, "logged_in": li, "paused": pa, "reason": r}
                           for p, q, li, pa, r in self.queues],
                "over_max": self.over_max}
