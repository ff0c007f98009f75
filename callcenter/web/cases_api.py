"""/api/cases, dispositions, owner routing and pending wrap-ups (first-ask responsibility).

Each view parses its input, calls one Cases method and answers with what it returns; refusals
are `ApiError` (parsing, here) or `TaskError` (the cases service), mapped to 4xx answers by the
`json_errors` middleware. The cases service raises its TaskErrors without a code, so each view
names them (`refusal_codes`); a code the service sets itself wins.

`/api/route` and `/api/route.txt` are what the IVR and the Asterisk dialplan ask before queueing a
caller: the text form is ``PREFERRED=...&QUEUE=...&CASE=...&OWNER=...&REASON=...&FALLBACK=...``
for ``CURL()`` with ``CURLOPT(hashcompat)`` and ``HASH()`` (docs/api.md has the dialplan).
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from urllib.parse import quote
from zoneinfo import ZoneInfo

from aiohttp import web
from multidict import MultiMapping

from ..domain.cases import CaseStatus, Disposition, Route
from ..followup.service import TaskError
from .app import APP
from .errors import ApiError, json_response
from .parsing import check_query, choice, day_and_limit, read_json, text_field

LIST_PARAMETERS = ("status", "department", "owner", "caller", "date", "limit")
ROUTE_PARAMETERS = ("caller", "hotline", "department", "pbx")
WRAPUP_PARAMETERS = ("department",)
DISPOSITION_FIELDS = ("agent", "disposition", "item", "work_order", "directed_to", "note")
PATCH_FIELDS = ("owner", "reason", "status", "note", "by")
# a field that only one disposition uses, and that disposition
DISPOSITION_ONLY = {"work_order": Disposition.ESCALATED_12345, "directed_to": Disposition.OUT_OF_SCOPE}
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


# --- views ----------------------------------------------------------------------------------

async def dispose(request: web.Request) -> web.Response:
    app_obj = request.app[APP]
    w = parse_disposition(await read_json(request), _agents(app_obj))
    with refusal_codes(FORBIDDEN):
        case = await app_obj.cases.dispose(request.match_info["pbx"], request.match_info["call_id"], w.agent,
                                           w.disposition, item=w.item, work_order=w.work_order,
                                           directed_to=w.directed_to, note=w.note)
    return json_response(case)


async def list_cases(request: web.Request) -> web.Response:
    app_obj = request.app[APP]
    filters = list_filters(request.query, ZoneInfo(app_obj.settings.timezone))
    return json_response({"cases": await app_obj.cases.list(**filters)})


async def get_case(request: web.Request) -> web.Response:
    return json_response(await request.app[APP].cases.get(case_id(request)))


async def patch_case(request: web.Request) -> web.Response:
    app_obj = request.app[APP]
    id_ = case_id(request)
    change = parse_change(await read_json(request), _agents(app_obj))
    if change.owner is not None:
        with refusal_codes(FORBIDDEN):
            case = await app_obj.cases.reassign(id_, change.owner, change.by, change.reason)
    else:
        with refusal_codes({**FORBIDDEN, 409: "already_closed"}):
            case = await app_obj.cases.close_follow_up(id_, change.by, change.note)
    return json_response(case)


async def route_json(request: web.Request) -> web.Response:
    return json_response(asdict(await _route(request)))


async def route_text(request: web.Request) -> web.Response:
    return web.Response(text=route_line(await _route(request)), content_type="text/plain", charset="utf-8")


async def agent_pending(request: web.Request) -> web.Response:
    app_obj = request.app[APP]
    agent = request.match_info["agent"]
    if agent not in _agents(app_obj):
        raise ApiError(404, "not_found", f"no agent {agent}")
    return json_response({"wrapups": await app_obj.cases.pending_wrapups(agent)})


async def pending_wrapups(request: web.Request) -> web.Response:
    check_query(request.query, WRAPUP_PARAMETERS)
    wrapups = await request.app[APP].cases.pending_wrapups()
    if "department" in request.query:
        wrapups = [w for w in wrapups if w["department"] == request.query["department"]]
    return json_response({"wrapups": wrapups})


async def _route(request: web.Request) -> Route:
    app_obj = request.app[APP]
    args = route_arguments(request.query, {d.id for d in app_obj.settings.departments})
    return await app_obj.cases.route(**args)


def _agents(app_obj) -> set[str]:
    return {a.id for a in app_obj.settings.agents}


@contextmanager
def refusal_codes(codes: dict[int, str]):
    """Give the cases service's code-less TaskErrors a code by their status."""
    try:
        yield
    except TaskError as exc:
        if exc.code is None and exc.status in codes:
            exc.code = codes[exc.status]
        raise


# --- the dialplan's answer ------------------------------------------------------------------

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


# --- parsing --------------------------------------------------------------------------------

def case_id(request: web.Request) -> int:
    raw = request.match_info["id"]               # digits, by the route
    if len(raw) > 18:                            # beyond a database integer: cannot exist
        raise ApiError(404, "not_found", f"no case {raw}")
    return int(raw)


