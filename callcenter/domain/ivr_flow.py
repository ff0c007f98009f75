"""The caller's IVR flow (issue 12): one engine for Asterisk (FastAGI) and Twilio (TwiML) (pure).

No I/O, no clock, no asyncio: the adapter looks up the facts first (business hours, the owner
route, the coverage fallback: ``Facts``), then walks a ``Session``:

    session = Session(flow, facts)
    steps = session.start()                 # a list of steps, carried out in order
    while not session.done:
        result = <carry out steps>          # Digits(...) for a Gather, Done() for a Record,
        steps = session.feed(result)        # HungUp() whenever the caller hangs up

Steps: ``Play`` (a prompt), ``Gather`` (a prompt, then DTMF: answer ``Digits``; "" = no input),
``Record`` (a callback message: answer ``Done``), ``Emit`` (a fact to record: the adapter sends it
as a UserEvent / stores it; needs no answer), and the terminal ``Route`` (where the call goes:
"queue", "owner", "agent" or "callback_task") and ``Hangup``. Only the LAST step of a batch
waits for an answer (a Gather or a Record); a batch ending in Route or Hangup ends the session.
If the caller hangs up during any step of a batch, feed ``HungUp()``: the session records where
(the step the batch waits for; after a batch ending in Route: {"hangup_at": "route"}, outcome
"hangup"). Digits are cleaned to DTMF keys (``clean_digits``).

The walk: welcome -> closed? (announce the hours, offer a callback request: 1 -> Record -> Route
"callback_task"; else goodbye + Hangup) -> owner routing for repeat callers (首问负责: the case
owner, else an available agent of the department's posts: Route "owner"/"agent", the dialplan falls
back to the queue: variables TARGET, RINGTIME, QNAME, AGENT, CASE) -> coverage gap with kind "callback" (offer a callback request like after
hours) -> the DTMF menu of the department's service items (digits 1..n; 0 or no input after
``max_repeats`` reaches the queue; an invalid key plays "输入有误" and repeats; an entry may
hold a sub-menu, each level counted) -> Emit IvrChoice {Queue, Choice} + Route "queue" with
variables QNAME, CHOICE, LEVEL (ASCII only; the item is ``Route.item``) (during a gap with kind "pool"/"post:<id>" the queue is the
fallback's, FALLBACK is set).

``Session.path``: what the caller did, in order, e.g. ``{"at_step": "menu", "choice": "2",
"level": 1}``, ``{"at_step": "menu", "timeout": True, "level": 1}``, ``{"at_step": "menu",
"invalid": "9", "level": 1}``, ``{"hangup_at": "menu", "level": 1}``. ``Session.outcome``:
"queue", "owner", "agent", "callback_request", "closed", "hangup" (None while running).

The survey (好差评) after the agent hangs up: ``survey_session(flow, facts)``: 1 满意, 2 基本满意,
3 不满意; an invalid key or no input repeats the question once; ``rating`` is "satisfied",
"basic", "dissatisfied" or None; outcome "rated", "no_rating", "hangup" or "disabled".

The session is deterministic: ``Session.replay(flow, facts, results)`` rebuilds it from the
results fed so far (stateless TwiML webhooks).

Helpers: ``hours_text(windows)`` ("工作日 9:00-11:30、13:30-16:30") and ``open_now(calendar, now,
windows)`` for the adapter.
"""
from __future__ import annotations

from datetime import datetime, time
from typing import Any, Iterable, Sequence

from .ivr_steps import (  # noqa: F401  the flow's vocabulary, re-exported: callers import it from here
    CALLBACK_DIGIT, QUEUE_DIGIT, RATINGS, Digits, Done, Emit, Facts, FlowConfig, Gather, Hangup, HungUp, Menu,
    MenuEntry, Play, Prompt, Prompts, Record, Result, Route, Step, clean_digits)

# --- the caller's session -------------------------------------------------------------------


