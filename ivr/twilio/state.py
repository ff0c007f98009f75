"""The flow state a Twilio call carries from webhook to webhook (stateless TwiML).

The engine is deterministic (`Session.replay(flow, facts, results)`), so a call's whole state is
the facts snapshot taken at the first webhook (start time, open now, department, the owner route,
the coverage fallback) and the results fed so far. `CallState` holds them; `encode` packs it into
one query parameter (`s`, base64url of compact JSON) of every action URL the TwiML names. Twilio
signs each request over the full URL with the account's auth token, so a state that comes back
with a valid X-Twilio-Signature is one this service wrote: no server-side store is needed for it,
and a restart or a second instance behind the proxy rebuilds the same session. `decode` checks
every value all the same (a signed but malformed state is refused with 400).
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from callcenter.domain import ivr_flow as f
from callcenter.domain.validation import InvalidValue, identifier

MAX_STATE = 1500                 # characters of the encoded state (a call's results are few)
MAX_RESULTS = 60


@dataclass
class CallState:
    script: str                              # "ivr" | "survey"
    started: datetime                        # facts.now (UTC)
    open_now: bool
    department: str | None
    owner: tuple | None = None               # (agent, kind "owner"|"agent", queue, case id or None)
    gap: tuple | None = None                 # Coverage.fallback_for: (kind, queue)
    results: list = field(default_factory=list)
    agent: str | None = None                 # survey: who served the call
    queue: str | None = None                 # survey: the queue (or "direct")

    def with_result(self, result) -> "CallState":
        return CallState(self.script, self.started, self.open_now, self.department, self.owner, self.gap,
                         self.results + [result], self.agent, self.queue)


def _result(r) -> str:
    if isinstance(r, f.Digits):
        return "d" + f.clean_digits(r.value)
    return "x"                               # Done (a callback message left)


def encode(state: CallState) -> str:
    data = {"k": state.script, "t": round(state.started.timestamp(), 3), "o": int(state.open_now),
            "d": state.department, "w": list(state.owner) if state.owner else None,
            "g": list(state.gap) if state.gap else None, "r": [_result(r) for r in state.results],
            "a": state.agent, "q": state.queue}
    raw = json.dumps({k: v for k, v in data.items() if v is not None}, separators=(",", ":"), ensure_ascii=True)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _ident(value, what: str) -> str | None:
    return None if value is None else identifier(value, what)


def decode(text: str) -> CallState:
    """The state from an `s` parameter; InvalidValue for anything this service did not write."""
    if not isinstance(text, str) or not text or len(text) > MAX_STATE:
        raise InvalidValue("missing or oversized flow state")
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise InvalidValue("unreadable flow state") from None
    if not isinstance(data, dict) or data.get("k") not in ("ivr", "survey"):
        raise InvalidValue("unreadable flow state")
    try:
        started = datetime.fromtimestamp(float(data["t"]), tz=timezone.utc)
        results = data.get("r", [])
        if not isinstance(results, list) or len(results) > MAX_RESULTS:
            raise InvalidValue("too many results")
        parsed = []
        for r in results:
            if not isinstance(r, str) or not r or r[0] not in "dx" or (r[0] == "d" and f.clean_digits(r[1:]) != r[1:]):
                raise InvalidValue("bad result in flow state")
            parsed.append(f.Digits(r[1:]) if r[0] == "d" else f.Done())
        owner = data.get("w")
        if owner is not None:
            if not (isinstance(owner, list) and len(owner) == 4 and owner[1] in ("owner", "agent")
                    and (owner[3] is None or isinstance(owner[3], int))):
                raise InvalidValue("bad owner route in flow state")
            owner = (identifier(owner[0], "an agent id"), owner[1], _ident(owner[2], "a queue"), owner[3])
        gap = data.get("g")
        if gap is not None:
            if not (isinstance(gap, list) and len(gap) == 2 and isinstance(gap[0], str) and len(gap[0]) <= 70):
                raise InvalidValue("bad fallback in flow state")
            gap = (gap[0], _ident(gap[1], "a queue"))
        return CallState(data["k"], started, bool(data.get("o")), _ident(data.get("d"), "a department id"),
                         owner, gap, parsed, _ident(data.get("a"), "an agent id"), _ident(data.get("q"), "a queue"))
    except (KeyError, TypeError, OverflowError, OSError, ValueError) as exc:
        if isinstance(exc, InvalidValue):
            raise
        raise InvalidValue("unreadable flow state") from None


class OwnerRoute:
    """The owner route of the snapshot, shaped as the engine reads `Facts.owner_route`."""

    def __init__(self, owner: tuple, identity: str):
        agent, kind, queue, case_id = owner
        self.preferred_agent, self.owner, self.queue, self.case_id = agent, agent if kind == "owner" else None, queue, case_id
        self.preferred_interfaces = (identity,)


def snapshot_owner(route, identity_of) -> tuple | None:
    """(agent, kind, queue, case) from `Cases.route`'s answer when its agent can be dialled on
    Twilio (`identity_of(agent)` -> an identity or None), else None: the menu as usual."""
    agent = getattr(route, "preferred_agent", None)
    if route is None or agent is None or identity_of(agent) is None:
        return None
    kind = "owner" if agent == getattr(route, "owner", None) else "agent"
    case_id = getattr(route, "case_id", None)
    return (agent, kind, getattr(route, "queue", None), int(case_id) if case_id is not None else None)
