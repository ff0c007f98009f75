"""The simulated queue (a mixin of PbxSimulator): callers joining a department queue, members
rung in linear order (A before B), answered, not answered (autopause), retried, abandoned or timed
out, as app_queue reports each of them on AMI.
"""
from __future__ import annotations

from .model import UNANSWERED, Call, Member, Queue, State


class QueueCalls:
    def _dispatch_all(self) -> None:
        for queue in self.queues.values():
            self._dispatch(queue)

    def _dispatch(self, queue: Queue) -> None:
        """Offer waiting callers, in order, to available members: lowest penalty first."""
        if self._closing:
            return
        for call in list(queue.waiting):
            if call.ringing or call.retry_pending:
                continue
            available = [m for m in queue.members if m.available]
            if not available:
                return
            self._ring(call, min(available, key=lambda m: m.penalty))

    def _ring(self, call: Call, m: Member) -> None:
        agent = m.agent
        one, two = call.agent_legs = self._local_pair(agent.exten, "agents", call.one.linkedid)
        call.ringing, agent.ringing, call.ring_started = m, call, self._now
        call.rings += 1
        for leg in (one, two):
            self._send("Newchannel", leg.block())
        one.cid = call.two.cid
        self._newexten(one, 1, "AppQueue", "(Outgoing Line)")
        self._caller_id(one, call.two.cid)
        one.connected = two.connected = call.two.cid
        self._caller_id(two, call.two.cid)
        one.exten = call.two.exten
        self._agent_event("AgentCalled", call, m)
        self._newexten(two, 1, "NoOp", f"Agent {agent.exten} offered a call")
        answers = call.intent not in UNANSWERED and not (call.intent == "a_misses" and call.misses == 0)
        if answers:
            pickup = self._uniform(self.timing.pickup)
            self._newexten(two, 2, "GotoIf", "0?noans")
            self._newexten(two, 3, "Wait", f"{round(pickup, 1):g}")
            self._for_call(pickup, call, self._answer, m, call.rings)
        else:
            self._newexten(two, 2, "GotoIf", "1?noans")
            self._newexten(two, 7, "Wait", "120")
            self._for_call(self.timing.ring_timeout, call, self._no_answer, m, call.rings)

    def _answer(self, call: Call, m: Member, ring: int) -> None:
        if call.ringing is not m or call.rings != ring:
            return
        agent, (one, two) = m.agent, call.agent_legs
        self._newexten(two, 4, "Answer")
        self._up(two)
        self._up(one)
        self._newexten(one, 1, "AppQueue", "(Outgoing Line)")
        self._device(f"Local/{agent.exten}@agents", "INUSE")
        self._device(f"Local/{agent.exten}@agents", "INUSE")
        self._leave_queue(call)
        call.hold = int((self._now - call.joined_at).total_seconds())
        ring_time = max(1, round((self._now - call.ring_started).total_seconds()))
        self._agent_event("AgentConnect", call, m, {"HoldTime": str(call.hold), "RingTime": str(ring_time)})
        self._enter(call, State.TALKING)
        call.ringing, agent.ringing, agent.busy = None, None, call
        call.member, call.connected_at = m, self._now
        m.calls_taken, m.last_call = m.calls_taken + 1, self._epoch()
        self._answered_by(call, agent, m.queue.department)
        talk = self._uniform(self.timing.talk)
        self._newexten(two, 5, "Wait", f"{round(talk, 1):g}")
        target = self._transfer_target(call) if call.intent == "transfer" and not call.transferred else None
        if target is not None:
            self._for_call(self._uniform(self.timing.before_transfer), call, self._transfer, target)
        else:
            self._for_call(talk, call, self._end_talk, self.rng.random() < 0.4)
        self._dispatch_all()

    def _no_answer(self, call: Call, m: Member, ring: int) -> None:
        if call.ringing is not m or call.rings != ring:
            return
        ring_ms = int((self._now - call.ring_started).total_seconds() * 1000)
        self._agent_event("AgentRingNoAnswer", call, m, {"RingTime": str(ring_ms)})
        self._set_pause(m, True, "Auto-Pause")                    # queues.conf: autopause = yes
        self._later(self._uniform(self.timing.auto_pause), self._unpause, m, "Auto-Pause")
        self._cancel_ring(call)
        call.misses += 1
        call.retry_pending = True
        self._for_call(self.timing.retry, call, self._retry)

    def _retry(self, call: Call) -> None:
        call.retry_pending = False
        self._dispatch(call.queue)

    def _cancel_ring(self, call: Call, first_half_only: bool = False) -> None:
        """The offered agent's channels go away (ring no answer, or the caller left)."""
        agent = call.ringing.agent
        one, two = call.agent_legs
        if one is not None:
            self._hangup(one, 0)
        if first_half_only:
            call.agent_legs = (None, two)
            return
        self._hangup(two, 0)
        self._device(f"Local/{agent.exten}@agents", "NOT_INUSE")
        self._device(f"Local/{agent.exten}@agents", "NOT_INUSE")
        call.ringing, agent.ringing, call.agent_legs = None, None, None

    def _leave_queue(self, call: Call) -> None:
        queue = call.queue
        position = queue.waiting.index(call) + 1
        queue.waiting.remove(call)
        if not queue.waiting:
            self._device(f"Queue:{queue.name}", "NOT_INUSE")
        self._queue_event("QueueCallerLeave", call, {"Position": str(position), "Count": str(len(queue.waiting))})

    def _queue_abandon_event(self, call: Call) -> None:
        hold = int((self._now - call.joined_at).total_seconds())
        self._queue_event("QueueCallerAbandon", call, {
            "Position": str(call.queue.waiting.index(call) + 1),
            "OriginalPosition": str(call.original_position), "HoldTime": str(hold)})

    def _abandon(self, call: Call) -> None:
        """The caller hangs up while waiting (or while an agent's phone rings)."""
        ringing = call.ringing is not None
        if ringing:
            self._hangup(call.one, 0)
            self._cancel_ring(call, first_half_only=True)
            self._queue_abandon_event(call)
        else:
            self._queue_abandon_event(call)
            self._hangup(call.one, 0)
        self._leave_queue(call)
        if ringing:
            self._cancel_ring(call)
        self._complete_transferred(call)
        self._hangup(call.two, 0)
        self._finish(call)

    def _timeout(self, call: Call) -> None:
        """QTIMEOUT passed: Queue() returns TIMEOUT and the dialplan goes on, then hangs up."""
        if call.ringing is not None:
            self._cancel_ring(call)
        self._queue_abandon_event(call)
        self._leave_queue(call)
        self._user_event(call.two, 7, "QueueExit", {"Queue": call.queue.name, "Status": "TIMEOUT"})
        self._newexten(call.two, 8, "Hangup")
        self._complete_transferred(call)
        self._hangup(call.two, 16)
        self._hangup(call.one, 16)
        self._finish(call)
