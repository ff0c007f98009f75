"""AMI events to normalised domain events: one small function per event type, one table.

The event time is Asterisk's `Timestamp` header (timestampevents = yes) when present, else the
moment the message was received. Events the domain does not need translate to nothing. Caller
numbers (CallerIDNum) enter in canonical form (callcenter/domain/numbers.py).
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Callable

from ..domain import events as ev
from ..domain.numbers import canonical

log = logging.getLogger(__name__)
Message = dict[str, str]


def event_time(msg: Message, received: datetime) -> datetime:
    stamp = msg.get("Timestamp")
    if stamp:
        try:
            return datetime.fromtimestamp(float(stamp), tz=timezone.utc)
        except (ValueError, OverflowError):
            log.warning("bad Timestamp header %r, using receive time", stamp)
    return received


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


def caller_num(m: Message) -> str:
    """CallerIDNum in canonical form (callcenter/domain/numbers.py): `+8613800000001` from one PBX
    and `13800000001` from another are the same caller downstream."""
    return canonical(m.get("CallerIDNum", ""))


def _newchannel(pbx, at, m):
    return ev.ChannelCreated(pbx, at, m.get("Uniqueid", ""), m.get("Linkedid", ""), m.get("Channel", ""),
                             m.get("Context", ""), m.get("Exten", ""), caller_num(m),
                             m.get("CallerIDName", ""))


def _newcallerid(pbx, at, m):
    return ev.CallerIdChanged(pbx, at, m.get("Uniqueid", ""), m.get("Linkedid", ""),
                              caller_num(m), m.get("CallerIDName", ""))


def _newexten(pbx, at, m):
    return ev.DialplanStep(pbx, at, m.get("Uniqueid", ""), m.get("Linkedid", ""), m.get("Context", ""),
                           m.get("Extension") or m.get("Exten", ""), m.get("Application", ""))


def _hangup(pbx, at, m):
    return ev.ChannelHungup(pbx, at, m.get("Uniqueid", ""), m.get("Linkedid", ""), m.get("Cause", ""))


def _userevent(pbx, at, m):
    name = m.get("UserEvent", "")
    uid, lid = m.get("Uniqueid", ""), m.get("Linkedid", "")
    if name == "IvrChoice":
        return ev.IvrChoiceMade(pbx, at, uid, lid, m.get("Queue", ""), m.get("Choice", ""))
    if name == "AfterHours":
        return ev.AfterHoursReached(pbx, at, uid, lid, m.get("Hotline", ""))
    if name == "QueueExit":
        return ev.QueueExited(pbx, at, uid, lid, m.get("Queue", ""), m.get("Status", ""))
    return None


def _caller_join(pbx, at, m):
    return ev.QueueJoined(pbx, at, m.get("Uniqueid", ""), m.get("Linkedid", ""), m.get("Queue", ""),
                          _int(m.get("Position")))


def _caller_abandon(pbx, at, m):
    return ev.QueueAbandoned(pbx, at, m.get("Uniqueid", ""), m.get("Linkedid", ""), m.get("Queue", ""),
                             _int(m.get("HoldTime")))


def _caller_leave(pbx, at, m):
    return ev.QueueLeft(pbx, at, m.get("Uniqueid", ""), m.get("Linkedid", ""), m.get("Queue", ""))


def _agent_called(pbx, at, m):
    return ev.AgentRinging(pbx, at, m.get("Uniqueid", ""), m.get("Linkedid", ""), m.get("Queue", ""),
                           m.get("Interface", ""), m.get("MemberName", ""))


def _agent_ringnoanswer(pbx, at, m):
    return ev.AgentNoAnswer(pbx, at, m.get("Uniqueid", ""), m.get("Linkedid", ""), m.get("Queue", ""),
                            m.get("Interface", ""), m.get("MemberName", ""), _int(m.get("RingTime")))


def _agent_connect(pbx, at, m):
    return ev.AgentConnected(pbx, at, m.get("Uniqueid", ""), m.get("Linkedid", ""), m.get("Queue", ""),
                             m.get("Interface", ""), m.get("MemberName", ""), _int(m.get("HoldTime")),
                             _int(m.get("RingTime")))


def _agent_complete(pbx, at, m):
    return ev.AgentCompleted(pbx, at, m.get("Uniqueid", ""), m.get("Linkedid", ""), m.get("Queue", ""),
                             m.get("Interface", ""), m.get("MemberName", ""), _int(m.get("TalkTime")),
                             m.get("Reason", ""))


def member_state(cls, pbx, at, m):
    return cls(pbx, at, m.get("Queue", ""), m.get("Interface") or m.get("Location", ""),
               m.get("MemberName") or m.get("Name", ""), m.get("StateInterface", ""),
               _int(m.get("Penalty")), m.get("Paused") == "1", m.get("PausedReason", ""),
               _int(m.get("Status")), m.get("InCall") == "1")


def _member_removed(pbx, at, m):
    return ev.MemberRemoved(pbx, at, m.get("Queue", ""), m.get("Interface", ""), m.get("MemberName", ""))


def _device_state(pbx, at, m):
    return ev.DeviceStateChanged(pbx, at, m.get("Device", ""), m.get("State", ""))


def _originate_response(pbx, at, m):
    return ev.OriginateResult(pbx, at, m.get("ActionID", ""), m.get("Response") == "Success", m.get("Reason", ""),
                              m.get("Uniqueid", ""), m.get("Channel", ""), m.get("Context", ""), m.get("Exten", ""))


def _dial_begin(pbx, at, m):
    return ev.DialStarted(pbx, at, m.get("Uniqueid", ""), m.get("Linkedid", ""), m.get("DestUniqueid", ""),
                          m.get("DestChannel", ""), m.get("DialString", ""))


def _dial_end(pbx, at, m):
    return ev.DialEnded(pbx, at, m.get("Uniqueid", ""), m.get("Linkedid", ""), m.get("DestUniqueid", ""),
                        m.get("DestLinkedid", ""), m.get("DialStatus", ""))


def _contact_status(pbx, at, m):
    """PJSIP ContactStatus: a phone's registration reachable or not, as a device state."""
    endpoint = m.get("EndpointName") or m.get("AOR", "")
    status = m.get("ContactStatus", "")
    state = "UNAVAILABLE" if status in ("Unreachable", "Removed") else "NOT_INUSE"
    return ev.DeviceStateChanged(pbx, at, f"PJSIP/{endpoint}", state) if endpoint else None


