"""Callback attempts, recognised from the PBX's events (pure).

A callback is an asynchronous Originate that rings the agent first, then dials the caller from
the outbound context. `OriginateResponse` says whether the agent's leg answered; a later
`DialEnd` on the same call (where the outbound dialplan uses Dial) says whether the caller
answered; the attempt ends when its channels hang up. Attempts we started carry our idempotency
key as ActionID; others (e.g. a callback started on the PBX itself) are recognised by the
outbound context.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from . import events as ev

KEY_PREFIX = "cb-"
_REASONS = {"0": "failed", "1": "failed", "3": "no_answer", "5": "busy", "8": "failed"}
_DIAL = {"ANSWER": "answered", "NOANSWER": "no_answer", "BUSY": "busy", "CANCEL": "no_answer"}


@dataclass
class AttemptResult:
    pbx: str
    key: str                     # our idempotency key, or "pbx:<uniqueid or action id>" when not ours
    number: str                  # as dialled, prefix included
    channel: str                 # the agent leg's channel
    result: str                  # answered, no_answer, busy, failed
    failed_leg: str              # "", "agent" or "caller"
    reason_code: str
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime
    uniqueid: str = ""

    @property
    def talk_seconds(self) -> float | None:
        if self.answered_at is None:
            return None
        return round((self.ended_at - self.answered_at).total_seconds(), 1)


@dataclass
class _Live:
    result: AttemptResult
    channels: set[str] = field(default_factory=set)


class CallbackTracker:
    def __init__(self, contexts: dict[str, frozenset[str]]):
        self.contexts = contexts            # pbx id ("*" for all) -> outbound callback contexts
        self.live: dict[tuple[str, str], _Live] = {}         # (pbx, linkedid)
        self.channels: dict[tuple[str, str], str] = {}       # (pbx, uniqueid) -> linkedid

    def _ours(self, e: ev.OriginateResult) -> bool:
        if e.action_id.startswith(KEY_PREFIX):
            return True
        contexts = self.contexts.get(e.pbx) or self.contexts.get("*", frozenset())
        return e.context in contexts

    def feed(self, event: ev.Event) -> list[AttemptResult]:
        if isinstance(event, ev.OriginateResult):
            return self._originated(event)
        if isinstance(event, ev.ChannelCreated):
            if (event.pbx, event.linkedid) in self.live:
                self.live[(event.pbx, event.linkedid)].channels.add(event.uniqueid)
                self.channels[(event.pbx, event.uniqueid)] = event.linkedid
            return []
        if isinstance(event, ev.DialEnded):
            live = self.live.get((event.pbx, event.linkedid or event.dest_linkedid))
            if live is not None and event.uniqueid in live.channels and event.status in _DIAL:
                # the outbound dialplan dialled the caller: that result wins
                live.result.result = _DIAL[event.status]
                if live.result.result != "answered":
                    live.result.answered_at, live.result.failed_leg = None, "caller"
                else:
                    live.result.answered_at = event.at
            return []
        if isinstance(event, ev.ChannelHungup):
            linkedid = self.channels.pop((event.pbx, event.uniqueid), None)
            live = self.live.get((event.pbx, linkedid)) if linkedid else None
            if live is None:
                return []
            live.channels.discard(event.uniqueid)
            if not live.channels:
                del self.live[(event.pbx, linkedid)]
                live.result.ended_at = event.at
                return [live.result]
        return []

    def _originated(self, e: ev.OriginateResult) -> list[AttemptResult]:
        if not self._ours(e):
            return []
        key = e.action_id if e.action_id.startswith(KEY_PREFIX) else f"{e.pbx}:{e.uniqueid if e.success else e.action_id}"
        result = AttemptResult(e.pbx, key, e.exten, e.channel, "answered" if e.success else _REASONS.get(e.reason, "failed"),
                               "" if e.success else "agent", e.reason, e.at, e.at if e.success else None, e.at,
                               e.uniqueid if e.success else "")
        if not e.success or not e.uniqueid or e.uniqueid == "<unknown>":
            return [result]
        self.live[(e.pbx, e.uniqueid)] = _Live(result, {e.uniqueid})
        self.channels[(e.pbx, e.uniqueid)] = e.uniqueid
        return []
