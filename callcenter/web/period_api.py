"""``GET /api/reports/period?kind=week|month|quarter&date=YYYY-MM-DD``: the period roll-up
(reports/period.py, as ``callcenter report week|month|quarter`` builds it) for heads (their
departments) and the office, as JSON (``format=json``, the default), a printable zh-CN HTML page
with a chart (``html``), an Excel workbook (``xlsx``) or a CSV table (``csv``), rendered by
reports/render_period.py and served with the daily report's content types and headers
(callcenter/web/reports_api.py ``FORMATS``).

Scoping as /api/reports/daily (callcenter/web/reports_api.py): a head gets the departments they
answer for (one with ``department=``), in the department list and in the ranking (their ranks
among all departments kept), and the posts and agents of those departments (an agent's
department is that of its first post, as in the daily report; agents on no post are the
office's only); the totals are those of the whole hotline and ``scope`` says so (the HTML, XLSX
and CSV leave the 合计 row out for a head).
"""
from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo

from aiohttp import web

from . import models
from .app import APP
from .errors import json_response
from .reports_api import FORMATS
from .scope import list_departments
from .security import identity


class PeriodQuery(models.DayQuery):
    kind: Literal["week", "month", "quarter"]
    department: models.Ident = None
    format: Literal["json", "html", "xlsx", "csv"] = "json"


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/reports/period", period_report)


def for_departments(report: dict, departments: list[str | None]) -> dict:
    if None in departments:
        return report
    keep = set(departments)
    out = {**report, "scope": sorted(keep),
           "departments": [d for d in report["departments"] if d["department"] in keep],
           "ranking": [r for r in report["ranking"] if r["department"] in keep],
           "posts": [p for p in report["posts"] if p.get("department") in keep], "unmapped_queues": []}
    if report.get("agents") is not None:
        out["agents"] = [a for a in report["agents"] if a.get("department") in keep]
    return out


async def period_report(request: web.Request) -> web.Response:
    from reports import period
    app_obj = request.app[APP]
    who = identity(request)
    q = models.query(PeriodQuery, request.query)
    tz = ZoneInfo(app_obj.settings.timezone)
    now = app_obj.clock.now()
    day = q.date or now.astimezone(tz).date()
    departments = list_departments(who, q.department)
    report = for_departments(await period.period_report(app_obj.store, app_obj.settings, q.kind, day, now),
                             departments)
    if q.format == "json":
        return json_response(report)
    from reports.render_period import filename, period_output
    content_type, disposition = FORMATS[q.format]
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
               "Content-Disposition": f'{disposition}; filename="{filename(report, q.format)}"'}
    body = period_output(report, q.format)
    if isinstance(body, bytes):
        return web.Response(body=body, content_type=content_type, headers=headers)
    if q.format == "html":
        headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return web.Response(text=body, content_type=content_type, charset="utf-8", headers=headers)
