"""Normalised PBX events: the small vocabulary every telephony adapter translates into.

Each event is a frozen fact with the PBX id and the moment it happened (timezone-aware, UTC).
The AMI translator produces them today; a Twilio adapter produces the same ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Event:
    pbx: str
    at: datetime


# --- channels -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ChannelCreated(Event):
    uniqueid: str
    linkedid: str
    channel: str
    context: str
    exten: str
    caller_num: str
    caller_name: str


@dataclass(frozen=True, slots=True)
class CallerIdChanged(Event):
    uniqueid: str
    linkedid: str
    caller_num: str
    caller_name: str


@dataclass(frozen=True, slots=True)
class DialplanStep(Event):
    """The channel executes a dialplan application (AMI Newexten)."""
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    application: str


@dataclass(frozen=True, slots=True)
class ChannelHungup(Event):
    uniqueid: str
    linkedid: str
    cause: str


# --- IVR and dialplan markers ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class IvrChoiceMade(Event):
    uniqueid: str
    linkedid: str
    queue: str
    choice: str


@dataclass(frozen=True, slots=True)
class AfterHoursReached(Event):
    uniqueid: str
    linkedid: str
    hotline: str


@dataclass(frozen=True, slots=True)
class QueueExited(Event):
    """The dialplan reports how the Queue application ended (QUEUESTATUS)."""
    uniqueid: str
    linkedid: str
    queue: str
    status: str


# --- queue caller ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class QueueJoined(Event):
    uniqueid: str
    linkedid: str
    queue: str
    position: int


@dataclass(frozen=True, slots=True)
class QueueAbandoned(Event):
    uniqueid: str
    linkedid: str
    queue: str
    hold_time: int


@dataclass(frozen=True, slots=True)
class QueueLeft(Event):
    uniqueid: str
    linkedid: str
    queue: str


@dataclass(frozen=True, slots=True)
class AgentRinging(Event):
    uniqueid: str
    linkedid: str
    queue: str
    interface: str
    member_name: str


@dataclass(frozen=True, slots=True)
class AgentNoAnswer(Event):
    uniqueid: str
    linkedid: str
    queue: str
    interface: str
    member_name: str
    ring_ms: int


@dataclass(frozen=True, slots=True)
class AgentConnected(Event):
    uniqueid: str
    linkedid: str
    queue: str
    interface: str
    member_name: str
    hold_time: int
    ring_time: int


@dataclass(frozen=True, slots=True)
class AgentCompleted(Event):
    uniqueid: str
    linkedid: str
    queue: str
    interface: str
    member_name: str
    talk_time: int
    reason: str


# --- presence -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class MemberState(Event):
    """Queue membership as reported by QueueMemberAdded/Status/Pause or a QueueStatus resync."""
    queue: str
    interface: str
    member_name: str
    state_interface: str
    penalty: int
    paused: bool
    paused_reason: str
    status: int
    in_call: bool


@dataclass(frozen=True, slots=True)
class MemberAdded(MemberState):
    pass


@dataclass(frozen=True, slots=True)
class MemberStatusChanged(MemberState):
    pass


@dataclass(frozen=True, slots=True)
class MemberPauseChanged(MemberState):
    pass


@dataclass(frozen=True, slots=True)
class MemberRemoved(Event):
    queue: str
    interface: str
    member_name: str


@dataclass(frozen=True, slots=True)
class DeviceStateChanged(Event):
    device: str
    state: str


# --- link -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LinkLost(Event):
    reason: str


@dataclass(frozen=True, slots=True)
class WaitingCaller:
    """A caller waiting in a queue at the resync (QueueStatus QueueEntry): the PBX's own wait."""
    queue: str
    uniqueid: str
    channel: str
    caller_num: str
    wait: int                   # seconds in the queue so far
    position: int = 0


@dataclass(frozen=True, slots=True)
class LiveChannel:
    """A channel alive at the resync (CoreShowChannels), with the PBX's own durations."""
    uniqueid: str
    linkedid: str
    channel: str
    context: str
    exten: str
    caller_num: str
    application: str
    application_data: str
    duration: int               # seconds since the channel was created
    bridged: int | None = None  # seconds in its current bridge (talking), None when not bridged or not told
    in_bridge: bool = False     # in a bridge (BridgeId), whether or not the PBX tells for how long


@dataclass(frozen=True, slots=True)
class Resynced(Event):
    """The live picture after (re)login: channels that still exist and queue members, and (when
    the PBX reports them) callers waiting in queues and the channels' durations."""
    live_channels: frozenset[str]
    members: tuple[MemberState, ...] = field(default=())
    waiting: tuple[WaitingCaller, ...] = field(default=())
    channels: tuple[LiveChannel, ...] = field(default=())


# --- outbound (callbacks) -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OriginateResult(Event):
    """The result of an asynchronous Originate: the first leg (the agent's phone) answered or not."""
    action_id: str
    success: bool
    reason: str                 # Asterisk's originate reason: 0 failed, 1 hung up, 3 no answer, 4 answered, 5 busy, 8 congestion
    uniqueid: str
    channel: str
    context: str
    exten: str


@dataclass(frozen=True, slots=True)
class DialStarted(Event):
    """A channel dials another (AMI DialBegin): the Queue application's own dials, or a direct
    Dial() of the dialplan, e.g. to a case owner's phone before the queue."""
    uniqueid: str               # the dialling channel
    linkedid: str
    dest_uniqueid: str
    dest_channel: str
    dial_string: str


@dataclass(frozen=True, slots=True)
class DialEnded(Event):
    uniqueid: str               # the dialling channel ("" for an Originate's own dial)
    linkedid: str
    dest_uniqueid: str
    dest_linkedid: str
    status: str                 # ANSWER, NOANSWER, BUSY, CONGESTION, CHANUNAVAIL, CANCEL