TRANSLATORS: dict[str, Callable[[str, datetime, Message], ev.Event | None]] = {
    "Newchannel": _newchannel,
    "NewCallerid": _newcallerid,
    "Newexten": _newexten,
    "Hangup": _hangup,
    "UserEvent": _userevent,
    "QueueCallerJoin": _caller_join,
    "QueueCallerAbandon": _caller_abandon,
    "QueueCallerLeave": _caller_leave,
    "AgentCalled": _agent_called,
    "AgentRingNoAnswer": _agent_ringnoanswer,
    "AgentConnect": _agent_connect,
    "AgentComplete": _agent_complete,
    "QueueMemberAdded": lambda p, a, m: member_state(ev.MemberAdded, p, a, m),
    "QueueMemberStatus": lambda p, a, m: member_state(ev.MemberStatusChanged, p, a, m),
    "QueueMemberPause": lambda p, a, m: member_state(ev.MemberPauseChanged, p, a, m),
    "QueueMemberPaused": lambda p, a, m: member_state(ev.MemberPauseChanged, p, a, m),
    "QueueMemberRemoved": _member_removed,
    "DeviceStateChange": _device_state,
    "OriginateResponse": _originate_response,
    "DialBegin": _dial_begin,
    "DialEnd": _dial_end,
    "ContactStatus": _contact_status,
}


def translate(pbx: str, msg: Message, received: datetime) -> ev.Event | None:
    """One AMI event to one domain event, or None when the domain has no use for it."""
    fn = TRANSLATORS.get(msg.get("Event", ""))
    if fn is None:
        return None
    return fn(pbx, event_time(msg, received), msg)
