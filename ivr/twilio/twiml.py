"""The engine's steps as TwiML (twilio.twiml.voice_response), without I/O.

    Play    -> <Say language="zh-CN">text</Say>
    Gather  -> <Gather input="dtmf" numDigits timeout action actionOnEmptyResult="true"><Say/></Gather>
               (no input still reaches the action, with Digits="": the engine's timeout)
    Record  -> <Say>prompt</Say><Record maxLength finishOnKey="#" action/>
    Emit    -> nothing here (the webhook turns it into call-tracking events)
    Route   -> queue: <Enqueue action waitUrl>twilio queue</Enqueue>;
               owner/agent: <Dial timeout action><Client|Number|Sip/></Dial> (the action falls back
               to the queue); callback_task: <Hangup/>
    Hangup  -> <Hangup/>

`Links` carries the URLs (signed by Twilio on the way back, see state.py) the webhook built.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from twilio.twiml.voice_response import Dial, Enqueue, Gather, VoiceResponse

from callcenter.domain import ivr_flow as f

LANGUAGE = "zh-CN"


@dataclass
class Links:
    gather: str                                   # the Gather action
    record: str                                   # the Record action
    dial: str                                     # the owner Dial's action
    enqueue: Callable[[str], tuple[str, str, str]]  # our queue -> (Twilio queue name, action, waitUrl)
    dial_target: Callable[[str], tuple[str, str] | None]  # agent id -> ("client"|"number"|"sip", value)


def say(response, text: str) -> None:
    response.say(text, language=LANGUAGE)


def render(steps: list, links: Links) -> str:
    r = VoiceResponse()
    for step in steps:
        if isinstance(step, f.Play):
            say(r, step.prompt.text)
        elif isinstance(step, f.Gather):
            g = Gather(input="dtmf", num_digits=step.max_digits, timeout=max(1, math.ceil(step.timeout)),
                       action=links.gather, method="POST", action_on_empty_result=True)
            say(g, step.prompt.text)
            r.append(g)
        elif isinstance(step, f.Record):
            say(r, step.prompt.text)
            r.record(max_length=step.max_seconds, finish_on_key="#", action=links.record, method="POST",
                     play_beep=True)
        elif isinstance(step, f.Route):
            route(r, step, links)
        elif isinstance(step, f.Hangup):
            r.hangup()
    return str(r)


def route(r: VoiceResponse, step: f.Route, links: Links) -> None:
    if step.kind == "queue":
        enqueue(r, step.queue, links)
    elif step.kind in ("owner", "agent"):
        target = links.dial_target(step.variables.get("AGENT", ""))
        if target is None:                          # not dialable on Twilio: the queue takes the call
            enqueue(r, step.queue, links)
            return
        d = Dial(timeout=int(step.variables.get("RINGTIME", "20")), action=links.dial, method="POST")
        kind, value = target
        getattr(d, kind)(value)
        r.append(d)
    else:                                           # callback_task: the message is left, goodbye
        r.hangup()


def enqueue(r: VoiceResponse, queue: str, links: Links) -> None:
    name, action, wait = links.enqueue(queue)
    r.append(Enqueue(name, action=action, method="POST", wait_url=wait, wait_url_method="POST"))


def wait_music(text: str, pause: int) -> str:
    """The waitUrl's answer: a prompt, then silence; Twilio asks again when it ends."""
    r = VoiceResponse()
    say(r, text)
    r.pause(length=pause)
    return str(r)


def agent_leg(queue_name: str, bridge_url: str) -> str:
    """The agent's leg: take the next caller of the queue; `bridge_url` runs on the caller's side
    just before the two are connected (AgentConnected, with QueueTime as the hold time)."""
    r = VoiceResponse()
    d = Dial()
    d.queue(queue_name, url=bridge_url, method="POST")
    r.append(d)
    return str(r)


def text(*lines: str, hangup: bool = True) -> str:
    r = VoiceResponse()
    for line in lines:
        say(r, line)
    if hangup:
        r.hangup()
    return str(r)


def empty() -> str:
    return str(VoiceResponse())
