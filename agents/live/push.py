"""What makes the panel live: PBX events, desk changes and commits in, hub messages out.

`LivePush` is one of `App.extras`. It listens to the service's ordered event stream (first of
the listeners, so it knows when the event being processed arrived), to the agent desk's changes
(``app.desk.on_change``) and to call commits, and publishes:

- an agent's view (``agent:<id>``) at once: changed agents are collected while the consumer
  processes what has arrived and published in the next turn of the loop (the agent and the other
  agents on their posts, whose "my posts" show them);
- a department's dashboard (``dept:<id>``, and a masked copy to ``office``), throttled: at most
  one push per department per ``dashboard_interval`` (50 ms): the first change is pushed on the
  next turn of the loop, further changes within the interval wait for its end and go as one;
- ``ringing`` when an agent's view turns to ringing.

Each message carries ``event_at``: when the earliest event it answers arrived at the service (the
AMI client's receive time of the inbox entry it came in, ``Service.received``;
for a change without a PBX event, a timer of the desk or a request, the moment it happened).
Today's figures are recomputed after commits (debounced by ``figures_delay``), the store's counts
every ``counts_seconds`` and after commits, and a ticker (``tick_seconds``) pushes what time alone
changes (alarms: the longest wait passing its target, a pause passing its maximum, a post's gap).
"""
from __future__ import annotations

import asyncio
import logging

from callcenter.domain import events as ev
from .hub import Hub, iso
from .today import Today
from .views import agent_message, alarm_keys, dashboard_message, department_agents, masked_copy

log = logging.getLogger(__name__)
CALL_EVENTS = (ev.QueueJoined, ev.QueueAbandoned, ev.QueueLeft, ev.QueueExited, ev.AgentConnected,
               ev.AgentCompleted, ev.AgentRinging, ev.AgentNoAnswer)
PRESENCE_EVENTS = (ev.MemberState, ev.MemberRemoved, ev.DeviceStateChanged)


