"""Twilio webhook facts -> the normalised events of callcenter/domain/events.py, so the same
CallTracker builds the call record as from AMI (no I/O; every moment is given).

The caller's CallSid is the call's Uniqueid and Linkedid (one Twilio call, one record); the PBX id
is `ivr.twilio.pbx`; the context is "twilio" (settings_twilio.CONTEXT, a hotline context of that
PBX). What happens when:

    voice webhook            ChannelCreated (exten: the dialled number, caller: From) and a
                             DialplanStep (Answer: the caller leg, as the hotline dialplan's Newexten)
    Emit AfterHours          AfterHoursReached          Emit IvrChoice   IvrChoiceMade
    <Enqueue> rendered       QueueJoined
    the Queue url (bridge)   AgentRinging + AgentConnected (hold time: QueueTime)
    Enqueue action           bridged: AgentCompleted (talk: since the bridge); hangup: QueueAbandoned
                             (hold time: QueueTime); leave/redirected: QueueLeft; queue-full, error:
                             QueueExited (FULL / error: no agent)
    owner <Dial> rendered    DialStarted;  its action: DialEnded (ANSWER dated when answered)
    status callback          ChannelHungup (cause: CallStatus) for completed, busy, no-answer, ...
"""
from __future__ import annotations

from datetime import datetime, timedelta

from callcenter.domain import events as ev
from callcenter.settings_twilio import CONTEXT

FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
DIAL_STATUS = {"completed": "ANSWER", "answered": "ANSWER", "busy": "BUSY", "no-answer": "NOANSWER",
               "failed": "CHANUNAVAIL", "canceled": "CANCEL"}
QUEUE_EXIT = {"queue-full": "FULL", "error": "JOINUNAVAIL", "system-error": "JOINUNAVAIL"}


def channel(sid: str) -> str:
    return f"Twilio/{sid}"


def created(pbx: str, at: datetime, sid: str, hotline: str, caller: str, name: str = "") -> list[ev.Event]:
    """The caller's channel, and its first step in the hotline "dialplan" (the caller leg)."""
    return [ev.ChannelCreated(pbx, at, sid, sid, channel(sid), CONTEXT, hotline, caller or "<unknown>", name),
            ev.DialplanStep(pbx, at, sid, sid, CONTEXT, hotline, "Answer")]


def emitted(pbx: str, at: datetime, sid: str, step) -> ev.Event | None:
    """An engine Emit step as the event the dialplan's UserEvent gives over AMI (or None)."""
    if step.name == "IvrChoice":
        return ev.IvrChoiceMade(pbx, at, sid, sid, step.fields.get("Queue", ""), step.fields.get("Choice", ""))
    if step.name == "AfterHours":
        return ev.AfterHoursReached(pbx, at, sid, sid, step.fields.get("Hotline", ""))
    return None


def joined(pbx: str, at: datetime, sid: str, queue: str) -> ev.QueueJoined:
    return ev.QueueJoined(pbx, at, sid, sid, queue, 1)


def connected(pbx: str, at: datetime, sid: str, queue: str, identity: str, agent: str,
              queue_time: int) -> list[ev.Event]:
    return [ev.AgentRinging(pbx, at, sid, sid, queue, identity, agent),
            ev.AgentConnected(pbx, at, sid, sid, queue, identity, agent, queue_time, 0)]


def queue_result(pbx: str, at: datetime, sid: str, queue: str, result: str, queue_time: int,
                 talk_seconds: int, identity: str = "", agent: str = "", caller_gone: bool = False) -> list[ev.Event]:
    """The Enqueue action (QueueResult) as the queue's events."""
    if result == "bridged":
        reason = "caller" if caller_gone else "agent"
        return [ev.AgentCompleted(pbx, at, sid, sid, queue, identity, agent, talk_seconds, reason)]
    if result == "hangup":
        return [ev.QueueAbandoned(pbx, at, sid, sid, queue, queue_time)]
    if result in ("leave", "redirected"):
        return [ev.QueueLeft(pbx, at, sid, sid, queue)]
    if result in QUEUE_EXIT:
        return [ev.QueueExited(pbx, at, sid, sid, queue, QUEUE_EXIT[result])]
    return []                                         # bridging-in-progress: more to come


def dial_started(pbx: str, at: datetime, sid: str, identity: str) -> ev.DialStarted:
    return ev.DialStarted(pbx, at, sid, sid, f"{sid}-dial", identity, identity)


def dial_ended(pbx: str, at: datetime, sid: str, status: str, duration: int) -> ev.DialEnded:
    """The Dial action arrives when the dial is over; an answered dial is dated when it was
    answered (now - DialCallDuration), as AMI's DialEnd is."""
    mapped = DIAL_STATUS.get(status, "NOANSWER")
    when = at - timedelta(seconds=duration) if mapped == "ANSWER" else at
    return ev.DialEnded(pbx, when, sid, sid, f"{sid}-dial", sid, mapped)


def hungup(pbx: str, at: datetime, sid: str, status: str) -> ev.ChannelHungup | None:
    return ev.ChannelHungup(pbx, at, sid, sid, status) if status in FINAL_STATUSES else None
