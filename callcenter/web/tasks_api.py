"""/api/tasks: list, read and act on follow-up tasks, call a task's caller back, and a caller's
request to be called back.

Each view parses its input with a request model (callcenter/web/models.py), checks what the
signed-in identity may do with the task (callcenter/web/scope.py), calls one FollowUp (or
Callbacks) method and answers with what it returns, callers' numbers masked where the identity
does not need them. Who acts is the identity: ``by`` and ``agent`` are not body fields. The
`json_errors` middleware maps refusals (`ApiError`, the service's `TaskError`) to 4xx answers.
"""
from __future__ import annotations

from zoneinfo import ZoneInfo

from aiohttp import web

from ..domain import access
from ..domain.tasks import Reason
from ..followup.service import TaskError
from . import models
from .app import APP
from .errors import ApiError, json_response
from .parsing import read_json
from .scope import (agent_departments, forbidden, masked, office_department, own_agent,
                    require_agent, scoped_list)
from .security import identity

# Callbacks.start raises these without a code
CALLBACK_ERROR_CODES = {502: "pbx_refused", 503: "pbx_not_connected"}


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/tasks", list_tasks)
    app.router.add_get(r"/api/tasks/{id:\d+}", get_task)
    app.router.add_patch(r"/api/tasks/{id:\d+}", patch_task)
    app.router.add_post(r"/api/tasks/{id:\d+}/callbacks", start_callback)
    app.router.add_post("/api/callback-requests", request_callback)


async def list_tasks(request: web.Request) -> web.Response:
    app_obj = request.app[APP]
    who = identity(request)
    q = models.query(models.TaskList, request.query)
    filters: dict = {"status": q.status, "caller": q.caller,
                     "assignee": own_agent(who, q.assignee, "tasks")}
    if q.overdue is not None:
        filters["overdue"] = q.overdue == "true"
    if q.date is not None:
        filters["since"], filters["until"] = q.bounds(ZoneInfo(app_obj.settings.timezone), q.date)
    limit = q.limit or 500

    async def fetch(department):
        return await app_obj.followup.list(department=department, limit=limit, **filters)
    return json_response({"tasks": await scoped_list(who, q.department, fetch, limit,
                                                     lambda t: (t["deadline"], t["id"]), "assignee")})


async def get_task(request: web.Request) -> web.Response:
    who = identity(request)
    task = await request.app[APP].followup.get(task_id(request))
    if not access.reads_item(who, task["department"], task["assignee"]):
        raise forbidden(f"task {task['id']} is not yours to see")
    return json_response(masked(who, task, task["department"], task["assignee"]))


async def patch_task(request: web.Request) -> web.Response:
    """Close (closure, note), reassign (assignee: heads, and the office for its pool) or add a note;
    the task's own assignee may close it and add notes."""
    app_obj = request.app[APP]
    who = identity(request)
    followup = app_obj.followup
    id_ = task_id(request)
    change = models.body(models.TaskChange, await read_json(request))
    task = await followup.get(id_)
    office = office_department(app_obj.settings)
    if change.reassign:
        if not access.manages_department(who, task["department"], office):
            raise forbidden(f"only a head of {task['department']} reassigns task {id_}")
        if change.assignee is not None and change.assignee not in {a.id for a in app_obj.settings.agents}:
            raise ApiError(400, "unknown_agent", f"unknown agent {change.assignee!r}", field="assignee")
        task = await followup.assign_to(id_, change.assignee, who.user, reason=(change.reason or "").strip(),
                                        **models.version_of(change))
    elif not access.acts_on_item(who, task["department"], task["assignee"], office):
        raise forbidden(f"task {id_} is not yours")
    elif change.closure is not None:
        task = await followup.close(id_, change.closure, who.user, change.note or "", **models.version_of(change))
    else:
        task = await followup.add_note(id_, change.note, who.user)
    return json_response(masked(who, task, task["department"], task["assignee"]))


async def start_callback(request: web.Request) -> web.Response:
    """Rings the signed-in agent's phone, then dials the caller: 202 with the attempt (its result
    comes later from the PBX). While an attempt is pending, the same attempt again and no second call."""
    app_obj = request.app[APP]
    who = identity(request)
    id_ = task_id(request)
    models.body(models.Empty, await read_json(request))
    agent = require_agent(who, "a callback")
    task = await app_obj.followup.get(id_)
    if not access.acts_on_item(who, task["department"], task["assignee"], office_department(app_obj.settings)):
        raise forbidden(f"task {id_} is not yours")
    if task["status"] != "open":
        raise TaskError(f"task {id_} is already closed", 409, "already_closed")
    try:
        attempt = await app_obj.callbacks.start(id_, agent)
    except TaskError as exc:
        exc.code = exc.code or CALLBACK_ERROR_CODES.get(exc.status)
        raise
    return json_response(masked(who, attempt, task["department"], task["assignee"]), status=202)


async def request_callback(request: web.Request) -> web.Response:
    """A caller asked to be called back (after hours, during a coverage gap, by voicemail): 201
    with the caller's task (opened, or the open one it joined). Heads for their departments, the
    office for any, an agent for the departments of their posts."""
    app_obj = request.app[APP]
    who = identity(request)
    r = models.body(models.CallbackRequest, await read_json(request))
    directory = app_obj.followup.directory
    department = r.department or (directory.department_of_hotline(r.hotline, r.pbx) if r.hotline else None)
    if department is None or department not in {d.id for d in app_obj.settings.departments}:
        raise ApiError(400, "unknown_department", "give a known department, or the hotline number dialled",
                       field="department" if r.department else "hotline")
    mine = who.role is access.Role.AGENT and department in agent_departments(app_obj.settings, who.agent or "")
    if not (mine or access.reads_department(who, department)):
        raise forbidden(f"department {department!r} is not one of yours")
    if r.pbx is not None and r.pbx not in app_obj.service.clients and r.pbx not in {p.id for p in app_obj.settings.pbxes}:
        raise ApiError(400, "unknown_pbx", f"unknown PBX {r.pbx!r}", field="pbx")
    pbx = r.pbx or next(iter(app_obj.service.clients), "pbx1")
    ref = r.ref or f"request:{app_obj.clock.now().isoformat()}"
    task = await app_obj.followup.request(r.caller, department, Reason.CALLBACK_REQUEST, app_obj.clock.now(),
                                          pbx, ref)
    return json_response(masked(who, task, task["department"], task["assignee"]), status=201)




def task_id(request: web.Request) -> int:
    raw = request.match_info["id"]               # digits, by the route
    if len(raw) > 18:                            # beyond a database integer: cannot exist
        raise ApiError(404, "not_found", f"no task {raw}")
    return int(raw)