class LivePush:
    """One of `App.extras`; built by `callcenter.bootstrap.build` (``app.live``)."""

    def __init__(self, app, hub: Hub, dashboard_interval: float = 0.05, figures_delay: float = 0.5,
                 counts_seconds: float = 10.0, tick_seconds: float = 1.0):
        self.app = app
        self.hub = hub
        self.clock = app.clock
        self.dashboard_interval = dashboard_interval
        self.figures_delay = figures_delay
        self.counts_seconds = counts_seconds
        self.tick_seconds = tick_seconds
        self.today = Today(app)
        settings = app.settings
        self.departments = [d.id for d in settings.departments]
        self.agent_departments: dict[str, set[str]] = {}
        self.partners: dict[str, set[str]] = {}
        for p in settings.posts:
            for agent in (p.a, p.b):
                self.agent_departments.setdefault(agent, set()).add(p.department)
                self.partners.setdefault(agent, set()).update({p.a, p.b})
        self.dept_agents = {d: department_agents(settings, d) for d in self.departments}
        self.queue_department = dict(app.service.directory.queue_department)
        self._stamp = None                       # arrival of the first event of this loop turn
        self._agents: dict[str, object] = {}     # agent -> earliest event_at not yet pushed
        self._agents_scheduled = False
        self._depts: dict[str, object] = {}      # department -> earliest event_at not yet pushed
        self._dept_timer: dict[str, asyncio.Handle] = {}
        self._last_push: dict[str, float] = {}
        self._states: dict[str, str] = {}        # agent -> state last published (ringing detection)
        self._alarms: dict[str, tuple] = {}
        self._tasks: list[asyncio.Task] = []
        self._figures_due: asyncio.Event | None = None
        self._desk_bound = False
        self.posts_delay = 0.1
        self._posts_check: asyncio.TimerHandle | None = None
        self._post_states: dict = {}
        app.service.listeners.insert(0, self.on_event)
        app.service.on_calls_committed(self.on_commit)

    # --- inputs (sync, on the loop) -----------------------------------------------------------

    def stamp(self, arrived=None):
        """When what the loop is processing now arrived (one stamp per loop turn, the oldest
        arrival seen in it): an event's inbox entry's receive time (`Service.received`), else
        (a timer, a request) now."""
        if self._stamp is None:
            self._stamp = arrived or self.clock.now()
            asyncio.get_running_loop().call_soon(self._unstamp)
        elif arrived is not None and arrived < self._stamp:
            self._stamp = arrived
        return self._stamp

    def _unstamp(self) -> None:
        self._stamp = None

    def on_event(self, event) -> None:
        self.stamp(self.app.service.received)    # the arrival of this loop turn's events
        if isinstance(event, CALL_EVENTS):
            department = self.queue_department.get((event.pbx, event.queue))
            if department is not None:
                self.dirty_departments({department})
        elif isinstance(event, PRESENCE_EVENTS):
            self.dirty_departments(self._departments_of_presence(event))
            self._posts_soon()
        elif isinstance(event, (ev.Resynced, ev.LinkLost)):
            self.dirty_departments(set(self.departments))
            self._posts_soon()

    def _posts_soon(self) -> None:
        """The coverage worker judges the posts after a presence change: look at its board a
        moment later (and every tick), so "my posts" and the dashboards show the new post states."""
        if self._posts_check is None:
            self._posts_check = asyncio.get_running_loop().call_later(self.posts_delay, self._check_posts)

    def _check_posts(self) -> None:
        self._posts_check = None
        board = self.app.coverage.board
        changed = {post for post in set(board.state) | set(self._post_states)
                   if board.state.get(post) != self._post_states.get(post)}
        self._post_states = dict(board.state)
        agents = set()
        for post in changed:
            spec = board.specs.get(post)
            if spec is not None:
                agents |= {spec.a, spec.b}
        if agents:
            self.agents_changed(agents)

    def _agent_of(self, event):
        if isinstance(event, ev.DeviceStateChanged):
            return None
        return self.app.service.directory.agent_of(event.interface, event.member_name, event.pbx)

    def _departments_of_presence(self, event) -> set[str]:
        if isinstance(event, ev.DeviceStateChanged):
            return set(self.departments)
        out = set()
        department = self.queue_department.get((event.pbx, event.queue))
        if department is not None:
            out.add(department)
        agent = self._agent_of(event)
        out |= self.agent_departments.get(agent, set())
        return out

    def agents_changed(self, agents) -> None:
        """The desk's `on_change`: these agents' views changed."""
        at = self.stamp()
        for agent in agents:
            for other in self.partners.get(agent, {agent}) | {agent}:
                self._agents.setdefault(other, at)
            self.dirty_departments(self.agent_departments.get(agent, ()), at)
        if self._agents and not self._agents_scheduled:
            self._agents_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_agents)

    def dirty_departments(self, departments, at=None) -> None:
        if not departments:
            return
        at = at or self.stamp()
        loop = asyncio.get_running_loop()
        for d in departments:
            self._depts.setdefault(d, at)
            if d in self._dept_timer:
                continue
            wait = self._last_push.get(d, -1e9) + self.dashboard_interval - loop.time()
            self._dept_timer[d] = (loop.call_later(wait, self._flush_department, d) if wait > 0
                                   else loop.call_soon(self._flush_department, d))

    async def on_commit(self, records) -> None:
        self.today.add(records)
        if self._figures_due is not None:
            self._figures_due.set()

    # --- outputs ------------------------------------------------------------------------------

    def _flush_agents(self) -> None:
        self._agents_scheduled = False
        pending, self._agents = self._agents, {}
        now = self.clock.now()
        for agent, at in pending.items():
            topic = f"agent:{agent}"
            view = None
            if self.hub.listened(topic):
                try:
                    message = agent_message(self.app, agent, now)
                except Exception:
                    log.exception("building agent %s's view failed", agent)
                    continue
                view = message["view"]
                message["event_at"] = iso(at)
                if view.get("state") == "ringing" and self._states.get(agent) != "ringing":
                    self.hub.publish(topic, {"type": "ringing", "agent": agent, "call": view.get("call"),
                                             "event_at": iso(at)}, key=agent)
                self.hub.publish(topic, message, key=agent)
                self._states[agent] = view.get("state")

    def _flush_department(self, department: str) -> None:
        self._dept_timer.pop(department, None)
        at = self._depts.pop(department, None)
        self._last_push[department] = asyncio.get_running_loop().time()
        self.publish_dashboard(department, at)

    def publish_dashboard(self, department: str, at=None) -> None:
        """Built once; the department's heads get it as is, the office a masked copy."""
        topic = f"dept:{department}"
        heads, office = self.hub.listened(topic), self.hub.listened("office")
        if not (heads or office):
            return
        try:
            message = dashboard_message(self.app, department, self.clock.now(), self.today,
                                        agents=self.dept_agents.get(department, []))
        except Exception:
            log.exception("building the dashboard of %s failed", department)
            return
        message["event_at"] = iso(at)
        if office:
            self.hub.publish("office", masked_copy(message), key=department)
        if heads:
            self.hub.publish(topic, message, key=department)

    def agent_snapshot(self, agent: str) -> dict:
        return agent_message(self.app, agent, self.clock.now())

    def dashboard_snapshot(self, department: str, masked: bool = False) -> dict:
        return dashboard_message(self.app, department, self.clock.now(), self.today, masked=masked,
                                 agents=self.dept_agents.get(department))

    # --- background ---------------------------------------------------------------------------

    async def start(self) -> None:
        if not self._desk_bound:                          # the desk: agents/desk.py
            self.app.desk.on_change(self.agents_changed)
            self._desk_bound = True
        now = self.clock.now()
        try:
            await self.today.refresh(now)
            await self.today.refresh_counts(now)
        except Exception:
            log.exception("today's figures could not be read at start; retried after the next commit")
        self._figures_due = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._figures(), name="live-figures"),
                       loop.create_task(self._counts(), name="live-counts"),
                       loop.create_task(self._tick(), name="live-tick")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks = []
        for handle in [*self._dept_timer.values(), self._posts_check]:
            if handle is not None:
                handle.cancel()
        self._posts_check = None
        self._dept_timer.clear()
        self.hub.close_all()

    async def _figures(self) -> None:
        while True:
            await self._figures_due.wait()
            await asyncio.sleep(self.figures_delay)       # debounce: one recompute for a burst of commits
            self._figures_due.clear()
            try:
                changed = await self.today.refresh(self.clock.now())
                changed |= await self.today.refresh_counts(self.clock.now())
            except Exception as exc:
                log.warning("today's figures not refreshed: %s", exc)
                continue
            self.dirty_departments(changed)

    async def _counts(self) -> None:
        while True:
            await asyncio.sleep(self.counts_seconds)
            try:
                changed = await self.today.refresh_counts(self.clock.now())
                if self.today.day is not None and self.today.bounds(self.clock.now())[0] != self.today.day:
                    changed |= await self.today.refresh(self.clock.now())     # a new day
            except Exception as exc:
                log.warning("overdue counts not refreshed: %s", exc)
                continue
            self.dirty_departments(changed)

    async def _tick(self) -> None:
        """What time alone changes: alarms (and the coverage board's post states)."""
        while True:
            await asyncio.sleep(self.tick_seconds)
            try:
                self._check_posts()
                self._check_alarms()
            except Exception:
                log.exception("the alarm check failed")

    def _check_alarms(self) -> None:
        watched = [d for d in self.departments if self.hub.listened(f"dept:{d}") or self.hub.listened("office")]
        keys = alarm_keys(self.app, watched, self.dept_agents, self.clock.now())
        changed = {d for d, key in keys.items() if self._alarms.get(d) != key}
        self._alarms.update(keys)
        self.dirty_departments(changed)
