"""The daily report job: on each workday, after business hours, the day's reports are generated,
archived (reports/archive.py) and delivered by the configured rules (reports/deliver.py).

`ReportSchedule` is one of `App.extras` (attached by `attach` in callcenter/bootstrap.py, `serve`
only). An APScheduler interval job runs `run_due` every ``interval`` seconds, and once right at
start and whenever this instance becomes the active one (callcenter/leader.py): so a run missed
while the service was down, or while another instance was active and died, is caught up. Only
the active instance runs it. A pass looks at the workdays (the workday calendar: holidays and
make-up workdays) of the last ``CATCH_UP_DAYS`` days whose delivery time has passed, none before
the first stored call or archived report (a new installation does not report the weeks before):
- the whole hotline's JSON report is archived once, after every department's hours end
  (+30 minutes), whether or not a rule delivers anything;
- each delivery a rule owes and that is not recorded yet is sent (generating its report first).
"""
from __future__ import annotations

import asyncio
import logging
from datetime import date, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import func, select

from callcenter.storage import tables as t

from .archive import ALL, Archive
from .deliver import AFTER_HOURS, Deliverer

log = logging.getLogger(__name__)
CATCH_UP_DAYS = 14
INTERVAL = 60.0


class ReportSchedule:
    def __init__(self, app, rules=None, interval: float = INTERVAL, active=None):
        self.app = app
        self.clock = app.clock
        self.calendar = app.calendar
        self.archive = Archive(app.store, app.settings, app.clock)
        self.deliverer = Deliverer(app, self.archive, rules)
        self.interval = interval
        self.active = active or app.leadership or (lambda: True)
        self.tz = self.deliverer.tz
        self.scheduler: AsyncIOScheduler | None = None
        self.runs = 0
        self._running: asyncio.Future | None = None
        self._stopping = False

    # --- what is due now ----------------------------------------------------------------------

    def days(self, today: date, first: date | None = None) -> list[date]:
        """The workdays among the last CATCH_UP_DAYS days, none before `first`, oldest first."""
        return [d for d in (today - timedelta(days=n) for n in range(CATCH_UP_DAYS, -1, -1))
                if (first is None or d >= first) and self.calendar.is_workday(d)]

    async def first_day(self, today: date) -> date:
        """The first day there is anything to report: the first stored call's or archived
        report's (a new installation does not report the weeks before it existed)."""
        async with self.app.store.engine.connect() as conn:
            first_call = (await conn.execute(select(func.min(t.calls.c.started_at)))).scalar()
            first_report = (await conn.execute(select(func.min(t.report_archive.c.day)))).scalar()
        days = [today] + ([first_call.astimezone(self.tz).date()] if first_call else []) + \
            ([first_report] if first_report else [])
        return min(days)

    async def run_due(self) -> dict[str, int]:
        """Archive and deliver what is due now and not done yet; returns counts."""
        now = self.clock.now()
        today = now.astimezone(self.tz).date()
        days = self.days(today, await self.first_day(today))
        counts = {"archived": 0, "sent": 0, "failed": 0, "skipped": 0, "retried": 0}
        with self.archive.one_pass():
            for day in days:
                if now >= self.deliverer.end_of_hours(day, ALL) + AFTER_HOURS \
                        and await self.archive.find(day, ALL, "json") is None:
                    await self.archive.generate(day, ALL, "json")
                    counts["archived"] += 1
            due = [d for day in days for d in self.deliverer.plan(day) if d.due <= now]
            result = await self.deliverer.deliver(due)
        for key, value in result.items():
            counts[key] += value
        self.runs += 1
        if any(counts.values()):
            log.info("reports: %s", ", ".join(f"{k} {v}" for k, v in counts.items() if v))
        return counts

    # --- App.extras ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = False
        self.scheduler = AsyncIOScheduler(timezone=self.tz)
        common = {"coalesce": True, "max_instances": 1}
        self.scheduler.add_job(self.run, "interval", seconds=self.interval, id="reports",
                               misfire_grace_time=max(1, int(self.interval)), **common)
        self.scheduler.add_job(self.run, id="reports-at-start", misfire_grace_time=None, **common)
        self.scheduler.start()

    async def stop(self, timeout: float = 1.5) -> None:
        if self.scheduler is None:
            return
        self._stopping = True
        self.scheduler.shutdown(wait=False)
        await asyncio.sleep(0)
        running = self._running
        if running is not None and not running.done():      # let a pass finish what it claimed
            done, _ = await asyncio.wait({running}, timeout=timeout)
            if not done:
                running.cancel()
        self.scheduler = None

    def on_leadership(self, active: bool) -> None:
        """This instance became active: catch up at once (the previous one may have died)."""
        if active and self.scheduler is not None and not self._stopping:
            asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        if self._stopping or (self._running is not None and not self._running.done()) or not self.active():
            return
        self._running = asyncio.ensure_future(self.run_due())
        self._running.add_done_callback(self._done)
        await asyncio.wait({self._running})

    def _done(self, run: asyncio.Future) -> None:
        if not run.cancelled() and run.exception() is not None:
            log.error("report run failed; next try in %.0f s", self.interval, exc_info=run.exception())


def attach(app) -> ReportSchedule:
    """Wire the report job into `app` (one of its extras; the active instance runs it)."""
    schedule = ReportSchedule(app)
    if app.leadership is not None:
        app.leadership.on_change(schedule.on_leadership)
    app.extras.append(schedule)
    return schedule
