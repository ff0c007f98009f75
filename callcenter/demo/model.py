"""The simulated PBX's model: timing, opening hours, legs, agents, members, queues and calls,
and the constants of the hotline dialplan it plays (see simulator.py)."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import Enum
from typing import Callable
from zoneinfo import ZoneInfo

from ..domain.calendar import WorkdayCalendar
from ..settings import Settings
from ..workdays import build_calendar

Message = dict[str, str]
Emit = Callable[[Message], None]

PRIVILEGE = {"Newexten": "dialplan,all", "UserEvent": "user,all"} | dict.fromkeys(
    ("AgentCalled", "AgentComplete", "AgentConnect", "AgentRingNoAnswer", "QueueCallerAbandon",
     "QueueCallerJoin", "QueueCallerLeave", "QueueMemberAdded", "QueueMemberPause",
     "QueueMemberRemoved", "QueueMemberStatus"), "agent,all")
STATE_DESC = {0: "Down", 4: "Ring", 6: "Up"}
CAUSE_TXT = {0: "Unknown", 16: "Normal Clearing"}
UNKNOWN = "<unknown>"

# a deck of caller intentions, reshuffled when used up: what the caller and the agents will do
DECK = ("answer",) * 6 + ("a_misses", "transfer", "ivr_hangup", "abandon_short", "abandon_long",
                          "timeout")
UNANSWERED = frozenset({"abandon_short", "abandon_long", "timeout"})   # nobody picks up
DEPARTMENT_WEIGHTS = {"market": 3, "edu": 3, "housing": 2, "medins": 2}  # others weigh 1
MOBILE_PREFIXES = ("130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152",
                   "155", "157", "158", "159", "166", "176", "177", "180", "181", "182", "185", "186",
                   "187", "188", "189", "191", "198", "199")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林高罗郑梁谢宋唐"
GIVEN_NAMES = ("伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛",
               "明", "超", "三", "秀英", "桂英", "建华", "志强", "海燕", "晓东", "玉兰", "国平", "文博")


@dataclass(frozen=True)
class Timing:
    """Durations in seconds, scaled down from a real hotline (range: uniform between the two)."""
    ivr_answer: float = 0.5                         # Answer() to the after-hours check
    ivr_menu: tuple[float, float] = (0.3, 1.5)      # the menu before queueing
    pickup: tuple[float, float] = (0.5, 2.5)        # an agent answers a ringing call after
    ring_timeout: float = 3.0                       # queues.conf timeout: RingNoAnswer after
    retry: float = 1.0                              # queues.conf retry
    queue_timeout: float = 8.0                      # Queue(...,QTIMEOUT)
    talk: tuple[float, float] = (2.0, 6.0)
    before_transfer: tuple[float, float] = (1.5, 3.0)
    after_hours_message: float = 1.0
    short_patience: tuple[float, float] = (1.5, 3.8)   # abandons under 5 s
    long_patience: tuple[float, float] = (5.5, 7.5)
    auto_pause: tuple[float, float] = (1.5, 3.0)    # until an auto-paused agent unpauses
    presence_every: tuple[float, float] = (3.0, 7.0)
    pause: tuple[float, float] = (5.0, 12.0)
    away: tuple[float, float] = (4.0, 8.0)          # logged out or unreachable
    # the FastAGI IVR (the generated dialplan): what the simulated caller hears and does
    prompt: tuple[float, float] = (0.3, 0.8)        # one prompt played (STREAM FILE, GET DATA's prompt)
    key: tuple[float, float] = (0.3, 1.2)           # a caller presses a key this long after the prompt
    key_timeout: float = 2.0                        # GET DATA without a key (the flow's timeout, shortened)
    message: tuple[float, float] = (1.0, 2.5)       # a callback message (RECORD FILE) until #
    direct_ring: float = 3.0                        # Dial(TARGET, ringtime): the owner's phone, then the queue

    def scaled(self, factor: float) -> "Timing":
        def scale(value):
            return tuple(v * factor for v in value) if isinstance(value, tuple) else value * factor
        return Timing(**{f.name: scale(getattr(self, f.name)) for f in fields(self)})


class OpeningHours:
    """Business hours per department on the configured statutory workday calendar."""

    def __init__(self, settings: Settings, calendar: WorkdayCalendar | None = None):
        self.calendar = calendar or build_calendar(settings)
        self.tz = ZoneInfo(settings.timezone)
        self.windows = {d.id: tuple((w.start, w.end) for w in settings.hours_of(d.id))
                        for d in settings.departments}

    def is_open(self, department: str, at: datetime) -> bool:
        return self.calendar.within_business_hours(at, self.windows[department])

    def any_open(self, at: datetime) -> bool:
        return any(self.is_open(d, at) for d in self.windows)

    def next_opening(self, at: datetime) -> datetime | None:
        """The first moment after ``at`` when some department opens (None: none within weeks)."""
        openings = []
        for windows in self.windows.values():
            try:
                openings.append(self.calendar.next_open(at, windows))
            except ValueError:
                pass
        later = [o for o in openings if o > at]
        return min(later) if later else None


@dataclass(eq=False)
class Leg:
    """One channel (one half of a Local channel pair)."""
    channel: str
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    state: int = 0
    priority: int = 1
    cid: tuple[str, str] = (UNKNOWN, UNKNOWN)
    connected: tuple[str, str] = (UNKNOWN, UNKNOWN)

    def block(self, prefix: str = "") -> Message:
        p = prefix
        return {f"{p}Channel": self.channel, f"{p}ChannelState": str(self.state),
                f"{p}ChannelStateDesc": STATE_DESC[self.state], f"{p}CallerIDNum": self.cid[0],
                f"{p}CallerIDName": self.cid[1], f"{p}ConnectedLineNum": self.connected[0],
                f"{p}ConnectedLineName": self.connected[1], f"{p}Language": "en", f"{p}AccountCode": "",
                f"{p}Context": self.context, f"{p}Exten": self.exten, f"{p}Priority": str(self.priority),
                f"{p}Uniqueid": self.uniqueid, f"{p}Linkedid": self.linkedid}


@dataclass(eq=False)
class Agent:
    id: str
    name: str
    interface: str
    exten: str
    busy: "Call | None" = None          # talking to this call
    ringing: "Call | None" = None       # offered this call
    unreachable: bool = False

    @property
    def free(self) -> bool:
        return self.busy is None and self.ringing is None and not self.unreachable


@dataclass(eq=False)
class Member:
    queue: "Queue"
    agent: Agent
    penalty: int
    logged_in: bool = False
    paused: bool = False
    reason: str = ""
    login_time: int = 0
    last_pause: int = 0
    calls_taken: int = 0
    last_call: int = 0

    @property
    def available(self) -> bool:
        return self.logged_in and not self.paused and self.agent.free


@dataclass(eq=False)
class Queue:
    name: str
    department: str
    hotline: str
    members: list[Member] = field(default_factory=list)
    waiting: list["Call"] = field(default_factory=list)
    has_available: bool = False


class State(Enum):
    IVR = "ivr"
    CLOSED = "closed"            # after-hours message playing
    DIRECT = "direct"            # the owner's / post agent's phone dialled directly (首问负责)
    SURVEY = "survey"            # the survey AGI after the agent hung up
    QUEUED = "queued"
    TALKING = "talking"
    DONE = "done"


@dataclass(eq=False)
class Call:
    intent: str | None           # dealt when the IVR first runs in business hours
    department: str
    hotline: str
    queue: Queue
    one: Leg                     # ;1 half: the originating side
    two: Leg                     # ;2 half: runs the hotline dialplan, the caller leg
    patience: float | None       # None: waits until the queue times out
    state: State = State.IVR
    phase: int = 0               # bumped on every state change; stale timers check it
    joined_at: datetime | None = None
    original_position: int = 0
    ringing: Member | None = None
    ring_started: datetime | None = None
    rings: int = 0
    misses: int = 0
    retry_pending: bool = False
    agent_legs: tuple[Leg, Leg] | None = None
    member: Member | None = None
    connected_at: datetime | None = None
    hold: int = 0
    transferred: list[tuple[Member, datetime, int]] = field(default_factory=list)
    agi: object | None = None    # the running AGI() conversation (agi_client.AgiCall)
    variables: dict[str, str] = field(default_factory=dict)   # set by the IVR (SET VARIABLE)
    direct: Agent | None = None  # the agent dialled directly
    direct_answered: bool = False
    menu_answers: int = 0        # keys asked of this caller so far (GET DATA in a menu)
    survey_key: str | None = None    # the caller's mind about the survey, once asked
