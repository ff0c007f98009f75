"""/api/tasks: list, read and act on follow-up tasks, and call a task's caller back.

Each view parses its input, calls one FollowUp (or Callbacks) method and answers with what it
returns; the `json_errors` middleware maps refusals (`ApiError` from the parsing here, `TaskError`
from the service) to 4xx answers. The parsing is plain functions, so the rules are readable in one
place.
"""
from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from aiohttp import web
from multidict import MultiMapping

from ..domain.tasks import Reason
from ..followup.service import TaskError
from .app import APP
from .errors import ApiError, json_response
from .parsing import check_query, choice, day_and_limit, read_json, text_field

LIST_PARAMETERS = ("status", "department", "assignee", "caller", "overdue", "date", "limit")
PATCH_FIELDS = ("closure", "assignee", "note", "by")
CALLBACK_FIELDS = ("agent",)
# Callbacks.start raises these without a code
CALLBACK_ERROR_CODES = {502: "pbx_refused", 503: "pbx_not_connected"}


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/tasks", list_tasks)
    app.router.add_get(r"/api/tasks/{id:\d+}", get_task)
    app.router.add_patch(r"/api/tasks/{id:\d+}", patch_task)
    app.router.add_post(r"/api/tasks/{id:\d+}/callbacks", start_callback)
    app.router.add_post("/api/callback-requests", request_callback)


# --- views ----------------------------------------------------------------------------------

async def list_tasks(request: web.Request) -> web.Response:
    app_obj = request.app[APP]
    filters = list_filters(request.query, ZoneInfo(app_obj.settings.timezone))
    return json_response({"tasks": await app_obj.followup.list(**filters)})


async def get_task(request: web.Request) -> web.Response:
    return json_response(await request.app[APP].followup.get(task_id(request)))


async def patch_task(request: web.Request) -> web.Response:
    followup = request.app[APP].followup
    id_ = task_id(request)
    change = parse_change(await read_json(request))
    if change.closure is not None:
        task = await followup.close(id_, change.closure, change.by, change.note or "")
    elif change.reassign:
        task = await followup.assign_to(id_, change.assignee, change.by)
    else:
        task = await followup.add_note(id_, change.note, change.by)
    return json_response(task)


async def start_callback(request: web.Request) -> web.Response:
    """Rings the agent, then dials the caller: 202 with the attempt (its result comes later from
    the PBX). While an attempt is pending, the same attempt again and no second call."""
    app_obj = request.app[APP]
    id_ = task_id(request)
    agent = parse_callback(await read_json(request), {a.id for a in app_obj.settings.agents})
    task = await app_obj.followup.get(id_)
    if task["status"] != "open":
        raise TaskError(f"task {id_} is already closed", 409, "already_closed")
    try:
        attempt = await app_obj.callbacks.start(id_, agent)
    except TaskError as exc:
        exc.code = exc.code or CALLBACK_ERROR_CODES.get(exc.status)
        raise
    return json_response(attempt, status=202)


async def request_callback(request: web.Request) -> web.Response:
    """A caller asked to be called back (the IVR's fallback during a coverage gap, after hours,
    voicemail): 201 with the caller's task (opened, or the open one it joined)."""
    app_obj = request.app[APP]
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "expected a JSON object")
    unknown = sorted(set(body) - {"caller", "hotline", "department", "pbx", "ref"})
    if unknown:
        raise ApiError(400, "unknown_fields", f"unknown field(s): {', '.join(unknown)}", fields=unknown)
    if "caller" not in body:
        raise ApiError(400, "missing_field", "caller: required", field="caller")
    caller = text_field(body, "caller")
    directory = app_obj.followup.directory
    department = body.get("department") or (directory.department_of_hotline(body["hotline"])
                                            if isinstance(body.get("hotline"), str) else None)
    if department is None:
        raise ApiError(400, "unknown_department", "give a known department, or the hotline number dialled")
    pbx = body.get("pbx") or next(iter(app_obj.service.clients), "pbx1")
    ref = body.get("ref") or f"request:{app_obj.clock.now().isoformat()}"
    task = await app_obj.followup.request(caller, department, Reason.CALLBACK_REQUEST, app_obj.clock.now(),
                                          str(pbx), str(ref))
    return json_response(task, status=201)


# --- parsing --------------------------------------------------------------------------------

def task_id(request: web.Request) -> int:
    raw = request.match_info["id"]               # digits, by the route
    if len(raw) > 18:                            # beyond a database integer: cannot exist
        raise ApiError(404, "not_found", f"no task {raw}")
    return int(raw)


def list_filters(query: MultiMapping[str], tz: ZoneInfo) -> dict:
    """Query parameters to FollowUp.list keyword arguments."""
    check_query(query, LIST_PARAMETERS)
    filters: dict = {name: query[name] for name in ("department", "assignee", "caller") if name in query}
    if "status" in query:
        filters["status"] = choice(query, "status", ("open", "closed"))
    if "overdue" in query:
        filters["overdue"] = choice(query, "overdue", ("true", "false")) == "true"
    filters.update(day_and_limit(query, tz))
    return filters


@dataclass(frozen=True)
class Change:
    """What a PATCH asks for: close (closure, optional note), reassign, or add a note."""
    by: str
    closure: str | None = None
    note: str | None = None
    reassign: bool = False
    assignee: str | None = None


def parse_change(body) -> Change:
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    unknown = sorted(set(body) - set(PATCH_FIELDS))
    if unknown:
        raise ApiError(400, "unknown_fields", f"unknown field(s): {', '.join(unknown)}; "
                       f"allowed: {', '.join(PATCH_FIELDS)}", fields=unknown)
    if body.get("by") is None:
        raise ApiError(400, "missing_field", "by: required (who makes the change)", fields=["by"])
    by = text_field(body, "by")
    closure = text_field(body, "closure") if "closure" in body else None
    note = text_field(body, "note", allow_empty=closure is not None) if "note" in body else None
    if "assignee" in body:
        if closure is not None or note is not None:
            raise ApiError(400, "conflicting_fields", "assignee cannot be combined with closure or note; "
                           "send them in separate requests", fields=sorted({"assignee"} | set(body) - {"by"}))
        assignee = None if body["assignee"] is None else text_field(body, "assignee")
        return Change(by, reassign=True, assignee=assignee)
    if closure is None and note is None:
        raise ApiError(400, "missing_field", "nothing to do: give closure, assignee or note",
                       fields=["closure", "assignee", "note"])
    return Change(by, closure=closure, note=note)


def parse_callback(body, agents: set[str]) -> str:
    """The agent who calls back."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    unknown = sorted(set(body) - set(CALLBACK_FIELDS))
    if unknown:
        raise ApiError(400, "unknown_fields", f"unknown field(s): {', '.join(unknown)}; "
                       f"allowed: {', '.join(CALLBACK_FIELDS)}", fields=unknown)
    if body.get("agent") is None:
        raise ApiError(400, "missing_field", "agent: required (who calls back)", fields=["agent"])
    agent = text_field(body, "agent")
    if agent not in agents:
        raise ApiError(400, "unknown_agent", f"unknown agent {agent!r}")
    return agent


