"""``GET /api/reports/period?kind=week|month|quarter&date=YYYY-MM-DD``: the period roll-up
(reports/period.py, as ``callcenter report week|month|quarter`` builds it) for heads (their
departments) and the office.

Scoping as /api/reports/daily (callcenter/web/reports_api.py): a head gets the departments they
answer for (one with ``department=``), in the department list and in the ranking (their ranks
among all departments kept); the totals are those of the whole hotline and ``scope`` says so.
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


class PeriodQuery(models.DayQuery):
    kind: Literal["week", "month", "quarter"]
    department: models.Ident = None


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/reports/period", period_report)


def for_departments(report: dict, departments: list[str | None]) -> dict:
    if None in departments:
        return report
    keep = set(departments)
    return {**report, "scope": sorted(keep),
            "departments": [d for d in report["departments"] if d["department"] in keep],
            "ranking": [r for r in report["ranking"] if r["department"] in keep],
            "posts": [p for p in report["posts"] if p.get("department") in keep]}


async def period_report(request: web.Request) -> web.Response:
    from reports import period
    app_obj = request.app[APP]
    who = identity(request)
    q = models.query(PeriodQuery, request.query)
    tz = ZoneInfo(app_obj.settings.timezone)
    now = app_obj.clock.now()
    day = q.date or now.astimezone(tz).date()
    departments = list_departments(who, q.department)
    report = await period.period_report(app_obj.store, app_obj.settings, q.kind, day, now)
    return json_response(for_departments(report, departments))
