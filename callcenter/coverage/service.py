"""The coverage service: presence events in, AMI actions, incidents and notifications out.

Presence changes mark the agents involved; one worker re-judges their posts in order and
carries out the commands. A ticker re-judges every post every `interval` seconds, so the start
and end of business hours (a post with nobody logged in at opening is a gap) are noticed too.
After a reconnect the board forgets its states and rebuilds them from the resync. No post is
judged, and nothing sent, for a PBX before its first resync since the start (a checkpoint's
picture may be stale); with more than one instance only the active one acts (callcenter/leader.py).
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy import insert, select

from ..ami.client import AmiError
from ..domain import coverage as rules
from ..domain import events as ev
from ..domain import validation
from ..followup.service import TaskError
from ..journal import HeldWrites
from ..storage import tables as t
from .actions import CoverageActions

log = logging.getLogger(__name__)
PRESENCE_EVENTS = (ev.MemberState, ev.MemberRemoved, ev.DeviceStateChanged)


def post_specs(settings) -> list[rules.PostSpec]:
    """Each post on its own PBX (`Settings.post_pbx`: its `pbx`, its queue's, or the only one;
    `config check` refuses a post that could be on several)."""
    agents = {a.id: a for a in settings.agents}
    specs = []
    for p in settings.posts:
        pbx, queue = settings.post_pbx(p)
        specs.append(rules.PostSpec(
            id=p.id, department=p.department, pbx=pbx,
            queue=queue, a=p.a, b=p.b, a_interface=agents[p.a].interfaces[0],
            b_interface=agents[p.b].interfaces[0], a_name=agents[p.a].name, b_name=agents[p.b].name,
            b_activation=frozenset(p.b_activation), b_standby=p.b_standby,
            fallback=rules.Fallback(p.fallback.kind, p.fallback.post)))
    return specs


def _check_request(agent: str, reason: str, override_by: str | None, override_reason: str) -> None:
    checks = [("agent", lambda: validation.identifier(agent, "an agent id")),
              ("reason", lambda: validation.single_line(reason, allow_empty=True)),
              ("override.reason", lambda: validation.note_text(override_reason))]
    if override_by is not None:
        checks.append(("override.by", lambda: validation.identifier(override_by, "a person's id")))
    for field, check in checks:
        try:
            check()
        except validation.InvalidValue as exc:
            raise TaskError(f"{field}: {exc}", 400, "invalid_field") from None


class Coverage(CoverageActions):
    """Judges the posts and guards agents' requests; carries out its decisions through
    `CoverageActions` (callcenter/coverage/actions.py)."""

    def __init__(self, settings, service, store, calendar, clock, notifier=None, interval: float = 30):
        self.settings = settings
        self.service = service
        self.store = store
        self.calendar = calendar
        self.clock = clock
        self.notifier = notifier
        self.interval = interval
        self.board = rules.CoverageBoard(post_specs(settings))
        self.heads = {d.id: d.head for d in settings.departments}
        self.agents = {a.id: a for a in settings.agents}
        self.windows = {d.id: tuple((w.start, w.end) for w in settings.hours_of(d.id)) for d in settings.departments}
        self._open_at = None
        self._open: dict[str, bool] = {}
        self.dirty: set[str] | None = set()          # None: every post
        self.wake = asyncio.Event()
        self.executed: list[rules.Command] = []      # what was done, newest last (for the API and tests)
        # incidents the database could not take yet: retried in order, journalled at shutdown
        self.held = HeldWrites("incidents", self._write_incident)
        self._tasks: list[asyncio.Task] = []
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()
        # no action before knowledge: PBXes whose presence has been read back since this start
        self.known: set[str] = set()
        self.active = lambda: True                   # more than one instance: callcenter/leader.py

    # --- inputs -------------------------------------------------------------------------------

    def on_event(self, event: ev.Event) -> None:
        """A listener of the service's ordered stream (sync: only marks what to re-judge)."""
        if isinstance(event, ev.Resynced):
            self.known.add(event.pbx)
            self.board.forget()
            self.dirty = None
        elif isinstance(event, PRESENCE_EVENTS):
            agents = self._agents_of(event)
            if self.dirty is not None:
                # a device we cannot place on an agent: re-judge every post
                self.dirty.update(self.board.by_agent if agents is None else agents)
        else:
            return
        self._idle.clear()
        self.wake.set()

    def _agents_of(self, event) -> set[str] | None:
        """The agents a presence event is about; None when one of them is not a known agent."""
        if isinstance(event, ev.DeviceStateChanged):
            agents = {m.agent for m in self.service.presence.members.values()
                      if m.pbx == event.pbx and event.device in (m.state_interface, m.interface)}
        else:
            agents = {self.service.directory.agent_of(event.interface, event.member_name, event.pbx)}
        return None if None in agents else agents

    def on_leadership(self, active: bool) -> None:
        """This instance became active: judge every post afresh (the previous holder may have
        died between a decision and its action); standing by: nothing to do."""
        if active:
            self.board.forget()
            self.dirty = None
            self._idle.clear()
            self.wake.set()

    def ready(self, pbx: str) -> str | None:
        """Why nothing may be sent to ``pbx`` now (None: it may)."""
        if not self.active():
            return "this instance is standing by (another one is active)"
        if pbx not in self.known:
            return f"PBX {pbx}'s presence is not known yet (no resync since the start)"
        return None

    def seat(self, pbx: str, queue: str, agent: str) -> rules.Seat:
        m = self.service.presence.seats.get((pbx, queue, agent))
        if m is None:
            return rules.NOT_LOGGED_IN
        # a wrap-up pause (panel.wrapup.reason) counts as available, like being on a call
        paused = m.paused and m.paused_reason != self.settings.panel.wrapup.reason
        return rules.Seat(True, paused, m.unreachable_since is None, m.penalty, m.interface)

    def is_open(self, spec: rules.PostSpec) -> bool:
        """Coverage hours: the department's business hours on workdays, judged once per pass
        (every post of a pass is judged at the same instant)."""
        now = self.clock.now()
        if self._open_at != now:
            self._open_at, self._open = now, {}
        if spec.department not in self._open:
            self._open[spec.department] = self.calendar.within_business_hours(now, self.windows[spec.department])
        return self._open[spec.department]

    # --- the worker ---------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.dirty = None
        self.wake.set()
        self._tasks = [loop.create_task(self._work(), name="coverage"), loop.create_task(self._tick())]

    async def stop(self) -> None:
        """The ticker is cancelled; the worker finishes what it is doing (never half a write)."""
        ticker, worker = self._tasks[1], self._tasks[0]
        ticker.cancel()
        self._stopping = True
        self.wake.set()
        for task in (ticker, worker):
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def settled(self, timeout: float = 5) -> None:
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.dirty = None
            self._idle.clear()
            self.wake.set()

    async def _work(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            if self._stopping:
                return
            dirty, self.dirty = self.dirty, set()
            if not self.active():
                self._idle.set()
                continue                             # standing by: the active instance acts
            commands = self.board.evaluate(self.seat, self.is_open, self.clock.now(), dirty,
                                           ready=lambda spec: spec.pbx in self.known)
            for command in commands:
                try:
                    await self.execute(command)
                except AmiError as exc:              # the PBX refused, or the link went: one line
                    log.warning("coverage: %s on %s not carried out: %s", type(command).__name__,
                                getattr(command, "pbx", "?"), exc or type(exc).__name__)
                except Exception:
                    log.exception("coverage: %r failed", command)
            if not self.wake.is_set():
                self._idle.set()

    # --- agents' requests ---------------------------------------------------------------------

    async def request(self, agent: str, action: str, reason: str = "", override_by: str | None = None,
                      override_reason: str = "", may_override=None, send: bool = True, guarded: bool = True) -> dict:
        """An agent asks to pause or log out. Refused (409) if a post would be left with nobody
        available in coverage hours, unless the department head overrides with a reason.
        `may_override(department)`: whether `override_by` heads that department (the web edge's
        rule, callcenter/domain/access.py); by default the configured head's id. "login" adds the
        agent to each of their posts' queues (A at penalty 0, B at the standby penalty); never
        refused. The agent desk (agents/desk.py) checks the guard of a request it defers
        with ``send=False`` and carries it out later with ``guarded=False``."""
        if action not in ("pause", "unpause", "logout", "login"):
            raise TaskError(f"unknown action {action!r}", code="unknown_action")
        _check_request(agent, reason, override_by, override_reason)    # defence behind the web models
        if agent not in self.agents:
            raise TaskError(f"unknown agent {agent!r}", code="unknown_agent")
        refused = None if action in ("unpause", "login") or not guarded else \
            self.board.refusal(agent, self.seat, self.is_open)
        refusal = None
        if refused:
            post, refusal = refused
            department = self.board.specs[post].department
            head = self.heads.get(department)
            if override_by is None:
                raise TaskError(f"refused: {refusal}", 409, "coverage_guard")
            if not (may_override(department) if may_override else head is not None and head.id == override_by):
                raise TaskError(f"only the head of {department} may override: {refusal}", 403, "not_head")
            if not override_reason.strip():
                raise TaskError("an override needs a reason", code="reason_required")
            async with self.store.begin() as conn:
                await conn.execute(insert(t.coverage_overrides).values(
                    at=self.clock.now(), agent=agent, action=action, post=post, by=override_by,
                    reason=override_reason.strip(), refusal=refusal))
        sent = []
        for post in self.board.by_agent.get(agent, ()) if send else ():
            spec = self.board.specs[post]
            seat = self.seat(spec.pbx, spec.queue, agent)
            if action == "login":
                if not seat.logged_in and await self._ami(spec.pbx, self._login_fields(spec, agent)):
                    sent.append({"post": post, "queue": spec.queue, "action": "QueueAdd"})
                continue
            if not seat.logged_in:
                continue
            fields = {"logout": {"Action": "QueueRemove", "Queue": spec.queue, "Interface": seat.interface},
                      "pause": {"Action": "QueuePause", "Queue": spec.queue, "Interface": seat.interface,
                                "Paused": "true", "Reason": reason or "暂离"},
                      "unpause": {"Action": "QueuePause", "Queue": spec.queue, "Interface": seat.interface,
                                  "Paused": "false"}}[action]
            if await self._ami(spec.pbx, fields):
                sent.append({"post": post, "queue": spec.queue, "action": fields["Action"]})
        return {"agent": agent, "action": action, "sent": sent, "overridden": bool(refusal)}

    def _login_fields(self, spec: rules.PostSpec, agent: str) -> dict:
        """QueueAdd for an agent logging in to a post's queue, as the coverage service adds B."""
        conf = self.agents[agent]
        interface = spec.a_interface if agent == spec.a else spec.b_interface
        return {"Action": "QueueAdd", "Queue": spec.queue, "Interface": interface,
                "Penalty": rules.A_PENALTY if agent == spec.a else rules.B_PENALTY, "Paused": "false",
                "MemberName": conf.member_names[0] if conf.member_names else conf.name,
                "StateInterface": self.state_interface(agent, interface)}

    # --- reads --------------------------------------------------------------------------------

    def live(self) -> list[dict]:
        out = []
        for post, spec in self.board.specs.items():
            a, b = self.seat(spec.pbx, spec.queue, spec.a), self.seat(spec.pbx, spec.queue, spec.b)
            out.append({"post": post, "department": spec.department, "pbx": spec.pbx, "queue": spec.queue,
                        "state": (self.board.state.get(post) or rules.PostState.CLOSED).value,
                        "a": {"agent": spec.a, "name": spec.a_name, "logged_in": a.logged_in, "paused": a.paused,
                              "reachable": a.reachable, "available": a.available, "penalty": a.penalty},
                        "b": {"agent": spec.b, "name": spec.b_name, "logged_in": b.logged_in, "paused": b.paused,
                              "reachable": b.reachable, "available": b.available, "penalty": b.penalty}})
        return out

    def fallback_for(self, department: str, pbx: str = "*") -> tuple[str, str | None] | None:
        """During a gap on every post of the department: (kind, queue) its callers go to instead:
        ("post:<id>", that post's queue), ("pool", the department's queue) or ("callback", None)."""
        if not self.board.department_uncovered(department):
            return None
        specs = [s for s in self.board.specs.values() if s.department == department]
        return self._fallback(next((s for s in specs if s.pbx == pbx), specs[0]))   # the call's PBX's post first

    def _fallback(self, spec: rules.PostSpec) -> tuple[str, str | None]:
        if spec.fallback.kind == "post" and spec.fallback.post in self.board.specs:
            return f"post:{spec.fallback.post}", self.board.specs[spec.fallback.post].queue
        if spec.fallback.kind == "callback":
            return "callback", None
        return "pool", spec.queue

    async def incidents(self, start: datetime, end: datetime) -> list[dict]:
        c = t.coverage_incidents.c
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(select(t.coverage_incidents).where(
                c.opened_at < end, (c.closed_at.is_(None)) | (c.closed_at >= start)).order_by(c.opened_at))).mappings().all()
        return [{"id": r["id"], "post": r["post"], "department": r["department"],
                 "opened_at": r["opened_at"].isoformat(), "closed_at": r["closed_at"].isoformat() if r["closed_at"] else None,
                 "start_of_day": r["start_of_day"], "fallback": r["fallback"]} for r in rows]
