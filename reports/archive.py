"""The report archive: a day's report rendered in one format for one scope (a department, or
"all": the whole hotline), stored with its sha256 and the JSON figures it was rendered from
(table ``report_archive``, callcenter/storage/schema/reports.py).

A report is judged as of ``min(now, end of the day)``: generated after the day is over it is
final (``as_of`` null in the row) and regenerating it gives the same figures, whatever calls
arrive on other days; generated while the day is in progress (the scheduled run after business
hours) it says so (``as_of``). Regenerating replaces the row in place: the same id, so a link
already delivered keeps working, and ``revision`` counts the regenerations; a regeneration that
changes the figures of a finished day is logged as a warning (the day's records changed).

Renderers (reports/render_html.py, render_xlsx.py, render_csv.py) are imported at use.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from callcenter.storage import tables as t

log = logging.getLogger(__name__)

A = t.report_archive.c
ALL = "all"
VOLATILE = ("generated_at",)          # keys that differ between two generations of the same figures
MEDIA = {"html": "text/html", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
         "csv": "text/csv", "json": "application/json"}


@dataclass(frozen=True)
class Archived:
    id: int
    report: str
    day: date
    scope: str
    format: str
    content: bytes
    sha256: str
    figures: dict
    as_of: datetime | None
    generated_at: datetime
    revision: int

    @property
    def media_type(self) -> str:
        return MEDIA[self.format]

    def filename(self) -> str:
        return f"热线日报-{self.day.isoformat()}-{self.scope}.{self.format}"

    def summary(self) -> dict:
        return {"id": self.id, "report": self.report, "date": self.day.isoformat(), "scope": self.scope,
                "format": self.format, "sha256": self.sha256, "size": len(self.content),
                "as_of": _iso(self.as_of), "generated_at": _iso(self.generated_at), "revision": self.revision,
                "url": f"/api/reports/archive/{self.id}"}


def stable_figures(report: dict) -> dict:
    """The report without the keys that change from one generation to the next."""
    return {k: v for k, v in report.items() if k not in VOLATILE}


def render(report: dict, fmt: str) -> bytes:
    """The report in `fmt` (html, xlsx, csv, json) as bytes; CSV as UTF-8 with a BOM (Excel)."""
    if fmt == "json":
        return json.dumps(report, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
    if fmt == "html":
        from reports.render_html import render_html
        return render_html(report).encode("utf-8")
    if fmt == "xlsx":
        from reports.render_xlsx import render_xlsx
        return render_xlsx(report)
    if fmt == "csv":
        from reports.render_csv import render_csv
        text = render_csv(report)
        return text.encode("utf-8") if text.startswith("\ufeff") else ("\ufeff" + text).encode("utf-8")
    raise ValueError(f"unknown report format {fmt!r}")


def scoped(report: dict, scope: str) -> dict:
    """The report cut to one department (as a head sees it: web/reports_api.py), or whole."""
    if scope == ALL:
        return report
    from callcenter.web.reports_api import for_departments
    return for_departments(report, [scope])


class Archive:
    """Builds, stores and reads archived reports for one service (store, settings, clock)."""

    def __init__(self, store, settings, clock):
        self.store = store
        self.settings = settings
        self.clock = clock
        self.tz = ZoneInfo(settings.timezone)
        self._built: dict[tuple[date, datetime], dict] = {}     # inside `one_pass`: one build per day
        self._passes = 0

    @contextlib.contextmanager
    def one_pass(self):
        """Within it, a day's report is built once (for all its scopes and formats); outside,
        every `generate` builds from the store again."""
        self._passes += 1
        try:
            yield self
        finally:
            self._passes -= 1
            if not self._passes:
                self._built = {}

    def as_of(self, day: date) -> tuple[datetime, bool]:
        """The time `day`'s report is judged at, and whether the day is over then."""
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), self.tz).astimezone(timezone.utc)
        now = self.clock.now()
        return (end, True) if now >= end else (now, False)

    async def build(self, day: date) -> tuple[dict, datetime | None]:
        """The whole report of `day` (reports/daily.py over the store's SQL aggregates)."""
        from .assemble import daily_report
        at, over = self.as_of(day)
        report = self._built.get((day, at))
        if report is None:
            report = await daily_report(self.store, self.settings, day, at, trend=True,
                                        known_trend=await self.known_trend(day))
            if self._passes:
                self._built[(day, at)] = report
        return report, (None if over else at)

    async def generate(self, day: date, scope: str, fmt: str, store: bool = True,
                       report: str = "daily") -> Archived:
        """Render `day`'s report for `scope` in `fmt`; stored (inserted, or replacing the row of
        the same report, day, scope and format) unless `store` is false (a dry run)."""
        whole, as_of = await self.build(day)
        figures = scoped(whole, scope)
        content = render(figures, fmt)
        digest = hashlib.sha256(content).hexdigest()
        now = self.clock.now()
        values = dict(report=report, day=day, scope=scope, format=fmt, content=content, sha256=digest,
                      figures=json.dumps(figures, ensure_ascii=False, sort_keys=True), as_of=as_of,
                      generated_at=now)
        if not store:
            return Archived(0, report, day, scope, fmt, content, digest, figures, as_of, now, 0)
        old = await self.find(day, scope, fmt, report)
        if old is None:
            try:
                async with self.store.begin() as conn:
                    row_id = (await conn.execute(insert(t.report_archive).values(revision=1, **values))
                              ).inserted_primary_key[0]
                return await self.get(row_id)
            except IntegrityError:                 # another instance stored it meanwhile: replace it
                old = await self.find(day, scope, fmt, report)
        if old.as_of is None and stable_figures(old.figures) != stable_figures(figures):
            log.warning("report %s %s %s: regenerated figures differ from the archived ones "
                        "(the day's records changed since)", report, day, scope)
        async with self.store.begin() as conn:
            await conn.execute(update(t.report_archive).where(A.id == old.id).values(
                revision=A.revision + 1, **values))
        return await self.get(old.id)

    async def ensure(self, day: date, scope: str, fmt: str, report: str = "daily") -> Archived:
        """The archived report, generated first if there is none yet."""
        found = await self.find(day, scope, fmt, report)
        return found if found is not None else await self.generate(day, scope, fmt, report=report)

    async def known_trend(self, day: date, days: int = 30) -> dict:
        """The trend entries (reports/trend.py `trend_entry`) of the finished days before `day`
        already archived for the whole hotline: the trend then reads only the other days."""
        from .trend import trend_entry
        query = (select(A.day, A.figures).where(A.report == "daily", A.scope == ALL, A.as_of.is_(None),
                                                A.day >= day - timedelta(days=days - 1), A.day < day)
                 .order_by(A.day, A.id))
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        known = {}
        for row in rows:
            try:
                known[row.day] = trend_entry(json.loads(row.figures))
            except (KeyError, TypeError, ValueError):      # an older or partial row: read that day
                continue
        return known

    async def find(self, day: date, scope: str, fmt: str, report: str = "daily") -> Archived | None:
        return await self._one(and_(A.report == report, A.day == day, A.scope == scope, A.format == fmt))

    async def get(self, archive_id: int) -> Archived | None:
        if not 0 < archive_id < 2**31:
            return None
        return await self._one(A.id == archive_id)

    async def list(self, day: date | None = None) -> list[Archived]:
        query = select(t.report_archive).order_by(A.day, A.scope, A.format, A.id)
        if day is not None:
            query = query.where(A.day == day)
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_archived(r) for r in rows]

    async def _one(self, condition) -> Archived | None:
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(select(t.report_archive).where(condition))).mappings().first()
        return None if row is None else _archived(row)


def _archived(row) -> Archived:
    return Archived(row["id"], row["report"], row["day"], row["scope"], row["format"], bytes(row["content"]),
                    row["sha256"], json.loads(row["figures"]), row["as_of"], row["generated_at"], row["revision"])


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).isoformat()
