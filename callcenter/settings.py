"""Configuration: YAML files in one directory, validated with pydantic at start-up.

Every ``*.yaml`` file in the directory contributes top-level keys (a key may live in one file
only), so operators can keep PBXes, departments and agents apart. ``${NAME}`` in a value is
replaced by the environment variable NAME, ``${NAME:-default}`` falls back to a default (used for
secrets, which are never logged). A bad
file raises ConfigError naming the file, the key path and the problem.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from .domain.directory import Directory
from .settings_sections import (  # noqa: F401  the sections, re-exported for callers
    CallbackSettings, CaseSettings, DatabaseSettings, FollowUpSettings, InstanceSettings, NotifySettings,
    PipelineSettings, SmtpSettings, Strict, Thresholds, TwilioSettings, WebSettings, WebTls)
from .settings_sections import PanelSettings, PauseReason, WrapupSettings  # noqa: F401  (issue 11)
from .settings_ivr import IvrSettings  # issue 12: the `ivr:` section
from .settings_sections import SurveyFollowUpSettings  # issue 12: the `survey_followup:` section
from .settings_probes import ProbeSettings  # issue 13: the `probes:` section (hotline probes)
from .settings_reports import ReportSettings  # issue 13: the `reports:` section
from .settings_org import (  # noqa: F401  the organisation's models, re-exported for callers
    Agent, CalendarSettings, Department, Hotline, PbxEndpoint, Person, Post, PostFallback, QueueRef, Window,
    YearSchedule)

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    pass


class Settings(Strict):
    timezone: str = "Asia/Shanghai"
    business_hours: list[Window] = Field(default_factory=lambda: [Window.model_validate("09:00-11:30"),
                                                                  Window.model_validate("13:30-16:30")])
    thresholds: Thresholds = Field(default_factory=Thresholds)
    service_office: str | None = None       # department id that owns unmapped calls
    pbxes: list[PbxEndpoint] = Field(default_factory=list)
    departments: list[Department] = Field(default_factory=list)
    agents: list[Agent] = Field(default_factory=list)
    posts: list[Post] = Field(default_factory=list)
    calendar: CalendarSettings = Field(default_factory=CalendarSettings)
    followup: FollowUpSettings = Field(default_factory=FollowUpSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    cases: CaseSettings = Field(default_factory=CaseSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    instance: InstanceSettings = Field(default_factory=InstanceSettings)
    panel: PanelSettings = Field(default_factory=PanelSettings)
    ivr: IvrSettings = Field(default_factory=IvrSettings)
    survey_followup: SurveyFollowUpSettings = Field(default_factory=SurveyFollowUpSettings)
    probes: ProbeSettings = Field(default_factory=ProbeSettings)
    reports: ReportSettings = Field(default_factory=ReportSettings)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        from zoneinfo import ZoneInfo
        try:
            ZoneInfo(value)
        except Exception as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _references(self) -> "Settings":
        _unique("pbxes", [p.id for p in self.pbxes])
        _unique("departments", [d.id for d in self.departments])
        _unique("agents", [a.id for a in self.agents])
        _unique("posts", [p.id for p in self.posts])
        departments = {d.id for d in self.departments}
        agents = {a.id for a in self.agents}
        pbxes = {p.id for p in self.pbxes} | {"*"} | self.ivr.twilio.pbx_ids   # Twilio Voice (settings_twilio.py)
        for i, d in enumerate(self.departments):
            if d.pbx not in pbxes:
                raise ValueError(f"departments[{i}].pbx: unknown PBX {d.pbx!r}")
            for j, q in enumerate(d.queues):
                if q.pbx not in pbxes:
                    raise ValueError(f"departments[{i}].queues[{j}].pbx: unknown PBX {q.pbx!r}")
            for j, h in enumerate(d.hotlines):
                if h.pbx not in pbxes:
                    raise ValueError(f"departments[{i}].hotlines[{j}].pbx: unknown PBX {h.pbx!r}")
        for i, a in enumerate(self.agents):
            if a.pbx not in pbxes:
                raise ValueError(f"agents[{i}].pbx: unknown PBX {a.pbx!r}")
        for i, p in enumerate(self.posts):
            if p.department not in departments:
                raise ValueError(f"posts[{i}].department: unknown department {p.department!r}")
            if p.pbx is not None and p.pbx not in pbxes - {"*"}:
                raise ValueError(f"posts[{i}].pbx: unknown PBX {p.pbx!r}" + (
                    "; a post is on one PBX (configure one post per PBX)" if p.pbx == "*" else ""))
            for role in ("a", "b"):
                if getattr(p, role) not in agents:
                    raise ValueError(f"posts[{i}].{role}: unknown agent {getattr(p, role)!r}")
        posts = {p.id for p in self.posts}
        for i, p in enumerate(self.posts):
            if p.fallback.kind == "post" and p.fallback.post not in posts:
                raise ValueError(f"posts[{i}].fallback.post: unknown post {p.fallback.post!r}")
            bad = set(p.b_activation) - {"add", "unpause"}
            if bad:
                raise ValueError(f"posts[{i}].b_activation: unknown {sorted(bad)}; use add and/or unpause")
        names = [r.name for r in self.panel.pause_reasons]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValueError(f"panel.pause_reasons[{i}].name: duplicate reason {name!r}")
        if self.panel.wrapup.reason in {r.name for r in self.panel.pause_reasons}:
            raise ValueError(f"panel.wrapup.reason: {self.panel.wrapup.reason!r} is also a pause reason; "
                             "the wrap-up needs a reason of its own")
        if self.service_office and self.service_office not in departments:
            raise ValueError(f"service_office: unknown department {self.service_office!r}")
        from . import settings_checks
        settings_checks.check(self)      # queues, hotlines, posts, interfaces, web.host (issue 10)
        from . import settings_ivr
        settings_ivr.check(self)         # menus: departments, hotlines, queues, digits (issue 12)
        from . import settings_probes
        settings_probes.check(self)      # probes: caller id, hotlines, PBXes (issue 13)
        from . import settings_delivery
        settings_delivery.check(self)    # reports.delivery: formats, recipients, departments (issue 13)
        return self

    def directory(self) -> Directory:
        d = Directory()
        for dept in self.departments:
            d.department_names[dept.id] = dept.name
            d.department_queues[dept.id] = [(q.pbx, q.name) for q in dept.queues]
            for q in dept.queues:
                d.queue_department[(q.pbx, q.name)] = dept.id
            for number in dept.hotlines:
                if number.pbx == "*":
                    d.hotline_department[str(number)] = dept.id
                else:
                    d.pbx_hotline_department[(number.pbx, str(number))] = dept.id
        for agent in self.agents:
            d.agent_names[agent.id] = agent.name
            for interface in agent.interfaces:
                if agent.pbx == "*":
                    d.interface_agent[interface] = agent.id
                else:
                    d.pbx_interface_agent[(agent.pbx, interface)] = agent.id
            for name in agent.member_names:
                if agent.pbx == "*":
                    d.member_agent[name] = agent.id
                else:
                    d.pbx_member_agent[(agent.pbx, name)] = agent.id
        self.ivr.twilio.add_identities(d)        # Twilio agents' client:/number/sip identities
        return d

    def post_pbx(self, post: Post) -> tuple[str | None, str | None]:
        """(PBX, queue) a post is staffed on: its own `pbx`, else its queue's PBX, else the only
        PBX; (None, queue) when that is ambiguous (a queue on every PBX with several PBXes:
        `config check` refuses it) or the queue is not on the post's PBX (refused too)."""
        dept = next((d for d in self.departments if d.id == post.department), None)
        refs = [q for q in (dept.queues if dept else []) if post.queue in (None, q.name)]
        if post.pbx is not None:
            ref = next((q for q in refs if q.pbx in (post.pbx, "*")), None)
            return (post.pbx, ref.name) if ref else (None, post.queue)
        ref = refs[0] if refs else None
        if ref is None:
            return None, post.queue
        if ref.pbx != "*":
            return ref.pbx, ref.name
        if len(self.pbxes) <= 1:
            return (self.pbxes[0].id if self.pbxes else "pbx1"), ref.name
        return None, ref.name

    def hotline_contexts(self) -> dict[str, frozenset[str]]:
        contexts = {p.id: frozenset(p.hotline_contexts) for p in self.pbxes}
        contexts["*"] = frozenset(c for p in self.pbxes for c in p.hotline_contexts) or frozenset({"hotline"})
        contexts.update(self.ivr.twilio.contexts())      # Twilio Voice's calls (ivr/twilio/events.py)
        return contexts

    def hours_of(self, department: str | None) -> list[Window]:
        for d in self.departments:
            if d.id == department and d.business_hours:
                return d.business_hours
        return self.business_hours


