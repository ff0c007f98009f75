"""The generated dialplan around the FastAGI IVR, played by the simulated PBX (a mixin of
PbxSimulator).

What `callcenter asterisk-config` writes (callcenter/asterisk_config.py) and this plays, per call:
Answer, `AGI(agi://HOST:PORT/ivr?hotline=${EXTEN}&pbx=PBX)` (agi_client.AgiCall over TCP to the
service's FastAGI server), then the variables the IVR set: IVRROUTE `callback_task` -> hang up;
`owner`/`agent` -> `Dial(TARGET, ring, g)` (DialBegin/DialEnd), unanswered -> `Queue(QNAME)`;
`queue` -> `Queue(QNAME)`; the script failed or decided nothing -> `UserEvent(IvrChoice)` and the
hotline's queue. The IVR's own facts (IvrChoice, AfterHours, CallbackRequest, SurveyRating) reach
the AMI stream as the UserEvents of its `EXEC UserEvent` commands. After the agent hangs up
(Queue option c, Dial option g) the caller stays for `AGI(.../survey?hotline=...&queue=QNAME&
agent=AGENT&interface=MEMBERINTERFACE)`.

What the callers press: callers.py.
"""
from __future__ import annotations

import asyncio
import logging

from .agi_client import AgiCall
from .model import UNANSWERED, Agent, Call, Queue, State

log = logging.getLogger(__name__)


