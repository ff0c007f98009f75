"""/api/cases, dispositions, owner routing and pending wrap-ups (first-ask responsibility).

Each view parses its input with a request model (callcenter/web/models.py), checks what the
signed-in identity may do (callcenter/web/scope.py), calls one Cases method and answers with
what it returns, callers' numbers masked where the identity does not need them. The agent who
disposes or closes, and the head who reassigns, is the identity. Refusals are `ApiError` or the
cases service's `TaskError`, mapped to 4xx answers by the `json_errors` middleware; the service
raises its TaskErrors without a code, so each view names them (`refusal_codes`).

`/api/route` and `/api/route.txt` are what the IVR and the Asterisk dialplan ask before queueing a
caller (role pbx): the text form is ``PREFERRED=...&QUEUE=...&CASE=...&OWNER=...&REASON=...&FALLBACK=...``
for ``CURL()`` with ``CURLOPT(hashcompat)`` and ``HASH()`` (docs/api.md has the dialplan).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict
from urllib.parse import quote
from zoneinfo import ZoneInfo

from aiohttp import web

from ..domain import access
from ..domain.cases import Route
from ..followup.service import TaskError
from . import models
from .app import APP
from .errors import ApiError, json_response
from .parsing import read_json
from .scope import agent_departments, forbidden, list_departments, masked, own_agent, require_agent, scoped_list
from .security import identity

FORBIDDEN = {403: "forbidden"}


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/calls/{pbx}/{call_id}/disposition", dispose)
    app.router.add_get("/api/cases", list_cases)
    app.router.add_get(r"/api/cases/{id:\d+}", get_case)
    app.router.add_patch(r"/api/cases/{id:\d+}", patch_case)
    app.router.add_get("/api/route", route_json)
    app.router.add_get("/api/route.txt", route_text)
    app.router.add_get("/api/agents/{agent}/pending", agent_pending)
    app.router.add_get("/api/wrapups/pending", pending_wrapups)


async def dispose(request: web.Request) -> web.Response:
    """The signed-in agent's wrap-up of a call they answered."""
    app_obj = request.app[APP]
    who = identity(request)
    pbx = models.path("pbx", request.match_info["pbx"])
    call_id = models.path("call_id", request.match_info["call_id"])
    w = models.body(models.WrapUp, await read_json(request))
    agent = require_agent(who, "a wrap-up")
    with refusal_codes({**FORBIDDEN, 409: "already_closed"}):
        case = await app_obj.cases.dispose(pbx, call_id, agent, w.disposition, item=w.item or "",
                                           work_order=w.work_order or "", directed_to=w.directed_to or "",
                                           note=w.note, **models.version_of(w))
    return json_response(masked(who, case, case["department"], case["owner"]))


async def list_cases(request: web.Request) -> web.Response:
    app_obj = request.app[APP]
    who = identity(request)
    q = models.query(models.CaseList, request.query)
    filters: dict = {"status": q.status, "caller": q.caller, "owner": own_agent(who, q.owner, "cases")}
    if q.date is not None:
        filters["since"], filters["until"] = q.bounds(ZoneInfo(app_obj.settings.timezone), q.date)
    limit = q.limit or 500

    async def fetch(department):
        return await app_obj.cases.list(department=department, limit=limit, **filters)
    return json_response({"cases": await scoped_list(who, q.department, fetch, limit,
                                                     lambda c: (c["opened_at"], c["id"]), "owner")})


async def get_case(request: web.Request) -> web.Response:
    who = identity(request)
    case = await request.app[APP].cases.get(case_id(request))
    if not access.reads_item(who, case["department"], case["owner"]):
        raise forbidden(f"case {case['id']} is not yours to see")
    return json_response(masked(who, case, case["department"], case["owner"]))


