"""One Twilio call through the IVR flow: what each (already checked) webhook does.

`TwilioIvr` mirrors ivr/agi_session.py's IvrAgi: the first webhook reads the facts through the
app (business hours on the workday calendar, owner routing `app.cases.route`, the coverage
fallback), later ones rebuild the session from the state their URL carries (state.py) and feed
it one result. Each answer is TwiML (twiml.py); each webhook's facts go to call tracking as
normalised events (events.py) through `app.service.sink`, so the same CallTracker builds the
call record. A finished IVR or survey session gives the same record dict as IvrAgi._finish, kept
(`finished`, bounded) and handed to `on_finished`.

Server-side memory, in this process only and bounded: `open` (CallSid -> the state of a session
waiting for the caller) for the status callback, whose URL is fixed on the number and so cannot
carry a state: it records where a caller hung up; and `bridged` (CallSid -> the agent and the
moment of the bridge) for the survey's agent and the talk time. After a restart the next webhook
of a call refills `open`; a bridged call's talk time then comes from QueueTime and the enqueue
moment in the URL, its survey record names no agent.
"""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from datetime import datetime, timezone
from typing import Callable
from urllib.parse import urlencode

from callcenter.domain import ivr_flow as f
from callcenter.domain.calls import DIRECT
from callcenter.domain.validation import InvalidValue, mask_number
from callcenter.settings_ivr import flow_for_hotline
from . import events as tev
from . import twiml
from .state import CallState, OwnerRoute, decode, encode, snapshot_owner

log = logging.getLogger(__name__)
LOOKUP_SECONDS = 2.0
KEEP_OPEN = 10000


class _Bounded(OrderedDict):
    def put(self, key, value) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > KEEP_OPEN:
            self.popitem(last=False)


