"""`AgentDesk`: the agents' states, owned by the server, and their requests.

A listener of the service's ordered stream (`on_event`) feeds `AgentStates`; a timer task ticks it
(wrap-up expiry, pause maxima) on the injected clock; what the machine asks for (effects) is
carried out in order by `agents/effects.py`. Requests (`request`): pause, unpause,
logout and login go through the A/B guard of `Coverage.request`; a pause or log-out asked during
a ring, a call or a wrap-up is checked against the guard now and carried out (the override with
it) when the call and its wrap-up end; ready and extend end or lengthen the wrap-up. Listeners
registered with `on_change(cb)` get the ids of the agents whose view changed, after every change.
Its own state (pending requests, wrap-up deadlines, alarms raised) goes into the service's
checkpoints (callcenter/domain/desk_state.py) and is restored at start, before any event.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

from sqlalchemy import select

from callcenter.domain import events as ev
from callcenter.domain import live_calls
from callcenter.domain.agent_state import AgentStates, DeskPolicy, Pending, State, StateError
from callcenter.domain.agent_view import BUSY_STATES
from callcenter.domain.desk_state import desk_from_state, desk_to_state
from callcenter.followup.service import TaskError
from callcenter.storage import tables as t
from .effects import Effects

log = logging.getLogger(__name__)
ACTIONS = ("pause", "unpause", "logout", "login", "ready", "extend")


class AgentDesk(Effects):
    def __init__(self, settings, service, coverage, notifier, clock, store, interval: float = 1.0):
        self.settings = settings
        self.service = service
        self.coverage = coverage
        self.notifier = notifier
        self.clock = clock
        self.store = store
        self.interval = interval
        self.policy = DeskPolicy.from_settings(settings.panel)
        home: dict[str, list] = {}
        for spec in coverage.board.specs.values():
            for agent in (spec.a, spec.b):
                home.setdefault(agent, []).append((spec.pbx, spec.queue))
        self.states = AgentStates({a.id: a.name for a in settings.agents}, self.policy, service.directory,
                                  lambda pbx, linkedid: live_calls.describe(service.calls, pbx, linkedid),
                                  {a: tuple(q) for a, q in home.items()}, start=clock.now())
        self.listeners: list[Callable[[set[str]], None]] = []
        self.failures = 0                           # effects that failed (one log line each)
        self._lock = asyncio.Lock()                 # effects are carried out one at a time, in order
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._worker: asyncio.Task | None = None
        self._effects_due = asyncio.Event()
        self._acted = False                         # this instance has been the active one (checkpoints)
        checkpointer = getattr(service, "checkpointer", None)
        if checkpointer is not None:                # pending requests, wrap-up deadlines, alarms: across restarts
            checkpointer.add_part("desk", self._to_state, lambda state: desk_from_state(self.states, state))

    # --- wiring -------------------------------------------------------------------------------

    def on_change(self, callback: Callable[[set[str]], None]) -> None:
        self.listeners.append(callback)

    def _changed(self, agents: set[str]) -> None:
        if not agents:
            return
        for callback in list(self.listeners):
            try:
                callback(set(agents))
            except Exception:
                log.exception("desk: change listener %r failed", callback)

    def on_event(self, event) -> None:
        """A listener of the service's ordered stream (sync; effects run on the worker)."""
        changed = self.states.feed(event)
        self._changed(changed)
        if self.states.effects:
            self._effects_due.set()
        if isinstance(event, ev.Resynced):
            self._wake.set()                        # deadlines restored from a checkpoint are due now
        self._acted = self._acted or bool(self.coverage.active())

    def _to_state(self) -> dict | None:
        """The desk's state for the checkpoint; None from an instance that never was the active one
        (a standby's desk has not seen the requests, so it must not overwrite the active one's)."""
        self._acted = self._acted or bool(self.coverage.active())
        return desk_to_state(self.states) if self._acted else None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._timer(), name="desk-timer")
        self._worker = loop.create_task(self._work(), name="desk-effects")

    async def stop(self) -> None:
        for task in (self._task, self._worker):
            if task is not None:
                task.cancel()
        for task in (self._task, self._worker):
            if task is not None:
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        self._task = self._worker = None

    async def _timer(self) -> None:
        while True:
            wait = self.interval
            deadline = self.states.next_deadline()
            if deadline is not None:
                wait = min(wait, max(0.0, (deadline - self.clock.now()).total_seconds()))
            try:
                await asyncio.wait_for(self._wake.wait(), max(wait, 0.01))
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.tick()
            except Exception:
                log.exception("desk: tick failed")

    async def _work(self) -> None:
        while True:
            await self._effects_due.wait()
            self._effects_due.clear()
            await self.carry_out()

    async def tick(self) -> None:
        """Wrap-ups that ran out and pauses over their maximum, at the clock's now."""
        self._changed(self.states.tick(self.clock.now()))
        await self.carry_out()

    async def settled(self, timeout: float = 5) -> None:
        """Until every effect asked for so far has been carried out (tests)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.states.effects or self._lock.locked():
            if loop.time() > deadline:
                raise TimeoutError("desk effects not carried out")
            await asyncio.sleep(0.01)

    # --- requests -----------------------------------------------------------------------------

    async def request(self, agent: str, action: str, reason: str = "", override_by: str | None = None,
                      override_reason: str = "", may_override=None) -> dict:
        """An agent's (or their head's) request; answers {"agent", "action", "state", "deferred",
        "sent", "overridden"}. Refusals are `TaskError`s with a code (see docs/api.md)."""
        if action not in ACTIONS:
            raise TaskError(f"unknown action {action!r}", code="unknown_action")
        if agent not in self.states.agents:
            raise TaskError(f"unknown agent {agent!r}", code="unknown_agent")
        reason = (reason or "").strip()
        self._acted = self._acted or bool(self.coverage.active())
        if action == "pause" and reason == self.policy.wrapup_reason:
            raise TaskError(f"{reason!r} is the wrap-up's own reason; pick a pause reason", 400, "reserved_reason")
        now = self.clock.now()
        state = self.states.state_of(agent)
        deferred, overridden, sent = False, False, []
        if action in ("ready", "extend"):
            sent = await self._wrapup_request(agent, action)
        elif action in ("pause", "logout") and state in BUSY_STATES:
            # the guard now; the action (with its override) when the call and its wrap-up end
            checked = await self.coverage.request(agent, action, reason, override_by, override_reason,
                                                  may_override, send=False)
            overridden = checked["overridden"]
            self._changed(self.states.defer(agent, Pending(action, reason, override_by, override_reason, now), now))
            deferred = True
        elif action == "unpause" and state is State.WRAP_UP:
            sent = await self._wrapup_request(agent, "ready")
        elif action == "unpause" and state in (State.RINGING, State.ON_CALL) and self.states.cancel_pending(agent, now):
            self._changed({agent})                  # the pending pause is dropped; nothing to send
        else:
            if action in ("unpause", "login") and self.states.cancel_pending(agent, now):
                self._changed({agent})
            done = await self.coverage.request(agent, action, reason, override_by, override_reason, may_override)
            sent, overridden = done["sent"], done["overridden"]
        return {"agent": agent, "action": action, "state": self.states.state_of(agent).value,
                "deferred": deferred, "sent": sent, "overridden": overridden}

    async def _wrapup_request(self, agent: str, action: str) -> list[dict]:
        now = self.clock.now()
        try:
            if action == "extend":
                self._changed(self.states.extend(agent, now))
                return []
            if self.states.state_of(agent) is State.WRAP_UP and self.policy.require_disposition:
                call = self.states.wrapup_call(agent)
                if call is not None and not await self._disposed(agent, call):
                    raise TaskError("the call has no disposition yet; record the wrap-up form first",
                                    409, "disposition_required")
            self._changed(self.states.ready(agent, now))
        except StateError as exc:
            raise TaskError(str(exc), 409, exc.code) from None
        return await self.carry_out()

    async def _disposed(self, agent: str, call: dict) -> bool:
        """Whether the agent recorded a disposition for the call (cases: callcenter/cases/service.py)."""
        c = t.case_calls.c
        ids = {call.get("uniqueid") or "", call.get("call_id") or ""} - {""}
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(select(c.call_id).where(
                c.pbx == call.get("pbx"), c.call_id.in_(ids), c.agent == agent,
                c.disposition.is_not(None)).limit(1))).first()
        return row is not None