async def patch_case(request: web.Request) -> web.Response:
    """Reassign (owner and reason: the department's head) or close a follow-up (status resolved:
    the owner)."""
    app_obj = request.app[APP]
    who = identity(request)
    id_ = case_id(request)
    change = models.body(models.CaseChange, await read_json(request))
    case = await app_obj.cases.get(id_)
    if change.owner is not None:
        if not access.reassigns(who, case["department"]):
            raise forbidden(f"only the head of {case['department']} may reassign case {id_}")
        if change.owner not in {a.id for a in app_obj.settings.agents}:
            raise ApiError(400, "unknown_agent", f"unknown agent {change.owner!r}", field="owner")
        with refusal_codes(FORBIDDEN):
            case = await app_obj.cases.reassign(id_, change.owner, who.user, change.reason, authorised=True,
                                                **models.version_of(change))
    else:
        agent = require_agent(who, "closing a case")
        with refusal_codes({**FORBIDDEN, 409: "already_closed"}):
            case = await app_obj.cases.close_follow_up(id_, agent, change.note, **models.version_of(change))
    return json_response(masked(who, case, case["department"], case["owner"]))


async def route_json(request: web.Request) -> web.Response:
    return json_response(asdict(await _route(request)))


async def route_text(request: web.Request) -> web.Response:
    return web.Response(text=route_line(await _route(request)), content_type="text/plain", charset="utf-8")


async def agent_pending(request: web.Request) -> web.Response:
    app_obj = request.app[APP]
    who = identity(request)
    agent = models.path("agent", request.match_info["agent"])
    if agent not in {a.id for a in app_obj.settings.agents}:
        raise ApiError(404, "not_found", f"no agent {agent}")
    if not access.reads_agent(who, agent, agent_departments(app_obj.settings, agent)):
        raise forbidden(f"agent {agent}'s wrap-ups are not yours to see")
    wrapups = await app_obj.cases.pending_wrapups(agent)
    return json_response({"wrapups": [masked(who, w, w["department"], w["agent"]) for w in wrapups]})


async def pending_wrapups(request: web.Request) -> web.Response:
    who = identity(request)
    q = models.query(models.DepartmentQuery, request.query)
    departments = list_departments(who, q.department)
    agent = own_agent(who, None, "wrap-ups")
    wrapups = await request.app[APP].cases.pending_wrapups(agent)
    if departments != [None]:
        wrapups = [w for w in wrapups if w["department"] in departments]
    return json_response({"wrapups": [masked(who, w, w["department"], w["agent"]) for w in wrapups]})


async def _route(request: web.Request) -> Route:
    app_obj = request.app[APP]
    who = identity(request)
    q = models.query(models.RouteQuery, request.query)
    if q.department is not None and q.department not in {d.id for d in app_obj.settings.departments}:
        raise ApiError(400, "invalid_parameter", f"department: unknown department {q.department!r}",
                       parameter="department", field="department")
    if who.role is access.Role.HEAD:
        department = q.department or app_obj.cases.directory.department_of_hotline(q.hotline, q.pbx)
        if department is not None and department not in who.departments:
            raise forbidden(f"department {department!r} is not one of yours")
    return await app_obj.cases.route(caller_num=q.caller, hotline=q.hotline, department=q.department, pbx=q.pbx)


@contextmanager
def refusal_codes(codes: dict[int, str]):
    """Give the cases service's code-less TaskErrors a code by their status."""
    try:
        yield
    except TaskError as exc:
        if exc.code is None and exc.status in codes:
            exc.code = codes[exc.status]
        raise


def route_line(route: Route) -> str:
    """``PREFERRED=PJSIP/1001&QUEUE=q-market&CASE=12&OWNER=1001&REASON=owner_available&FALLBACK=``:
    fixed order, empty values when none, only the preferred agent's first interface (Dial rings
    one). FALLBACK is set during a coverage gap (pool, post:<id>, callback)."""
    values = {"PREFERRED": route.preferred_interfaces[0] if route.preferred_interfaces else "",
              "QUEUE": route.queue or "", "CASE": "" if route.case_id is None else str(route.case_id),
              "OWNER": route.owner or "", "REASON": route.reason, "FALLBACK": route.fallback or ""}
    # interfaces, queue names and ids pass unchanged (CUT reads them as they are); anything that
    # would break the format is %-encoded, which HASH via CURLOPT(hashcompat) decodes
    return "&".join(f"{k}={quote(v, safe='/@:;-._~!*()')}" for k, v in values.items())


def case_id(request: web.Request) -> int:
    raw = request.match_info["id"]               # digits, by the route
    if len(raw) > 18:                            # beyond a database integer: cannot exist
        raise ApiError(404, "not_found", f"no case {raw}")
    return int(raw)
