"""One caller through the IVR flow over AGI: the facts first, then the engine's steps as commands.

`IvrAgi` is the pair of FastAGI handlers (`/ivr?hotline=N`, `/survey?hotline=N[&agent=A]`). For each
caller it reads the facts through the app (business hours on the workday calendar, owner routing
`app.cases.route`, the coverage fallback `app.coverage.fallback_for`), builds a
`callcenter.domain.ivr_flow.Session` and carries out its steps:

    Play    -> STREAM FILE <file> ""
    Gather  -> GET DATA <file> <timeout ms> <max digits>        (Digits fed back; "" = no input)
    Record  -> STREAM FILE <prompt>, RECORD FILE <name> wav # <ms> BEEP s=3
    Emit    -> EXEC UserEvent <Name>,Key: value,...              (the same AMI UserEvent as a dialplan's)
    Route   -> SET VARIABLE <name> <value> for each dialplan variable, then IVRROUTE=<kind>
    Hangup  -> HANGUP

A hang-up anywhere (`Hangup` from the channel) is fed to the session as `HungUp()`, so the path
says where the caller left. Every finished session is kept (`finished`, bounded) and passed to
`on_finished` for storage (ivr/records.py `IvrRecords.add`); its log line masks the caller's number. The server
that runs these handlers: ivr/server.py.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Callable

from callcenter.domain import ivr_flow as f
from callcenter.domain.numbers import canonical
from callcenter.domain.validation import InvalidValue, identifier, mask_number, phone_number
from .fastagi import Channel, Hangup

log = logging.getLogger(__name__)
LOOKUP_SECONDS = 2.0           # owner routing answers in ~50 ms; past this the caller goes on without it
VARIABLE = identifier          # dialplan variable names: A-Z a-z 0-9 _ . -
MIN_MESSAGE_SAMPLES = 8000     # a callback message cut by a hang-up counts from 1 s (8 kHz) on


class IvrAgi:
    """`flows(hotline, pbx, department) -> FlowConfig | None`: the flow of a hotline (from the
    `ivr:` configuration). `pbx`: the PBX this server serves when the request does not say
    (`?pbx=` in the AGI URL)."""

    def __init__(self, app, flows: Callable, pbx: str, on_finished: Callable | None = None, keep: int = 1000):
        self.app, self.flows, self.pbx = app, flows, pbx
        self.on_finished = on_finished
        self.finished: deque[dict] = deque(maxlen=keep)
        self.known_pbxes = {p.id for p in getattr(app.settings, "pbxes", ())} or {pbx}

    def routes(self) -> dict:
        return {"ivr": self.ivr, "survey": self.survey}

    # --- the handlers ---

    async def ivr(self, agi: Channel) -> None:
        facts, flow = await self._prepare(agi)
        if flow is None:
            return
        await self._walk(agi, "ivr", f.Session(flow, facts), facts)

    async def survey(self, agi: Channel) -> None:
        facts, flow = await self._prepare(agi)
        if flow is None:
            return
        await self._walk(agi, "survey", f.survey_session(flow, facts), facts)

    # --- facts ---

    async def _prepare(self, agi: Channel):
        params = agi.request.params
        try:
            hotline = phone_number(params.get("hotline", ""))
            pbx = identifier(params.get("pbx") or self.pbx, "a PBX id")
        except InvalidValue as exc:
            log.warning("IVR request %r refused: %s", agi.request.script[:40], exc)
            await agi.verbose("IVR: bad hotline or pbx parameter", 1)
            await agi.hangup()
            return None, None
        if pbx not in self.known_pbxes:
            pbx = self.pbx
        app = self.app
        directory = app.cases.directory
        department = directory.department_of_hotline(hotline, pbx)
        flow = self.flows(hotline, pbx, department)
        if flow is None:
            log.warning("IVR: no flow for hotline %s on %s", hotline, pbx)
            await agi.verbose("IVR: no flow for this hotline", 1)
            await agi.hangup()
            return None, None
        department = department or flow.department
        caller = _caller(agi.request.caller)
        now = app.clock.now()
        windows = app.settings.hours_of(department)
        is_open = f.open_now(app.calendar, now, windows)
        gap = owner = None
        if department:
            gap = app.coverage.fallback_for(department, pbx)
        if is_open and caller and agi.request.script == "ivr":
            try:
                owner = await asyncio.wait_for(app.cases.route(caller, hotline=hotline, department=department, pbx=pbx),
                                               LOOKUP_SECONDS)
            except Exception as exc:                   # the menu still works without owner routing
                log.warning("IVR: owner routing for %s failed: %s", mask_number(caller), type(exc).__name__)
        facts = f.Facts(now=now, hotline=hotline, caller=caller, pbx=pbx, department=department, open_now=is_open,
                        hours_text=f.hours_text(windows), owner_route=owner, gap_fallback=gap)
        return facts, flow

    # --- the walk ---

    async def _walk(self, agi: Channel, script: str, session: f.Session, facts: f.Facts) -> None:
        record = {"script": script, "uniqueid": agi.request.uniqueid, "channel": agi.request.env.get("channel", ""),
                  "hotline": facts.hotline, "caller": facts.caller, "pbx": facts.pbx,
                  "department": session.department, "started_at": facts.now, "recordings": []}
        if script == "survey":                         # who served the call (the dialplan's ?agent=&queue=)
            record.update({k: _ident(agi.request.params.get(k)) for k in ("agent", "queue", "interface")})
        try:
            if script == "ivr":
                await agi.answer()
            steps = session.start()
            while True:
                result = await self._carry_out(agi, steps, record)
                if session.done or result is None:
                    break
                steps = session.feed(result)
            if agi.hung_up and session.route is not None:   # gone while the route was being set
                raise Hangup("hung up before the route was carried out")
        except Hangup:
            if not (session.outcome == "callback_request" and record.get("callback_request_sent")):
                session.feed(f.HungUp())
            else:                       # the message is left and the request raised: it stands
                record["hung_up_after"] = "callback_request"
        finally:
            route = session.route
            record.update(path=list(session.path), outcome=session.outcome,
                          route=None if route is None else {"kind": route.kind, "queue": route.queue,
                                                            "item": route.item, "target": route.target},
                          rating=getattr(session, "rating", None), ended_at=self.app.clock.now())
            self._finish(record)

    async def _carry_out(self, agi: Channel, steps: list, record: dict):
        """Run a batch of steps; the answer of its last waiting step (None when the batch ends)."""
        result = None
        for step in steps:
            if isinstance(step, f.Play):
                await agi.stream_file(step.prompt.file, "")
            elif isinstance(step, f.Gather):
                digits, _ = await agi.get_data(step.prompt.file, int(step.timeout * 1000), step.max_digits)
                result = f.Digits(digits)
            elif isinstance(step, f.Record):
                await agi.stream_file(step.prompt.file, "")
                name = "ivr-callback-" + "".join(c if c.isalnum() else "-" for c in record["uniqueid"])[:60]
                answer = await agi.record_file(name, "wav", "#", step.max_seconds * 1000)
                left = answer.data != "hangup" or _samples(answer) >= MIN_MESSAGE_SAMPLES
                if answer.result == "-1" and answer.data in ("writefile", "randomerror"):
                    log.warning("IVR: callback message of %s not recorded (%s)", record["uniqueid"], answer.data)
                elif left:
                    record["recordings"].append(name)
                if not left:                           # hung up before saying anything
                    raise Hangup("RECORD FILE: hung up before a message")
                result = f.Done()                      # a message left, then a hang-up: still a request
            elif isinstance(step, f.Emit):
                await agi.exec("UserEvent", step.name, *(f"{k}: {v}" for k, v in step.fields.items()))
                if step.name == "CallbackRequest":
                    record["callback_request_sent"] = True
            elif isinstance(step, f.Route):
                for name, value in step.variables.items():
                    await agi.set_variable(VARIABLE(name, "a dialplan variable"), str(value))
                await agi.set_variable("IVRROUTE", step.kind)
            elif isinstance(step, f.Hangup):
                await agi.hangup()
        return result

    def _finish(self, record: dict) -> None:
        self.finished.append(record)
        log.info("IVR %s %s from %s: %s %s", record["script"], record["uniqueid"], mask_number(record["caller"]),
                 record["outcome"], record["route"] and record["route"]["queue"])
        if self.on_finished is not None:
            try:
                self.on_finished(record)
            except Exception as exc:
                log.warning("IVR: storing session %s failed: %s", record["uniqueid"], exc)


def _samples(answer) -> int:
    try:
        return int(answer.extra.get("endpos", "0"))
    except ValueError:
        return 0


def _ident(value: str | None) -> str | None:
    """An agent id, queue or interface from the request when it is a plain one, else None."""
    if value and len(value) <= 64 and all(c.isalnum() or c in "/@._:-" for c in value) and value.isascii():
        return value
    return None


def _caller(number: str) -> str:
    """The caller's number when it is one (not 'unknown', 'anonymous' or garbage), else "", in
    canonical form (callcenter/domain/numbers.py), as the AMI translator gives it."""
    try:
        return phone_number(canonical(number))
    except InvalidValue:
        return ""
