"""The `ivr:` configuration section (issue 12): prompts, menus, timeouts, the survey and the
FastAGI server; its cross-checks; and `flow_for`, which turns it into the pure flow
(callcenter/domain/ivr_flow.py FlowConfig) of one department or hotline.

Every key has a zh-CN default, so a configuration without `ivr:` gets a working flow: each
department's menu lists its `items` (digits 1..n in their order, each to the department's first
queue), 0 or no input reaches that queue. `ivr.menus` overrides a department's (or one of its
hotlines') menu, entries naming another of the department's queues or holding a sub-menu.
Prompt texts may use {department} (its name), {items} (the menu's "…请按1，…" list, menus only)
and {hours} (the business hours, filled in per call). Sound files are names under Asterisk's
sounds directory without extension; `{dept}` in a default file name is the department id.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import Field

from .settings_sections import Strict
from .settings_twilio import TwilioVoiceSettings, check_twilio

if TYPE_CHECKING:
    from .domain import ivr_flow as f
    from .settings import Department, Settings
# The functions that build flows import domain/ivr_flow.py themselves: loading the settings
# (every command, the reports included) never needs it (start-up, issue 13).

SOUND = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*)*")
DIGIT = re.compile(r"[1-9][0-9]?")


class PromptSettings(Strict):
    text: str = Field(min_length=1)
    file: str = Field(min_length=1)        # sound file name, e.g. callcenter/welcome-edu


def _p(text: str, file: str):
    return Field(default_factory=lambda: PromptSettings(text=text, file=file))


class Prompts(Strict):
    welcome: PromptSettings = _p("您好，欢迎致电{department}。", "callcenter/{dept}-welcome")
    menu: PromptSettings = _p("{items}人工服务请按0。", "callcenter/{dept}-menu")
    invalid: PromptSettings = _p("输入有误，请重新选择。", "callcenter/invalid")
    closed: PromptSettings = _p("现在是非工作时间，我们的工作时间是{hours}。如需我们回电，请按1留言；"
                                "结束通话请挂机。", "callcenter/{dept}-closed")
    callback_record: PromptSettings = _p("请在提示音后留下您的姓名、电话和事项，按#号键结束。",
                                         "callcenter/callback-record")
    callback_thanks: PromptSettings = _p("您的留言已记录，我们将在一个工作日内回电，谢谢。",
                                         "callcenter/callback-thanks")
    goodbye: PromptSettings = _p("感谢您的来电，再见。", "callcenter/goodbye")
    owner: PromptSettings = _p("正在为您转接上次为您服务的工作人员，请稍候。", "callcenter/owner")
    gap_callback: PromptSettings = _p("坐席暂时无法接听。如需我们回电，请按1留言；继续等待请按其他键。",
                                      "callcenter/gap-callback")


class SurveySettings(Strict):
    enabled: bool = True
    timeout: float = Field(5, gt=0, le=60)
    prompt: PromptSettings = _p("请对本次服务进行评价：满意请按1，基本满意请按2，不满意请按3。",
                                "callcenter/survey")
    thanks: PromptSettings = _p("感谢您的评价，再见。", "callcenter/survey-thanks")


class FastAgiSettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(4573, ge=1, le=65535)
    session_timeout: float = Field(600, gt=0)   # seconds one call's script may run in all
    read_timeout: float = Field(30, gt=0)       # seconds to wait for Asterisk's next line


class MenuEntrySettings(Strict):
    digit: str
    item: str | None = None                 # the department's 事项 recorded with the choice
    label: str | None = None                # what the prompt says; default: the item
    queue: str | None = None                # default: the department's first queue
    menu: list["MenuEntrySettings"] | None = None    # a sub-menu (keep menus shallow: GB/T 33358)
    prompt: PromptSettings | None = None    # the sub-menu's prompt; default: generated


class MenuSettings(Strict):
    department: str
    hotline: str | None = None              # only this hotline of the department
    entries: list[MenuEntrySettings] = Field(default_factory=list)
    prompt: PromptSettings | None = None    # default: ivr.prompts.menu with {items}
    welcome: PromptSettings | None = None


class IvrSettings(Strict):
    timeout: float = Field(5, gt=0, le=60)        # seconds to wait for a key
    max_repeats: int = Field(2, ge=0, le=5)       # menu repeats (timeout / invalid key), then the queue
    max_digits: int = Field(1, ge=1, le=2)
    record_seconds: int = Field(60, ge=5, le=300) # a callback message's maximum length
    owner_ring_seconds: int = Field(20, ge=5, le=120)   # repeat callers: the owner's phone, then the queue
    callback_enabled: bool = True                 # after hours / coverage gap: offer a callback request
    prompts: Prompts = Field(default_factory=Prompts)
    survey: SurveySettings = Field(default_factory=SurveySettings)
    fastagi: FastAgiSettings = Field(default_factory=FastAgiSettings)
    twilio: TwilioVoiceSettings = Field(default_factory=TwilioVoiceSettings)   # Twilio Voice (ivr/twilio/)
    menus: list[MenuSettings] = Field(default_factory=list)


# --- building the flow ------------------------------------------------------------------------


def _prompt(p: PromptSettings, dept: "Department", **extra: str) -> f.Prompt:
    from .domain import ivr_flow as f
    values = {"department": dept.name, **extra}
    text = re.sub(r"\{(department|items)\}", lambda m: values.get(m.group(1), m.group(0)), p.text)
    return f.Prompt(text, p.file.replace("{dept}", dept.id))


def _items_text(entries: list[tuple[str, str]]) -> str:
    return "".join(f"{label}请按{digit}，" for digit, label in entries)


def _menu(entries: list[MenuEntrySettings], dept: "Department", prompt: PromptSettings,
          file_suffix: str = "") -> f.Menu:
    from .domain import ivr_flow as f
    built = []
    for e in entries:
        label = e.label or e.item or e.digit
        sub = None
        if e.menu:
            sub = _menu(e.menu, dept, e.prompt or prompt, f"{file_suffix}-{e.digit}")
        built.append(f.MenuEntry(e.digit, label, e.queue or dept.queues[0].name, e.item, sub))
    p = _prompt(prompt, dept, items=_items_text([(e.digit, e.label) for e in built]))
    return f.Menu(f.Prompt(p.text, p.file + file_suffix) if file_suffix else p, tuple(built))


def default_entries(dept: "Department") -> list[MenuEntrySettings]:
    """Digits 1..n for the department's items, in their order, all to its first queue."""
    return [MenuEntrySettings(digit=str(i), item=item) for i, item in enumerate(dept.items, 1)]


