"""The `probes:` configuration section (issue 13, 各单位要对电话是否能打通进行核实): hotline probes.

A probe is one test call to a published hotline number: an AMI Originate of
`Local/<hotline>@<context>` presenting `caller_id`, placed in business hours on workdays at
`times` (local clock times) or every `interval_minutes` from the start of each business window.
`hotlines` narrows the numbers probed (default: every published hotline of every department, on
each PBX it is dialled on). `check` cross-checks the section against the departments and PBXes;
every error names its key (`probes.<key>: problem`).
"""
from __future__ import annotations

import re
from datetime import time
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from .domain.validation import InvalidValue, phone_number, single_line
from .settings_org import Hotline
from .settings_sections import Strict

if TYPE_CHECKING:
    from .settings import Settings

CONTEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
DIAL = re.compile(r"[A-Za-z0-9/@._:+\-]*\{number\}[A-Za-z0-9/@._:+\-]*")   # e.g. PJSIP/{number}@trunk


class ProbeSettings(Strict):
    enabled: bool = False
    context: str = "callcenter-probe"       # the Originate's channel: Local/<hotline>@<context>
    caller_id: str | None = None            # the number the probe presents (required when enabled)
    caller_name: str = "热线拨测"
    times: list[time] = Field(default_factory=lambda: [time(9, 30), time(14, 30)])
    interval_minutes: float | None = Field(None, ge=5, le=1440)   # instead of `times`
    answer_timeout: float = Field(30, gt=0, le=300)   # seconds the hotline may take to answer
    hold_seconds: float = Field(2, ge=0, le=60)       # the probe stays on the line, then hangs up
    grace_minutes: float = Field(15, gt=0, le=720)    # a slot missed by longer (service down) is skipped
    tick_seconds: float = Field(30, ge=1, le=600)     # how often the schedule looks for a due slot
    dial: str | None = None                 # `asterisk-config`: Dial this (e.g. PJSIP/{number}@trunk)
    hotlines: list[Hotline] | None = None   # default: every published hotline

    @field_validator("context")
    @classmethod
    def _context(cls, value: str) -> str:
        if not CONTEXT.fullmatch(value) or value.lower() in ("general", "globals"):
            raise ValueError(f"{value[:40]!r} is not a dialplan context name (1 to 64 of A-Z a-z 0-9 _ . -)")
        return value

    @field_validator("caller_id")
    @classmethod
    def _caller_id(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            return phone_number(value)
        except InvalidValue as exc:
            raise ValueError(str(exc)) from None

    @field_validator("caller_name")
    @classmethod
    def _caller_name(cls, value: str) -> str:
        try:
            single_line(value)
        except InvalidValue as exc:
            raise ValueError(str(exc)) from None
        if any(c in value for c in '"<>'):
            raise ValueError("quotes and angle brackets are not allowed in a caller name")
        return value

    @field_validator("dial")
    @classmethod
    def _dial(cls, value: str | None) -> str | None:
        if value is not None and not DIAL.fullmatch(value):
            raise ValueError(f"{value[:60]!r}: expected a dial string holding {{number}}, e.g. "
                             "PJSIP/{number}@trunk (A-Z a-z 0-9 / @ . _ : + - only)")
        return value

    @field_validator("times")
    @classmethod
    def _times(cls, value: list[time]) -> list[time]:
        for i, t in enumerate(value):
            if t.tzinfo is not None:
                raise ValueError(f"[{i}]: a local clock time without a zone, e.g. 09:30")
        return sorted(set(value))


def check(settings: "Settings") -> None:
    """Cross-checks of `probes:` against PBXes and departments (raises ValueError 'key: problem')."""
    p = settings.probes
    if p.enabled and not p.caller_id:
        raise ValueError("probes.caller_id: required when probes are enabled (the number the probe presents, "
                         "so its calls can be told apart from citizens')")
    if p.enabled and not p.times and p.interval_minutes is None:
        raise ValueError("probes.times: empty and no probes.interval_minutes; no probe would ever be placed")
    published = {str(h) for d in settings.departments for h in d.hotlines}
    if p.caller_id and p.caller_id in published:
        raise ValueError(f"probes.caller_id: {p.caller_id} is a hotline number; use a number of its own")
    pbxes = {x.id for x in settings.pbxes} | {"*"}
    for i, h in enumerate(p.hotlines or []):
        try:
            phone_number(str(h))
        except InvalidValue as exc:
            raise ValueError(f"probes.hotlines[{i}]: {exc}") from None
        if str(h) not in published:
            raise ValueError(f"probes.hotlines[{i}]: {h} is not a published hotline of any department")
        if h.pbx not in pbxes:
            raise ValueError(f"probes.hotlines[{i}].pbx: unknown PBX {h.pbx!r}")
