"""Today's figures for the head dashboard, cached: calls (connect rate, service level, answered,
abandoned) from the stored calls of the local day plus what the service still holds, and the
store's counts (overdue tasks and cases, open coverage incidents).

The calls of the day are read once (at start and when the day changes); every commit adds its
calls (keyed by PBX and call id, so a call committed again replaces itself) and the figures are
recomputed with the daily report's formulas (callcenter/domain/metrics.py) by `refresh`, which
the push loop runs debounced after commits, never per event. The counts are queried by
`refresh_counts` (periodically and after commits).
"""
from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from callcenter.domain.metrics import Figures, daily_figures
from callcenter.storage import tables as t
from reports.daily import metric_settings


class Today:
    def __init__(self, app):
        self.app = app
        self.settings = app.settings
        self.tz = ZoneInfo(app.settings.timezone)
        self.ms = metric_settings(app.settings)
        self.windows = {d.id: tuple((w.start, w.end) for w in app.settings.hours_of(d.id))
                        for d in app.settings.departments}
        self.day = None
        self.records: dict[tuple[str, str], object] = {}
        self.by_department: dict[str, dict] = {}
        self.overdue_tasks: dict[str, int] = {}
        self.overdue_cases: dict[str, int] = {}
        self.open_incidents: dict[str, int] = {}
        self.empty = Figures().as_dict(self.ms)

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        start = datetime.combine(now.astimezone(self.tz).date(), time(0), self.tz)
        return start, start + timedelta(days=1)

    async def load(self, now: datetime) -> None:
        start, end = self.bounds(now)
        records = await self.app.store.calls_between(start, end)
        self.day = start
        self.records = {(r.pbx, r.id): r for r in records}

    def add(self, records) -> None:
        if self.day is None:
            return
        end = self.day + timedelta(days=1)
        for r in records:
            if self.day <= r.started_at < end:
                self.records[(r.pbx, r.id)] = r

    async def refresh(self, now: datetime) -> set[str]:
        """Recompute (reloading on a new day); answers the departments whose figures changed."""
        if self.day is None or self.bounds(now)[0] != self.day:
            await self.load(now)
        end = self.day + timedelta(days=1)
        records = dict(self.records)
        for r in getattr(self.app.service, "unsaved_calls", []):      # held while the database is away
            if self.day <= r.started_at < end:
                records.setdefault((r.pbx, r.id), r)
        calendar = self.app.calendar

        def is_open(department, at) -> bool:
            windows = self.windows.get(department) or tuple((w.start, w.end) for w in self.settings.hours_of(department))
            return calendar.within_business_hours(at, windows)
        figures = daily_figures(list(records.values()), self.app.service.directory, is_open, self.ms)
        per: dict[str, Figures] = {}
        for key, f in figures.queues.items():
            department = figures.queue_department.get(key)
            if department is not None:
                per.setdefault(department, Figures()).add(f)
        fresh = {d: f.as_dict(self.ms) for d, f in per.items()}
        changed = {d for d in set(fresh) | set(self.by_department) if fresh.get(d) != self.by_department.get(d)}
        self.by_department = fresh
        return changed

    def figures(self, department: str) -> dict:
        return self.by_department.get(department, self.empty)

    async def refresh_counts(self, now: datetime) -> set[str]:
        """Overdue open tasks and cases, open incidents, per department; answers what changed."""
        tk, cs, inc = t.tasks.c, t.cases.c, t.coverage_incidents.c
        async with self.app.store.engine.connect() as conn:
            tasks = dict((await conn.execute(select(tk.department, func.count()).where(
                tk.status == "open", tk.deadline < now).group_by(tk.department))).all())
            cases = dict((await conn.execute(select(cs.department, func.count()).where(
                cs.status == "open", cs.deadline.is_not(None), cs.deadline < now).group_by(cs.department))).all())
            incidents = dict((await conn.execute(select(inc.department, func.count()).where(
                inc.closed_at.is_(None)).group_by(inc.department))).all())
        changed = set()
        for old, new in ((self.overdue_tasks, tasks), (self.overdue_cases, cases), (self.open_incidents, incidents)):
            changed |= {d for d in set(old) | set(new) if old.get(d) != new.get(d)}
        self.overdue_tasks, self.overdue_cases, self.open_incidents = tasks, cases, incidents
        return changed
