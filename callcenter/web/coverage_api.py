"""A/B coverage over HTTP: the daily figures, the live picture, incidents and overrides, and the
agents' guarded pause / unpause / logout requests (docs/api.md, "A/B coverage").

/api/coverage/daily: A/B post coverage of one day (reports/coverage.py, definitions in
callcenter/domain/coverage_figures.py).

``GET /api/coverage/daily?date=YYYY-MM-DD[&department=ID]`` answers ``{"date", "timezone",
"as_of", "definition", "posts": [...], "departments": [...]}``. The facts are the stored agent
sessions of that day plus what the running service still holds: sessions not yet committed and
the ones still open, counted up to now. Business time after now is not counted, so today's
figures are "so far". Refusals are `ApiError`s, answered by the `json_errors` middleware.

``POST /api/agents/{agent}/pause|unpause|logout|login|ready|extend`` with ``{"reason"?, "override"?:
{"reason"}}`` (the agent themself, or a head of their department; the head who overrides is the one
signed in) parses the body and calls `AgentDesk.request` (which guards through `Coverage.request`;
a pause or logout during a call is deferred); its refusals are `TaskError`s with a code
(``coverage_guard`` 409, ``not_head`` 403, ``reason_required`` / ``unknown_agent`` 400), also
answered by the middleware; a down AMI link is 503 ``pbx_not_connected`` before anything is done,
a PBX error answer 502 ``pbx_refused``. ``GET /api/coverage/live``, ``/incidents?date=`` and ``/overrides?date=``
read the coverage service's board and tables.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import select

from reports import coverage
from ..ami.client import ActionFailed, AmiError, UnsafeAction
from ..checkpointer import stale_after
from ..domain.coverage_figures import open_sessions
from ..storage.checkpoints import observed
from ..followup.service import TaskError
from ..storage import tables as t
from ..domain import access
from . import models
from .app import APP
from .errors import ApiError, json_response
from .parsing import read_json
from .scope import agent_departments, forbidden, list_departments
from .security import identity


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/coverage/daily", daily)
    app.router.add_get("/api/coverage/live", live)
    app.router.add_get("/api/coverage/incidents", incidents)
    app.router.add_get("/api/coverage/overrides", overrides)
    app.router.add_post("/api/agents/{agent}/{action:pause|unpause|logout|login|ready|extend}", agent_request)


@dataclass(frozen=True)
class Query:
    day: date | None
    department: str | None
    departments: frozenset[str] | None          # what the identity may see: None for every department


async def daily(request: web.Request) -> web.Response:
    app_obj = request.app[APP]
    settings = app_obj.settings
    tz = ZoneInfo(settings.timezone)
    q = parse_query(request, {d.id for d in settings.departments})
    now = app_obj.clock.now()
    day = q.day or now.astimezone(tz).date()
    start = datetime.combine(day, time(0), tz)
    sessions = await app_obj.store.sessions_between(start, start + timedelta(days=1))
    service = app_obj.service
    sessions += list(getattr(service, "unsaved_sessions", []))
    sessions += open_sessions(list(service.presence.members.values()), now)
    seen = await observed(app_obj.store, start, start + timedelta(days=1), now,
                          stale_after(settings.instance.checkpoint_seconds))
    answer = coverage.daily(day, settings, sessions, now, app_obj.calendar, seen)
    if q.departments is not None:
        answer["posts"] = [p for p in answer["posts"] if p["department"] in q.departments]
        answer["departments"] = [d for d in answer["departments"] if d["department"] in q.departments]
    return json_response(answer)


async def agent_request(request: web.Request) -> web.Response:
    """An agent's pause, unpause, logout, login, ready or extend, through the agent desk
    (agents/desk.py): pause and logout guarded, deferred during a call (``deferred``:
    true) and carried out when it and its wrap-up end. 200 with what was sent to the PBX. The agent
    themself or a head of one of the agent's departments asks; only such a head overrides. An
    immediate pause, unpause or logout answers as before this desk: {agent, action, overridden, sent}."""
    app_obj = request.app[APP]
    who = identity(request)
    agent, action = models.path("agent", request.match_info["agent"]), request.match_info["action"]
    r = models.body(models.AgentRequest, await read_json(request))
    if agent not in {a.id for a in app_obj.settings.agents}:
        raise ApiError(400, "unknown_agent", f"unknown agent {agent!r}")
    if not access.acts_for_agent(who, agent, agent_departments(app_obj.settings, agent)):
        raise forbidden(f"only agent {agent} or a head of their department may {action} them")
    coverage_ = app_obj.coverage
    for post in coverage_.board.by_agent.get(agent, ()):
        # the service would skip a down link's action yet list it as sent: refuse before anything
        pbx = coverage_.board.specs[post].pbx
        client = app_obj.service.clients.get(pbx)
        if client is None or not client.connected.is_set():
            raise TaskError(f"PBX {pbx} is not connected; nothing was done", 503, "pbx_not_connected")
        why = coverage_.ready(pbx)
        if why is not None:
            raise TaskError(f"{why}; nothing was done", 503, "not_active" if not coverage_.active() else "not_ready")
    try:
        done = await app_obj.desk.request(
            agent, action, r.reason.strip(), who.user if r.override else None,
            (r.override.reason or "").strip() if r.override else "",
            may_override=lambda department: access.overrides_guard(who, department))
    except ActionFailed as exc:
        raise TaskError(f"the PBX refused the {action}: {exc}", 502, "pbx_refused") from None
    except UnsafeAction as exc:      # a value that would break the AMI framing: nothing was sent
        raise TaskError(f"the {action} was not sent: {exc}", 400, "unsafe_value") from None
    except AmiError as exc:          # link down or no answer: it may or may not have been carried out
        raise TaskError(f"the PBX link failed during the {action} ({exc or type(exc).__name__}); "
                        "see GET /api/coverage/live for what it did", 503, "pbx_not_connected") from None
    if action in ("pause", "unpause", "logout") and not done["deferred"]:
        done = {k: done[k] for k in ("agent", "action", "overridden", "sent")}     # the answer as before
    return json_response(done)


async def live(request: web.Request) -> web.Response:
    """The posts now: state and the A and B seats as the PBX last reported them."""
    app_obj = request.app[APP]
    q = parse_query(request, {d.id for d in app_obj.settings.departments}, models.DepartmentQuery)
    posts = app_obj.coverage.live()
    if q.departments is not None:
        posts = [p for p in posts if p["department"] in q.departments]
    return json_response({"posts": posts, "as_of": app_obj.clock.now().astimezone(timezone.utc).isoformat()})


async def incidents(request: web.Request) -> web.Response:
    """Gaps (a post with nobody available in coverage hours) open at any time of the day."""
    app_obj = request.app[APP]
    q = parse_query(request, {d.id for d in app_obj.settings.departments})
    start, end = day_bounds(app_obj, q.day)
    found = await app_obj.coverage.incidents(start, end)
    if q.departments is not None:
        found = [i for i in found if i["department"] in q.departments]
    return json_response({"incidents": found})


async def overrides(request: web.Request) -> web.Response:
    """The heads' overrides of the guard made during the day, oldest first."""
    app_obj = request.app[APP]
    q = parse_query(request, {d.id for d in app_obj.settings.departments})
    start, end = day_bounds(app_obj, q.day)
    found = await overrides_between(app_obj.store, start, end)
    if q.departments is not None:
        posts = {p.id for p in app_obj.settings.posts if p.department in q.departments}
        found = [o for o in found if o["post"] in posts]
    return json_response({"overrides": found})


