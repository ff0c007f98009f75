"""Every route, every role: anonymous 401, wrong role or department 403, allowed 2xx; who acts in
the audit log is who signed in; callers' numbers masked for the roles that do not need them.

The routes come from the application's router, so a route added without a policy in
callcenter/web/security.py, or without a row in SPECS here, fails `test_every_route_is_covered`.
Set-up: the real traces basic, transfer and ivr-hangup replayed (tests/test_cases_api.py): case 1
of 13800000000 in market is owned by 1001, and 13600000009's follow-up task in market is given to
1001; a live AMI server stands in for the PBX, the clock at Monday 23 Nov 10:30.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from callcenter.ami.client import Endpoint
from callcenter.ami.server import AmiServer
from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.web.app import init_app, setup_routes
from callcenter.web.security import POLICIES
from tests.auth_helpers import bearer, grant
from tests.test_cases_api import IVR_HANGUP, NOW, db_url, replayed_db  # noqa: F401  (fixtures)

CASE_CALLER = "13800000000"
USERS = {                                   # user: (role, departments, agent)
    "1001": ("agent", [], "1001"),          # owns case 1 and the task; sits on market-1
    "1005": ("agent", [], "1005"),          # an agent of edu
    "head-market": ("head", ["market"], None),
    "head-edu": ("head", ["edu"], None),
    "office": ("office", [], None),
    "admin": ("admin", [], None),
    "pbx": ("pbx", [], None),
}
ROLES = ["anonymous", *USERS]


@dataclass
class Spec:
    """One request on a route and the users it is allowed to (2xx); everyone else 403."""
    path: str                               # {task}, {case}, {call} filled in from the set-up
    allowed: set[str]
    body: dict | None = None
    status: int = 200
    query: dict = field(default_factory=dict)


WORKERS = {"1001", "head-market", "office"}
SPECS: dict[tuple[str, str], Spec] = {
    ("GET", "/api/health"): Spec("/api/health", set(ROLES)),
    ("POST", "/api/login"): Spec("/api/login", set(ROLES), {"user": "1001", "password": "correct horse"}),
    ("POST", "/api/logout"): Spec("/api/logout", {"1001", "1005", "head-market", "head-edu", "office", "admin"}, {}),
    ("GET", "/api/me"): Spec("/api/me", {"1001", "1005", "head-market", "head-edu", "office", "admin"}),
    ("GET", "/api/tasks"): Spec("/api/tasks", WORKERS | {"1005"}, query={"department": "market"}),
    ("GET", "/api/tasks/{id}"): Spec("/api/tasks/{task}", WORKERS),
    ("PATCH", "/api/tasks/{id}"): Spec("/api/tasks/{task}", {"1001", "head-market"}, {"note": "已回电"}),
    ("POST", "/api/tasks/{id}/callbacks"): Spec("/api/tasks/{task}/callbacks", {"1001"}, {}, 202),
    ("POST", "/api/callback-requests"): Spec("/api/callback-requests", WORKERS,
                                             {"caller": "13900000099", "department": "market"}, 201),
    ("POST", "/api/calls/{pbx}/{call_id}/disposition"): Spec("/api/calls/pbx1/{call}/disposition", {"1001"},
                                                             {"disposition": "follow_up_simple"}),
    ("GET", "/api/cases"): Spec("/api/cases", WORKERS | {"1005"}, query={"department": "market"}),
    ("GET", "/api/cases/{id}"): Spec("/api/cases/{case}", WORKERS),
    ("PATCH", "/api/cases/{id}"): Spec("/api/cases/{case}", {"head-market"}, {"owner": "1001", "reason": "复核"}),
    ("GET", "/api/route"): Spec("/api/route", {"pbx", "office", "head-market"},
                                query={"caller": CASE_CALLER, "hotline": "62000001"}),
    ("GET", "/api/route.txt"): Spec("/api/route.txt", {"pbx", "office", "head-market"},
                                    query={"caller": CASE_CALLER, "hotline": "62000001"}),
    ("GET", "/api/agents/{agent}/pending"): Spec("/api/agents/1001/pending", WORKERS),
    ("GET", "/api/wrapups/pending"): Spec("/api/wrapups/pending", WORKERS | {"1005"}, query={"department": "market"}),
    ("GET", "/api/coverage/daily"): Spec("/api/coverage/daily", {"head-market", "office"}, query={"department": "market"}),
    ("GET", "/api/coverage/live"): Spec("/api/coverage/live", {"head-market", "office"}, query={"department": "market"}),
    ("GET", "/api/coverage/incidents"): Spec("/api/coverage/incidents", {"head-market", "office"},
                                             query={"department": "market"}),
    ("GET", "/api/coverage/overrides"): Spec("/api/coverage/overrides", {"head-market", "office"},
                                             query={"department": "market"}),
    ("POST", "/api/agents/{agent}/{action}"): Spec("/api/agents/1001/unpause", {"1001", "head-market"}, {}),
    ("GET", "/api/notifications"): Spec("/api/notifications", WORKERS | {"1005", "head-edu"}),
    ("POST", "/api/notifications/{id}/shown"): Spec("/api/notifications/{note}/shown", {"1001"}, {}),
    ("POST", "/api/notifications/{id}/ack"): Spec("/api/notifications/{note}/ack", {"1001"}, {}),
    ("GET", "/api/lost-calls"): Spec("/api/lost-calls", {"head-market", "office"}, query={"department": "market"}),
    ("GET", "/api/lost-calls.csv"): Spec("/api/lost-calls.csv", {"head-market", "office"},
                                         query={"department": "market"}),
    ("GET", "/api/callers/{number}/history"): Spec(f"/api/callers/{CASE_CALLER}/history",
                                                   WORKERS | {"1005", "head-edu"}),
    ("GET", "/api/reports/daily"): Spec("/api/reports/daily", {"head-market", "office"}, query={"department": "market"}),
    ("GET", "/api/reports/period"): Spec("/api/reports/period", {"head-market", "office"},
                                         query={"department": "market", "kind": "week"}),
    ("GET", "/api/reports/archive"): Spec("/api/reports/archive", {"head-market", "head-edu", "office"},
                                          query={"date": "2026-11-23"}),
    # no such report: the policy's roles get 404 (scoping: tests/test_report_delivery.py), the others 403
    ("GET", "/api/reports/archive/{id}"): Spec("/api/reports/archive/99999", {"head-market", "head-edu", "office"},
                                               status=404),
    ("GET", "/"): Spec("/", set(ROLES)),                    # the panel's pages: shells without data
    ("GET", "/login"): Spec("/login", set(ROLES)),
    ("GET", "/agent"): Spec("/agent", set(ROLES)),
    ("GET", "/head"): Spec("/head", set(ROLES)),
    ("GET", "/static/{name}"): Spec("/static/panel.css", set(ROLES)),
    ("GET", "/api/panel/options"): Spec("/api/panel/options", WORKERS | {"1005", "head-edu"}),
    # the WebSocket: a plain GET passes the guard, then is told to upgrade (tests/test_live_ws.py has the rest)
    ("GET", "/api/live"): Spec("/api/live", WORKERS | {"1005", "head-edu"}, status=400),
    ("GET", "/api/panel/agent"): Spec("/api/panel/agent", WORKERS, query={"agent": "1001"}),
    ("GET", "/api/panel/dashboard"): Spec("/api/panel/dashboard", {"head-market", "office"},
                                          query={"department": "market"}),
}


def router_routes() -> set[tuple[str, str]]:
    app = web.Application()
    setup_routes(app)
    return {(r.method, r.resource.canonical) for r in app.router.routes() if r.method != "HEAD"}


def test_every_route_is_covered():
    routes = router_routes()
    assert routes == set(POLICIES), "every route needs a policy in callcenter/web/security.py"
    assert routes == set(SPECS), "every route needs a row in SPECS"


@pytest.fixture
async def rig(settings, db_url):  # noqa: F811
    server = AmiServer()
    port = await server.start()
    app_obj = build(settings, db_url, FixedClock(NOW))
    pbx = app_obj.service.add_pbx(Endpoint("pbx1", "127.0.0.1", port, "cc", "cc", reconnect_min=0.05))
    await app_obj.start()
    client = TestClient(TestServer(await init_app(app_obj)))
    await client.start_server()
    try:
        await asyncio.wait_for(pbx.connected.wait(), 5)
        tokens = {user: await grant(app_obj, user, role, departments, agent)
                  for user, (role, departments, agent) in USERS.items()}
        [case] = await app_obj.cases.list(caller=CASE_CALLER)
        case = await app_obj.cases.get(case["id"])
        [task] = await app_obj.followup.list(caller=IVR_HANGUP)
        await app_obj.followup.assign_to(task["id"], "1001", "set-up")
        await app_obj.notifier.notify("test:access", "panel", "1001", "测试", "只有 1001 能确认")
        ids = {"task": task["id"], "case": case["id"], "call": case["calls"][0]["call_id"],
               "note": (await app_obj.notifier.status("test:access"))["id"]}
        yield app_obj, client, tokens, ids, server
    finally:
        await client.close()
        await app_obj.stop()
        await server.close()


async def send(client, method, spec: Spec, ids, headers) -> tuple[int, dict | str]:
    async with client.request(method, spec.path.format(**ids), params=spec.query, headers=headers,
                              json=spec.body if method != "GET" else None) as r:
        return r.status, (await r.json() if r.content_type == "application/json" else await r.text())


@pytest.mark.parametrize("route", sorted(SPECS), ids=lambda r: f"{r[0]} {r[1]}")
async def test_route_access(rig, route):
    app_obj, client, tokens, ids, server = rig
    method, _ = route
    spec = SPECS[route]
    if route == ("POST", "/api/login"):
        from callcenter.auth import UserAdmin
        await UserAdmin(app_obj.store, app_obj.settings, app_obj.clock).passwd("1001", "correct horse")
    # refusals first: an allowed request may change what the next one finds
    for role in sorted(ROLES, key=lambda r: r in spec.allowed):
        headers = {} if role == "anonymous" else bearer(tokens[role])
        status, body = await send(client, method, spec, ids, headers)
        if role in spec.allowed:
            assert status == spec.status, (role, body)
        elif role == "anonymous":
            assert (status, body["error"]) == (401, "unauthenticated"), body
        else:
            assert (status, body["error"]) == (403, "forbidden"), (role, body)


async def test_a_wrong_department_is_403_on_every_department_filter(rig):
    app_obj, client, tokens, ids, server = rig
    head_edu = bearer(tokens["head-edu"])
    for path in ("/api/tasks", "/api/cases", "/api/wrapups/pending", "/api/coverage/daily", "/api/coverage/live",
                 "/api/coverage/incidents", "/api/coverage/overrides", "/api/lost-calls", "/api/lost-calls.csv",
                 "/api/reports/daily", "/api/panel/dashboard"):
        async with client.get(path, params={"department": "market"}, headers=head_edu) as r:
            assert r.status == 403, path
        async with client.get(path, params={"department": "edu"}, headers=head_edu) as r:
            assert r.status == 200, path


async def test_the_audit_log_names_the_signed_in_user(rig):
    app_obj, client, tokens, ids, server = rig
    head = bearer(tokens["head-market"])
    async with client.patch(f"/api/tasks/{ids['task']}", json={"note": "已回电"}, headers=head) as r:
        assert r.status == 200
    async with client.patch(f"/api/tasks/{ids['task']}", json={"assignee": "1002"}, headers=head) as r:
        task = await r.json()
    assert [(h["kind"], h.get("by")) for h in task["history"][-2:]] == [("note", "head-market"),
                                                                        ("assigned", "head-market")]
    async with client.patch(f"/api/cases/{ids['case']}", json={"owner": "1002", "reason": "轮岗"}, headers=head) as r:
        case = await r.json()
    assert (case["history"][-1]["kind"], case["history"][-1]["actor"]) == ("reassigned", "head-market")
    # the body cannot name someone else
    async with client.patch(f"/api/tasks/{ids['task']}", json={"note": "x", "by": "head-edu"}, headers=head) as r:
        assert (r.status, (await r.json())["error"]) == (400, "unknown_fields")
    # the wrap-up's actor is the signed-in agent
    async with client.post(f"/api/calls/pbx1/{ids['call']}/disposition", json={"disposition": "follow_up_simple"},
                           headers=bearer(tokens["1001"])) as r:
        case = await r.json()
    assert (case["history"][-1]["kind"], case["history"][-1]["actor"]) == ("disposition", "1001")


async def test_callers_numbers_are_masked_for_those_who_do_not_need_them(rig):
    app_obj, client, tokens, ids, server = rig

    async def numbers(user: str, path: str, key: str) -> set[str]:
        async with client.get(path, params={"department": "market"}, headers=bearer(tokens[user])) as r:
            return {item["caller_num"] for item in (await r.json())[key]}
    assert CASE_CALLER in await numbers("head-market", "/api/cases", "cases")
    assert CASE_CALLER in await numbers("1001", "/api/cases", "cases")        # the owner's own caller
    office = await numbers("office", "/api/cases", "cases")
    assert "138****0000" in office and not any("*" not in n for n in office)
    assert await numbers("1001", "/api/tasks", "tasks") == {IVR_HANGUP}
    assert await numbers("office", "/api/tasks", "tasks") == {"136****0009"}
    async with client.get(f"/api/tasks/{ids['task']}", headers=bearer(tokens["office"])) as r:
        assert (await r.json())["caller_num"] == "136****0009"
    async with client.get("/api/wrapups/pending", headers=bearer(tokens["office"])) as r:
        assert all("*" in w["caller_num"] for w in (await r.json())["wrapups"])


async def test_an_agent_sees_only_their_own_work(rig):
    app_obj, client, tokens, ids, server = rig
    agent = bearer(tokens["1005"])
    async with client.get("/api/cases", headers=agent) as r:
        assert {c["owner"] for c in (await r.json())["cases"]} <= {"1005"}
    async with client.get("/api/cases", params={"owner": "1001"}, headers=agent) as r:
        assert r.status == 403
    async with client.get("/api/tasks", params={"assignee": "pool"}, headers=agent) as r:
        assert r.status == 403
    async with client.post("/api/agents/1001/pause", json={"reason": "午休"}, headers=agent) as r:
        assert r.status == 403
    assert not [a for a in server.actions if a.get("Action") == "QueuePause"]
