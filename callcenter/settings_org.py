"""The organisation in the configuration: PBX endpoints, departments with their hotlines and
queues, agents, A/B posts, business-hour windows and the calendar's own days (pydantic models,
each checked on its own; the checks across them are `Settings`' in callcenter/settings.py).

A mapping may name its PBX (`pbx:`); `"*"` is every PBX (issue 14, docs/operations.md "Several
PBXes").
"""
from __future__ import annotations

from datetime import date, time
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from .settings_sections import Strict


class Window(Strict):
    start: time
    end: time

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = value.replace("–", "-").split("-")
            if len(parts) != 2:
                raise ValueError(f"expected 'HH:MM-HH:MM', got {value!r}")
            return {"start": parts[0].strip(), "end": parts[1].strip()}
        return value

    @model_validator(mode="after")
    def _order(self) -> "Window":
        if self.end <= self.start:
            raise ValueError(f"window ends ({self.end}) before it starts ({self.start})")
        return self


class PbxEndpoint(Strict):
    id: str = Field(min_length=1)
    host: str = "127.0.0.1"
    port: int = Field(5038, ge=1, le=65535)
    username: str
    secret: SecretStr
    hotline_contexts: list[str] = Field(default_factory=lambda: ["hotline"])
    connect_timeout: float = Field(5, gt=0)
    action_timeout: float = Field(10, gt=0)
    ping_interval: float = Field(20, gt=0)
    reconnect_min: float = Field(0.5, gt=0)
    reconnect_max: float = Field(30, gt=0)
    # the PBX's own record, read as a second source (docs/architecture.md "Link loss and restarts")
    queue_log: str | None = None                    # path of Asterisk's queue_log file on this host
    queue_log_poll: float = Field(1, gt=0)          # seconds between reads of the file
    queue_log_settle: float = Field(5, gt=0)        # seconds a finished call may take to arrive over AMI
    # Asterisk's CDR (cdr_csv Master.csv): calls that never reached a queue (IVR, after hours)
    cdr_csv: str | None = None                      # path of Master.csv on this host; needs queue_log
    cdr_csv_timezone: str | None = None             # zone of its local times (usegmtime: UTC); default: timezone
    cdr_csv_poll: float = Field(1, gt=0)            # seconds between reads of the file
    cdr_csv_settle: float = Field(8, gt=0)          # seconds before a row the service did not see is stored

    @field_validator("cdr_csv_timezone")
    @classmethod
    def _cdr_tz(cls, value: str | None) -> str | None:
        from zoneinfo import ZoneInfo
        try:
            value is None or ZoneInfo(value)
        except Exception as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _cdr_needs_queue_log(self) -> "PbxEndpoint":
        # a queue that timed out ends its CDR like an after-hours call; only queue_log tells them apart
        if self.cdr_csv and not self.queue_log:
            raise ValueError("cdr_csv needs queue_log on the same PBX (calls that reached a queue are queue_log's)")
        return self


class QueueRef(Strict):
    name: str
    pbx: str = "*"                           # "*": every PBX (default: the department's pbx)

    @model_validator(mode="before")
    @classmethod
    def _short(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class Person(Strict):
    id: str | None = None                    # the identity a head acts under in the API (reassign)
    name: str
    phone: str | None = None
    email: str | None = None


class Hotline(str):
    """A hotline number (a str) and the PBX it is dialled on ("*": every PBX). In YAML a number, or
    {number: "62000001", pbx: pbx2} (issue 14)."""
    pbx: str = "*"

    def __new__(cls, number: str, pbx: str = "*") -> "Hotline":
        obj = super().__new__(cls, number)
        obj.pbx = pbx
        return obj

    @classmethod
    def __get_pydantic_core_schema__(cls, source, handler):
        from pydantic_core import core_schema
        return core_schema.no_info_plain_validator_function(
            cls._parse, serialization=core_schema.plain_serializer_function_ser_schema(
                lambda h: str(h) if getattr(h, "pbx", "*") == "*" else {"number": str(h), "pbx": h.pbx}))

    @classmethod
    def _parse(cls, value: Any) -> "Hotline":
        if isinstance(value, Hotline):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, dict) and set(value) <= {"number", "pbx"} and isinstance(value.get("number"), str) \
                and isinstance(value.get("pbx", "*"), str) and value.get("pbx", "*"):
            return cls(value["number"], value.get("pbx", "*"))
        raise ValueError(f"expected a quoted number or {{number: \"...\", pbx: ID}}, got {value!r}")


