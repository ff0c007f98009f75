"""A/B post coverage figures for one day, from agent sessions (pure interval arithmetic).

The facts are the sessions `PresenceTracker` closes (callcenter/domain/presence.py): ``login``
(member of a queue), ``pause`` (with its reason) and ``unreachable`` (device UNAVAILABLE/INVALID),
each per (PBX, queue, interface). Anything with the attributes ``agent``, ``queue``, ``kind``,
``reason``, ``started_at`` and ``ended_at`` (and optionally ``pbx``, ``interface``) will do.
Sessions still open at report time are passed like closed ones, ending "now" (`open_sessions`).

Definitions (docs/metrics.md, "Coverage"):

- an agent is **available** for a queue while logged in to it, not paused and reachable; busy on
  a call still counts. Per membership (PBX, interface): login minus pauses minus unreachable;
  an agent with several memberships of the queue is available while any of them is.
- the **business windows** of the day are given by the caller as aware ``(start, end)`` pairs
  (the department's business hours on a workday, none on other days), optionally cut at
  ``until`` (report time: the rest of today is not a gap yet). Everything is clipped to them.
- **covered** = A available ∪ B available; **coverage_pct** = covered / business time × 100,
  one decimal, ``None`` without business time; 100.0 only when there is no gap at all.
- a **gap** is a maximal period inside the windows with neither A nor B available. The lunch
  break is outside the windows, so absence from 11:00 to 14:00 is two gaps.
- a **B takeover** is a maximal period inside the windows where B is available and A is not.
- per agent: login time, available time, unreachable time and pause time by reason, all inside
  the windows (a pause over lunch does not count). A pause without reason is "unspecified".
- **unobserved**: business time outside the given ``observed`` periods (the service was not
  running, or its link to the PBX was down: it cannot know). It is neither covered nor a gap;
  covered, gaps and B takeovers are counted inside the observed periods only, and
  coverage_pct = covered / (business - unobserved). Without ``observed`` everything is observed.

Times are exact (timedelta); `as_dict` gives minutes rounded to two decimals.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable, Protocol, Sequence

from .presence import AgentSession, Member

Interval = tuple[datetime, datetime]
ZERO = timedelta(0)
NO_REASON = "unspecified"


class SessionFact(Protocol):
    agent: str | None
    queue: str
    kind: str
    reason: str
    started_at: datetime
    ended_at: datetime


# --- interval arithmetic (half-open [start, end), aware datetimes) ---------------------------

def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, with empty ones dropped and overlapping or touching ones joined."""
    out: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def union(*sets: Iterable[Interval]) -> list[Interval]:
    return merge(i for s in sets for i in s)


def intersect(a: Iterable[Interval], b: Iterable[Interval]) -> list[Interval]:
    a, b = merge(a), merge(b)
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            out.append((lo, hi))
        if a[i][1] <= b[j][1]:
            i += 1
        else:
            j += 1
    return out


def subtract(a: Iterable[Interval], b: Iterable[Interval]) -> list[Interval]:
    """The parts of ``a`` not in ``b``; periods of ``a`` that do not touch stay apart."""
    cut = merge(b)
    out: list[Interval] = []
    j = 0
    for start, end in merge(a):
        while j < len(cut) and cut[j][1] <= start:
            j += 1
        cur, k = start, j
        while k < len(cut) and cut[k][0] < end:
            if cut[k][0] > cur:
                out.append((cur, cut[k][0]))
            cur = max(cur, cut[k][1])
            k += 1
        if cur < end:
            out.append((cur, end))
    return out


def total(intervals: Iterable[Interval]) -> timedelta:
    return sum((end - start for start, end in intervals), ZERO)


def minutes(value: timedelta) -> float:
    return round(value.total_seconds() / 60, 2)