def day_bounds(app_obj, day: date | None) -> tuple[datetime, datetime]:
    """The local day (today when not given) as [start, end)."""
    tz = ZoneInfo(app_obj.settings.timezone)
    day = day or app_obj.clock.now().astimezone(tz).date()
    start = datetime.combine(day, time(0), tz)
    return start, start + timedelta(days=1)


async def overrides_between(store, start: datetime, end: datetime) -> list[dict]:
    c = t.coverage_overrides.c
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(t.coverage_overrides).where(c.at >= start, c.at < end)
                                   .order_by(c.at, c.id))).mappings().all()
    return [{"id": r["id"], "at": r["at"].isoformat(), "agent": r["agent"], "action": r["action"],
             "post": r["post"], "by": r["by"], "reason": r["reason"], "refusal": r["refusal"]} for r in rows]


def parse_query(request: web.Request, departments: set[str], model=models.CoverageQuery) -> Query:
    """``date`` and ``department`` (an unknown one: 404); a head sees only their departments."""
    q = models.query(model, request.query)
    department = q.department
    if department is not None and department not in departments:
        raise ApiError(404, "not_found", f"no department {department!r}", parameter="department", field="department")
    visible = list_departments(identity(request), department)
    return Query(getattr(q, "date", None), department, None if visible == [None] else frozenset(visible))
