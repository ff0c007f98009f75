"""``GET /api/reports/daily``: the daily report (reports/daily.py, as ``callcenter report daily``
builds it) for heads (their departments) and the office, as JSON (``format=json``, the default),
a printable zh-CN HTML page with charts (``html``: the dashboard's "open the daily report"
button), an Excel workbook (``xlsx``) or a CSV table (``csv``); reports/render_*.py render them.

A head gets the departments they answer for (one with ``department=``); the queues, posts,
agents, lost calls, IVR and probe rows are cut to those departments; the totals are those of the
whole hotline (they say so; the HTML, XLSX and CSV leave the 合计 row out for a head).
"""
from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo

from aiohttp import web

from . import models
from .app import APP
from .errors import json_response
from .scope import list_departments
from .security import identity


class ReportQuery(models.DayQuery):
    department: models.Ident = None
    format: Literal["json", "html", "xlsx", "csv"] = "json"


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/reports/daily", daily_report)


async def build_daily(app_obj, day, trend: bool = False) -> dict:
    """The report of `day` from the service's own database, as `callcenter report daily` builds
    it (reports/assemble.py: SQL aggregates, the IVR and probe sections, the trend for charts)."""
    from reports.assemble import daily_report
    return await daily_report(app_obj.store, app_obj.settings, day, app_obj.clock.now(), trend=trend)


def for_departments(report: dict, departments: list[str | None]) -> dict:
    if None in departments:
        return report
    keep = set(departments)

    def mine(items):
        return [i for i in items or [] if i.get("department") in keep]
    out = {**report, "scope": sorted(keep), "departments": mine(report["departments"]),
           "queues": mine(report["queues"]), "unmapped_queues": []}
    for key in ("posts", "agents", "lost_calls"):
        if report.get(key) is not None:
            out[key] = mine(report[key])
    if isinstance(report.get("ivr"), dict):
        out["ivr"] = {**report["ivr"], "departments": mine(report["ivr"].get("departments"))}
    if isinstance(report.get("probes"), dict) and report["probes"].get("probes") is not None:
        out["probes"] = {**report["probes"], "probes": mine(report["probes"]["probes"])}
    return out


FORMATS = {"html": ("text/html", "inline"), "csv": ("text/csv", "attachment"),
           "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "attachment")}


async def daily_report(request: web.Request) -> web.Response:
    app_obj = request.app[APP]
    who = identity(request)
    q = models.query(ReportQuery, request.query)
    tz = ZoneInfo(app_obj.settings.timezone)
    day = q.date or app_obj.clock.now().astimezone(tz).date()
    departments = list_departments(who, q.department)
    from reports.assemble import TREND_FORMATS
    report = for_departments(await build_daily(app_obj, day, trend=q.format in TREND_FORMATS), departments)
    if q.format == "json":
        return json_response(report)
    content_type, disposition = FORMATS[q.format]
    scope = "-".join(report.get("scope") or [])
    filename = f"daily-report-{day.isoformat()}{'-' + scope if scope else ''}.{q.format}"
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
               "Content-Disposition": f'{disposition}; filename="{filename}"'}
    if q.format == "xlsx":
        from reports.render_xlsx import render_xlsx
        return web.Response(body=render_xlsx(report), content_type=content_type, headers=headers)
    if q.format == "csv":
        from reports.render_csv import render_csv
        return web.Response(text=render_csv(report), content_type=content_type, charset="utf-8", headers=headers)
    from reports.render_html import render_html
    headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return web.Response(text=render_html(report), content_type=content_type, charset="utf-8", headers=headers)
