"""A/B post coverage (AB岗制度): is every post staffed, and what to do when it is not (pure).

A post has an A (primary) and a B (backup) agent on one queue. In coverage hours (the
department's business hours on workdays) at least one of them must be *available*: logged in
to the post's queue, not paused, and reachable (busy on a call still counts). `CoverageBoard`
keeps each post's state and, when presence changes or the clock moves, returns the commands
that keep the post staffed: bring B in when A goes away, send B back to backup when A returns,
keep the queue penalties (A 0, B 1), and open or close a coverage incident on a gap.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Callable, Iterable

A_PENALTY, B_PENALTY = 0, 1


class PostState(StrEnum):
    A_ON = "a_on"          # A available
    B_COVERS = "b_covers"  # A away, B available
    GAP = "gap"            # nobody available in coverage hours
    CLOSED = "closed"      # outside coverage hours


@dataclass(frozen=True)
class Fallback:
    kind: str = "pool"                 # "post" (another post's queue), "pool" (department queue), "callback"
    post: str | None = None


@dataclass(frozen=True)
class PostSpec:
    id: str
    department: str
    pbx: str
    queue: str
    a: str
    b: str
    a_interface: str
    b_interface: str
    a_name: str = ""
    b_name: str = ""
    b_activation: frozenset[str] = frozenset({"add", "unpause"})   # how B is made ready
    b_standby: str = "penalty"                                     # when A returns: "penalty" or "remove"
    fallback: Fallback = field(default_factory=Fallback)


@dataclass(frozen=True)
class Seat:
    """One agent as a member of one queue, as the PBX reports it."""
    logged_in: bool
    paused: bool = False
    reachable: bool = True
    penalty: int | None = None
    interface: str = ""

    @property
    def available(self) -> bool:
        return self.logged_in and not self.paused and self.reachable


NOT_LOGGED_IN = Seat(False)
Seats = Callable[[str, str, str], Seat]      # (pbx, queue, agent) -> Seat


# --- commands -------------------------------------------------------------------------------

@dataclass(frozen=True)
class AddMember:
    post: str
    pbx: str
    queue: str
    agent: str
    interface: str
    member_name: str
    penalty: int


@dataclass(frozen=True)
class Unpause:
    post: str
    pbx: str
    queue: str
    agent: str
    interface: str


@dataclass(frozen=True)
class SetPenalty:
    post: str
    pbx: str
    queue: str
    agent: str
    interface: str
    penalty: int


@dataclass(frozen=True)
class RemoveMember:
    post: str
    pbx: str
    queue: str
    agent: str
    interface: str


@dataclass(frozen=True)
class NotifyAgent:
    post: str
    agent: str
    kind: str                  # "take_over" or "stand_down"


@dataclass(frozen=True)
class OpenIncident:
    post: str
    department: str
    at: datetime
    start_of_day: bool


@dataclass(frozen=True)
class CloseIncident:
    post: str
    department: str
    at: datetime


Command = AddMember | Unpause | SetPenalty | RemoveMember | NotifyAgent | OpenIncident | CloseIncident


def state_of(spec: PostSpec, seats: Seats, open_now: bool) -> PostState:
    if not open_now:
        return PostState.CLOSED
    if seats(spec.pbx, spec.queue, spec.a).available:
        return PostState.A_ON
    if seats(spec.pbx, spec.queue, spec.b).available:
        return PostState.B_COVERS
    return PostState.GAP


def plan(spec: PostSpec, before: PostState | None, after: PostState, seats: Seats, at: datetime) -> list[Command]:
    """Commands for one post moving from `before` to `after` (and penalty upkeep)."""
    a, b = seats(spec.pbx, spec.queue, spec.a), seats(spec.pbx, spec.queue, spec.b)
    out: list[Command] = []
    # penalties: Asterisk offers calls to A first, to B when A is busy or away
    for agent, seat, want, interface in ((spec.a, a, A_PENALTY, spec.a_interface), (spec.b, b, B_PENALTY, spec.b_interface)):
        if seat.logged_in and seat.penalty is not None and seat.penalty != want:
            out.append(SetPenalty(spec.id, spec.pbx, spec.queue, agent, seat.interface or interface, want))
    if after is before:
        return out
    a_lost = after in (PostState.B_COVERS, PostState.GAP) and before in (PostState.A_ON, None)
    if a_lost or (after is PostState.GAP and before is PostState.CLOSED):
        # make sure B is in the queue and ready
        if not b.logged_in and "add" in spec.b_activation:
            out.append(AddMember(spec.id, spec.pbx, spec.queue, spec.b, spec.b_interface, spec.b_name, B_PENALTY))
        elif b.logged_in and b.paused and "unpause" in spec.b_activation:
            out.append(Unpause(spec.id, spec.pbx, spec.queue, spec.b, b.interface or spec.b_interface))
        if before is not PostState.CLOSED or not b.available:
            out.append(NotifyAgent(spec.id, spec.b, "take_over"))
    if after is PostState.A_ON and before in (PostState.B_COVERS, PostState.GAP) and b.logged_in:
        # A is back: B returns to backup
        if spec.b_standby == "remove":
            out.append(RemoveMember(spec.id, spec.pbx, spec.queue, spec.b, b.interface or spec.b_interface))
        out.append(NotifyAgent(spec.id, spec.b, "stand_down"))
    if after is PostState.GAP:
        out.append(OpenIncident(spec.id, spec.department, at, start_of_day=before is PostState.CLOSED))
    elif before is PostState.GAP:
        out.append(CloseIncident(spec.id, spec.department, at))
    return out


class CoverageBoard:
    """The posts' states; `evaluate` re-judges the posts an agent belongs to (or all)."""

    def __init__(self, specs: Iterable[PostSpec]):
        self.specs = {s.id: s for s in specs}
        self.state: dict[str, PostState] = {}
        self.by_agent: dict[str, list[str]] = {}
        for s in self.specs.values():
            for agent in (s.a, s.b):
                self.by_agent.setdefault(agent, []).append(s.id)

    def evaluate(self, seats: Seats, is_open: Callable[[PostSpec], bool], at: datetime,
                 agents: Iterable[str] | None = None,
                 ready: Callable[[PostSpec], bool] | None = None) -> list[Command]:
        """``ready``: posts it refuses are not judged at all (their PBX's presence is not known
        yet): no command, no state."""
        if agents is None:
            posts: Iterable[str] = self.specs
        else:
            posts = dict.fromkeys(p for agent in agents for p in self.by_agent.get(agent, ()))
        out: list[Command] = []
        for post in posts:
            spec = self.specs[post]
            if ready is not None and not ready(spec):
                continue
            after = state_of(spec, seats, is_open(spec))
            out.extend(plan(spec, self.state.get(post), after, seats, at))
            self.state[post] = after
        return out

    def forget(self) -> None:
        """After a reconnect: judge every post afresh from the resynced picture."""
        self.state.clear()

    def gaps(self, department: str | None = None) -> list[str]:
        return [p for p, s in self.state.items() if s is PostState.GAP
                and (department is None or self.specs[p].department == department)]

    def department_uncovered(self, department: str) -> bool:
        """Every post of the department is in a gap (nobody available to take its calls)."""
        states = [s for p, s in self.state.items() if self.specs[p].department == department]
        return bool(states) and all(s is PostState.GAP for s in states)

    def refusal(self, agent: str, seats: Seats, is_open: Callable[[PostSpec], bool],
                leaving_queue: tuple[str, str] | None = None) -> tuple[str, str] | None:
        """(post, why) when the agent may not pause or log out now (None: allowed): a post of
        theirs would be left with nobody available in coverage hours."""
        for post in self.by_agent.get(agent, ()):
            spec = self.specs[post]
            if leaving_queue is not None and leaving_queue != (spec.pbx, spec.queue):
                continue
            if not is_open(spec):
                continue
            other = spec.b if agent == spec.a else spec.a
            if not seats(spec.pbx, spec.queue, other).available:
                return post, (f"post {post}: {other} is not available, so the post would have nobody to "
                              f"answer its calls")
        return None
