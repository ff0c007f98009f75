"""The Asterisk side of the IVR, written from the configuration (`callcenter asterisk-config`).

Pure apart from reading the settings object: `generate(settings, ...)` returns the text of two files
that an administrator includes (docs/operations.md "Connecting a real Asterisk to the IVR"):

- `extensions_callcenter.conf`: the PBX's hotline context (its first `hotline_contexts` entry, so
  the tracker and the CDR reader see the calls where they expect them) with one extension per
  hotline number on that PBX. Each one answers, asks the FastAGI server
  (`AGI(agi://HOST:PORT/ivr?hotline=${EXTEN})`, ivr/) what to do, then follows the variables the
  flow set (callcenter/domain/ivr_flow.py Route.variables; `IVRROUTE` = the Route's kind, set by
  ivr/agi_session.py):
  - `callback_task` (a callback request was recorded): hang up;
  - `owner` / `agent` (首问负责): `Dial(TARGET, ring, g)`; unanswered -> the queue QNAME;
  - `queue` (QNAME, CHOICE): `Queue(QNAME,tc,,,wait)`; unanswered -> `UserEvent(QueueExit, Queue,
    Status)` and hang up;
  - a flow that ends in a Hangup step hangs the channel up itself (AGI HANGUP);
  - after an answered call (Queue's `c` option: QUEUESTATUS=CONTINUE when the agent hung up; Dial's
    `g`: DIALSTATUS=ANSWER) the caller's channel is still up: `AGI(agi://HOST:PORT/survey?...)`
    runs the 好差评 survey;
  - the FastAGI server unreachable (AGISTATUS=FAILURE), or the script ended without a decision on
    a live channel: `UserEvent(IvrChoice)` and the department's first queue, so no caller is lost
    to a service outage (GB/T 33358: a caller reaches a person by waiting).
  The flow's own facts (IvrChoice, AfterHours, CallbackRequest, SurveyRating) are sent by the
  FastAGI session as UserEvents from the caller's channel; the dialplan adds the ones only it can
  see (QueueExit) and the IvrChoice of the outage path.
- `queues_callcenter.conf`: `[general]` (log_membername_as_agent, no persistent members) and one
  section per configured queue on that PBX from one template: strategy, ring timeout, retry,
  wrapuptime 0 (the service's desk owns wrap-up), ringinuse no, joinempty yes, leavewhenempty no,
  setinterfacevar yes (the survey learns who answered), autopause for the queues asked; no static
  members (the service logs agents in with QueueAdd).

With `probes.enabled` and a probe context of its own, `extensions_callcenter.conf` also holds
that context (callcenter/probes/dialplan.py: one extension per hotline, Goto the hotline context
or Dial through the trunk; issue 13's hotline probes).

`prompt_texts(settings)`: the sound files the flows play and their texts, for the TTS step
(`callcenter asterisk-config --prompts`; docs/operations.md).

Every configured value written into these files is checked first (`AsteriskConfigError` names the
key): numbers are digits, names are identifiers, hosts are host names or addresses; nothing can
carry a newline, `;`, `,`, `$`, brackets or quotes into the dialplan syntax.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

EXTENSIONS_FILE = "extensions_callcenter.conf"
QUEUES_FILE = "queues_callcenter.conf"
NUMBER = re.compile(r"\+?[0-9]{2,20}")                   # an extension name: never a pattern
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")    # queue, context, PBX and department ids
HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*")
STRATEGIES = ("ringall", "leastrecent", "fewestcalls", "random", "rrmemory", "rrordered", "linear", "wrandom")
# characters a dial string from the FastAGI server may hold (interfaces joined with &); anything
# else and the dialplan skips the direct call and queues the caller. FILTER() reads ranges: a
# literal "-" must come first (checked on the lab Asterisk: PJSIP/agent-1001 passes unchanged)
TARGET_CHARS = "-A-Za-z0-9/@._:&+"


class AsteriskConfigError(ValueError):
    """A configured value that cannot be written into the Asterisk configuration safely."""


@dataclass(frozen=True)
class Options:
    agi_host: str = "127.0.0.1"        # where Asterisk reaches the FastAGI server (ivr.fastagi)
    agi_port: int = 4573
    survey: bool = True                # run the survey after an answered call (ivr.survey.enabled)
    queue_wait: int = 600              # seconds a caller waits in a queue before QueueExit TIMEOUT
    direct_ring: int = 20              # seconds the owner's / agent's phone rings (首问负责)
    strategy: str = "linear"           # queues.conf strategy
    ring_timeout: int = 15             # seconds one member rings (queues.conf timeout)
    retry: int = 1                     # seconds before the next ring round
    autopause: frozenset = field(default_factory=frozenset)   # queues with autopause = yes


def options_from(settings, **overrides) -> Options:
    """Options from the `ivr:` section (FastAGI address, survey on/off) and explicit overrides
    (command-line flags; None means "not given")."""
    ivr = getattr(settings, "ivr", None)
    values: dict = {}
    if ivr is not None:
        values.update(agi_host=ivr.fastagi.host, agi_port=ivr.fastagi.port, survey=ivr.survey.enabled)
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "autopause" in values:
        values["autopause"] = frozenset(values["autopause"])
    return Options(**values)


def generate(settings, pbx: str | None = None, options: Options | None = None) -> dict[str, str]:
    """{file name: text} for one PBX (`pbx`: its id; default the only one configured)."""
    options = options or options_from(settings)
    pbx_id, context = _pbx(settings, pbx)
    _check_options(options)
    hotlines = _hotlines(settings, pbx_id)
    queues = _queues(settings, pbx_id)
    unknown = sorted(set(options.autopause) - {q for q, _ in queues})
    if unknown:
        raise AsteriskConfigError(f"autopause: {', '.join(unknown)}: not a configured queue on PBX {pbx_id!r}")
    extensions = extensions_conf(context, hotlines, options, pbx_id)
    probes = getattr(settings, "probes", None)          # hotline probes through a context of their own (issue 13)
    if probes is not None and probes.enabled and probes.context != context:
        from .probes.dialplan import probe_context
        extensions += "\n" + probe_context(probes, context, [n for n, _, _ in hotlines], AsteriskConfigError)
    return {EXTENSIONS_FILE: extensions, QUEUES_FILE: queues_conf(queues, options, pbx_id)}


# --- the dialplan ---------------------------------------------------------------------------------


def extensions_conf(context: str, hotlines: list[tuple[str, str, str]], options: Options, pbx: str) -> str:
    """`hotlines`: (number, department id, fallback queue)."""
    agi = f"agi://{_host_in_url(options.agi_host)}:{options.agi_port}"
    lines = [
        f"; Written by `callcenter asterisk-config` for PBX {pbx}; regenerate instead of editing.",
        "; Include it from extensions.conf:  #include extensions_callcenter.conf",
        "; Each hotline number asks the FastAGI IVR (the callcenter service) where the caller goes,",
        "; then follows the variables it set: IVRROUTE callback_task (request recorded), owner/agent",
        "; (Dial TARGET, then the queue QNAME), queue (QNAME, CHOICE). After an",
        "; answered call the caller stays on the line for the survey (Queue option c, Dial option g).",
        "",
        f"[{context}]",
    ]
    for number, department, queue in hotlines:
        lines += _hotline(number, department, queue, agi, pbx, options) + [""]
    return "\n".join(lines)


def _hotline(number: str, department: str, queue: str, agi: str, pbx: str, o: Options) -> list[str]:
    survey = (f"AGI({agi}/survey?hotline=${{EXTEN}}&pbx={pbx}&queue=${{QNAME}}&agent=${{AGENT}}"
              f"&interface=${{SURVEY_IF}})") if o.survey else "NoOp(survey disabled)"
    return [
        f"; {number}: department {department}; the queue if the IVR cannot decide: {queue}",
        f"exten => {number},1,NoOp(callcenter hotline ${{EXTEN}} department {department})",
        " same => n,Answer()",
        " same => n,Set(IVRROUTE=)",
        " same => n,Set(QNAME=)",
        " same => n,Set(CHOICE=)",
        " same => n,Set(TARGET=)",
        " same => n,Set(AGENT=)",
        " same => n,Set(SURVEY_IF=)",
        f" same => n,AGI({agi}/ivr?hotline=${{EXTEN}}&pbx={pbx})",
        ' same => n,GotoIf($["${AGISTATUS}" = "HANGUP"]?done)',
        ' same => n,GotoIf($["${AGISTATUS}" != "SUCCESS"]?fallback)',
        ' same => n,GotoIf($["${IVRROUTE}" = "callback_task"]?done)',
        ' same => n,GotoIf($["${IVRROUTE}" = "owner" | "${IVRROUTE}" = "agent"]?direct)',
        ' same => n,GotoIf($["${IVRROUTE}" = "queue" & "${QNAME}" != ""]?queue)',
        f" same => n(fallback),Set(QNAME={queue})",
        " same => n,UserEvent(IvrChoice,Queue: ${QNAME},Choice: ${CHOICE})",
        " same => n,Goto(queue)",
        f" same => n(direct),Set(DIALTO=${{FILTER({TARGET_CHARS},${{TARGET}})}})",
        ' same => n,GotoIf($["${DIALTO}" = ""]?noanswer)',
        ' same => n,GotoIf($[${LEN(${DIALTO})} != ${LEN(${TARGET})}]?noanswer)',
        f" same => n,Dial(${{DIALTO}},{o.direct_ring},g)",
        ' same => n,GotoIf($["${DIALSTATUS}" = "ANSWER"]?survey)',
        ' same => n(noanswer),GotoIf($["${QNAME}" = ""]?fallback)',
        f" same => n(queue),Queue(${{QNAME}},tc,,,{o.queue_wait})",
        ' same => n,GotoIf($["${QUEUESTATUS}" = "CONTINUE"]?answered)',
        " same => n,UserEvent(QueueExit,Queue: ${QNAME},Status: ${QUEUESTATUS})",
        " same => n,Goto(done)",
        " same => n(answered),Set(SURVEY_IF=${MEMBERINTERFACE})",
        f" same => n(survey),{survey}",
        " same => n(done),Hangup()",
    ]


# --- queues.conf ----------------------------------------------------------------------------------


def queues_conf(queues: list[tuple[str, str]], o: Options, pbx: str) -> str:
    """`queues`: (queue name, department id)."""
    lines = [
        f"; Written by `callcenter asterisk-config` for PBX {pbx}; regenerate instead of editing.",
        "; Use it as queues.conf, or #include it from yours and keep one [general] (merge its keys",
        "; into yours). No static members: the service logs agents in (QueueAdd).",
        "",
        "[general]",
        "persistentmembers = no",
        "log_membername_as_agent = yes",
        "shared_lastcall = yes",
        "",
        "[callcenter-queue](!)",
        f"strategy = {o.strategy}",
        f"timeout = {o.ring_timeout}",
        f"retry = {o.retry}",
        "timeoutrestart = no",
        "timeoutpriority = app",
        "wrapuptime = 0",
        "ringinuse = no",
        "joinempty = yes",
        "leavewhenempty = no",
        "setinterfacevar = yes",
        "announce-frequency = 0",
        "periodic-announce-frequency = 0",
        "announce-position = no",
        "",
    ]
    for name, department in queues:
        lines.append(f"[{name}](callcenter-queue)      ; department {department}")
        if name in o.autopause:
            lines.append("autopause = yes")
    return "\n".join(lines) + "\n"


# --- the prompts (the TTS step) -------------------------------------------------------------------


def prompt_texts(settings) -> dict[str, str]:
    """Every sound file the configured flows play -> its zh-CN text, with each department's
    business hours filled into its closed-hours announcement ({hours}), one line each."""
    from .domain.ivr_flow import hours_text
    from .settings_ivr import all_prompts, flow_for
    texts = dict(all_prompts(settings))
    for d in settings.departments:
        closed = flow_for(settings, d.id).prompts.closed
        texts[closed.file] = closed.text.replace("{hours}", hours_text(settings.hours_of(d.id)))
    return {name: " ".join(text.split()) for name, text in sorted(texts.items())}


# --- reading and checking the configuration -------------------------------------------------------


def _pbx(settings, pbx: str | None) -> tuple[str, str]:
    """(PBX id, its hotline context)."""
    endpoints = list(settings.pbxes)
    if pbx is None:
        if len(endpoints) > 1:
            raise AsteriskConfigError(f"several PBXes configured ({', '.join(p.id for p in endpoints)}): "
                                      "name one with --pbx")
        if not endpoints:
            return "pbx1", "hotline"
        endpoint = endpoints[0]
    else:
        endpoint = next((p for p in endpoints if p.id == pbx), None)
        if endpoint is None:
            raise AsteriskConfigError(f"--pbx: unknown PBX {pbx!r} (configured: "
                                      f"{', '.join(p.id for p in endpoints) or 'none'})")
    if not endpoint.hotline_contexts:
        raise AsteriskConfigError(f"pbxes[{endpoint.id}].hotline_contexts: empty; the dialplan needs a context")
    context = _name(endpoint.hotline_contexts[0], f"pbxes[{endpoint.id}].hotline_contexts[0]")
    if context.lower() in ("general", "globals"):
        raise AsteriskConfigError(f"pbxes[{endpoint.id}].hotline_contexts[0]: {context!r} is reserved by Asterisk")
    return _name(endpoint.id, "pbxes[].id"), context


def _hotlines(settings, pbx: str) -> list[tuple[str, str, str]]:
    out, seen = [], {}
    for i, d in enumerate(settings.departments):
        dept = _name(d.id, f"departments[{i}].id")
        refs = [q for q in d.queues if q.pbx in ("*", pbx)]
        for j, number in enumerate(d.hotlines):
            if getattr(number, "pbx", "*") not in ("*", pbx):
                continue
            where = f"departments[{i}].hotlines[{j}]"
            if not isinstance(number, str) or not NUMBER.fullmatch(number):
                raise AsteriskConfigError(f"{where}: {str(number)[:40]!r} is not a hotline number "
                                          "(2 to 20 digits, optional leading +)")
            if str(number) in seen:
                raise AsteriskConfigError(f"{where}: {number} is also a hotline of {seen[str(number)]}")
            if not refs:
                raise AsteriskConfigError(f"{where}: department {dept!r} has no queue on PBX {pbx!r}")
            queue = _name(refs[0].name, f"departments[{i}].queues[0]")
            seen[str(number)] = dept
            out.append((str(number), dept, queue))
    if not out:
        raise AsteriskConfigError(f"departments: no hotline number on PBX {pbx!r}; nothing to write")
    return out


def _queues(settings, pbx: str) -> list[tuple[str, str]]:
    out: dict[str, str] = {}
    for i, d in enumerate(settings.departments):
        for j, q in enumerate(d.queues):
            if q.pbx in ("*", pbx):
                name = _name(q.name, f"departments[{i}].queues[{j}]")
                if name.lower() in ("general", "callcenter-queue"):
                    raise AsteriskConfigError(f"departments[{i}].queues[{j}]: {name!r} is reserved")
                out.setdefault(name, d.id)
    return list(out.items())


def _check_options(o: Options) -> None:
    _host(o.agi_host)
    for key, value, low, high in (("agi_port", o.agi_port, 1, 65535), ("queue_wait", o.queue_wait, 1, 86400),
                                  ("direct_ring", o.direct_ring, 1, 600), ("ring_timeout", o.ring_timeout, 1, 600),
                                  ("retry", o.retry, 0, 600)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise AsteriskConfigError(f"{key}: {value!r} is not a whole number from {low} to {high}")
    if o.strategy not in STRATEGIES:
        raise AsteriskConfigError(f"strategy: {o.strategy!r} is not one of {', '.join(STRATEGIES)}")
    for q in o.autopause:
        _name(q, "autopause")


def _name(value, where: str) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise AsteriskConfigError(f"{where}: {str(value)[:40]!r} cannot be written into the Asterisk "
                                  "configuration: use 1 to 64 of A-Z a-z 0-9 _ . - (no spaces, newlines, "
                                  "; , $ brackets or quotes)")
    return value


def _host(value) -> str:
    if isinstance(value, str):
        try:
            ipaddress.ip_address(value)
            return value
        except ValueError:
            if HOSTNAME.fullmatch(value):
                return value
    raise AsteriskConfigError(f"ivr.fastagi.host: {str(value)[:60]!r} is not a host name or IP address")


def _host_in_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host
