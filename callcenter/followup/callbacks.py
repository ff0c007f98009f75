"""Callbacks: an agent calls a task's caller back from the service.

`start` records the attempt first (its idempotency key is unique in the database), then sends
one asynchronous Originate that rings the agent's interface and, once the agent answers, dials
the caller through the configured outbound context and prefix. The key doubles as the AMI
ActionID, so the PBX's `OriginateResponse` names the attempt; the AMI client never re-sends an
Originate, and a `start` while an attempt is pending is refused (409 `callback_pending`, with the
task): of concurrent starts exactly one dials (the attempt is claimed on the task's row version).
An attempt whose answer was lost stays pending at most `ring_timeout` plus
`pipeline.callback_margin_seconds`, then `expire_pending` (every after-commit pass, and at
start-up) marks it expired so a new callback may start.
`record` stores attempt results recognised from PBX events (callcenter/domain/callbacks.py) and
moves the task on: an answered callback closes it; a caller who does not answer counts an
attempt and schedules the next one within business hours.

A PBX that is not dialled by AMI Originate has a dialer (`dialers`: pbx id -> dialer; Twilio's is
ivr/twilio/dialout.py). A dialer's `unready()` says what it lacks (a 503) or None; its
`prepare(key, agent, number, department)` checks every value and returns the order
(InvalidValue, `code` "invalid_number" or not: nothing recorded, nothing dialled); `dial(order)` places
the call and raises `DialRefused` (not placed: the attempt fails) or `DialUnconfirmed` (sent,
answer lost: the attempt stays pending, as an unconfirmed Originate). Its results come back
through `record` as `AttemptResult`s under the same key.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from sqlalchemy import insert, select, update

from ..ami.client import ActionFailed, AmiError, NotSent, UnsafeAction
from ..domain.callbacks import KEY_PREFIX, AttemptResult
from ..domain.tasks import Closure, Reason
from ..domain.validation import InvalidValue, ami_field, mask_numbers, phone_number
from ..storage import tables as t
from ..storage.health import is_unavailable
from .service import FollowUp, TaskError

log = logging.getLogger(__name__)


class DialRefused(Exception):
    """A dialer's call was not placed (refused, or the PBX never reached): no call rings."""


class DialUnconfirmed(Exception):
    """A dialer's request was sent but its answer was lost: the call may be ringing."""


def _check_dialable(number: str, fields: dict) -> None:
    """The stored number is dialled only if it is a phone number, and every Originate field must
    fit on its AMI line (the AMI client checks once more before writing)."""
    try:
        phone_number(number)
    except InvalidValue as exc:
        raise TaskError(f"the caller's number cannot be dialled: {exc}", 409, "invalid_number") from None
    for name, value in fields.items():
        for item in (value if isinstance(value, list) else [value]):
            problem = ami_field(name, str(item))
            if problem:
                raise TaskError(f"callback field {name}: {problem}", 400, "invalid_field")


