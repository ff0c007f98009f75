"""The server-owned agent state (pure): logged out, available, paused with a reason, ringing, on a
call, wrap-up, derived only from the PBX's events, the desk's requests and `tick(now)`.

An agent with several queue memberships has one state: logged in when a member of any queue,
paused when paused in all of them. A pause whose reason is the configured wrap-up reason is the
wrap-up, not a pause. A pause or log-out asked for while ringing, on a call or in wrap-up waits
(`pending`) and is applied when the call and its wrap-up end. What the adapter must do at the PBX
or tell people is queued as effects (`take_effects`): the wrap-up pause to send or lift, a pending
action to carry out, a pause over its reason's maximum to alarm. No clock, no I/O. Its own state is
checkpointed by desk_state.py; a PBX restored from it is `stale` until its resync (no wrap-up on
it ends, no pause on it is alarmed till then).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from . import events as ev
from .agent_view import (AgentView, ApplyPending, BUSY_DEVICE, BUSY_STATES, DeskPolicy, EndWrapup, FREE_DEVICE,
                         PauseOverMax, Pending, Seat, StartWrapup, State, StateError, seats_paused)

__all__ = ["State", "DeskPolicy", "AgentView", "AgentStates", "Pending", "StartWrapup", "EndWrapup",
           "ApplyPending", "PauseOverMax", "StateError", "Seat"]


@dataclass
class _Agent:
    id: str
    name: str
    since: datetime
    seats: dict = field(default_factory=dict)         # (pbx, queue) -> Seat
    ring: dict | None = None                          # the call offered now
    call: dict | None = None                          # the call being talked
    busy_pbx: str | None = None                       # on a call the queues did not offer (device in use)
    wrapup_call: dict | None = None
    wrapup_start: datetime | None = None
    wrapup_until: datetime | None = None
    pending: Pending | None = None
    state: State = State.LOGGED_OUT
    reason: str = ""
    alarmed: tuple | None = None                      # (reason, since) of the pause already alarmed
    sig: tuple = ()                                   # what the view showed when last told


class AgentStates:
    """Every configured agent's state. `feed(event)`, `tick(now)` and the request methods return
    the ids of agents whose view changed; effects wait in `take_effects()`."""

    def __init__(self, agents: dict[str, str], policy: DeskPolicy, directory=None,
                 lookup: Callable[[str, str], dict | None] | None = None, home: dict | None = None,
                 start: datetime | None = None):
        epoch = start or datetime(1970, 1, 1, tzinfo=timezone.utc)
        self.policy = policy
        self.directory = directory                    # interface/member name -> agent id
        self.lookup = lookup or (lambda pbx, linkedid: None)   # the call tracker's view of a call
        self.home = home or {}                        # agent -> ((pbx, queue), ...) they may log in to
        self.agents = {a: _Agent(a, n, epoch) for a, n in agents.items()}
        self.effects: list = []
        self.lost: set[str] = set()                   # PBXes whose link is down (picture may be stale)
        self.stale: set[str] = set()                  # PBXes restored from a checkpoint, not yet resynced

    # --- reading ------------------------------------------------------------------------------

    def view(self, agent: str, now: datetime) -> AgentView:
        a = self.agents[agent]
        queues = [(p, q, True, s.paused, s.reason) for (p, q), s in sorted(a.seats.items())]
        queues += [(p, q, False, False, "") for p, q in self.home.get(agent, ()) if (p, q) not in a.seats]
        call = a.call or a.ring or (a.wrapup_call if a.state is State.WRAP_UP else None)
        return AgentView(a.id, a.name, a.state, a.since, a.reason if a.state is State.PAUSED else "",
                         a.pending.action if a.pending else None, a.pending.reason if a.pending else "",
                         call, a.wrapup_until if a.state is State.WRAP_UP else None, tuple(queues),
                         self._over_max(a, now) is not None)

    def views(self, now: datetime) -> list[AgentView]:
        return [self.view(a, now) for a in self.agents]

    def state_of(self, agent: str) -> State:
        return self.agents[agent].state

    def seats_of(self, agent: str) -> dict:
        return dict(self.agents[agent].seats)

    def wrapup_call(self, agent: str) -> dict | None:
        return self.agents[agent].wrapup_call

    def take_effects(self) -> list:
        out, self.effects = self.effects, []
        return out

    # --- events -------------------------------------------------------------------------------

    def feed(self, event: ev.Event) -> set[str]:
        if isinstance(event, ev.LinkLost):
            self.lost.add(event.pbx)
            return set()
        if isinstance(event, ev.Resynced):
            return self._resynced(event)
        if isinstance(event, ev.MemberState):
            a = self._agent(event.pbx, event.interface, event.member_name)
            if a is None:
                return set()
            key, reason = (event.pbx, event.queue), event.paused_reason if event.paused else ""
            old = a.seats.get(key)
            since = old.since if old is not None and (old.paused, old.reason) == (event.paused, reason) else event.at
            a.seats[key] = Seat(event.interface, event.state_interface, event.paused, reason, since)
            return self._settle(a, event.at)
        if isinstance(event, ev.MemberRemoved):
            a = self._agent(event.pbx, event.interface, event.member_name)
            if a is None or a.seats.pop((event.pbx, event.queue), None) is None:
                return set()
            return self._settle(a, event.at)
        if isinstance(event, ev.DeviceStateChanged):
            return self._device(event)
        if isinstance(event, ev.AgentRinging):
            a = self._agent(event.pbx, event.interface, event.member_name)
            if a is None:
                return set()
            a.ring = self._call(event, event.at)
            return self._settle(a, event.at)
        if isinstance(event, ev.AgentNoAnswer):
            a = self._agent(event.pbx, event.interface, event.member_name)
            if a is None or a.ring is None or not _same(a.ring, event):
                return set()
            a.ring = None
            return self._settle(a, event.at)
        if isinstance(event, ev.AgentConnected):
            return self._connected(event)
        if isinstance(event, ev.AgentCompleted):
            return self._completed(event)
        if isinstance(event, (ev.QueueAbandoned, ev.QueueExited, ev.ChannelHungup)):
            return self._caller_gone(event)
        return set()

    def _connected(self, e: ev.AgentConnected) -> set[str]:
        changed = set()
        for other in self.agents.values():           # ringall: the others stop ringing
            if other.ring is not None and _same(other.ring, e) and self._agent(e.pbx, e.interface, e.member_name) is not other:
                other.ring = None
                changed |= self._settle(other, e.at)
        a = self._agent(e.pbx, e.interface, e.member_name)
        if a is None:
            return changed
        a.call = self._call(e, e.at, a.ring if a.ring is not None and _same(a.ring, e) else None)
        a.ring = None
        a.wrapup_call = a.wrapup_start = a.wrapup_until = None       # a new call ends the last one's wrap-up
        return changed | self._settle(a, e.at)

    def _completed(self, e: ev.AgentCompleted) -> set[str]:
        a = self._agent(e.pbx, e.interface, e.member_name)
        if a is None:
            return set()
        call = a.call if a.call is not None else self._call(e, e.at)
        if a.call is not None and not _same(a.call, e) and a.call.get("pbx") == e.pbx:
            call = self._call(e, e.at)               # another call than the one we knew ended
        a.call, a.busy_pbx = None, None
        if a.ring is not None and _same(a.ring, e):
            a.ring = None
        if self.policy.wrapup_seconds > 0 and a.seats and not self._really_paused(a):
            a.wrapup_call = {**call, "ended_at": e.at.isoformat(), "talk_seconds": e.talk_time}
            a.wrapup_start = e.at
            a.wrapup_until = e.at + timedelta(seconds=min(self.policy.wrapup_seconds, self.policy.wrapup_cap))
            self.effects.append(StartWrapup(a.id))
        return self._settle(a, e.at)

    def _caller_gone(self, e) -> set[str]:
        changed = set()
        for a in self.agents.values():
            if a.ring is not None and a.ring.get("pbx") == e.pbx and (
                    (not isinstance(e, ev.ChannelHungup) and _same(a.ring, e)) or
                    (isinstance(e, ev.ChannelHungup) and e.uniqueid == a.ring.get("uniqueid"))):
                a.ring = None
                changed |= self._settle(a, e.at)
        return changed

    def _device(self, e: ev.DeviceStateChanged) -> set[str]:
        changed = set()
        for a in self.agents.values():
            if not any(p == e.pbx and e.device in (s.state_interface, s.interface) for (p, _), s in a.seats.items()):
                continue
            if e.state in BUSY_DEVICE and a.busy_pbx is None and a.call is None:
                a.busy_pbx = e.pbx
            elif e.state in FREE_DEVICE and a.busy_pbx is not None:
                a.busy_pbx = None
            else:
                continue
            changed |= self._settle(a, e.at)
        return changed

    def _resynced(self, e: ev.Resynced) -> set[str]:
        """The picture of one PBX afresh: its memberships from the snapshot; rings and calls whose
        channels are gone end (no wrap-up: we do not know when); a member the PBX reports in a call
        is on a call; one paused with the wrap-up reason is in wrap-up from now."""
        self.lost.discard(e.pbx)
        first = e.pbx in self.stale                   # the first since a restore: every agent settles
        self.stale.discard(e.pbx)
        fresh: dict[str, dict] = {}
        busy: set[str] = set()
        for m in e.members:
            agent = self._agent(m.pbx, m.interface, m.member_name)
            if agent is not None:
                fresh.setdefault(agent.id, {})[(m.pbx, m.queue)] = Seat(
                    m.interface, m.state_interface, m.paused, m.paused_reason if m.paused else "", e.at)
                if m.in_call:
                    busy.add(agent.id)
        changed = set()
        for a in self.agents.values():
            before = (dict(a.seats), a.ring, a.call, a.busy_pbx)
            mine = fresh.get(a.id, {})
            for key in [k for k in a.seats if k[0] == e.pbx]:
                if key not in mine:
                    del a.seats[key]
            for key, seat in mine.items():
                old = a.seats.get(key)
                a.seats[key] = seat if old is None or (old.paused, old.reason) != (seat.paused, seat.reason) else old
            for attr in ("ring", "call"):
                call = getattr(a, attr)
                if call is not None and call.get("pbx") == e.pbx and call.get("uniqueid") not in e.live_channels:
                    setattr(a, attr, None)
            if a.busy_pbx == e.pbx and a.id not in busy:
                a.busy_pbx = None
            if a.id in busy and a.call is None:
                a.busy_pbx = e.pbx
            if a.wrapup_until is None and a.call is None and a.ring is None and seats_paused(a.seats, self.policy.wrapup_reason):
                a.wrapup_start, a.wrapup_until = e.at, e.at + timedelta(seconds=self.policy.wrapup_seconds)
            if first or before != (a.seats, a.ring, a.call, a.busy_pbx) or a.wrapup_start == e.at:
                changed |= self._settle(a, e.at) | {a.id}
        return changed

    # --- requests (the desk checks the guard first) ---------------------------------------------

    def defer(self, agent: str, pending: Pending, at: datetime) -> set[str]:
        """A pause or log-out during a ring, a call or the wrap-up: replaces any pending one."""
        a = self.agents[agent]
        a.pending = pending
        return self._settle(a, at) | {agent}

    def cancel_pending(self, agent: str, at: datetime) -> bool:
        a = self.agents[agent]
        had, a.pending = a.pending is not None, None
        return had

    def ready(self, agent: str, at: datetime) -> set[str]:
        a = self.agents[agent]
        if a.state is not State.WRAP_UP:
            raise StateError("not_in_wrapup", f"agent {agent} is not in wrap-up (state {a.state.value})")
        return self._end_wrapup(a, at)

    def extend(self, agent: str, at: datetime) -> set[str]:
        a = self.agents[agent]
        if a.state is not State.WRAP_UP or a.wrapup_until is None:
            raise StateError("not_in_wrapup", f"agent {agent} is not in wrap-up (state {a.state.value})")
        cap = a.wrapup_start + timedelta(seconds=self.policy.wrapup_cap)
        until = min(a.wrapup_until + timedelta(seconds=self.policy.extend_seconds), cap)
        if until <= a.wrapup_until:
            raise StateError("wrapup_at_max", f"the wrap-up already lasts the maximum "
                                              f"({self.policy.wrapup_cap:g} s)")
        a.wrapup_until = until
        return {agent}

    def tick(self, now: datetime) -> set[str]:
        """Wrap-ups that ran out end; pauses over their maximum are alarmed (once per pause)."""
        changed = set()
        for a in self.agents.values():
            if self.stale and self._held(a):
                continue                              # restored: waits for its PBX's resync
            if a.wrapup_until is not None and a.wrapup_until <= now and a.state is State.WRAP_UP:
                changed |= self._end_wrapup(a, now)
            over = self._over_max(a, now)
            if over is not None and a.alarmed != (a.reason, a.since):
                a.alarmed = (a.reason, a.since)
                self.effects.append(PauseOverMax(a.id, a.name, a.reason, a.since, over,
                                                 f"panel:pause-over-max:{a.id}:{a.since.isoformat()}"))
                changed.add(a.id)
        return changed

    def next_deadline(self) -> datetime | None:
        """The next moment `tick` has something to do."""
        moments = []
        for a in self.agents.values():
            if self.stale and self._held(a):
                continue
            if a.state is State.WRAP_UP and a.wrapup_until is not None:
                moments.append(a.wrapup_until)
            limit = self.policy.pause_max.get(a.reason) if a.state is State.PAUSED else None
            if limit and a.alarmed != (a.reason, a.since):
                moments.append(a.since + timedelta(seconds=limit))
        return min(moments) if moments else None

    # --- internals ----------------------------------------------------------------------------

    def _agent(self, pbx: str, interface: str, member_name: str) -> _Agent | None:
        agent = self.directory.agent_of(interface, member_name, pbx) if self.directory is not None else None
        if agent is None and member_name in self.agents:
            agent = member_name
        return self.agents.get(agent) if agent is not None else None

    def _call(self, e, at: datetime, ring: dict | None = None) -> dict:
        info = self.lookup(e.pbx, e.linkedid) or {}
        base = ring or {}
        return {"pbx": e.pbx, "call_id": e.linkedid, "uniqueid": e.uniqueid, "queue": e.queue,
                "caller_num": info.get("caller_num", base.get("caller_num", "")),
                "caller_name": info.get("caller_name", base.get("caller_name", "")),
                "hotline": info.get("hotline", base.get("hotline", "")),
                "ivr_choice": info.get("ivr_choice", base.get("ivr_choice", "")),
                "ivr_queue": info.get("ivr_queue", base.get("ivr_queue", "")),
                "since": at.isoformat()}

    def _held(self, a: _Agent) -> bool:
        """Restored from a checkpoint and on a PBX not resynced since (desk_state.py)."""
        pbxes = {p for p, _ in a.seats} | {c.get("pbx") for c in (a.call, a.wrapup_call) if c} | {a.busy_pbx}
        return not self.stale.isdisjoint(pbxes)

    def _really_paused(self, a: _Agent) -> bool:
        return seats_paused(a.seats) and not seats_paused(a.seats, self.policy.wrapup_reason)

    def _end_wrapup(self, a: _Agent, at: datetime) -> set[str]:
        then, a.pending = a.pending, None
        a.wrapup_call = a.wrapup_start = a.wrapup_until = None
        self.effects.append(EndWrapup(a.id, then))
        return self._settle(a, at) | {a.id}

    def _compute(self, a: _Agent) -> tuple[State, str]:
        if a.call is not None or a.busy_pbx is not None:
            return State.ON_CALL, ""
        if a.ring is not None:
            return State.RINGING, ""
        if a.wrapup_until is not None:
            if a.seats:
                return State.WRAP_UP, ""
            a.wrapup_call = a.wrapup_start = a.wrapup_until = None      # logged out meanwhile
        if not a.seats:
            return State.LOGGED_OUT, ""
        if self._really_paused(a):
            reasons = sorted((s.since, s.reason) for s in a.seats.values()
                             if s.paused and s.reason != self.policy.wrapup_reason)
            return State.PAUSED, reasons[-1][1] if reasons else ""
        return State.AVAILABLE, ""                   # a wrap-up pause being lifted counts as available

    def _settle(self, a: _Agent, at: datetime) -> set[str]:
        state, reason = self._compute(a)
        if state not in BUSY_STATES and a.pending is not None and state is not State.LOGGED_OUT:
            self.effects.append(ApplyPending(a.id, a.pending))
            a.pending = None
        elif state is State.LOGGED_OUT and a.pending is not None:
            a.pending = None                          # nothing left to pause or log out of
        if (state, reason) != (a.state, a.reason):
            a.state, a.reason, a.since = state, reason, at
        sig = _signature(a)
        if sig == a.sig:
            return set()                              # nothing the view shows changed
        a.sig = sig
        return {a.id}

    def _over_max(self, a: _Agent, now: datetime) -> float | None:
        if a.state is not State.PAUSED:
            return None
        limit = self.policy.pause_max.get(a.reason)
        return limit if limit and (now - a.since).total_seconds() > limit else None


def _same(call: dict, e) -> bool:
    return call.get("pbx") == e.pbx and (call.get("call_id") == e.linkedid or call.get("uniqueid") == e.uniqueid)


def _signature(a: _Agent) -> tuple:
    def key(call):
        return (call.get("pbx"), call.get("call_id"), call.get("since")) if call else None
    return (a.state, a.reason, a.since, a.pending, key(a.ring), key(a.call), key(a.wrapup_call), a.wrapup_until,
            tuple(sorted((k, s.paused, s.reason) for k, s in a.seats.items())))
