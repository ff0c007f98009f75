"""The probes' schedule: an APScheduler interval job (every `probes.tick_seconds`, and once at
start) that asks the pure plan which slots are due now (the injectable clock, the workday
calendar, each hotline's department's business hours) and places one probe per hotline and slot,
a few at a time. Only the active instance places probes (callcenter/leader.py); a slot is recorded
before it is dialled and is unique in the database, so it is placed once.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from ..domain.calendar import normalize_windows
from .plan import due_slots, slot_label, targets

log = logging.getLogger(__name__)
PARALLEL = 4            # probes dialled at once (each holds a hotline line for a few seconds)


class ProbeScheduler:
    def __init__(self, prober, settings, calendar, clock):
        self.prober = prober
        self.settings = settings
        self.cfg = settings.probes
        self.calendar = calendar
        self.clock = clock
        self.tz = ZoneInfo(settings.timezone)
        self.active = lambda: True          # more than one instance: only the active one probes
        self.scheduler: AsyncIOScheduler | None = None
        self.tried: set[tuple[str, str, str]] = set()     # (pbx, hotline, slot) tried by this process
        self._running: asyncio.Task | None = None
        self.ticks = 0

    async def start(self) -> None:
        self.scheduler = AsyncIOScheduler(timezone=self.tz)
        common = {"coalesce": True, "max_instances": 1}
        self.scheduler.add_job(self.run_tick, "interval", seconds=self.cfg.tick_seconds, id="probe-tick",
                               misfire_grace_time=max(1, int(self.cfg.tick_seconds)), **common)
        self.scheduler.add_job(self.run_tick, id="probe-tick-at-start", misfire_grace_time=None, **common)
        self.scheduler.start()

    async def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        running = self._running
        if running is not None and not running.done():
            running.cancel()                 # a probe in flight: its row stays pending (placed, not judged)
            await asyncio.wait({running}, timeout=1)

    async def run_tick(self) -> None:
        if self._running is not None and not self._running.done():
            return
        self._running = asyncio.ensure_future(self.tick())
        try:
            await asyncio.shield(self._running)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("probe schedule: a tick failed; next at the next tick")

    def due(self) -> list[tuple[object, str]]:
        """(target, slot label) of the probes due now and not yet tried by this process."""
        now = self.clock.now()
        grace = timedelta(minutes=self.cfg.grace_minutes)
        out = []
        for target in targets(self.settings):
            windows = normalize_windows([(w.start, w.end) for w in self.settings.hours_of(target.department)])
            for slot in due_slots(now, self.tz, self.calendar.is_workday, windows, self.cfg.times,
                                  self.cfg.interval_minutes, grace):
                label = slot_label(slot)
                if (target.pbx, target.hotline, label) not in self.tried:
                    out.append((target, label))
        return out

    async def tick(self) -> list[dict]:
        """Place the probes due now; returns the rows of the probes placed."""
        self.ticks += 1
        if not self.active():
            return []
        await self.prober.expire()
        due = self.due()
        gate = asyncio.Semaphore(PARALLEL)

        async def one(target, label):
            self.tried.add((target.pbx, target.hotline, label))
            async with gate:
                try:
                    return await self.prober.probe(target, label, "schedule")
                except Exception:
                    log.exception("probe of hotline %s on %s failed", target.hotline, target.pbx)
                    return None
        rows = await asyncio.gather(*(one(target, label) for target, label in due))
        return [r for r in rows if r is not None]
