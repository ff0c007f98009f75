"""/api/coverage/daily: A/B post coverage of one day (reports/coverage.py, definitions in
callcenter/domain/coverage_figures.py).

``GET /api/coverage/daily?date=YYYY-MM-DD[&department=ID]`` answers ``{"date", "timezone",
"as_of", "definition", "posts": [...], "departments": [...]}``. The facts are the stored agent
sessions of that day plus what the running service still holds: sessions not yet committed and
the ones still open, counted up to now. Business time after now is not counted, so today's
figures are "so far". Refusals are `ApiError`s, answered by the `json_errors` middleware.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web
from multidict import MultiMapping

from reports import coverage
from ..domain.coverage_figures import open_sessions
from .app import APP
from .errors import ApiError, json_response

PARAMETERS = ("date", "department")


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/coverage/daily", daily)


@dataclass(frozen=True)
class Query:
    day: date | None
    department: str | None


async def daily(request: web.Request) -> web.Response:
    app_obj = request.app[APP]
    settings = app_obj.settings
    tz = ZoneInfo(settings.timezone)
    q = parse_query(request.query, {d.id for d in settings.departments})
    now = app_obj.clock.now()
    day = q.day or now.astimezone(tz).date()
    start = datetime.combine(day, time(0), tz)
    sessions = await app_obj.store.sessions_between(start, start + timedelta(days=1))
    service = app_obj.service
    sessions += list(getattr(service, "unsaved_sessions", []))
    sessions += open_sessions(list(service.presence.members.values()), now)
    answer = coverage.daily(day, settings, sessions, now, app_obj.calendar)
    if q.department:
        answer["posts"] = [p for p in answer["posts"] if p["department"] == q.department]
        answer["departments"] = [d for d in answer["departments"] if d["department"] == q.department]
    return json_response(answer)


def parse_query(query: MultiMapping[str], departments: set[str]) -> Query:
    unknown = sorted(set(query) - set(PARAMETERS))
    if unknown:
        raise ApiError(400, "unknown_parameters", f"unknown query parameter(s): {', '.join(unknown)}; "
                       f"allowed: {', '.join(PARAMETERS)}", parameters=unknown)
    for name in query:
        if len(query.getall(name)) > 1:
            raise ApiError(400, "invalid_parameter", f"{name}: given more than once", parameter=name)
        if not query[name]:
            raise ApiError(400, "invalid_parameter", f"{name}: empty", parameter=name)
    day = None
    if "date" in query:
        try:
            day = date.fromisoformat(query["date"])
        except ValueError:
            raise ApiError(400, "invalid_parameter", f"date: expected YYYY-MM-DD, got {query['date']!r}",
                           parameter="date") from None
    department = query.get("department")
    if department is not None and department not in departments:
        raise ApiError(404, "not_found", f"no department {department!r}", parameter="department")
    return Query(day, department)