class TwilioIvr:
    def __init__(self, app, on_finished: Callable | None = None, keep: int = 1000):
        self.app, self.settings = app, app.settings
        self.conf = app.settings.ivr.twilio
        self.pbx = self.conf.pbx
        self.base = self.conf.public_url + self.conf.path_prefix
        self.on_finished = on_finished
        self.finished: deque[dict] = deque(maxlen=keep)
        self.open: _Bounded = _Bounded()           # CallSid -> (state, hotline, caller)
        self.bridged: _Bounded = _Bounded()        # CallSid -> (agent, identity, at, queue)
        self._storing: set[asyncio.Task] = set()

    # --- plumbing ---

    def url(self, name: str, **query) -> str:
        query = {k: v for k, v in query.items() if v is not None}
        return f"{self.base}/{name}" + ("?" + urlencode(query) if query else "")

    def _flow(self, hotline: str) -> f.FlowConfig:
        flow = flow_for_hotline(self.settings, hotline, self.pbx)
        if flow is None:
            raise InvalidValue(f"no IVR flow for hotline {hotline} on {self.pbx}")
        return flow

    def _facts(self, state: CallState, hotline: str, caller: str, flow: f.FlowConfig) -> f.Facts:
        department = state.department or flow.department
        owner = None
        if state.owner is not None:
            target = self.conf.agent(state.owner[0])
            owner = OwnerRoute(state.owner, target.identity) if target else None
        return f.Facts(now=state.started, hotline=hotline, caller=caller, pbx=self.pbx, department=department,
                       open_now=state.open_now, hours_text=f.hours_text(self.settings.hours_of(department)),
                       owner_route=owner, gap_fallback=state.gap)

    def _session(self, state: CallState, hotline: str, caller: str):
        flow = self._flow(hotline)
        cls = f.SurveySession if state.script == "survey" else f.Session
        return flow, cls.replay(flow, self._facts(state, hotline, caller, flow), state.results)

    def _dial_target(self, agent: str) -> tuple[str, str] | None:
        a = self.conf.agent(agent)
        if a is None:
            return None
        return ("client", a.client) if a.client else (("number", a.number) if a.number else ("sip", a.sip))

    def _links(self, state: CallState, now: datetime) -> twiml.Links:
        s = encode(state)
        stamp = f"{now.timestamp():.3f}"
        return twiml.Links(
            gather=self.url("gather", s=s), record=self.url("record", s=s), dial=self.url("dial", s=s),
            enqueue=lambda queue: (self.conf.twilio_queue(queue), self.url("queue", s=s, queue=queue, at=stamp),
                                   self.url("wait")),
            dial_target=self._dial_target)

    def _sink(self, items: list) -> None:
        items = [e for e in items if e is not None]
        if items:
            self.app.service.sink(self.pbx, items, self.app.clock.now())

    # --- the webhooks ---

    async def incoming(self, sid: str, hotline: str, caller: str, name: str = "") -> str:
        app, now = self.app, self.app.clock.now()
        department = app.cases.directory.department_of_hotline(hotline, self.pbx)
        flow = flow_for_hotline(self.settings, hotline, self.pbx)
        if flow is None:
            log.warning("Twilio IVR: no flow for hotline %s on %s", hotline, self.pbx)
            return twiml.text()
        department = department or flow.department
        windows = self.settings.hours_of(department)
        is_open = f.open_now(app.calendar, now, windows)
        gap = route = None
        if department:
            gap = app.coverage.fallback_for(department, self.pbx)
        if is_open and caller:
            try:
                route = await asyncio.wait_for(app.cases.route(caller, hotline=hotline, department=department,
                                                               pbx=self.pbx), LOOKUP_SECONDS)
            except Exception as exc:               # the menu still works without owner routing
                log.warning("Twilio IVR: owner routing for %s failed: %s", mask_number(caller), type(exc).__name__)
        owner = snapshot_owner(route, lambda agent: self.conf.agent(agent))
        state = CallState("ivr", now.astimezone(timezone.utc), is_open, department, owner,
                          tuple(gap) if gap else None, [])
        session = f.Session(flow, self._facts(state, hotline, caller, flow))
        first = tev.created(self.pbx, now, sid, hotline, caller, name)
        return self._respond(sid, state, hotline, caller, session, session.start(), first)

    async def gather(self, sid: str, s: str, hotline: str, caller: str, digits: str) -> str:
        state = decode(s)
        _, session = self._session(state, hotline, caller)
        if session.done:                           # a retried webhook: the session went on already
            return twiml.empty()
        result = f.Digits(digits)
        return self._respond(sid, state.with_result(result), hotline, caller, session, session.feed(result))

    async def record(self, sid: str, s: str, hotline: str, caller: str, seconds: int, recording: str | None,
                     gone: bool = False) -> str:
        state = decode(s)
        _, session = self._session(state, hotline, caller)
        if session.done:
            return twiml.empty()
        result = f.Done() if seconds >= 1 else f.HungUp()   # a message from 1 s on, as over AGI
        steps = session.feed(result)
        if isinstance(result, f.HungUp):
            log.info("Twilio IVR: %s left no callback message", sid)
        extra = {"recordings": [recording] if recording and seconds >= 1 else []}
        if gone and isinstance(result, f.Done):    # the message is left and the request raised: it stands
            extra["hung_up_after"] = "callback_request"
        return self._respond(sid, state.with_result(result), hotline, caller, session, steps, extra=extra)

    async def queue_result(self, sid: str, s: str, hotline: str, caller: str, queue: str, enqueued: float,
                           result: str, queue_time: int, call_status: str) -> str:
        state = decode(s)
        now = self.app.clock.now()
        bridge = self.bridged.pop(sid, None)
        gone = call_status in tev.FINAL_STATUSES
        if bridge is not None:
            talk = (now - bridge[2]).total_seconds()
        else:
            talk = now.timestamp() - (enqueued + queue_time)
        agent, identity = (bridge[0], bridge[1]) if bridge else ("", "")
        self._sink(tev.queue_result(self.pbx, now, sid, queue, result, queue_time, max(0, round(talk)),
                                    identity, agent, gone))
        flow = self._flow(hotline)
        if result == "bridged" and not gone:
            return self._survey(sid, state, hotline, caller, agent or None, queue, now)
        if result in tev.QUEUE_EXIT:
            return twiml.text(flow.prompts.goodbye.text)
        return twiml.empty()

    async def dial_result(self, sid: str, s: str, hotline: str, caller: str, status: str, duration: int,
                          call_status: str) -> str:
        state = decode(s)
        now = self.app.clock.now()
        if state.owner is None:
            raise InvalidValue("no owner route in this call's state")
        ended = tev.dial_ended(self.pbx, now, sid, status, duration)
        self._sink([ended])
        if call_status in tev.FINAL_STATUSES:
            return twiml.empty()
        if ended.status == "ANSWER":
            return self._survey(sid, state, hotline, caller, state.owner[0], DIRECT, now)
        _, session = self._session(state, hotline, caller)      # not answered: the route's queue
        queue = session.route.queue if session.route is not None else self._flow(hotline).queue
        self._sink([tev.joined(self.pbx, now, sid, queue)])
        r = twiml.VoiceResponse()
        twiml.enqueue(r, queue, self._links(state, now))
        return str(r)

    async def bridge(self, sid: str, agent: str, queue: str, queue_time: int) -> str:
        now = self.app.clock.now()
        a = self.conf.agent(agent)
        if a is None:
            raise InvalidValue(f"agent {agent!r} has no Twilio identity")
        self.bridged.put(sid, (agent, a.identity, now, queue))
        self._sink(tev.connected(self.pbx, now, sid, queue, a.identity, agent, queue_time))
        return twiml.empty()

    def agent_leg(self, sid: str, caller: str, queue: str | None) -> str:
        a = self.conf.agent_by_identity(caller)
        if a is None:
            log.warning("Twilio IVR: agent leg %s from %s refused: not an agent's identity", sid, mask_number(caller))
            return twiml.text()
        queue = queue or a.queue
        if queue is None:
            raise InvalidValue("which queue? set ?queue= in the agent's voice URL or ivr.twilio.agents[].queue")
        return twiml.agent_leg(self.conf.twilio_queue(queue), self.url("bridge", agent=a.agent, queue=queue))

    def wait(self) -> str:
        return twiml.wait_music(self.conf.wait_prompt, self.conf.wait_pause)

    def status(self, sid: str, call_status: str) -> str:
        if call_status not in tev.FINAL_STATUSES:
            return twiml.empty()
        self.bridged.pop(sid, None)
        pending = self.open.pop(sid, None)
        if pending is not None:                    # hung up while the flow waited for the caller
            state, hotline, caller = pending
            try:
                _, session = self._session(state, hotline, caller)
                session.feed(f.HungUp())
                self._finish(sid, state, hotline, caller, session, {})
            except InvalidValue as exc:
                log.warning("Twilio IVR: session %s not finished: %s", sid, exc)
        self._sink([tev.hungup(self.pbx, self.app.clock.now(), sid, call_status)])
        return twiml.empty()

    # --- internals ---

    def _survey(self, sid, state, hotline, caller, agent, queue, now) -> str:
        survey = CallState("survey", now.astimezone(timezone.utc), state.open_now, state.department,
                           agent=agent, queue=queue)
        flow = self._flow(hotline)
        session = f.survey_session(flow, self._facts(survey, hotline, caller, flow))
        return self._respond(sid, survey, hotline, caller, session, session.start())

    def _respond(self, sid, state, hotline, caller, session, steps, first=(), extra=None) -> str:
        now = self.app.clock.now()
        items, record = list(first), dict(extra or {})
        for step in steps:
            if isinstance(step, f.Emit):
                items.append(tev.emitted(self.pbx, now, sid, step))
                if step.name == "CallbackRequest":
                    record["callback_request_sent"] = True
            elif isinstance(step, f.Route) and step.kind == "queue":
                items.append(tev.joined(self.pbx, now, sid, step.queue))
            elif isinstance(step, f.Route) and step.kind in ("owner", "agent"):
                a = self.conf.agent(step.variables.get("AGENT"))
                items.append(tev.dial_started(self.pbx, now, sid, a.identity) if a
                             else tev.joined(self.pbx, now, sid, step.queue))
        text = twiml.render(steps, self._links(state, now))
        if session.done:
            self.open.pop(sid, None)
            self._finish(sid, state, hotline, caller, session, record)
        else:
            self.open.put(sid, (state, hotline, caller))
        self._sink(items)
        return text

    def _finish(self, sid, state, hotline, caller, session, extra: dict) -> None:
        route = session.route
        record = {"script": state.script, "uniqueid": sid, "channel": tev.channel(sid), "hotline": hotline,
                  "caller": caller, "pbx": self.pbx, "department": session.department,
                  "started_at": state.started, "recordings": []}
        if state.script == "survey":
            a = self.conf.agent(state.agent)
            record.update(agent=state.agent, queue=state.queue, interface=a.identity if a else None)
        record.update(extra)
        record.update(path=list(session.path), outcome=session.outcome,
                      route=None if route is None else {"kind": route.kind, "queue": route.queue,
                                                        "item": route.item, "target": route.target},
                      rating=getattr(session, "rating", None), ended_at=self.app.clock.now())
        self.finished.append(record)
        log.info("Twilio IVR %s %s from %s: %s %s", record["script"], sid, mask_number(caller),
                 record["outcome"], record["route"] and record["route"]["queue"])
        if self.on_finished is not None:
            try:
                done = self.on_finished(record)
                if asyncio.iscoroutine(done):      # an async store: kept until it is done
                    task = asyncio.get_running_loop().create_task(done)
                    self._storing.add(task)
                    task.add_done_callback(self._stored)
            except Exception as exc:
                log.warning("Twilio IVR: storing session %s failed: %s", sid, exc)

    def _stored(self, task: asyncio.Task) -> None:
        self._storing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("Twilio IVR: storing a session failed: %s", task.exception())