class Session:
    """One caller's walk through the flow; records the path and the outcome."""

    def __init__(self, flow: FlowConfig, facts: Facts):
        self.flow, self.facts = flow, facts
        self.path: list[dict] = []
        self.outcome: str | None = None
        self.route: Route | None = None
        self.done = False
        self._waiting: Gather | Record | None = None
        self._menus: list[Menu] = []          # the stack of menus (level = len)
        self._repeats = 0
        self._chosen = ""                     # digits chosen on the way down ("21": 1 in 2's sub-menu)

    @classmethod
    def replay(cls, flow: FlowConfig, facts: Facts, results: Iterable[Result]) -> "Session":
        session = cls(flow, facts)
        session.start()
        for result in results:
            if session.done:
                break
            session.feed(result)
        return session

    @property
    def department(self) -> str | None:
        return self.facts.department or self.flow.department

    @property
    def level(self) -> int:
        return len(self._menus)

    def start(self) -> list[Step]:
        p = self.flow.prompts
        steps: list[Step] = [Play(p.welcome)]
        if not self.facts.open_now:
            steps.append(Emit("AfterHours", {"Hotline": self.facts.hotline}))
            if not self.flow.callback_enabled:
                return steps + [Play(self._closed_prompt()), Play(p.goodbye), self._end(Hangup("closed"), "closed")]
            return steps + [self._wait(Gather(self._closed_prompt(), 1, self.flow.timeout, "closed"))]
        owner = self._owner_route()
        if owner is not None:
            return steps + [Play(p.owner), owner]
        gap = self.facts.gap_fallback
        if gap is not None and gap[0] == "callback":
            steps.append(Emit("CoverageGap", {"Fallback": "callback"}))
            if not self.flow.callback_enabled:
                return steps + self._to_queue(self.flow.queue, "", None)
            return steps + [self._wait(Gather(p.gap_callback, 1, self.flow.timeout, "gap_callback"))]
        return steps + self._enter_menu(self.flow.menu)

    def feed(self, result: Result) -> list[Step]:
        if self.done and isinstance(result, HungUp) and self.route is not None and self.outcome != "hangup":
            # gone during the batch that ended in the Route, before the adapter carried it out
            self.path.append({"hangup_at": "route", "kind": self.route.kind, **({"level": self.level} if self.level else {})})
            self.outcome = "hangup"
            return []
        if self.done or self._waiting is None:
            return []
        waiting = self._waiting
        self._waiting = None
        if isinstance(result, HungUp):
            where = {"hangup_at": waiting.name}
            if isinstance(waiting, Gather) and waiting.level:
                where["level"] = waiting.level
            self.path.append(where)
            self.outcome, self.done = "hangup", True
            return []
        if isinstance(waiting, Record):
            self.path.append({"at_step": waiting.name, "recorded": True})
            fields = {"Hotline": self.facts.hotline, "Reason": "closed" if not self.facts.open_now else "coverage_gap"}
            return [Emit("CallbackRequest", fields), Play(self.flow.prompts.callback_thanks),
                    self._end(Route("callback_task", self.flow.queue, None, self.department, None,
                                    {"QNAME": self.flow.queue, "CALLBACK": "1"}), "callback_request")]
        digits = clean_digits(result.value) if isinstance(result, Digits) else ""
        if waiting.name in ("closed", "gap_callback"):
            return self._callback_offer(waiting, digits)
        return self._menu_answer(waiting, digits)

    # --- internals ---

    def _wait(self, step: Gather | Record) -> Gather | Record:
        self._waiting = step
        return step

    def _end(self, step: Route | Hangup, outcome: str) -> Route | Hangup:
        self.outcome, self.done = outcome, True
        if isinstance(step, Route):
            self.route = step
        return step

    def _closed_prompt(self) -> Prompt:
        p = self.flow.prompts.closed
        return Prompt(p.text.replace("{hours}", self.facts.hours_text), p.file)

    def _owner_route(self) -> Route | None:
        r = self.facts.owner_route
        agent = getattr(r, "preferred_agent", None)
        interfaces = tuple(getattr(r, "preferred_interfaces", ()) or ())
        if r is None or agent is None or not interfaces:
            return None
        kind = "owner" if agent == getattr(r, "owner", None) else "agent"
        queue = getattr(r, "queue", None) or self.flow.queue
        self.path.append({"at_step": "owner", "agent": agent, "kind": kind})
        variables = {"QNAME": queue, "TARGET": "&".join(interfaces), "AGENT": agent, "ROUTE": kind,
                     "RINGTIME": str(self.flow.owner_ring_seconds)}
        case_id = getattr(r, "case_id", None)
        if case_id is not None:
            variables["CASE"] = str(case_id)
        return self._end(Route(kind, queue, "&".join(interfaces), self.department, None, variables), kind)

    def _callback_offer(self, waiting: Gather, digits: str) -> list[Step]:
        p = self.flow.prompts
        if digits == CALLBACK_DIGIT:
            self.path.append({"at_step": waiting.name, "choice": digits})
            return [self._wait(Record(p.callback_record, self.flow.record_seconds))]
        if digits and self._repeats < self.flow.max_repeats:        # a wrong key: say so, ask again
            self._repeats += 1
            self.path.append({"at_step": waiting.name, "invalid": digits})
            return [Play(p.invalid), self._wait(waiting)]
        self.path.append({"at_step": waiting.name, "timeout": True} if not digits
                         else {"at_step": waiting.name, "invalid": digits})
        if waiting.name == "gap_callback":            # declined: the queue still takes the call
            return self._to_queue(self.flow.queue, "", None)
        return [Play(p.goodbye), self._end(Hangup("closed"), "closed")]

    def _enter_menu(self, menu: Menu) -> list[Step]:
        self._menus.append(menu)
        self._repeats = 0
        if not menu.entries:                           # nothing to choose: straight to the queue
            return self._to_queue(self.flow.queue, "", None)
        return [self._wait(self._menu_gather())]

    def _menu_gather(self) -> Gather:
        return Gather(self._menus[-1].prompt, self.flow.max_digits, self.flow.timeout, "menu", self.level)

    def _menu_answer(self, waiting: Gather, digits: str) -> list[Step]:
        level = self.level
        if digits == QUEUE_DIGIT:
            self.path.append({"at_step": "menu", "choice": digits, "level": level})
            return self._to_queue(self.flow.queue, self._chosen + digits, None)
        entry = self._menus[-1].entry(digits) if digits else None
        if entry is not None:
            self.path.append({"at_step": "menu", "choice": digits, "level": level, "item": entry.item})
            self._chosen += digits
            if entry.submenu is not None:
                return self._enter_menu(entry.submenu)
            return self._to_queue(entry.queue, self._chosen, entry.item)
        self.path.append({"at_step": "menu", "timeout": True, "level": level} if not digits
                         else {"at_step": "menu", "invalid": digits, "level": level})
        if self._repeats >= self.flow.max_repeats:     # repeated enough: the queue takes the call
            return self._to_queue(self.flow.queue, self._chosen, None)
        self._repeats += 1
        steps: list[Step] = [Play(self.flow.prompts.invalid)] if digits else []
        return steps + [self._wait(self._menu_gather())]

    def _to_queue(self, queue: str, choice: str, item: str | None) -> list[Step]:
        """The IvrChoice fact (Queue, Choice: the tracker's UserEvent) and the Route."""
        variables = {"QNAME": queue, "CHOICE": choice, "LEVEL": str(self.level)}
        gap = self.facts.gap_fallback
        if gap is not None and gap[0] != "callback":
            queue = gap[1] or queue
            variables["QNAME"], variables["FALLBACK"] = queue, gap[0]
        route = Route("queue", queue, None, self.department, item, variables)
        return [Emit("IvrChoice", {"Queue": queue, "Choice": choice}), self._end(route, "queue")]