def menu_settings(settings: "Settings", department: str, hotline: str | None = None) -> MenuSettings | None:
    menus = [m for m in settings.ivr.menus if m.department == department]
    return next((m for m in menus if hotline is not None and m.hotline == hotline), None) \
        or next((m for m in menus if m.hotline is None), None)


def flow_for(settings: "Settings", department: str, hotline: str | None = None) -> f.FlowConfig:
    """The flow of a department (or one of its hotlines: a hotline's own menu first)."""
    from .domain import ivr_flow as f
    dept = next((d for d in settings.departments if d.id == department), None)
    if dept is None:
        raise KeyError(f"unknown department {department!r}")
    ivr, ps = settings.ivr, settings.ivr.prompts
    custom = menu_settings(settings, department, hotline)
    entries = custom.entries if custom and custom.entries else default_entries(dept)
    menu = _menu(entries, dept, (custom.prompt if custom and custom.prompt else None) or ps.menu)
    welcome = (custom.welcome if custom and custom.welcome else None) or ps.welcome
    prompts = f.Prompts(
        welcome=_prompt(welcome, dept), invalid=_prompt(ps.invalid, dept), closed=_prompt(ps.closed, dept),
        callback_record=_prompt(ps.callback_record, dept), callback_thanks=_prompt(ps.callback_thanks, dept),
        goodbye=_prompt(ps.goodbye, dept), owner=_prompt(ps.owner, dept),
        gap_callback=_prompt(ps.gap_callback, dept), survey=_prompt(ivr.survey.prompt, dept),
        survey_thanks=_prompt(ivr.survey.thanks, dept))
    max_digits = max([ivr.max_digits] + [len(e.digit) for e in _walk(entries)])
    return f.FlowConfig(dept.id, dept.queues[0].name, menu, prompts, timeout=ivr.timeout,
                        max_repeats=ivr.max_repeats, max_digits=max_digits, record_seconds=ivr.record_seconds,
                        owner_ring_seconds=ivr.owner_ring_seconds,
                        callback_enabled=ivr.callback_enabled, survey_enabled=ivr.survey.enabled,
                        survey_timeout=ivr.survey.timeout)


def flow_for_hotline(settings: "Settings", hotline: str, pbx: str = "*") -> f.FlowConfig | None:
    """The flow of the department that owns a hotline number (on a PBX); None if none does."""
    for d in settings.departments:
        for h in d.hotlines:
            if str(h) == hotline and (h.pbx == "*" or pbx in ("*", h.pbx)):
                return flow_for(settings, d.id, hotline)
    return None


def business_hours(settings: "Settings", calendar, department: str | None, now) -> tuple[bool, str]:
    """(open_now, hours_text) of a department at ``now`` for ``Facts`` (calendar: a
    WorkdayCalendar; the windows: settings.hours_of(department))."""
    from .domain import ivr_flow as f
    windows = settings.hours_of(department)
    return f.open_now(calendar, now, windows), f.hours_text(windows)