# --- results ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class AgentFigures:
    login: timedelta = ZERO
    available: timedelta = ZERO
    unreachable: timedelta = ZERO
    pauses: dict[str, timedelta] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"login_minutes": minutes(self.login), "available_minutes": minutes(self.available),
                "unreachable_minutes": minutes(self.unreachable),
                "pauses_by_reason": {r: minutes(t) for r, t in sorted(self.pauses.items())}}


@dataclass(frozen=True)
class Coverage:
    """Totals that add up over posts (a department's roll-up is the sum of its posts)."""
    business: timedelta = ZERO
    covered: timedelta = ZERO
    gap_count: int = 0
    gap_time: timedelta = ZERO
    longest_gap: timedelta = ZERO
    takeover_count: int = 0
    takeover_time: timedelta = ZERO
    unobserved: timedelta = ZERO

    @property
    def coverage_pct(self) -> float | None:
        return coverage_pct(self.business - self.unobserved, self.covered)

    def __add__(self, other: "Coverage") -> "Coverage":
        return Coverage(self.business + other.business, self.covered + other.covered,
                        self.gap_count + other.gap_count, self.gap_time + other.gap_time,
                        max(self.longest_gap, other.longest_gap), self.takeover_count + other.takeover_count,
                        self.takeover_time + other.takeover_time, self.unobserved + other.unobserved)

    def as_dict(self) -> dict:
        return {"business_minutes": minutes(self.business), "covered_minutes": minutes(self.covered),
                "coverage_pct": self.coverage_pct, "gap_count": self.gap_count,
                "gap_minutes": minutes(self.gap_time), "longest_gap_minutes": minutes(self.longest_gap),
                "b_takeovers": self.takeover_count, "b_takeover_minutes": minutes(self.takeover_time),
                "unobserved_minutes": minutes(self.unobserved)}


@dataclass(frozen=True)
class PostFigures:
    coverage: Coverage
    gaps: tuple[Interval, ...]
    takeovers: tuple[Interval, ...]
    agents: dict[str, AgentFigures]
    unobserved: tuple[Interval, ...] = ()

    def as_dict(self) -> dict:
        return {**self.coverage.as_dict(), "agents": {a: f.as_dict() for a, f in self.agents.items()}}


def coverage_pct(business: timedelta, covered: timedelta) -> float | None:
    """covered / business × 100 to one decimal; None without business time; 100.0 only if full."""
    if business <= ZERO:
        return None
    pct = round(covered / business * 100, 1)
    return 99.9 if pct == 100.0 and covered < business else pct


# --- availability ----------------------------------------------------------------------------

QueueMatch = str | Callable[[str, str], bool]       # a queue name, or (pbx, queue) -> bool


def _matcher(queue: QueueMatch) -> Callable[[str, str], bool]:
    if callable(queue):
        return queue
    return lambda _pbx, name: name == queue


@dataclass
class _Membership:
    login: list[Interval] = field(default_factory=list)
    pauses: dict[str, list[Interval]] = field(default_factory=dict)
    unreachable: list[Interval] = field(default_factory=list)

    def available(self) -> list[Interval]:
        return subtract(subtract(self.login, union(*self.pauses.values())), self.unreachable)


def _memberships(facts: Iterable[SessionFact], agent: str, queue: QueueMatch) -> list[_Membership]:
    match = _matcher(queue)
    by_key: dict[tuple[str, str], _Membership] = {}
    for f in facts:
        pbx = getattr(f, "pbx", "")
        if f.agent != agent or not match(pbx, f.queue):
            continue
        m = by_key.setdefault((pbx, getattr(f, "interface", "")), _Membership())
        span = (f.started_at, f.ended_at)
        if f.kind == "login":
            m.login.append(span)
        elif f.kind == "pause":
            m.pauses.setdefault(f.reason or NO_REASON, []).append(span)
        elif f.kind == "unreachable":
            m.unreachable.append(span)
    return list(by_key.values())


def availability(facts: Iterable[SessionFact], agent: str, queue: QueueMatch) -> list[Interval]:
    """When ``agent`` was available for ``queue`` (unclipped)."""
    return union(*(m.available() for m in _memberships(facts, agent, queue)))