class GeneratedDialplan:
    """Needs PbxSimulator's state (settings, rng, timing, queues, agi, _now...) and AmiMessages."""

    # --- the simulator's side of a conversation ----------------------------------------------

    def agi_pause(self, seconds: float, future: asyncio.Future) -> None:
        self._sync()

        def resolve() -> None:
            if not future.done():
                future.set_result(True)
        self._later(seconds, resolve)
        self._wake()

    def agi_prompt_seconds(self) -> float:
        return self._uniform(self.timing.prompt)

    def agi_message_seconds(self) -> float:
        return self._uniform(self.timing.message)

    def agi_user_event(self, call: Call, name: str, fields: dict[str, str]) -> None:
        """`EXEC UserEvent`: the event Asterisk's UserEvent application raises on the channel."""
        self._sync()
        self._send("UserEvent", call.two.block(), {"UserEvent": name, **fields})
        self.ivr_events[name] = self.ivr_events.get(name, 0) + 1

    def agi_hangs_up(self, call: Call) -> None:
        """The script's HANGUP: the channel hangs up."""
        self._sync()
        if call.state is not State.DONE:
            self._complete_transferred(call)
            self._hangup(call.two, 16)
            self._hangup(call.one, 16)
            self._finish(call)

    def agi_caller_hangs_up(self, call: Call) -> None:
        self._sync()
        if call.state is not State.DONE:
            self._complete_transferred(call)
            self._hangup(call.one, 16)
            self._hangup(call.two, 16)
            self._finish(call)

    def _start_agi(self, call: Call, script: str, priority: int, then) -> None:
        host, port = self.agi
        self._newexten(call.two, priority, "AGI", f"agi://{host}:{port}/{script}")
        agi = call.agi = AgiCall(self, call, host, port, script, priority)
        task = asyncio.get_running_loop().create_task(self._agi_task(call, agi, then), name="demo-agi")
        self.agi_tasks.add(task)
        task.add_done_callback(self.agi_tasks.discard)

    async def _agi_task(self, call: Call, agi: AgiCall, then) -> None:
        try:
            status, variables = await agi.run()
            self.agi_runs[status] = self.agi_runs.get(status, 0) + 1
            if call.agi is agi:
                call.agi = None
            self._sync()
            then(call, status, variables)
        except Exception:                                # one call's trouble never stops the PBX
            log.exception("demo PBX: the AGI of call %s failed", call.two.uniqueid)
        finally:
            self._wake()

    async def agi_settled(self, timeout: float = 5.0) -> None:
        """Until every AGI conversation has ended (after ``close``)."""
        if self.agi_tasks:
            await asyncio.wait(list(self.agi_tasks), timeout=timeout)

    # --- the hotline dialplan ------------------------------------------------------------------

    def _agi_ivr(self, call: Call) -> None:
        call.variables = {}
        self._enter(call, State.IVR)
        self._start_agi(call, f"ivr?hotline={call.two.exten}&pbx={self.pbx}", 9, self._after_ivr)

    def _after_ivr(self, call: Call, status: str, variables: dict[str, str]) -> None:
        if call.state is State.DONE:
            return                                   # hung up in the IVR (the caller or the script)
        call.variables = dict(variables)
        two, route = call.two, variables.get("IVRROUTE", "")
        if status != "SUCCESS":
            route = ""
        self._newexten(two, 11, "GotoIf", f'$["{status}" != "SUCCESS"]?fallback')
        if route == "callback_task":
            self._closed_end(call)
            return
        if route in ("owner", "agent"):
            agent = self._agent_at(variables.get("TARGET", ""))
            if agent is not None:
                self._dial_direct(call, agent)
                return
        queue = self._queue_named(variables.get("QNAME", ""))
        if route in ("queue", "owner", "agent") and queue is not None:   # (a phone this PBX does not
            self._join(call, queue, ivr_event=False)                     # simulate: unanswered, the queue)
            return
        queue = self.by_hotline[two.exten]           # fallback: the hotline's queue, as the dialplan does
        call.variables["QNAME"] = queue.name
        self._user_event(two, 16, "IvrChoice", {"Queue": queue.name, "Choice": variables.get("CHOICE", "")})
        self._join(call, queue, ivr_event=False)

    def _queue_named(self, name: str) -> Queue | None:
        return next((q for q in self.queues.values() if q.name == name), None)

    def _agent_at(self, target: str) -> Agent | None:
        interfaces = target.split("&")
        return next((m.agent for q in self.queues.values() for m in q.members if m.agent.interface in interfaces),
                    None)

    # --- 首问负责: the owner's phone first -------------------------------------------------------

    def _dial_direct(self, call: Call, agent: Agent) -> None:
        self._enter(call, State.DIRECT)
        two, target = call.two, call.variables.get("TARGET", agent.interface)
        call.direct, call.direct_answered = agent, False
        self._newexten(two, 20, "Dial", f"{target},{self.timing.direct_ring:g},g")
        one_a, two_a = call.agent_legs = self._local_pair(agent.exten, "agents", call.one.linkedid)
        for leg in (one_a, two_a):
            self._send("Newchannel", leg.block())
        self._newexten(one_a, 1, "AppDial", "(Outgoing Line)")
        self._caller_id(one_a, two.cid)
        one_a.connected = two_a.connected = two.cid
        self._caller_id(two_a, two.cid)
        self._send("DialBegin", two.block(), one_a.block("Dest"), {"DialString": target})
        self._newexten(two_a, 1, "NoOp", f"Agent {agent.exten} offered a call")
        if not agent.free:
            self._for_call(0.05, call, self._direct_unanswered, "BUSY")
            return
        agent.ringing = call
        if call.intent in UNANSWERED or call.intent == "a_misses":
            self._for_call(self.timing.direct_ring, call, self._direct_unanswered, "NOANSWER")
        else:
            self._for_call(self._uniform(self.timing.pickup), call, self._direct_answer)

    def _release_direct(self, call: Call, cause: int) -> None:
        agent, (one_a, two_a) = call.direct, call.agent_legs
        self._hangup(one_a, cause)
        self._hangup(two_a, cause)
        if call in (agent.ringing, agent.busy):      # not when the owner was busy on another call
            self._device(f"Local/{agent.exten}@agents", "NOT_INUSE")
        if agent.ringing is call:
            agent.ringing = None
        if agent.busy is call:
            agent.busy = None
        call.agent_legs, call.direct = None, None

    def _direct_unanswered(self, call: Call, status: str) -> None:
        self._send("DialEnd", call.two.block(), call.agent_legs[0].block("Dest"), {"DialStatus": status})
        self._release_direct(call, 0)
        queue = self._queue_named(call.variables.get("QNAME", "")) or self.by_hotline[call.two.exten]
        self._newexten(call.two, 24, "GotoIf", '$["${QNAME}" = ""]?fallback')
        self._join(call, queue, ivr_event=False)
        self._dispatch_all()

    def _direct_answer(self, call: Call) -> None:
        agent, (one_a, two_a) = call.direct, call.agent_legs
        self._newexten(two_a, 4, "Answer")
        self._up(two_a)
        self._up(one_a)
        self._send("DialEnd", call.two.block(), one_a.block("Dest"), {"DialStatus": "ANSWER"})
        self._device(f"Local/{agent.exten}@agents", "INUSE")
        agent.ringing, agent.busy = None, call
        self._enter(call, State.DIRECT)
        call.direct_answered, call.connected_at = True, self._now
        self._answered_by(call, agent, self.by_hotline[call.two.exten].department)
        self._for_call(self._uniform(self.timing.talk), call, self._direct_end_talk, self.rng.random() < 0.4)

    def _direct_end_talk(self, call: Call, by_caller: bool) -> None:
        self._complete_transferred(call)         # a transferred caller's first queue ends only now
        if by_caller or self._closing:
            self._hangup(call.one, 16)
            self._hangup(call.two, 16)
            self._release_direct(call, 16)
            self._finish(call)
        else:
            self._newexten(call.agent_legs[1], 6, "Hangup")
            self._release_direct(call, 16)
            self._survey(call)
        self._dispatch_all()

    def _direct_cancel(self, call: Call) -> None:
        """The end of the demo while the owner's phone rings or the two talk."""
        if call.direct_answered:
            self._direct_end_talk(call, True)
            return
        self._send("DialEnd", call.two.block(), call.agent_legs[0].block("Dest"), {"DialStatus": "CANCEL"})
        self._complete_transferred(call)
        self._hangup(call.one, 16)
        self._release_direct(call, 0)
        self._hangup(call.two, 16)
        self._finish(call)

    # --- the survey after the agent hung up -----------------------------------------------------

    def _survey(self, call: Call) -> None:
        self._enter(call, State.SURVEY)
        v = call.variables
        interface = call.member.agent.interface if call.member is not None and not call.direct_answered else ""
        if interface:
            self._newexten(call.two, 30, "Set", f"SURVEY_IF={interface}")
        script = (f"survey?hotline={call.two.exten}&pbx={self.pbx}&queue={v.get('QNAME', '')}"
                  f"&agent={v.get('AGENT', '')}&interface={interface}")
        self._start_agi(call, script, 31, self._after_survey)

    def _after_survey(self, call: Call, status: str, variables: dict[str, str]) -> None:
        if call.state is State.DONE:
            return
        self._newexten(call.two, 32, "Hangup")
        self._hangup(call.two, 16)
        self._hangup(call.one, 16)
        self._finish(call)
