"""The composition root: builds the store, the service and the follow-up around one clock.

`serve`, `replay` and `demo` all call `build`; tests build the same thing. Nothing here runs at
import time.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from .aftercommit import AfterCommit
from .cases.service import Cases
from .checkpointer import Checkpointer
from .clock import SystemClock
from .domain.cases import Presence
from .domain.callbacks import CallbackTracker
from .followup.callbacks import Callbacks
from .followup.service import FollowUp
from .leader import Leadership
from .coverage.service import Coverage
from .notify.channels import PanelChannel, build_channels
from .notify.notifier import Notifier
from .service import Service
from .settings import Settings
from .journal import Backlog, Journal, ListHolder, journal_path
from .storage.store import Store
from .workdays import build_calendar, warn_missing_year

log = logging.getLogger(__name__)
STOP_BUDGET = 8.0           # seconds App.stop may spend before the after-commit pipeline gives up


@dataclass
class App:
    settings: Settings
    store: Store
    service: Service
    followup: FollowUp
    callbacks: Callbacks
    cases: Cases
    coverage: Coverage
    panel: PanelChannel                              # what the web panel will show live
    channels: dict                                   # notification channels by name
    notifier: Notifier
    after_commit: AfterCommit
    calendar: object
    clock: object
    extras: list = field(default_factory=list)      # started after the service, stopped before it
    leadership: Leadership | None = None             # which instance sends AMI actions (callcenter/leader.py)
    backlog: Backlog | None = None                   # held writes: retried, journalled at stop (callcenter/journal.py)

    async def start(self) -> None:
        warn_missing_year(self.calendar, self.clock.now().astimezone(self.calendar.tz).date())
        if self.backlog is not None:
            self.backlog.load()                      # the journal of the last stop, into the holders
        await self.service.start()                   # migrates the database
        if self.backlog is not None:
            await self.backlog.start()               # the journal is written first; then retries
        # calls committed before this start: caught up in the background by the after-commit worker
        for extra in self.extras:
            await extra.start()

    async def stop(self) -> None:
        """Bounded: SIGTERM exits within 10 s whatever the backlog (what is left waits in the
        database, or in the journal, for the next start)."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        for extra in reversed(self.extras):
            await extra.stop()
        await self.service.stop()
        # calls the service flushed while stopping, for pipeline.stop_seconds at most and within
        # STOP_BUDGET of the stop's start; the rest: the next start
        await self.after_commit.finish(max(0.0, min(self.settings.pipeline.stop_seconds,
                                                     STOP_BUDGET - (loop.time() - began))))
        if self.backlog is not None:
            await self.backlog.stop()
            await self.backlog.journal()             # writes still held (database down), for the next start
        await self.store.close()


def agent_available(service: Service):
    """An agent is available when logged in to some queue, not paused and reachable."""
    def available(agent: str) -> bool:
        return any(m.agent == agent and m.available for m in service.presence.members.values())
    return available


def presence_picture(service: Service, settings: Settings):
    """Agent id -> Presence (available anywhere, and the interfaces to ring), for routing."""
    interfaces = {a.id: tuple(a.interfaces) for a in settings.agents}

    def picture() -> dict[str, Presence]:
        out: dict[str, Presence] = {}
        for m in service.presence.members.values():
            if m.agent is None:
                continue
            seen = out.get(m.agent)
            if seen is None or (m.available and not seen.available):
                out[m.agent] = Presence(m.agent, m.available, (m.interface,) + tuple(
                    i for i in interfaces.get(m.agent, ()) if i != m.interface))
        return out
    return picture


def build(settings: Settings, db_url: str, clock=None, live: bool = False, queue_log: bool | None = None) -> App:
    """`live`: notifications leave the system (SMS, e-mail) — `serve` only; replays and the
    demo notify the panel alone. `queue_log` (default: `live`): read the PBXes' queue_log
    files; a replay or the demo plays a stream of its own and never reads them."""
    clock = clock or SystemClock()
    store = Store(db_url, clock, settings.database)
    service = Service(settings, store, clock)
    service.checkpointer = Checkpointer(service, store, clock, settings.instance.checkpoint_seconds)
    service.subscribe(service.checkpointer.on_event)
    leadership = Leadership(db_url, settings.instance.leader_poll_seconds)
    calendar = build_calendar(settings)
    panel = PanelChannel()
    channels = build_channels(settings.notify, panel) if live else {"panel": panel}
    notifier = Notifier(store, channels, clock)
    coverage = Coverage(settings, service, store, calendar, clock, notifier)
    service.subscribe(coverage.on_event)
    cases = Cases(store, settings, calendar, clock, presence=presence_picture(service, settings),
                  gap_fallback=coverage.fallback_for)
    followup = FollowUp(store, settings, calendar, clock, available=agent_available(service), owner_of=cases.owner_of,
                        owners_of=cases.owners_of)
    callbacks = Callbacks(followup, service.clients, settings)
    after_commit = AfterCommit(store, [cases, followup], settings.pipeline, clock, callbacks)
    service.on_calls_committed(after_commit.on_calls_committed)
    contexts = {"*": frozenset({settings.followup.callback.context})}
    service.add_tracker(CallbackTracker(contexts), after_commit.add_callback_results)   # recorded off the consumer
    app = App(settings, store, service, followup, callbacks, cases, coverage, panel, channels, notifier,
              after_commit, calendar, clock)
    coverage.active = callbacks.active = leadership
    leadership.on_change(coverage.on_leadership)
    app.leadership = leadership
    store.health.holders += [service, coverage.held, notifier.held,
                             ListHolder("callback_results", lambda: after_commit.results)]
    app.backlog = Backlog(store.health, store, Journal(journal_path(settings.database.journal, db_url),
                                                       store.engine.url.render_as_string(hide_password=True)),
                          settings.database.retry_seconds, settings.database.stop_seconds,
                          settings.database.probe_seconds)
    app.extras += [leadership, after_commit, coverage]
    from .queuelog.reconciler import QueueLogReconciler
    # queue_log, the PBX's own record: partly-seen and unseen calls completed from it (issue 9)
    if (live if queue_log is None else queue_log):
        app.extras += [QueueLogReconciler(service, store, p, clock) for p in settings.pbxes if p.queue_log]
    return app
