"""The IVR flow's vocabulary (pure): the steps the engine asks an adapter to carry out (Play,
Gather, Record, Route, Hangup, Emit), the results fed back (Digits, HungUp, Done), the flow's
configuration (FlowConfig, Menu, MenuEntry, Prompts) and the facts an adapter looks up before a
caller's walk (Facts). The engine is callcenter/domain/ivr_flow.py, which re-exports all of it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


# --- prompts and steps ----------------------------------------------------------------------


@dataclass(frozen=True)
class Prompt:
    text: str          # zh-CN: TTS source, Twilio <Say language="zh-CN">
    file: str          # the Asterisk sound file (no extension), e.g. "callcenter/welcome-edu"


@dataclass(frozen=True)
class Play:
    prompt: Prompt


@dataclass(frozen=True)
class Gather:
    prompt: Prompt
    max_digits: int
    timeout: float               # seconds to wait for the first key
    name: str = "menu"           # the step: "menu", "closed", "gap_callback", "survey"
    level: int = 0               # menu level (1 = top menu); 0 outside the menu


@dataclass(frozen=True)
class Record:
    prompt: Prompt
    max_seconds: int
    name: str = "callback_record"


@dataclass(frozen=True)
class Route:
    kind: str                    # "queue" | "owner" | "agent" | "callback_task"
    queue: str | None
    target: str | None           # owner/agent: the interfaces to dial ("PJSIP/a&PJSIP/b")
    department: str | None
    item: str | None
    variables: dict = field(default_factory=dict)   # dialplan variables (QNAME, CHOICE, ...)


@dataclass(frozen=True)
class Hangup:
    reason: str                  # "closed", "survey_done", "survey_no_answer", "survey_disabled"


@dataclass(frozen=True)
class Emit:
    name: str                    # "IvrChoice", "AfterHours", "CallbackRequest", "SurveyRating", ...
    fields: dict = field(default_factory=dict)


Step = Play | Gather | Record | Route | Hangup | Emit

# --- results fed back -----------------------------------------------------------------------


@dataclass(frozen=True)
class Digits:
    value: str                   # "" = timeout / no input


@dataclass(frozen=True)
class HungUp:
    pass


@dataclass(frozen=True)
class Done:
    pass


Result = Digits | HungUp | Done

# --- configuration (built from settings by callcenter/settings_ivr.py) --------------------


@dataclass(frozen=True)
class MenuEntry:
    digit: str
    label: str                   # what the prompt says (the 事项)
    queue: str                   # where this choice goes
    item: str | None = None      # the service item recorded with the call
    submenu: "Menu | None" = None


@dataclass(frozen=True)
class Menu:
    prompt: Prompt
    entries: tuple[MenuEntry, ...] = ()

    def entry(self, digit: str) -> MenuEntry | None:
        return next((e for e in self.entries if e.digit == digit), None)


@dataclass(frozen=True)
class Prompts:
    welcome: Prompt
    invalid: Prompt              # "输入有误"
    closed: Prompt               # the hours announcement + callback offer; "{hours}" is replaced
    callback_record: Prompt      # "请在提示音后留言"
    callback_thanks: Prompt
    goodbye: Prompt
    owner: Prompt                # "正在为您转接上次为您服务的工作人员"
    gap_callback: Prompt         # nobody on duty: offer a callback request (按1)
    survey: Prompt               # 1 满意 2 基本满意 3 不满意
    survey_thanks: Prompt


@dataclass(frozen=True)
class FlowConfig:
    department: str | None
    queue: str                   # the department's main queue: 0, no input, fallbacks
    menu: Menu
    prompts: Prompts
    timeout: float = 5.0         # seconds to wait for a key
    max_repeats: int = 2         # menu repeats after a timeout / invalid key, then the queue
    max_digits: int = 1
    record_seconds: int = 60     # a callback message's maximum length
    owner_ring_seconds: int = 20 # the owner's / post agent's phone rings this long, then the queue
    callback_enabled: bool = True
    survey_enabled: bool = True
    survey_timeout: float = 5.0


@dataclass(frozen=True)
class Facts:
    """Looked up by the adapter before the walk starts (the engine does no I/O)."""
    now: datetime
    hotline: str
    caller: str
    pbx: str
    department: str | None
    open_now: bool
    hours_text: str = ""
    owner_route: Any = None      # callcenter/domain/cases.py Route (or None)
    gap_fallback: tuple | None = None   # Coverage.fallback_for: ("pool"|"post:<id>"|"callback", queue)


CALLBACK_DIGIT = "1"
QUEUE_DIGIT = "0"
RATINGS = {"1": "satisfied", "2": "basic", "3": "dissatisfied"}
_KEYS = frozenset("0123456789*#")


def clean_digits(value: str) -> str:
    """Only DTMF keys, at most 8 (what an adapter reads is recorded in the path)."""
    return "".join(c for c in str(value) if c in _KEYS)[:8]