class Callbacks:
    def __init__(self, followup: FollowUp, clients: dict, settings, catch_up=None, dialers: dict | None = None):
        self.followup = followup
        self.catch_up = catch_up    # if set, awaited before results are recorded (the after-commit pass
                                    # records them itself, after the calls committed before them)
        self.store = followup.store
        self.clients = clients                 # pbx id -> AmiClient (the service's)
        self.dialers = dialers if dialers is not None else {}   # pbx id -> a dialer (not AMI: Twilio)
        self.settings = settings
        self.cfg = settings.followup.callback
        self.interfaces = {a.id: a.interfaces for a in settings.agents}
        self.hotlines = {d.id: d.hotlines for d in settings.departments}
        self.active = lambda: True             # more than one instance: only the active one dials
        self.agent_department = {}
        for post in settings.posts:
            for agent in (post.a, post.b):
                self.agent_department.setdefault(agent, post.department)

    async def start(self, task_id: int, agent: str, by: str | None = None) -> dict:
        if not self.active():
            raise TaskError("this instance is standing by; start the callback on the active one "
                            "(callcenter/leader.py)", 503, "not_active")
        task = await self.followup.get(task_id)
        if task["status"] != "open":
            raise TaskError(f"task {task_id} is closed", 409)
        if agent not in self.interfaces:
            raise TaskError(f"unknown agent {agent!r}")
        if not task["caller_num"]:
            raise TaskError("the caller's number was withheld; no callback possible", 409)
        pending = [c for c in task["callbacks"] if c["result"] == "pending"]
        if pending:                            # already dialling: never twice
            raise TaskError(f"callback {pending[-1]['key']} of task {task_id} is still pending", 409,
                            "callback_pending", task)
        policy = self.followup.policy
        if task["attempts"] >= policy.max_attempts:
            raise TaskError(f"task {task_id} has had its {policy.max_attempts} callback attempts; close it with "
                            f"an outcome", 409, "attempts_exhausted")
        due = task["next_attempt_at"]
        if due and datetime.fromisoformat(due) > self.followup.clock.now():
            raise TaskError(f"the next callback attempt is due at {due} (retry spacing "
                            f"{policy.retry_spacing_minutes:g} business minutes)", 409, "retry_not_due")
        pbx = self._pbx_of(task)
        key = f"{KEY_PREFIX}{task_id}-{len(task['callbacks']) + 1}"
        if pbx in self.dialers:
            return await self._dial(self.dialers[pbx], task, key, pbx, agent)
        client = self.clients.get(pbx)
        if client is None or not client.connected.is_set():
            raise TaskError(f"PBX {pbx} is not connected", 503)
        now = self.followup.clock.now()
        hotline = next((h for h in self.hotlines.get(task["department"], [])       # the task's PBX's hotline
                        if getattr(h, "pbx", "*") in ("*", pbx)), (self.hotlines.get(task["department"]) or [""])[0])
        fields = {
            "Channel": self.interfaces[agent][0], "Context": self.cfg.context,
            "Exten": f"{self.cfg.dial_prefix}{task['caller_num']}", "Priority": 1,
            "CallerID": f'"{task["department_name"] or task["department"]}" <{hotline}>',
            "Timeout": int(self.cfg.ring_timeout * 1000), "Async": "true",
            "Variable": [f"CALLCENTER_TASK={task_id}", f"CALLCENTER_ATTEMPT={key}"],
        }
        _check_dialable(task["caller_num"], fields)      # again, right before the action: nothing recorded
        await self._claim_attempt(task_id, key, pbx, agent, task["caller_num"], now)
        try:
            await client.originate(key, fields)
        except (NotSent, ActionFailed, UnsafeAction) as exc:
            # the PBX never placed it: the attempt failed and a new one may be started
            log.warning("callback %s: Originate not placed: %s", key, mask_numbers(str(exc)))
            await self._finish(key, "failed", "", None, now, None)
            raise TaskError(f"the PBX did not place the callback: {exc}", 502, "callback_not_placed") from None
        except AmiError as exc:
            # sent, but the answer was lost (link down, timeout): it may be ringing. The attempt
            # stays pending until the PBX's OriginateResponse settles it; it is never re-sent.
            log.warning("callback %s: Originate sent but unconfirmed: %s", key, exc)
        return next(c for c in (await self.followup.get(task_id))["callbacks"] if c["key"] == key)

    async def _dial(self, dialer, task: dict, key: str, pbx: str, agent: str) -> dict:
        """The callback over a dialer (a PBX not dialled by Originate): the order checked, the
        attempt claimed, then one request; never re-sent."""
        task_id, now = task["id"], self.followup.clock.now()
        missing = dialer.unready()
        if missing:
            raise TaskError(f"PBX {pbx} cannot place callbacks: {missing}", 503, "pbx_not_ready")
        try:
            order = dialer.prepare(key, agent, task["caller_num"], task["department"])
        except InvalidValue as exc:
            code = getattr(exc, "code", None) or "invalid_field"
            raise TaskError(f"the callback cannot be placed over PBX {pbx}: {mask_numbers(str(exc))}",
                            409 if code == "invalid_number" else 400, code) from None
        await self._claim_attempt(task_id, key, pbx, agent, task["caller_num"], now)
        try:
            await dialer.dial(order)
        except DialRefused as exc:
            log.warning("callback %s: not placed over %s: %s", key, pbx, mask_numbers(str(exc)))
            await self._finish(key, "failed", "", None, now, None)
            raise TaskError(f"PBX {pbx} did not place the callback: {mask_numbers(str(exc))}", 502,
                            "callback_not_placed") from None
        except DialUnconfirmed as exc:
            log.warning("callback %s: sent to %s but unconfirmed: %s", key, pbx, mask_numbers(str(exc)))
        return next(c for c in (await self.followup.get(task_id))["callbacks"] if c["key"] == key)

    def _pbx_of(self, task: dict) -> str:
        for event in reversed(task["history"]):
            if event.get("pbx"):
                return event["pbx"]
        return next(iter(self.clients), "pbx1")

    async def record(self, results: list[AttemptResult]) -> None:
        if self.catch_up is not None:
            await self.catch_up()      # a callback may answer a call committed a moment ago
        for r in results:
            try:
                await self._record(r)
            except Exception as exc:
                if is_unavailable(exc):
                    raise              # the database is away: the service holds them for a retry
                log.exception("cannot record callback attempt %s", r.key)

    async def _record(self, r: AttemptResult) -> None:
        number = r.number[len(self.cfg.dial_prefix):] if r.number.startswith(self.cfg.dial_prefix) else r.number
        ring_no_answer = None
        async with self.store.begin() as conn:
            row = (await conn.execute(select(t.callback_attempts).where(t.callback_attempts.c.key == r.key))).first()
            if row is None:
                # a callback we did not start (placed on the PBX): attach it to the caller's open task
                task_id = (await conn.execute(select(t.tasks.c.id).where(
                    t.tasks.c.caller_num == number, t.tasks.c.status == "open").order_by(t.tasks.c.deadline)
                    .limit(1))).scalar()
                agent = self.followup.directory.agent_of(_interface(r.channel, self.interfaces), pbx=r.pbx)
                await conn.execute(self.store._insert(t.callback_attempts).on_conflict_do_nothing(), [{
                    "key": r.key, "task_id": task_id, "pbx": r.pbx, "agent": agent,
                    "number": number, "requested_at": r.started_at, "result": "pending", "reason_code": ""}])
                if task_id is None and r.failed_leg == "caller" and agent in self.agent_department:
                    ring_no_answer = self.agent_department[agent]
        if ring_no_answer is not None:
            # a callback placed outside any task that the caller did not pick up: it becomes one
            task = await self.followup.request(number, ring_no_answer, Reason.RING_NO_ANSWER, r.ended_at,
                                               r.pbx, r.uniqueid or r.key)
            async with self.store.begin() as conn:
                await conn.execute(update(t.callback_attempts).where(t.callback_attempts.c.key == r.key)
                                   .values(task_id=task["id"]))
        await self._finish(r.key, r.result, r.reason_code, r.answered_at, r.ended_at, r.talk_seconds,
                           failed_leg=r.failed_leg, uniqueid=r.uniqueid)

    async def _finish(self, key, result, reason_code, answered_at, ended_at, talk, failed_leg="agent", uniqueid=""):
        async with self.store.begin() as conn:
            row = (await conn.execute(select(t.callback_attempts).where(t.callback_attempts.c.key == key))).mappings().first()
            if row is None or row["result"] not in ("pending", "expired"):
                return                                   # already recorded (a late answer still counts)
            await conn.execute(update(t.callback_attempts).where(t.callback_attempts.c.key == key).values(
                result=result, reason_code=reason_code, answered_at=answered_at, ended_at=ended_at,
                talk_seconds=talk, uniqueid=uniqueid or None))
            task_id = row["task_id"]
            if task_id is None:
                return
            detail = {"key": key, "result": result, "failed_leg": failed_leg, "agent": row["agent"], "talk_seconds": talk}
            await self.followup._event(conn, task_id, ended_at or answered_at, "attempt", row["pbx"], uniqueid or None,
                                       detail)
            if result == "answered":
                await conn.execute(update(t.tasks).where(t.tasks.c.id == task_id).values(attempts=t.tasks.c.attempts + 1))
                await self.followup._close(conn, task_id, Closure.CALLBACK_COMPLETED, answered_at, "system", "",
                                           {"pbx": row["pbx"], "call_id": uniqueid or None})
            elif failed_leg == "caller":
                task = (await conn.execute(select(t.tasks.c.department).where(t.tasks.c.id == task_id))).first()
                windows = self.followup.windows(task.department if task else None)
                next_at = self.followup.calendar.add_business_minutes(
                    ended_at, self.followup.policy.retry_spacing_minutes, windows)
                await conn.execute(update(t.tasks).where(t.tasks.c.id == task_id).values(
                    attempts=t.tasks.c.attempts + 1, next_attempt_at=next_at))


    async def _claim_attempt(self, task_id: int, key: str, pbx: str, agent: str, number: str, now: datetime) -> None:
        """Record the attempt before dialling, serialised on the task's row (its version): of
        concurrent starts one records its attempt, the others get 409 with the task as it is."""
        try:
            async with self.store.begin() as conn:
                version = await self.followup._bump(conn, task_id, t.tasks.c.status == "open")
                if version is None:
                    raise TaskError(f"task {task_id} is closed", 409, "already_closed")
                a = t.callback_attempts.c
                busy = (await conn.execute(select(a.key).where(
                    (a.task_id == task_id) & (a.result == "pending") | (a.key == key)).limit(1))).scalar()
                if busy is not None:
                    raise TaskError(f"callback {busy} of task {task_id} was started meanwhile", 409, "callback_pending")
                await conn.execute(insert(t.callback_attempts).values(
                    key=key, task_id=task_id, pbx=pbx, agent=agent, number=number,
                    requested_at=now, result="pending", reason_code=""))
                await self.followup._event(conn, task_id, now, "callback", pbx, None, {"key": key, "agent": agent},
                                           version=version)
        except TaskError as exc:
            raise await self.followup._conflict(exc, task_id) from None

    async def expire_pending(self) -> int:
        """Attempts still pending `ring_timeout` + `pipeline.callback_margin_seconds` after they were
        requested lost their answer (link drop, restart): they become `expired` with an event on
        the task, so a new callback may start. A late answer from the PBX still records the truth."""
        now = self.followup.clock.now()
        cutoff = now - timedelta(seconds=self.cfg.ring_timeout + self.settings.pipeline.callback_margin_seconds)
        a = t.callback_attempts.c
        async with self.store.engine.connect() as conn:
            stale = (await conn.execute(select(a.key).where(a.result == "pending", a.requested_at < cutoff))).scalars().all()
        for key in stale:
            async with self.store.begin() as conn:
                row = (await conn.execute(update(t.callback_attempts).where(a.key == key, a.result == "pending")
                                          .values(result="expired", ended_at=now)
                                          .returning(a.task_id, a.pbx, a.agent))).first()
                if row is not None and row.task_id is not None:
                    await self.followup._event(conn, row.task_id, now, "attempt", row.pbx, None, {
                        "key": key, "result": "expired", "failed_leg": "", "agent": row.agent, "talk_seconds": None})
            log.warning("callback %s: no answer from the PBX within %.0f s; marked expired",
                        key, self.cfg.ring_timeout + self.settings.pipeline.callback_margin_seconds)
        return len(stale)


def _interface(channel: str, interfaces: dict[str, list[str]]) -> str:
    """'Local/1001@agents-00000065;1' or 'PJSIP/1001-0000001a' -> the configured interface."""
    base = channel.split(";")[0]
    for candidates in interfaces.values():
        for interface in candidates:
            stem = interface[:-2] if interface.endswith("/n") else interface
            if base == stem or base.startswith(stem + "-"):
                return interface
    return base