def list_filters(query: MultiMapping[str], tz: ZoneInfo) -> dict:
    """Query parameters to Cases.list keyword arguments."""
    check_query(query, LIST_PARAMETERS)
    filters: dict = {name: query[name] for name in ("department", "owner", "caller") if name in query}
    if "status" in query:
        filters["status"] = choice(query, "status", tuple(s.value for s in CaseStatus))
    filters.update(day_and_limit(query, tz))
    return filters


def route_arguments(query: MultiMapping[str], departments: set[str]) -> dict:
    """Query parameters to Cases.route keyword arguments. `caller` may be empty or absent (a
    withheld number: the caller goes to the queue)."""
    check_query(query, ROUTE_PARAMETERS, may_be_empty=("caller",))
    given = [name for name in ("hotline", "department") if name in query]
    if not given:
        raise ApiError(400, "missing_parameter", "give hotline (the number dialled) or department",
                       parameters=["hotline", "department"])
    if len(given) == 2:
        raise ApiError(400, "conflicting_parameters", "give hotline or department, not both", parameters=given)
    if "department" in query and query["department"] not in departments:
        raise ApiError(400, "invalid_parameter", f"department: unknown department {query['department']!r}",
                       parameter="department")
    return {"caller_num": query.get("caller", ""), "hotline": query.get("hotline"),
            "department": query.get("department"), "pbx": query.get("pbx")}


@dataclass(frozen=True)
class WrapUp:
    """An agent's disposition of one answered call."""
    agent: str
    disposition: str
    item: str = ""
    work_order: str = ""
    directed_to: str = ""
    note: str = ""


def parse_disposition(body, agents: set[str]) -> WrapUp:
    _check_fields(body, DISPOSITION_FIELDS)
    missing = [name for name in ("agent", "disposition") if body.get(name) is None]
    if missing:
        raise ApiError(400, "missing_field", f"{', '.join(missing)}: required", fields=missing)
    agent, disposition = text_field(body, "agent"), text_field(body, "disposition")
    if agent not in agents:
        raise ApiError(400, "unknown_agent", f"unknown agent {agent!r}")
    if disposition not in {d.value for d in Disposition}:
        raise ApiError(400, "unknown_disposition", f"unknown disposition {disposition!r}; one of "
                       + ", ".join(d.value for d in Disposition))
    given = {name: text_field(body, name) for name in ("item", "work_order", "directed_to")
            if body.get(name) is not None}
    for name, only in DISPOSITION_ONLY.items():
        if name in given and disposition != only:
            raise ApiError(400, "conflicting_fields", f"{name} goes only with disposition {only.value}",
                           fields=["disposition", name])
        if disposition == only and name not in given:
            raise ApiError(400, "missing_field", f"{name}: required for {only.value}", fields=[name])
    note = text_field(body, "note", allow_empty=True) if body.get("note") is not None else ""
    return WrapUp(agent, disposition, note=note, **given)


@dataclass(frozen=True)
class Change:
    """What a PATCH asks for: reassign (owner, with a reason) or close (status resolved)."""
    by: str
    owner: str | None = None
    reason: str = ""
    note: str = ""


def parse_change(body, agents: set[str]) -> Change:
    _check_fields(body, PATCH_FIELDS)
    if body.get("by") is None:
        raise ApiError(400, "missing_field", "by: required (who makes the change)", fields=["by"])
    by = text_field(body, "by")
    if "owner" in body and "status" in body:
        raise ApiError(400, "conflicting_fields", "owner and status cannot be combined; send them in separate "
                       "requests", fields=["owner", "status"])
    if "owner" in body:
        if "note" in body:
            raise ApiError(400, "conflicting_fields", "note goes with status; a reassignment takes a reason",
                           fields=["note", "owner"])
        owner = text_field(body, "owner")
        if owner not in agents:
            raise ApiError(400, "unknown_agent", f"unknown agent {owner!r}")
        if body.get("reason") is None:
            raise ApiError(400, "missing_field", "reason: required (why the case changes hands)",
                           fields=["reason"])
        return Change(by, owner=owner, reason=text_field(body, "reason"))
    if "status" in body:
        if "reason" in body:
            raise ApiError(400, "conflicting_fields", "reason goes with owner; closing takes a note",
                           fields=["reason", "status"])
        if text_field(body, "status") != "resolved":
            raise ApiError(400, "invalid_field", f"status: only \"resolved\" may be set here, got "
                           f"{json.dumps(body['status'], ensure_ascii=False)}", field="status")
        note = text_field(body, "note", allow_empty=True) if body.get("note") is not None else ""
        return Change(by, note=note)
    raise ApiError(400, "missing_field", "nothing to do: give owner (with reason) or status",
                   fields=["owner", "status"])


def _check_fields(body, allowed: tuple[str, ...]) -> None:
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(400, "unknown_fields", f"unknown field(s): {', '.join(unknown)}; "
                       f"allowed: {', '.join(allowed)}", fields=unknown)