def _unique(where: str, ids: list[str]) -> None:
    seen = set()
    for i, value in enumerate(ids):
        if value in seen:
            raise ValueError(f"{where}[{i}].id: duplicate id {value!r}")
        seen.add(value)


def _expand(value: Any, path: str, origin: str) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, f"{path}.{k}" if path else str(k), origin) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{path}[{i}]", origin) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        def sub(match: re.Match) -> str:
            name, default = match.group(1), match.group(2)
            if name not in os.environ:
                if default is not None:
                    return default
                raise ConfigError(f"{origin}: {path}: environment variable {name} is not set")
            return os.environ[name]
        return _ENV.sub(sub, value)
    return value


def load_settings(directory: str | os.PathLike) -> Settings:
    root = Path(directory)
    if not root.is_dir():
        raise ConfigError(f"{root}: configuration directory not found")
    files = sorted(list(root.glob("*.yaml")) + list(root.glob("*.yml")))
    if not files:
        raise ConfigError(f"{root}: no *.yaml configuration file")
    merged: dict[str, Any] = {}
    origin: dict[str, Path] = {}
    for path in files:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not UTF-8 text") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of keys")
        for key, value in data.items():
            if key in merged:
                raise ConfigError(f"{path}: {key}: already set in {origin[key]}")
            merged[key] = _expand(value, str(key), str(path))
            origin[key] = path
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin, root)) from None
    if settings.web.tls is not None:         # relative to the configuration directory; must load
        from .settings_checks import tls_context
        tls = settings.web.tls
        tls.cert, tls.key = (str(root / p) if not Path(p).is_absolute() else p for p in (tls.cert, tls.key))
        try:
            tls_context(Path(tls.cert), Path(tls.key))
        except ValueError as exc:
            raise ConfigError(f"{origin.get('web', root)}: {exc}") from None
    return settings


def _describe(exc: ValidationError, origin: dict[str, Path], root: Path) -> str:
    lines = []
    for err in exc.errors():
        loc = err["loc"]
        path = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
        message = err["msg"].removeprefix("Value error, ")
        if not loc and ": " in message:   # cross-reference errors carry their own key path
            path, message = message.split(": ", 1)
        top = str(loc[0]) if loc else path.split(".")[0].split("[")[0]
        file = origin.get(top, root)
        lines.append(f"{file}: {path or '(top level)'}: {message}")
    return "\n".join(lines)
