"""The agent desk's own state as a plain, JSON-ready dict, and back (pure, no I/O).

What the PBX cannot tell after a restart: a pause or log-out asked for during a call (with its
reason and any head's override), the wrap-up under way (its call, start and deadline, so the
extensions used are kept), the pause already alarmed as over its maximum, and since when each
agent has been in their state. The last picture of the agent's queues and call comes along, so
that the resync that follows (`Resynced`) compares the PBX's facts with it: what the PBX reports
(logged in, paused, in a call, channels gone) wins; what it reports unchanged keeps its "since".
The service checkpoints this next to the trackers' state (callcenter/checkpointer.py). Agents
no longer configured are ignored; a field missing from an older state takes its default.
"""
from __future__ import annotations

from datetime import datetime

from .agent_state import AgentStates
from .agent_view import Pending, Seat, State

VERSION = 1


def desk_to_state(states: AgentStates) -> dict:
    """Every agent with something to carry over (not a logged-out agent with nothing pending)."""
    agents = []
    for a in states.agents.values():
        if (a.state is State.LOGGED_OUT and not a.seats and a.pending is None and a.wrapup_until is None
                and a.call is None):
            continue
        agents.append({
            "id": a.id, "state": a.state.value, "reason": a.reason, "since": _t(a.since),
            "seats": [[pbx, queue, s.interface, s.state_interface, s.paused, s.reason, _t(s.since)]
                      for (pbx, queue), s in sorted(a.seats.items())],
            "call": a.call, "busy_pbx": a.busy_pbx,
            "wrapup_call": a.wrapup_call, "wrapup_start": _t(a.wrapup_start), "wrapup_until": _t(a.wrapup_until),
            "pending": None if a.pending is None else {
                "action": a.pending.action, "reason": a.pending.reason, "override_by": a.pending.override_by,
                "override_reason": a.pending.override_reason, "asked_at": _t(a.pending.asked_at)},
            "alarmed": None if a.alarmed is None else [a.alarmed[0], _t(a.alarmed[1])],
        })
    return {"version": VERSION, "agents": agents}


def desk_from_state(states: AgentStates, state: dict) -> int:
    """Put the saved agents back into ``states`` (before any event); returns how many. The
    PBXes their queues and calls are on are held as stale (`states.stale`) until each one's
    resync: till then no wrap-up ends and no pause is alarmed on a picture the PBX has not
    confirmed."""
    restored = 0
    for item in state.get("agents", []):
        a = states.agents.get(item.get("id"))
        if a is None:
            continue
        a.state = State(item.get("state", State.LOGGED_OUT.value))
        a.reason = item.get("reason", "")
        a.since = _d(item.get("since")) or a.since
        a.seats = {(pbx, queue): Seat(interface, state_interface, bool(paused), reason, _d(since) or a.since)
                   for pbx, queue, interface, state_interface, paused, reason, since in item.get("seats", [])}
        a.call = item.get("call")
        a.busy_pbx = item.get("busy_pbx")
        a.wrapup_call = item.get("wrapup_call")
        a.wrapup_start = _d(item.get("wrapup_start"))
        a.wrapup_until = _d(item.get("wrapup_until"))
        if a.wrapup_until is not None and a.wrapup_start is None:
            a.wrapup_start = a.wrapup_until
        p = item.get("pending")
        a.pending = None if not p else Pending(p["action"], p.get("reason", ""), p.get("override_by"),
                                                p.get("override_reason", ""), _d(p.get("asked_at")))
        alarmed = item.get("alarmed")
        a.alarmed = (alarmed[0], _d(alarmed[1])) if alarmed else None
        a.ring = None
        a.sig = ()                                      # the first settle tells the listeners
        states.stale.update(pbx for pbx, _ in a.seats)
        for call in (a.call, a.wrapup_call):
            if call and call.get("pbx"):
                states.stale.add(call["pbx"])
        if a.busy_pbx:
            states.stale.add(a.busy_pbx)
        restored += 1
    return restored


def _t(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _d(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