# --- the survey (好差评) ---------------------------------------------------------------------


class SurveySession(Session):
    """After the agent hangs up: 1 满意 / 2 基本满意 / 3 不满意; asked again once on an invalid
    key or no input. ``rating``: "satisfied", "basic", "dissatisfied" or None."""

    def __init__(self, flow: FlowConfig, facts: Facts):
        super().__init__(flow, facts)
        self.rating: str | None = None

    def start(self) -> list[Step]:
        if not self.flow.survey_enabled:
            return [self._end(Hangup("survey_disabled"), "disabled")]
        return [self._wait(self._question())]

    def _question(self) -> Gather:
        return Gather(self.flow.prompts.survey, 1, self.flow.survey_timeout, "survey")

    def feed(self, result: Result) -> list[Step]:
        if self.done or self._waiting is None:
            return []
        waiting, self._waiting = self._waiting, None
        if isinstance(result, HungUp):
            self.path.append({"hangup_at": waiting.name})
            self.outcome, self.done = "hangup", True
            return []
        digits = clean_digits(result.value) if isinstance(result, Digits) else ""
        p = self.flow.prompts
        if digits in RATINGS:
            self.rating = RATINGS[digits]
            self.path.append({"at_step": "survey", "choice": digits, "rating": self.rating})
            return [Emit("SurveyRating", {"Rating": self.rating, "Digit": digits, "Hotline": self.facts.hotline}),
                    Play(p.survey_thanks), self._end(Hangup("survey_done"), "rated")]
        self.path.append({"at_step": "survey", "timeout": True} if not digits
                         else {"at_step": "survey", "invalid": digits})
        if self._repeats < 1:
            self._repeats += 1
            return ([Play(p.invalid)] if digits else []) + [self._wait(self._question())]
        return [Play(p.goodbye), self._end(Hangup("survey_no_answer"), "no_rating")]


def survey_session(flow: FlowConfig, facts: Facts) -> SurveySession:
    return SurveySession(flow, facts)


# --- helpers for the adapter ----------------------------------------------------------------


def _span(w: Any) -> tuple[time, time]:
    return (w.start, w.end) if hasattr(w, "start") else (w[0], w[1])


def _clock(t: time) -> str:
    return f"{t.hour}:{t.minute:02d}"


def hours_text(windows: Sequence[tuple[time, time]]) -> str:
    """zh-CN business hours for the closed prompt: "工作日 9:00-11:30、13:30-16:30"."""
    spans = sorted(_span(w) for w in windows)
    if not spans:
        return ""
    return "工作日 " + "、".join(f"{_clock(a)}-{_clock(b)}" for a, b in spans)


def open_now(calendar: Any, now: datetime, windows: Sequence) -> bool:
    """Whether the department is open at ``now``: a workday of the calendar
    (callcenter/domain/calendar.py WorkdayCalendar) and inside one of its windows (settings
    ``hours_of(department)``: Window objects or (start, end) pairs)."""
    spans = [_span(w) for w in windows]
    return bool(spans) and calendar.within_business_hours(now, spans)
