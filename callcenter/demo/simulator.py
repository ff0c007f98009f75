"""A simulated Asterisk: hotline calls and agent presence as the AMI events a real PBX emits.

With ``agi`` (the demo) its hotline dialplan is the one ``callcenter asterisk-config`` generates:
every caller walks the service's FastAGI IVR over TCP and the call follows the route it set
(dialplan.py: menus, callback requests, owner routing, the survey). Without it, it plays the lab
PBX of ``shared/ami-traces/pbx`` for the configured departments: dialplan context ``hotline``
(after-hours check, IVR menu, ``UserEvent`` IvrChoice / QueueExit / AfterHours). Either way: one
queue per department with linear strategy, the post's A agent at penalty 0 and B at penalty 1,
autopause, and agents reached as Local channels. Every message has the headers, in the order, that
the recorded traces show (with ``timestampevents = yes``). Events nobody downstream needs are left
out: VarSet, Dial*, Bridge*, LocalBridge, NewConnectedLine, *HangupRequest and Cdr.

The simulator is a discrete-event machine: ``emit`` receives each message, ``clock`` tells the
time, ``tick()`` runs what is due and returns the seconds until the next action. Without ``agi``
it does no I/O and tests drive it step by step with a fixed clock; the demo drives it in real
time with ``run`` (the AGI conversations wait on its timers).

Agents log in, pause with a reason (会议, 午休...), are auto-paused when they let a call ring,
become unreachable for a while, log out (presence.py). Callers queue, ring members in order, are
answered, abandon or time out (queueing.py). Outcomes come from the dynamics (agents busy, paused or
away; callers short of patience) and from each caller's intention, dealt from a shuffled deck so
that every dozen calls shows the whole mix (the first deck within its first eight calls).
Durations are scaled down (``Timing``) so that a demo of a few seconds shows every kind of call.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from datetime import timedelta
from typing import Callable

from ..domain.calendar import WorkdayCalendar
from ..settings import Settings
from .callers import Callers
from .dialplan import GeneratedDialplan
from .messages import AmiMessages
from .presence import AgentPresence
from .queueing import QueueCalls
from .model import (DEPARTMENT_WEIGHTS, Agent, Call, Emit, Member, OpeningHours,  # noqa: F401
                    Queue, State, Timing)                           # OpeningHours, Timing: run.py imports them here


class PbxSimulator(AmiMessages, GeneratedDialplan, Callers, AgentPresence, QueueCalls):
    """A PBX for the configured departments; call ``start`` once, then ``tick`` (or ``run``).
    ``agi``: (host, port) of the service's FastAGI server: the hotline dialplan is the generated
    one (dialplan.py), each caller walks the real IVR over TCP (needs ``run`` on an event loop);
    None: the lab PBX's hand-written dialplan (after-hours check, a menu, IvrChoice) without I/O."""

    def __init__(self, settings: Settings, emit: Emit, clock, seed: int | None = None,
                 rate: float = 1.0, timing: Timing | None = None, first_seq: int = 1,
                 calendar: WorkdayCalendar | None = None, agi: tuple[str, int] | None = None):
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.settings = settings
        self.emit = emit
        self.clock = clock
        self.rng = random.Random(seed)
        self.rate = rate
        self.timing = timing or Timing()
        self.hours = OpeningHours(settings, calendar)
        self.queues = _queues(settings)
        self.calls: list[Call] = []
        self.stopping = False
        self._closing = False
        self.emitted = 0
        self.calls_started = 0
        self.cut_short = 0           # calls still in progress when ``close`` ended them
        self._now = clock.now()
        self._timers: list = []
        self._order = itertools.count()
        self._seq = itertools.count(first_seq)
        self._local = itertools.count(1)
        self._deck: list[str] = []
        self._decks = 0
        self._callers: list[tuple[str, str]] = []
        self.agi = agi
        self.pbx = settings.pbxes[0].id if settings.pbxes else "pbx1"
        self.by_hotline = {q.hotline: q for q in self.queues.values()}
        self.agi_tasks: set[asyncio.Task] = set()
        self.agi_runs: dict[str, int] = {}           # AGISTATUS -> conversations
        self.ivr_events: dict[str, int] = {}         # UserEvents raised by the IVR (EXEC UserEvent)
        self.answered_callers: list[tuple[tuple[str, str], str, str]] = []   # (caller id, department, agent)
        self.transfers = 0
        self.repeat_calls = 0                        # answered callers who called the department again
        self._prompts: dict[str, dict] = {}
        self._wake_event: asyncio.Event | None = None

    # --- driving ------------------------------------------------------------------------------

    def start(self) -> None:
        """Agents log in; arrivals and presence changes begin."""
        self._sync()
        for queue in self.queues.values():
            for member in queue.members:
                self._login(member)
        self._later(self._gap(), self._arrival)
        self._later(self._uniform(self.timing.presence_every), self._presence)

    def tick(self) -> float:
        """Run every action due by now; return the seconds until the next one."""
        now = self.clock.now()
        while self._timers and self._timers[0][0] <= now:
            due, _, action, args = heapq.heappop(self._timers)
            self._now = max(self._now, due)
            action(*args)
        self._now = max(self._now, now)
        return (self._timers[0][0] - now).total_seconds() if self._timers else 1.0

    async def run(self, halt: asyncio.Event, max_sleep: float = 0.25) -> None:
        """Tick in real time until ``halt`` is set."""
        self._wake_event = wake = asyncio.Event()
        while not halt.is_set():
            wait = min(max(self.tick(), 0.001), max_sleep)
            wake.clear()
            try:
                await asyncio.wait_for(wake.wait(), wait)
            except asyncio.TimeoutError:
                pass

    def _wake(self) -> None:
        """Something outside ``tick`` (an AGI conversation) scheduled an action: tick again now."""
        if self._wake_event is not None:
            self._wake_event.set()

    def stop_arrivals(self) -> None:
        """No new calls and no presence changes; calls in progress go on."""
        self.stopping = True

    def close(self) -> None:
        """End every call in progress the way it would end now, then log every agent out."""
        self._sync()
        self.stopping = self._closing = True
        self.cut_short += len(self.calls)
        for call in list(self.calls):
            {State.IVR: self._ivr_hangup, State.CLOSED: self._closed_end, State.QUEUED: self._abandon,
             State.TALKING: lambda c: self._end_talk(c, by_caller=False), State.DIRECT: self._direct_cancel,
             State.SURVEY: self.agi_caller_hangs_up}[call.state](call)
        for queue in self.queues.values():
            for member in queue.members:
                if member.logged_in:
                    self._logout(member)
        self._timers.clear()

    @property
    def in_flight(self) -> int:
        return len(self.calls)

    # --- scheduling ---------------------------------------------------------------------------

    def _sync(self) -> None:
        self._now = max(self._now, self.clock.now())

    def _later(self, delay: float, action: Callable, *args) -> None:
        due = self._now + timedelta(seconds=max(0.0, delay))
        heapq.heappush(self._timers, (due, next(self._order), action, args))

    def _for_call(self, delay: float, call: Call, action: Callable, *args) -> None:
        """Schedule ``action(call, *args)``; it is dropped if the call changed state meanwhile."""
        phase = call.phase

        def guarded():
            if call.phase == phase:
                action(call, *args)
        self._later(delay, guarded)

    def _enter(self, call: Call, state: State) -> None:
        call.state = state
        call.phase += 1

    def _uniform(self, bounds: tuple[float, float]) -> float:
        return self.rng.uniform(*bounds)

    def _epoch(self) -> int:
        return int(self._now.timestamp())

    # --- a call through the hotline dialplan --------------------------------------------------

    def _arrival(self) -> None:
        if self.stopping:
            return
        self.start_call()
        self._later(self._gap(), self._arrival)

    def _gap(self) -> float:
        """Seconds to the next call: mean 1/rate, less bursty than Poisson (Erlang, k = 4)."""
        return self.rng.gammavariate(4, 1 / (4 * self.rate))

    def start_call(self, department: str | None = None, intent: str | None = None) -> Call:
        """A citizen dials a department's hotline (random department and intention by default)."""
        self._sync()
        queues = list(self.queues.values())
        again = self._repeat_caller() if department is None else None
        if again is not None:
            department = again[1]
        if department is None:
            weights = [DEPARTMENT_WEIGHTS.get(q.department, 1) for q in queues]
            queue = self.rng.choices(queues, weights)[0]
        else:
            queue = next((q for q in queues if q.department == department), None)
            if queue is None:
                raise ValueError(f"department {department!r} has no hotline queue")
        one, two = self._local_pair(queue.hotline, "hotline")
        call = Call(intent, queue.department, queue.hotline, queue, one, two, None)
        self.calls.append(call)
        self.calls_started += 1
        caller = again[0] if again is not None else self._caller()
        for leg in (one, two):
            self._send("Newchannel", leg.block())
        self._newexten(one, 1, "AppDial2", "(Outgoing Line)")
        self._caller_id(one, caller)
        one.connected = two.connected = caller
        self._caller_id(two, caller)
        self._newexten(two, 1, "NoOp", f"Hotline {queue.hotline} from {caller[0]} queue {queue.name}")
        self._newexten(two, 2, "Answer")
        self._up(two)
        self._up(one)
        self._device(f"Local/{call.hotline}@hotline", "INUSE")
        self._device(f"Local/{call.hotline}@hotline", "INUSE")
        self._for_call(self.timing.ivr_answer, call, self._ivr)
        return call

    def _ivr(self, call: Call) -> None:
        two = call.two
        if self.agi is not None:                 # the generated dialplan: the FastAGI IVR decides
            if call.intent is None and self.hours.is_open(call.department, self._now):
                call.intent = self._deal()
                patience = {"abandon_short": self.timing.short_patience,
                            "abandon_long": self.timing.long_patience}.get(call.intent)
                call.patience = self._uniform(patience) if patience else None
            self._agi_ivr(call)
            return
        if not self.hours.is_open(call.department, self._now):
            self._enter(call, State.CLOSED)
            self._newexten(two, 3, "GotoIf", "1?closed")
            self._user_event(two, 9, "AfterHours", {"Hotline": call.hotline})
            self._newexten(two, 10, "Wait", "1")
            self._for_call(self.timing.after_hours_message, call, self._closed_end)
            return
        if call.intent is None:
            call.intent = self._deal()
        patience = {"abandon_short": self.timing.short_patience,
                    "abandon_long": self.timing.long_patience}.get(call.intent)
        call.patience = self._uniform(patience) if patience else None
        menu = self._uniform(self.timing.ivr_menu)
        self._newexten(two, 3, "GotoIf", "0?closed")
        self._newexten(two, 4, "Wait", f"{round(menu, 1):g}")
        if call.intent == "ivr_hangup":
            self._for_call(menu * self.rng.uniform(0.2, 0.9), call, self._ivr_hangup)
        else:
            self._for_call(menu, call, self._join, call.queue)

    def _closed_end(self, call: Call) -> None:
        self._newexten(call.two, 11, "Hangup")
        self._hangup(call.two, 16)
        self._hangup(call.one, 16)
        self._finish(call)

    def _ivr_hangup(self, call: Call) -> None:
        self._complete_transferred(call)
        self._hangup(call.one, 0)
        self._hangup(call.two, 0)
        self._finish(call)

    def _join(self, call: Call, queue: Queue, ivr_event: bool = True) -> None:
        """Queue(); ``ivr_event``: the hand-written dialplan's IvrChoice first (the FastAGI IVR
        raises its own)."""
        self._enter(call, State.QUEUED)
        call.queue, call.ringing, call.retry_pending = queue, None, False
        if ivr_event:
            choice = "0" if self.rng.random() < 0.15 else "1"        # 0: "a person, please"
            self._user_event(call.two, 5, "IvrChoice", {"Queue": queue.name, "Choice": choice})
        self._newexten(call.two, 6, "Queue", f"{queue.name},t,,,{self.timing.queue_timeout:g}")
        if not queue.waiting:
            self._device(f"Queue:{queue.name}", "RINGING")
        queue.waiting.append(call)
        call.joined_at, call.original_position = self._now, len(queue.waiting)
        self._queue_event("QueueCallerJoin", call, {"Position": str(len(queue.waiting)),
                                                    "Count": str(len(queue.waiting))})
        if call.patience is not None:
            self._for_call(call.patience, call, self._abandon)
        self._for_call(self.timing.queue_timeout, call, self._timeout)
        self._dispatch(queue)

    # --- talking ------------------------------------------------------------------------------

    def _end_talk(self, call: Call, by_caller: bool) -> None:
        m, (one, two) = call.member, call.agent_legs
        talk = str(int((self._now - call.connected_at).total_seconds()))
        values = {"HoldTime": str(call.hold), "TalkTime": talk, "Reason": "caller" if by_caller else "agent"}
        survey = self.agi is not None and not by_caller and not self._closing
        if by_caller:
            self._hangup(call.one, 16)
            self._agent_event("AgentComplete", call, m, values)
            self._complete_transferred(call)
            self._hangup(call.two, 16)
            self._hangup(one, 16)
            self._hangup(two, 16)
        else:
            self._newexten(two, 6, "Hangup")
            self._agent_event("AgentComplete", call, m, values)
            self._hangup(two, 16)
            self._hangup(one, 16)
            self._complete_transferred(call)
            if not survey:
                self._hangup(call.two, 16)
                self._hangup(call.one, 16)
        self._device(f"Local/{m.agent.exten}@agents", "NOT_INUSE")
        self._device(f"Local/{m.agent.exten}@agents", "NOT_INUSE")
        m.agent.busy = None
        call.agent_legs = None
        if survey:                      # Queue option c: the caller stays for the survey AGI
            self._survey(call)
        else:
            self._finish(call)
        self._dispatch_all()

    def _transfer_target(self, call: Call) -> Queue | None:
        targets = [q for q in self.queues.values()
                   if q.department != call.department and self.hours.is_open(q.department, self._now)]
        return self.rng.choice(targets) if targets else None

    def _transfer(self, call: Call, target: Queue) -> None:
        """The agent blind-transfers the caller to another department's hotline (Redirect)."""
        m, (one, two) = call.member, call.agent_legs
        old = call.queue
        self.transfers += 1
        call.two.exten = target.hotline
        self._newexten(call.two, 1, "Queue", f"{old.name},t,,,{self.timing.queue_timeout:g}")
        self._newexten(call.two, 2, "Answer")
        self._newexten(call.two, 3, "GotoIf", "0?closed")
        self._newexten(call.two, 4, "Wait", "0")
        self._hangup(one, 16)
        call.transferred.append((m, call.connected_at, call.hold))
        call.member, call.agent_legs, call.patience = None, None, None
        m.agent.busy = None
        if self.agi is not None:        # the other hotline's extension: its IVR, then its route
            self._agi_ivr(call)
        else:
            self._join(call, target)
        self._hangup(two, 16)
        self._device(f"Local/{m.agent.exten}@agents", "NOT_INUSE")
        self._dispatch_all()

    def _complete_transferred(self, call: Call) -> None:
        """The first queue's Queue() ends only now: its AgentComplete, without the agent's channel."""
        for m, connected_at, hold in call.transferred:
            talk = str(int((self._now - connected_at).total_seconds()))
            self._send("AgentComplete", call.two.block(), {
                "Queue": m.queue.name, "Interface": m.agent.interface, "MemberName": m.agent.name,
                "HoldTime": str(hold), "TalkTime": talk, "Reason": "caller"})
        call.transferred.clear()

    def _finish(self, call: Call) -> None:
        self._enter(call, State.DONE)
        if call.agi is not None:
            call.agi.gone()
        self.calls.remove(call)
        self._hotline_device(call)
        self._hotline_device(call)


def _queues(settings: Settings) -> dict[str, Queue]:
    """One queue per department with a hotline; its posts' A (penalty 0) and B (penalty 1) agents."""
    agents = {a.id: _agent(a) for a in settings.agents}
    queues: dict[str, Queue] = {}
    for d in settings.departments:
        if d.hotlines and d.queues:
            queues[d.id] = Queue(d.queues[0].name, d.id, d.hotlines[0])
    for post in settings.posts:
        queue = queues.get(post.department)
        if queue is None:
            continue
        for agent_id, penalty in ((post.a, 0), (post.b, 1)):
            if all(m.agent.id != agent_id for m in queue.members):
                queue.members.append(Member(queue, agents[agent_id], penalty))
    return queues


def _agent(a) -> Agent:
    """Agents answer on Local channels, as in the lab PBX: Local/1001@agents/n."""
    interface = next((i for i in a.interfaces if i.startswith("Local/")), f"Local/{a.id}@agents/n")
    exten = interface.split("/", 1)[1].split("@", 1)[0]
    return Agent(a.id, a.name, interface, exten)
