"""Agent presence: queue membership, pauses with their reasons and device reachability.

`PresenceTracker.feed` keeps the live picture per (PBX, queue, interface) and returns the
sessions an event closed: a login session (added to removed), pause sessions (with reason) and
unreachable sessions (device UNAVAILABLE/INVALID). After a reconnect the picture is rebuilt from
the resync snapshot, never from stale memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from . import events as ev
from .directory import Directory

UNREACHABLE_STATUS = frozenset({4, 5})            # AST_DEVICE_INVALID, AST_DEVICE_UNAVAILABLE
UNREACHABLE_STATES = frozenset({"INVALID", "UNAVAILABLE"})
IN_USE_STATUS = frozenset({2, 3, 6, 7, 8})


@dataclass(frozen=True, slots=True)
class AgentSession:
    pbx: str
    agent: str | None
    interface: str
    member_name: str
    queue: str
    kind: str                  # "login", "pause" or "unreachable"
    reason: str
    started_at: datetime
    ended_at: datetime
    reconciled: bool = False

    @property
    def seconds(self) -> float:
        return (self.ended_at - self.started_at).total_seconds()


@dataclass(slots=True)
class Member:
    pbx: str
    queue: str
    interface: str
    member_name: str
    agent: str | None
    state_interface: str
    penalty: int
    logged_in_at: datetime
    status: int = 0
    paused: bool = False
    paused_reason: str = ""
    paused_since: datetime | None = None
    unreachable_since: datetime | None = None

    @property
    def available(self) -> bool:
        """Logged in, not paused and reachable; busy on a call still counts."""
        return not self.paused and self.unreachable_since is None


class PresenceTracker:
    def __init__(self, directory: Directory):
        self.directory = directory
        self.members: dict[tuple[str, str, str], Member] = {}
        self.seats: dict[tuple[str, str, str], Member] = {}     # (pbx, queue, agent id) -> member

    def feed(self, event: ev.Event) -> list[AgentSession]:
        if isinstance(event, ev.MemberState):
            return self._state(event)
        if isinstance(event, ev.MemberRemoved):
            member = self.members.pop((event.pbx, event.queue, event.interface), None)
            if member is None:
                return []
            self._unseat(member)
            return self._close(member, event.at)
        if isinstance(event, ev.DeviceStateChanged):
            return self._device(event)
        if isinstance(event, ev.Resynced):
            return self._resync(event)
        return []

    def members_of(self, pbx: str, queue: str) -> list[Member]:
        return [m for (p, q, _), m in self.members.items() if p == pbx and q == queue]

    def _state(self, e: ev.MemberState) -> list[AgentSession]:
        key = (e.pbx, e.queue, e.interface)
        member = self.members.get(key)
        if member is None:
            member = self.members[key] = Member(
                e.pbx, e.queue, e.interface, e.member_name, self.directory.agent_of(e.interface, e.member_name, e.pbx),
                e.state_interface, e.penalty, e.at)
            if member.agent is not None:
                self.seats[(e.pbx, e.queue, member.agent)] = member
        member.penalty = e.penalty
        closed = self._set_pause(member, e.paused, e.paused_reason, e.at)
        closed += self._set_reachable(member, e.status not in UNREACHABLE_STATUS, e.at)
        member.status = e.status
        return closed

    def _unseat(self, member: Member) -> None:
        if member.agent is not None and self.seats.get((member.pbx, member.queue, member.agent)) is member:
            del self.seats[(member.pbx, member.queue, member.agent)]

    def _device(self, e: ev.DeviceStateChanged) -> list[AgentSession]:
        closed: list[AgentSession] = []
        for member in self.members.values():
            if member.pbx == e.pbx and e.device in (member.state_interface, member.interface):
                closed += self._set_reachable(member, e.state not in UNREACHABLE_STATES, e.at)
        return closed

    def _set_pause(self, m: Member, paused: bool, reason: str, at: datetime) -> list[AgentSession]:
        closed = []
        if m.paused and (not paused or reason != m.paused_reason):
            closed.append(self._session(m, "pause", m.paused_reason, m.paused_since or at, at))
            m.paused, m.paused_since = False, None
        if paused and not m.paused:
            m.paused, m.paused_reason, m.paused_since = True, reason, at
        if not paused:
            m.paused_reason = ""
        return closed

    def _set_reachable(self, m: Member, reachable: bool, at: datetime) -> list[AgentSession]:
        if reachable and m.unreachable_since is not None:
            since, m.unreachable_since = m.unreachable_since, None
            return [self._session(m, "unreachable", "", since, at)]
        if not reachable and m.unreachable_since is None:
            m.unreachable_since = at
        return []

    def _close(self, m: Member, at: datetime, reconciled: bool = False) -> list[AgentSession]:
        closed = self._set_pause(m, False, "", at) + self._set_reachable(m, True, at)
        closed.append(self._session(m, "login", "", m.logged_in_at, at))
        if reconciled:
            closed = [AgentSession(**{**_fields(s), "reconciled": True}) for s in closed]
        return closed

    def _resync(self, e: ev.Resynced) -> list[AgentSession]:
        fresh = {(m.pbx, m.queue, m.interface): m for m in e.members}
        closed: list[AgentSession] = []
        for key in [k for k in self.members if k[0] == e.pbx and k not in fresh]:
            member = self.members.pop(key)
            self._unseat(member)
            closed += self._close(member, e.at, reconciled=True)
        for state in fresh.values():
            closed += self._state(state)
        return closed

    @staticmethod
    def _session(m: Member, kind: str, reason: str, start: datetime, end: datetime) -> AgentSession:
        return AgentSession(m.pbx, m.agent, m.interface, m.member_name, m.queue, kind, reason, start, end)


def _fields(s: AgentSession) -> dict:
    return {name: getattr(s, name) for name in AgentSession.__dataclass_fields__}