def all_prompts(settings: "Settings") -> dict[str, str]:
    """Every sound file the flows use -> its zh-CN text (the TTS step; one text per file; {hours}
    filled in with the department's business hours)."""
    from .domain import ivr_flow as f
    out: dict[str, str] = {}
    for d in settings.departments:
        hours = f.hours_text(settings.hours_of(d.id))
        numbers = [None] + [str(h) for h in d.hotlines]
        for hotline in numbers:
            flow = flow_for(settings, d.id, hotline)
            for p in vars(flow.prompts).values():
                out.setdefault(p.file, p.text.replace("{hours}", hours))
            menus = [flow.menu]
            while menus:
                m = menus.pop()
                out.setdefault(m.prompt.file, m.prompt.text)
                menus += [e.submenu for e in m.entries if e.submenu is not None]
    return out


def _walk(entries: list[MenuEntrySettings]):
    for e in entries:
        yield e
        if e.menu:
            yield from _walk(e.menu)


# --- checks (called from Settings._references; errors: "key.path: problem") -----------------


def check(settings: "Settings") -> None:
    ivr = settings.ivr
    check_twilio(settings)
    for name, p in _named_prompts(ivr):
        if not SOUND.fullmatch(p.file.replace("{dept}", "x")) or ".." in p.file:
            raise ValueError(f"ivr.{name}.file: {p.file!r} is not a sound file name "
                             "(letters, digits, _ - . and / between parts; no extension needed)")
    departments = {d.id: d for d in settings.departments}
    seen: dict[tuple[str, str | None], int] = {}
    for i, m in enumerate(ivr.menus):
        where = f"ivr.menus[{i}]"
        dept = departments.get(m.department)
        if dept is None:
            raise ValueError(f"{where}.department: unknown department {m.department!r}")
        if m.hotline is not None and m.hotline not in [str(h) for h in dept.hotlines]:
            raise ValueError(f"{where}.hotline: {m.hotline!r} is not a hotline of department {dept.id!r}")
        key = (m.department, m.hotline)
        if key in seen:
            raise ValueError(f"{where}: a second menu for {m.department}"
                             + (f" hotline {m.hotline}" if m.hotline else "") + f" (also ivr.menus[{seen[key]}])")
        seen[key] = i
        for name, p in (("prompt", m.prompt), ("welcome", m.welcome)):
            if p is not None and (not SOUND.fullmatch(p.file.replace("{dept}", "x")) or ".." in p.file):
                raise ValueError(f"{where}.{name}.file: {p.file!r} is not a sound file name")
        _check_entries(m.entries, dept, f"{where}.entries", 1)


def _check_entries(entries: list[MenuEntrySettings], dept: "Department", where: str, level: int) -> None:
    queues = [q.name for q in dept.queues]
    digits: dict[str, int] = {}
    for j, e in enumerate(entries):
        key = f"{where}[{j}]"
        if not DIGIT.fullmatch(e.digit):
            raise ValueError(f"{key}.digit: {e.digit!r} must be 1-99 (0 is the queue, * and # are reserved)")
        if e.digit in digits:
            raise ValueError(f"{key}.digit: {e.digit!r} is used twice in this menu (also [{digits[e.digit]}])")
        digits[e.digit] = j
        if e.queue is not None and e.queue not in queues:
            raise ValueError(f"{key}.queue: {e.queue!r} is not a queue of department {dept.id!r} "
                             f"(its queues: {', '.join(queues)})")
        if e.item is not None and dept.items and e.item not in dept.items:
            raise ValueError(f"{key}.item: {e.item!r} is not a service item of department {dept.id!r}")
        if e.item is None and e.label is None and not e.menu:
            raise ValueError(f"{key}: needs an item or a label (what the prompt says)")
        if e.menu is not None:
            if not e.menu:
                raise ValueError(f"{key}.menu: an empty sub-menu")
            if level >= 3:
                raise ValueError(f"{key}.menu: menus deeper than 3 levels (GB/T 33358 advises shallow menus)")
            if e.prompt is not None and (not SOUND.fullmatch(e.prompt.file.replace("{dept}", "x")) or ".." in e.prompt.file):
                raise ValueError(f"{key}.prompt.file: {e.prompt.file!r} is not a sound file name")
            _check_entries(e.menu, dept, f"{key}.menu", level + 1)


def _named_prompts(ivr: IvrSettings):
    for name in Prompts.model_fields:
        yield f"prompts.{name}", getattr(ivr.prompts, name)
    yield "survey.prompt", ivr.survey.prompt
    yield "survey.thanks", ivr.survey.thanks
