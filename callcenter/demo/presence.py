"""The simulated agents' presence (a mixin of PbxSimulator): log-ins and log-outs, pauses with a
reason (会议, 午休...), phones that become unreachable for a while, and the device and queue
member events they give, while at most a few members are away at once.
"""
from __future__ import annotations

from .model import Agent, Member, Queue


class AgentPresence:
    def _queue_availability(self, queue: Queue) -> None:
        available = any(m.logged_in and not m.paused for m in queue.members)
        if available != queue.has_available:
            queue.has_available = available
            self._device(f"Queue:{queue.name}_avail", "NOT_INUSE" if available else "INUSE")

    def _login(self, m: Member) -> None:
        m.logged_in, m.paused, m.reason, m.login_time = True, False, "", self._epoch()
        self._member_event("QueueMemberAdded", m)
        self._queue_availability(m.queue)
        self._dispatch_all()

    def _logout(self, m: Member) -> None:
        m.logged_in = False
        self._member_event("QueueMemberRemoved", m)
        if m.paused:
            self._device(f"Queue:{m.queue.name}_pause_{m.agent.interface}", "NOT_INUSE")
        m.paused, m.reason = False, ""
        self._queue_availability(m.queue)

    def _set_pause(self, m: Member, paused: bool, reason: str = "") -> None:
        m.paused, m.reason = paused, reason if paused else ""
        if paused:
            m.last_pause = self._epoch()
        self._device(f"Queue:{m.queue.name}_pause_{m.agent.interface}", "INUSE" if paused else "NOT_INUSE")
        self._queue_availability(m.queue)
        self._member_event("QueueMemberPause", m)
        if not paused:
            self._dispatch_all()

    def _unpause(self, m: Member, reason: str) -> None:
        if m.logged_in and m.paused and m.reason == reason:
            self._set_pause(m, False)

    def _relogin(self, m: Member) -> None:
        if not m.logged_in and not self.stopping:
            self._login(m)

    def _reachable(self, agent: Agent, reachable: bool) -> None:
        agent.unreachable = not reachable
        for m in self._members_of(agent):
            if m.logged_in:
                self._member_event("QueueMemberStatus", m)
        self._device(f"Custom:{agent.exten}", "NOT_INUSE" if reachable else "UNAVAILABLE")
        if reachable:
            self._dispatch_all()

    def _members_of(self, agent: Agent) -> list[Member]:
        return [m for q in self.queues.values() for m in q.members if m.agent is agent]

    def _pause_reason(self) -> str:
        hour = self._now.astimezone(self.hours.tz).hour
        if 11 <= hour < 14 and self.rng.random() < 0.8:
            return "午休"
        return self.rng.choice(("会议", "会议", "培训", "临时离开"))

    def _presence(self) -> None:
        """One presence change somewhere, while at most a few members are away at once."""
        if self.stopping:
            return
        members = [m for q in self.queues.values() for m in q.members]
        away = sum(1 for m in members if not m.logged_in or m.paused or m.agent.unreachable)
        idle = [m for m in members if m.logged_in and not m.paused and m.agent.free]
        if idle and away < max(2, len(members) // 5):
            m = self.rng.choice(idle)
            kind = self.rng.choices(("pause", "logout", "unreachable"), (6, 2, 1))[0]
            if kind == "pause":
                reason = self._pause_reason()
                self._set_pause(m, True, reason)
                self._later(self._uniform(self.timing.pause), self._unpause, m, reason)
            elif kind == "logout":
                self._logout(m)
                self._later(self._uniform(self.timing.away), self._relogin, m)
            else:
                self._reachable(m.agent, False)
                self._later(self._uniform(self.timing.away), self._reachable, m.agent, True)
        self._later(self._uniform(self.timing.presence_every), self._presence)