class Department(Strict):
    id: str = Field(min_length=1)
    name: str
    head: Person | None = None               # receives the daily report and escalations
    pbx: str = "*"                           # the PBX of its hotlines and queues that name none ("*": every PBX)
    hotlines: list[Hotline] = Field(default_factory=list)
    queues: list[QueueRef] = Field(min_length=1)
    items: list[str] = Field(default_factory=list)   # 事项 handled by this department
    business_hours: list[Window] | None = None       # default: the top-level business_hours

    @model_validator(mode="after")
    def _own_pbx(self) -> "Department":
        """Hotlines and queues that name no PBX are on the department's (issue 14)."""
        if self.pbx != "*":
            self.hotlines = [h if h.pbx != "*" else Hotline(h, self.pbx) for h in self.hotlines]
            for q in self.queues:
                if "pbx" not in q.model_fields_set:
                    q.pbx = self.pbx
        return self


class Agent(Strict):
    id: str = Field(min_length=1)
    name: str
    interfaces: list[str] = Field(min_length=1)
    member_names: list[str] = Field(default_factory=list)
    state_interface: str | None = None   # the device state QueueAdd names (default: derived from the interface)
    pbx: str = "*"                       # the PBX of these interfaces and member names ("*": every PBX)
    phone: str | None = None
    email: str | None = None


class PostFallback(Strict):
    kind: str = Field("pool", pattern="^(post|pool|callback)$")   # where callers go during a gap
    post: str | None = None                                       # for kind: post


class Post(Strict):
    id: str
    department: str
    a: str
    b: str
    queue: str | None = None                 # default: the department's first queue (on the post's PBX)
    pbx: str | None = None                   # default: its queue's PBX, or the only PBX (settings.post_pbx)
    b_activation: list[str] = Field(default_factory=lambda: ["add", "unpause"])  # how B is made ready
    b_standby: str = Field("penalty", pattern="^(penalty|remove)$")  # B when A returns
    fallback: PostFallback = Field(default_factory=PostFallback)


class YearSchedule(Strict):
    """One year's official schedule (State Council notice): days off and make-up workdays."""
    holidays: list[date] = Field(min_length=1)
    workdays: list[date] = Field(default_factory=list)


class CalendarSettings(Strict):
    """Overrides of the statutory calendar (docs/calendar.md). ``years``: a whole year's list,
    which makes that year covered; ``extra_*``: single days changed on top of everything."""
    extra_holidays: list[date] = Field(default_factory=list)
    extra_workdays: list[date] = Field(default_factory=list)
    years: dict[int, YearSchedule] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> "CalendarSettings":
        off = {d: f"extra_holidays[{i}]" for i, d in enumerate(self.extra_holidays)}
        for i, d in enumerate(self.extra_workdays):
            if d in off:
                raise ValueError(f"extra_workdays[{i}]: {d} is also listed in {off[d]}")
        for year, schedule in self.years.items():
            listed: dict[date, str] = {}
            for kind in ("holidays", "workdays"):
                for i, d in enumerate(getattr(schedule, kind)):
                    key = f"years[{year}].{kind}[{i}]"
                    if d.year != year:
                        raise ValueError(f"{key}: {d} is not in {year}")
                    if d in listed:
                        raise ValueError(f"{key}: {d} is also listed in {listed[d]}")
                    listed[d] = key
                    other = "extra_workdays" if kind == "holidays" else "extra_holidays"
                    if d in getattr(self, other):
                        raise ValueError(f"{key}: {d} contradicts {other}")
        return self
