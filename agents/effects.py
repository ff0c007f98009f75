"""What the agent desk does with the state machine's effects: the wrap-up pause sent and lifted
(QueuePause with the wrap-up reason on every queue the agent is in; not subject to the A/B guard;
only when this instance is active and the PBX's presence known), deferred pauses and log-outs
carried out through `Coverage.request` (the guard was checked when they were asked for), and the
pause-over-maximum alarm to the heads of the agent's departments (notifier channel "panel").
One failing effect never stops the others: it is logged in one line.
"""
from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from callcenter.ami.client import AmiError
from callcenter.domain.agent_state import ApplyPending, EndWrapup, PauseOverMax, Pending, StartWrapup

log = logging.getLogger("agents.desk")


class Effects:
    """The effect side of `AgentDesk` (a mixin: uses its settings, service, coverage, notifier,
    states, policy, failures and _lock)."""

    async def carry_out(self) -> list[dict]:
        """Every effect queued so far, in order; returns the AMI actions sent."""
        sent: list[dict] = []
        async with self._lock:
            while self.states.effects:
                for effect in self.states.take_effects():
                    try:
                        sent += await self._effect(effect)
                    except AmiError as exc:
                        self.failures += 1
                        log.warning("desk: %s for agent %s not carried out: %s", type(effect).__name__,
                                    effect.agent, exc or type(exc).__name__)
                    except Exception as exc:
                        self.failures += 1
                        log.warning("desk: %s for agent %s failed: %s: %s", type(effect).__name__, effect.agent,
                                    type(exc).__name__, exc)
        return sent

    async def _effect(self, effect) -> list[dict]:
        if isinstance(effect, StartWrapup):
            return await self._each_seat(effect.agent, lambda seat: not seat.paused, {
                "Action": "QueuePause", "Paused": "true", "Reason": self.policy.wrapup_reason})
        if isinstance(effect, EndWrapup):
            return await self._end_wrapup(effect.agent, effect.then)
        if isinstance(effect, ApplyPending):
            return await self._apply(effect.agent, effect.pending)
        if isinstance(effect, PauseOverMax):
            await self._alarm(effect)
        return []

    def _ours(self, seat) -> bool:
        """A seat the wrap-up paused (or whose wrap-up pause may still be on its way)."""
        return not seat.paused or seat.reason == self.policy.wrapup_reason

    async def _end_wrapup(self, agent: str, then: Pending | None) -> list[dict]:
        if then is None:
            return await self._each_seat(agent, self._ours, {"Action": "QueuePause", "Paused": "false"})
        sent = await self._apply(agent, then)
        done = {(s.get("pbx"), s["queue"]) for s in sent}
        rest = {"pause": {"Action": "QueuePause", "Paused": "true", "Reason": then.reason or "暂离"},
                "logout": {"Action": "QueueRemove"}}[then.action]
        # queues the guarded request did not cover (not a post's): the same, not left in wrap-up
        return sent + await self._each_seat(agent, self._ours, rest, skip=done)

    async def _apply(self, agent: str, pending: Pending) -> list[dict]:
        done = await self.coverage.request(agent, pending.action, pending.reason, pending.override_by,
                                           pending.override_reason, guarded=False)
        specs = self.coverage.board.specs
        return [{**s, "pbx": specs[s["post"]].pbx} if s.get("post") in specs else s for s in done["sent"]]

    async def _each_seat(self, agent: str, which, fields: dict, skip: set | None = None) -> list[dict]:
        """One action per queue the agent is a member of (``which(seat)``), each on its own."""
        sent = []
        for (pbx, queue), seat in sorted(self.states.seats_of(agent).items()):
            if (skip and (pbx, queue) in skip) or not which(seat):
                continue
            action = {**fields, "Queue": queue, "Interface": seat.interface}
            try:
                if await self._ami(pbx, action):
                    sent.append({"pbx": pbx, "queue": queue, "action": action["Action"]})
            except AmiError as exc:
                self.failures += 1
                log.warning("desk: %s on %s/%s for agent %s not carried out: %s", action["Action"], pbx, queue,
                            agent, exc or type(exc).__name__)
        return sent

    async def _ami(self, pbx: str, fields: dict, wait: float = 2.0) -> bool:
        if pbx not in self.service.clients:          # no link to that PBX in this process (a replay)
            log.debug("desk: no AMI link to %s; %s not sent", pbx, fields["Action"])
            return False
        return await self.coverage.send_action(pbx, fields, wait, "desk", log)

    def departments_of(self, agent: str) -> list[str]:
        found = [p.department for p in self.settings.posts if agent in (p.a, p.b)]
        for (pbx, queue) in self.states.seats_of(agent):
            department = self.service.directory.department_of_queue(pbx, queue)
            if department is not None:
                found.append(department)
        return list(dict.fromkeys(found))

    async def _alarm(self, e: PauseOverMax) -> None:
        if self.notifier is None or "panel" not in self.notifier.channels:
            log.warning("desk: agent %s paused over the maximum; no panel channel to alarm", e.agent)
            return
        since = e.since.astimezone(ZoneInfo(self.settings.timezone)).strftime("%H:%M")
        subject = "暂停超时"
        body = (f"【暂停超时】{e.name}（{e.agent}）自 {since} 起以“{e.reason}”暂停，已超过该事由的上限 "
                f"{e.max_seconds / 60:g} 分钟。请关注岗位在岗情况。")
        for department in self.departments_of(e.agent):
            try:
                await self.notifier.notify(f"{e.key}:head:{department}", "panel", f"head:{department}", subject, body)
            except Exception as exc:
                self.failures += 1
                log.warning("desk: pause alarm for agent %s to head:%s failed: %s", e.agent, department, exc)
