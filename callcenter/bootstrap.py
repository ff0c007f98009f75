"""The composition root: builds the store, the service and the follow-up around one clock.

`serve`, `replay` and `demo` all call `build`; tests build the same thing. Nothing here runs at
import time.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .clock import SystemClock
from .domain.callbacks import CallbackTracker
from .followup.callbacks import Callbacks
from .followup.service import FollowUp
from .service import Service
from .settings import Settings
from .storage.store import Store
from .workdays import build_calendar

log = logging.getLogger(__name__)


@dataclass
class App:
    settings: Settings
    store: Store
    service: Service
    followup: FollowUp
    callbacks: Callbacks
    calendar: object
    clock: object
    extras: list = field(default_factory=list)      # started after the service, stopped before it

    async def start(self) -> None:
        warning = self.calendar.missing_year_warning(self.clock.now().astimezone(self.calendar.tz).date())
        if warning:
            log.warning(warning)
        await self.service.start()                   # migrates the database
        caught_up = await self.followup.process_pending()
        if caught_up:
            log.info("follow-up: caught up on %d calls committed before this start", caught_up)
        for extra in self.extras:
            await extra.start()

    async def stop(self) -> None:
        for extra in reversed(self.extras):
            await extra.stop()
        await self.service.stop()
        await self.followup.process_pending()
        await self.store.close()


def agent_available(service: Service):
    """An agent is available when logged in to some queue, not paused and reachable."""
    def available(agent: str) -> bool:
        return any(m.agent == agent and m.available for m in service.presence.members.values())
    return available


def build(settings: Settings, db_url: str, clock=None) -> App:
    clock = clock or SystemClock()
    store = Store(db_url, clock)
    service = Service(settings, store, clock)
    calendar = build_calendar(settings)
    followup = FollowUp(store, settings, calendar, clock, available=agent_available(service))
    service.on_calls_committed(followup.on_calls_committed)
    callbacks = Callbacks(followup, service.clients, settings)
    contexts = {"*": frozenset({settings.followup.callback.context})}
    service.add_tracker(CallbackTracker(contexts), callbacks.record)
    return App(settings, store, service, followup, callbacks, calendar, clock)
