"""REST twins of the WebSocket snapshots (docs/api.md, "The live panel").

``GET /api/panel/agent[?agent=ID]``: the signed-in agent's snapshot (the ``agent`` message of
``/api/live``), or another agent's for a head of one of that agent's departments (the office
reads every agent, callers' numbers masked). ``GET /api/panel/dashboard[?department=ID]``: one
department's dashboard (the ``dashboard`` message), or ``{"dashboards": [...]}`` for every
department the head (or the office) watches.
"""
from __future__ import annotations

from aiohttp import web

from callcenter.domain import access
from callcenter.domain.access import Role
from callcenter.web import models
from callcenter.web.app import APP
from callcenter.web.errors import ApiError, json_response
from callcenter.web.scope import agent_departments, forbidden, list_departments, masked
from callcenter.web.security import identity


class AgentQuery(models.Model):
    agent: models.Ident = None


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/panel/agent", agent_panel)
    app.router.add_get("/api/panel/dashboard", dashboard)


async def agent_panel(request: web.Request) -> web.Response:
    app_obj = request.app[APP]
    who = identity(request)
    agent = models.query(AgentQuery, request.query).agent or who.agent
    if agent is None:
        raise ApiError(400, "agent_required", "name the agent: ?agent=ID (this user is bound to no agent)",
                       parameter="agent", field="agent")
    if agent not in {a.id for a in app_obj.settings.agents}:
        raise ApiError(404, "not_found", f"no agent {agent!r}", parameter="agent", field="agent")
    departments = agent_departments(app_obj.settings, agent)
    if not access.reads_agent(who, agent, departments):
        raise forbidden(f"only agent {agent}, a head of their department or the office may see their panel")
    snapshot = app_obj.live.agent_snapshot(agent)
    if who.role is Role.OFFICE and not access.is_self(who, agent):
        snapshot = masked(who, snapshot, None, None)
    return json_response(snapshot)


async def dashboard(request: web.Request) -> web.Response:
    app_obj = request.app[APP]
    who = identity(request)
    department = models.query(models.DepartmentQuery, request.query).department
    known = {d.id for d in app_obj.settings.departments}
    if department is not None and department not in known:
        raise ApiError(404, "not_found", f"no department {department!r}", parameter="department", field="department")
    visible = list_departments(who, department)
    if visible == [None]:
        visible = [d.id for d in app_obj.settings.departments]
    mask = who.role is not Role.HEAD
    boards = [app_obj.live.dashboard_snapshot(d, masked=mask) for d in visible]
    return json_response(boards[0] if department is not None else {"dashboards": boards})