def agent_figures(facts: Iterable[SessionFact], agent: str, queue: QueueMatch,
                  windows: Sequence[Interval]) -> AgentFigures:
    members = _memberships(facts, agent, queue)
    login = intersect(union(*(m.login for m in members)), windows)
    reasons = sorted({r for m in members for r in m.pauses})
    pauses = {r: total(intersect(union(*(m.pauses.get(r, []) for m in members)), login)) for r in reasons}
    return AgentFigures(
        login=total(login),
        available=total(intersect(union(*(m.available() for m in members)), windows)),
        unreachable=total(intersect(union(*(m.unreachable for m in members)), login)),
        pauses={r: t for r, t in pauses.items() if t > ZERO})


def business_windows(windows: Iterable[Interval], until: datetime | None = None) -> list[Interval]:
    """The windows merged, and cut at ``until`` when given."""
    merged = merge(windows)
    if until is None:
        return merged
    return [(start, min(end, until)) for start, end in merged if start < until]


def post_figures(facts: Sequence[SessionFact], a: str, b: str, queue: QueueMatch,
                 windows: Iterable[Interval], until: datetime | None = None,
                 observed: Iterable[Interval] | None = None) -> PostFigures:
    """The coverage of one A/B post over the given business windows (see the module docstring).
    ``observed``: when the service could see the post's PBX (None: all the time)."""
    facts = list(facts)
    windows = business_windows(windows, until)
    seen = windows if observed is None else intersect(windows, observed)
    a_av = intersect(availability(facts, a, queue), seen)
    b_av = intersect(availability(facts, b, queue), seen)
    covered = union(a_av, b_av)
    gaps = subtract(seen, covered)
    takeovers = subtract(b_av, a_av) if b != a else []
    coverage = Coverage(
        business=total(windows), covered=total(covered), gap_count=len(gaps), gap_time=total(gaps),
        longest_gap=max((e - s for s, e in gaps), default=ZERO),
        takeover_count=len(takeovers), takeover_time=total(takeovers),
        unobserved=total(windows) - total(seen))
    agents = {agent: agent_figures(facts, agent, queue, windows) for agent in dict.fromkeys((a, b))}
    return PostFigures(coverage, tuple(gaps), tuple(takeovers), agents,
                       tuple(subtract(windows, seen)))


def open_sessions(members: Iterable[Member], now: datetime) -> list[AgentSession]:
    """The sessions still open in a live tracker, as if they closed at ``now``."""
    out: list[AgentSession] = []
    for m in members:
        def session(kind: str, reason: str, since: datetime) -> AgentSession:
            return AgentSession(m.pbx, m.agent, m.interface, m.member_name, m.queue, kind, reason,
                                since, max(since, now))
        out.append(session("login", "", m.logged_in_at))
        if m.paused and m.paused_since is not None:
            out.append(session("pause", m.paused_reason, m.paused_since))
        if m.unreachable_since is not None:
            out.append(session("unreachable", "", m.unreachable_since))
    return out


def agent_day_time(facts: Iterable[SessionFact], start: datetime, until: datetime) -> dict[str, tuple[timedelta, timedelta]]:
    """Per agent: (login time, pause time) within [start, until) (a login spanning midnight
    counts only its part in the day), over every queue: logged in to any queue, paused while
    logged in. The daily report's per-agent figures."""
    day = [(start, until)] if until > start else []
    spans: dict[str, dict[str, list[Interval]]] = {}
    for f in facts:
        if f.agent and f.kind in ("login", "pause"):
            spans.setdefault(f.agent, {}).setdefault(f.kind, []).append((f.started_at, f.ended_at))
    out = {}
    for agent, kinds in spans.items():
        login = intersect(kinds.get("login", []), day)
        out[agent] = (total(login), total(intersect(kinds.get("pause", []), login)))
    return out
