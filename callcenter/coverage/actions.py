"""What the coverage service does with its decisions: the AMI actions (QueueAdd, QueuePause,
QueuePenalty, QueueRemove; sent only when the PBX is known and the instance is active), the
coverage incidents it opens and closes, and the notices to agents and department heads."""
from __future__ import annotations

import asyncio
import logging

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError

from ..domain import coverage as rules
from ..storage import tables as t

log = logging.getLogger("callcenter.coverage.service")      # the service's logger, as before the split


class CoverageActions:
    """The command side of `Coverage` (a mixin: uses its settings, service, store, clock,
    notifier, board, agents, heads, held, executed, `ready` and `_fallback`)."""

    async def execute(self, c: rules.Command) -> None:
        self.executed.append(c)
        if isinstance(c, rules.AddMember):
            agent = self.agents.get(c.agent)
            name = agent.member_names[0] if agent is not None and agent.member_names else c.member_name
            await self._ami(c.pbx, {"Action": "QueueAdd", "Queue": c.queue, "Interface": c.interface,
                                    "Penalty": c.penalty, "Paused": "false", "MemberName": name,
                                    "StateInterface": self.state_interface(c.agent, c.interface)})
        elif isinstance(c, rules.Unpause):
            await self._ami(c.pbx, {"Action": "QueuePause", "Queue": c.queue, "Interface": c.interface,
                                    "Paused": "false", "Reason": "AB岗补位"})
        elif isinstance(c, rules.SetPenalty):
            await self._ami(c.pbx, {"Action": "QueuePenalty", "Queue": c.queue, "Interface": c.interface,
                                    "Penalty": c.penalty})
        elif isinstance(c, rules.RemoveMember):
            await self._ami(c.pbx, {"Action": "QueueRemove", "Queue": c.queue, "Interface": c.interface})
        elif isinstance(c, rules.NotifyAgent):
            await self._notify_agent(c)
        elif isinstance(c, (rules.OpenIncident, rules.CloseIncident)):
            await self.held.write(c)                   # now, or when the database is back

    async def _write_incident(self, c: rules.OpenIncident | rules.CloseIncident) -> None:
        if isinstance(c, rules.OpenIncident):
            await self._open_incident(c)
            return
        async with self.store.begin() as conn:
            await conn.execute(update(t.coverage_incidents).where(
                t.coverage_incidents.c.post == c.post, t.coverage_incidents.c.closed_at.is_(None))
                .values(closed_at=c.at))
        log.info("coverage: post %s staffed again", c.post)

    async def _ami(self, pbx: str, fields: dict, wait: float = 5.0) -> bool:
        return await self.send_action(pbx, fields, wait)

    async def send_action(self, pbx: str, fields: dict, wait: float = 5.0, who: str = "coverage",
                          logger: logging.Logger = log) -> bool:
        """Send one action, only when this instance is active and the PBX's presence is known
        (else one warning line, nothing sent, False); a link coming up (the resync runs before it
        is marked connected) is waited for briefly. A command lost to a dead link is planned
        again after the resync. The agent desk sends through here too (``who``: "desk")."""
        why = self.ready(pbx)
        if why is not None:
            logger.warning("%s: %s; %s not sent", who, why, fields["Action"])
            return False
        client = self.service.clients.get(pbx)
        if client is not None and not client.connected.is_set():
            try:
                await asyncio.wait_for(client.connected.wait(), wait)
            except asyncio.TimeoutError:
                pass
        if client is None or not client.connected.is_set():
            logger.warning("%s: PBX %s not connected; %s not sent", who, pbx, fields["Action"])
            return False
        await client.action(fields)
        return True

    def state_interface(self, agent_id: str, interface: str) -> str:
        """The device whose state tells whether the member can take a call: the agent's
        configured ``state_interface``, else what the PBX last reported for that interface, else
        the interface itself (right for PJSIP/SIP; a Local channel needs it configured)."""
        agent = self.agents.get(agent_id)
        if agent is not None and agent.state_interface:
            return agent.state_interface
        for m in self.service.presence.members.values():
            if m.interface == interface and m.state_interface:
                return m.state_interface
        return interface

    async def _notify_agent(self, c: rules.NotifyAgent) -> None:
        spec = self.board.specs[c.post]
        agent = self.agents.get(c.agent)
        if self.notifier is None or agent is None:
            return
        text = (f"【AB岗】{spec.a_name}（A岗）暂不可接听，请您立即接替岗位 {c.post} 的来电。" if c.kind == "take_over"
                else f"【AB岗】{spec.a_name}（A岗）已回到岗位 {c.post}，您恢复为B岗备岗。")
        stamp = self.clock.now().isoformat()
        for channel in self.settings.notify.warning_channels:
            recipient = {"panel": agent.id, "sms": agent.phone, "email": agent.email}.get(channel)
            if recipient and channel in self.notifier.channels:
                await self.notifier.notify(f"coverage:{c.post}:{c.kind}:{agent.id}:{stamp}:{channel}", channel,
                                           recipient, "AB岗补位" if c.kind == "take_over" else "AB岗恢复", text)

    async def _open_incident(self, c: rules.OpenIncident) -> None:
        spec = self.board.specs[c.post]
        fallback, _ = self._fallback(spec)
        try:
            async with self.store.begin() as conn:
                incident = (await conn.execute(insert(t.coverage_incidents).values(
                    post=c.post, department=c.department, opened_at=c.at, start_of_day=c.start_of_day,
                    fallback=fallback))).inserted_primary_key[0]
        except IntegrityError:
            return                                     # already open (another instance, a restart)
        log.warning("coverage: post %s has nobody available (incident %s, fallback %s)", c.post, incident, fallback)
        head = self.heads.get(c.department)
        if self.notifier is None or head is None:
            return
        what = "开始办公时无人在岗" if c.start_of_day else "A、B岗均不可接听"
        text = (f"【AB岗空岗】{c.department} 岗位 {c.post}（A：{spec.a_name}，B：{spec.b_name}）{what}，"
                f"来电已转{ {'pool': '部门队列', 'post': '备用岗位', 'callback': '回电登记'}[fallback.split(':')[0]] }。请立即安排人员。")
        for channel in self.settings.notify.escalation_channels:
            recipient = {"panel": f"head:{c.department}", "sms": head.phone, "email": head.email}.get(channel)
            if recipient and channel in self.notifier.channels:
                await self.notifier.notify(f"coverage:incident:{incident}:head:{channel}", channel, recipient,
                                           "AB岗空岗", text)
