"""The composition root: builds the store, the service and the follow-up around one clock.

`serve`, `replay` and `demo` all call `build`; tests build the same thing. Nothing here runs at
import time.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .aftercommit import AfterCommit
from .cases.service import Cases
from .clock import SystemClock
from .domain.cases import Presence
from .domain.callbacks import CallbackTracker
from .followup.callbacks import Callbacks
from .followup.service import FollowUp
from .coverage.service import Coverage
from .notify.channels import PanelChannel, build_channels
from .notify.notifier import Notifier
from .service import Service
from .settings import Settings
from .storage.store import Store
from .workdays import build_calendar, warn_missing_year

log = logging.getLogger(__name__)


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

    async def start(self) -> None:
        warn_missing_year(self.calendar, self.clock.now().astimezone(self.calendar.tz).date())
        await self.service.start()                   # migrates the database
        await self.after_commit.run_once()           # calls committed before this start
        for extra in self.extras:
            await extra.start()

    async def stop(self) -> None:
        for extra in reversed(self.extras):
            await extra.stop()
        await self.service.stop()
        await self.after_commit.run_once()           # calls the service flushed while stopping
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


def build(settings: Settings, db_url: str, clock=None, live: bool = False) -> App:
    """`live`: notifications leave the system (SMS, e-mail) — `serve` only; replays and the
    demo notify the panel alone."""
    clock = clock or SystemClock()
    store = Store(db_url, clock)
    service = Service(settings, store, clock)
    calendar = build_calendar(settings)
    panel = PanelChannel()
    channels = build_channels(settings.notify, panel) if live else {"panel": panel}
    notifier = Notifier(store, channels, clock)
    coverage = Coverage(settings, service, store, calendar, clock, notifier)
    service.subscribe(coverage.on_event)
    cases = Cases(store, settings, calendar, clock, presence=presence_picture(service, settings),
                  gap_fallback=coverage.fallback_for)
    followup = FollowUp(store, settings, calendar, clock, available=agent_available(service), owner_of=cases.owner_of)
    after_commit = AfterCommit([cases.process_pending, followup.process_pending])
    service.on_calls_committed(after_commit.on_calls_committed)
    callbacks = Callbacks(followup, service.clients, settings, catch_up=after_commit.run_once)
    contexts = {"*": frozenset({settings.followup.callback.context})}
    service.add_tracker(CallbackTracker(contexts), callbacks.record)
    app = App(settings, store, service, followup, callbacks, cases, coverage, panel, channels, notifier,
              after_commit, calendar, clock)
    app.extras += [after_commit, coverage]
    return app
