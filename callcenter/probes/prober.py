"""Placing one probe and recording it (the `probes` table).

`Prober.probe(target)` checks every value it will send (the hotline a phone number, the PBX and
context identifiers, the caller id; every Originate field one safe AMI line: the AMI client
checks once more before writing), records the probe as pending (a scheduled slot is unique per
PBX and hotline, so a slot is placed once whatever the instances or restarts), then sends one
asynchronous Originate of `Local/<hotline>@<probes.context>` that presents `probes.caller_id`,
waits `probes.answer_timeout` for the hotline to answer and hangs up `probes.hold_seconds` after
the answer. Its ActionID is the probe's key, so the PBX's `OriginateResponse` names it: answered
(with the seconds from placing to answer), or the reason (no answer, busy, congestion,
unreachable). A PBX that is not connected, a link lost before the answer, or no response at all is
recorded as failed too (link_down, no_response); nothing is raised to the scheduler.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from ..ami.client import ActionFailed, ActionTimeout, AmiError, NotSent, UnsafeAction
from ..domain import events as ev
from ..domain.validation import InvalidValue, ami_field, identifier, phone_number
from ..storage import tables as t
from .plan import KEY_PREFIX, Target, result_of

log = logging.getLogger(__name__)
MARGIN = 10.0          # seconds past the answer timeout an OriginateResponse may take to arrive
LINK_WAIT = 5.0        # seconds a probe waits for a link that is not up (yet) before link_down


class ProbeError(ValueError):
    """A probe that cannot be placed as asked (bad value, unknown hotline or PBX)."""


def originate_fields(cfg, target: Target) -> dict:
    """The Originate's fields; every value checked where it enters (here) and again by the AMI client."""
    try:
        identifier(target.pbx, "a PBX id")
        phone_number(target.hotline)
        identifier(cfg.context, "a dialplan context")
        phone_number(cfg.caller_id or "")
    except InvalidValue as exc:
        raise ProbeError(f"probe of {target.hotline!r} on {target.pbx!r}: {exc}") from None
    fields = {"Channel": f"Local/{target.hotline}@{cfg.context}", "Application": "Wait",
              "Data": f"{cfg.hold_seconds:g}", "CallerID": f'"{cfg.caller_name}" <{cfg.caller_id}>',
              "Timeout": str(int(cfg.answer_timeout * 1000)), "Async": "true",
              "Variable": [f"__CALLCENTER_PROBE={cfg.caller_id}"]}
    for name, value in fields.items():
        for item in (value if isinstance(value, list) else [value]):
            problem = ami_field(name, str(item))
            if problem:
                raise ProbeError(f"probe field {name}: {problem}")
    return fields


class Prober:
    def __init__(self, settings, store, clock, clients: dict):
        self.settings = settings
        self.cfg = settings.probes
        self.store = store
        self.clock = clock
        self.clients = clients                     # pbx id -> AmiClient (the service's)
        self.pending: dict[str, tuple[str, asyncio.Future]] = {}    # key -> (pbx, its OriginateResponse)
        self.placed = 0

    def on_event(self, event: ev.Event) -> None:
        """The stream's listener: OriginateResponse of our probes; a lost link fails them."""
        if isinstance(event, ev.OriginateResult) and event.action_id in self.pending:
            future = self.pending[event.action_id][1]
            if not future.done():
                future.set_result(event)
        elif isinstance(event, ev.LinkLost):
            for pbx, future in self.pending.values():
                if pbx == event.pbx and not future.done():
                    future.set_result(None)

    async def probe(self, target: Target, slot: str | None = None, trigger: str = "manual") -> dict | None:
        """Place one probe and return its row; None when the slot was already placed."""
        fields = originate_fields(self.cfg, target)
        key = f"{KEY_PREFIX}{uuid.uuid4().hex[:16]}"
        placed_at = self.clock.now()
        try:
            async with self.store.begin() as conn:
                await conn.execute(insert(t.probes).values(
                    key=key, pbx=target.pbx, hotline=target.hotline, department=target.department, slot=slot,
                    trigger=trigger, placed_at=placed_at, result="pending", reason=""))
        except IntegrityError:
            return None                                    # this slot is placed already
        self.placed += 1
        result, reason, uniqueid, seconds = await self._dial(key, target, fields)
        answered_at = self.clock.now() if result == "answered" else None
        async with self.store.begin() as conn:
            await conn.execute(update(t.probes).where(t.probes.c.key == key).values(
                result=result, reason=reason[:500], uniqueid=uniqueid or None, answered_at=answered_at,
                answer_seconds=seconds))
        level = logging.INFO if result == "answered" else logging.WARNING
        log.log(level, "probe %s of hotline %s on %s: %s%s", key, target.hotline, target.pbx, result,
                f" in {seconds:.1f} s" if seconds is not None else f" ({reason})" if reason else "")
        return await self.row(key)

    async def _dial(self, key: str, target: Target, fields: dict) -> tuple[str, str, str, float | None]:
        """(result, reason, uniqueid, seconds to answer)."""
        client = self.clients.get(target.pbx)
        if client is not None and not client.connected.is_set():
            try:                                           # a link coming up (start-up, a reconnect)
                await asyncio.wait_for(client.connected.wait(), LINK_WAIT)
            except asyncio.TimeoutError:
                pass
        if client is None or not client.connected.is_set():
            return "link_down", f"PBX {target.pbx} not connected", "", None
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending[key] = (target.pbx, future)
        started = loop.time()
        try:
            try:
                await client.originate(key, fields)
            except (NotSent, UnsafeAction) as exc:
                return ("link_down" if isinstance(exc, NotSent) else "failed"), str(exc), "", None
            except ActionFailed as exc:
                return "failed", f"Originate refused: {exc}", "", None
            except ActionTimeout as exc:
                return "no_response", str(exc), "", None
            except AmiError as exc:                        # the link dropped after sending
                return "link_down", str(exc), "", None
            try:
                event = await asyncio.wait_for(asyncio.shield(future), self.cfg.answer_timeout + MARGIN)
            except asyncio.TimeoutError:
                if not client.connected.is_set():
                    return "link_down", "link lost before the PBX answered", "", None
                return "no_response", f"no OriginateResponse within {self.cfg.answer_timeout + MARGIN:g} s", "", None
            if event is None:
                return "link_down", "link lost before the PBX answered", "", None
            seconds = round(loop.time() - started, 2)
            result = result_of(event.success, event.reason)
            if result == "answered":
                return result, "4", event.uniqueid, seconds
            return result, f"reason {event.reason}", "", None
        finally:
            self.pending.pop(key, None)

    async def expire(self) -> int:
        """Probes left pending by a stop or a crash (placed longer ago than the answer could take)
        are recorded as `no_response`: placed, never judged."""
        cutoff = self.clock.now() - timedelta(seconds=self.cfg.answer_timeout + MARGIN + 60)
        p = t.probes.c
        async with self.store.begin() as conn:
            done = await conn.execute(update(t.probes).where(p.result == "pending", p.placed_at < cutoff, *(
                [p.key.notin_(list(self.pending))] if self.pending else [])).values(
                result="no_response", reason="the service stopped before the PBX answered"))
        return done.rowcount or 0

    async def row(self, key: str) -> dict | None:
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(select(t.probes).where(t.probes.c.key == key))).mappings().first()
        return _plain(dict(row)) if row is not None else None


def _plain(row: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
