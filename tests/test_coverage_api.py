"""The A/B coverage endpoints over real HTTP, the app connected to a live AMI server that
carries out what it is sent (QueueAdd, QueuePause, QueueRemove) like Asterisk and records it.

One post, market-1 (A 1001, B 1002 on q-market); A is logged in, B is not; the clock stands at
10:00 on Monday 23 Nov 2026 (Shanghai), in business hours. docs/api.md ("A/B coverage") quotes
these responses.
"""
from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from callcenter.ami.client import Endpoint
from callcenter.ami.server import AmiServer
from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.coverage.service import post_specs
from callcenter.domain.coverage import CoverageBoard
from callcenter.web.app import init_app
from tests.auth_helpers import bearer, grant
from tests.conftest import MONDAY_10
from tests.test_coverage import A, B, actions, eventually, member

OVERRIDE = {"reason": "区长临时会议，B岗马上到岗"}       # the head who overrides: the one signed in
REFUSAL = "post market-1: 1002 is not available, so the post would have nobody to answer its calls"


def carry_out(server: AmiServer, action: dict) -> list[dict] | None:
    """What Asterisk does with the queue actions: the member events that follow."""
    name, iface = action.get("Action"), action.get("Interface", "")
    current = server.state.members.get((action.get("Queue", ""), iface))
    if name == "QueueAdd":
        who = "Agent B 1002" if iface == B else "Agent A 1001"
        server.emit(member("QueueMemberAdded", iface, who, int(action.get("Penalty", 0))))
    elif name == "QueuePause" and current:
        server.emit(member("QueueMemberPause", iface, current["Name"], int(current["Penalty"]),
                           paused=action["Paused"] == "true", reason=action.get("Reason", "")))
    elif name == "QueueRemove" and current:
        server.emit({"Event": "QueueMemberRemoved", "Queue": action["Queue"], "MemberName": current["Name"],
                     "Interface": iface})
    return None


@pytest.fixture
async def api(settings, sqlite_url):
    settings.posts = [p for p in settings.posts if p.id == "market-1"]
    server = AmiServer()
    server.on_action = lambda action: carry_out(server, action)
    server.emit(member("QueueMemberAdded", A, "Agent A 1001", 0))     # A is at work when we connect
    port = await server.start()
    app = build(settings, sqlite_url, FixedClock(MONDAY_10))
    client = app.service.add_pbx(Endpoint("pbx1", "127.0.0.1", port, "cc", "x", connect_timeout=2,
                                          action_timeout=2, ping_interval=30, reconnect_min=0.05, reconnect_max=0.2))
    await app.start()
    await asyncio.wait_for(client.connected.wait(), 5)
    head = await grant(app, "head-market", "head", ["market", "edu"])      # signed in as a head of market
    http = TestClient(TestServer(await init_app(app)), headers=bearer(head))
    await http.start_server()
    await eventually(lambda: app.coverage.board.state.get("market-1") == "a_on")
    try:
        yield app, server, http
    finally:
        await http.close()
        await app.stop()
        await server.close()


async def call(http: TestClient, method: str, path: str, body=None, headers=None, **params) -> tuple[int, dict]:
    async with http.request(method, path, json=body, params=params or None, headers=headers) as r:
        return r.status, await r.json()


def state(app) -> str | None:
    return app.coverage.board.state.get("market-1")


async def test_pause_is_refused_then_the_head_overrides(api):
    app, server, http = api
    assert await call(http, "POST", "/api/agents/1001/pause", {"reason": "午休"}) == (
        409, {"error": "coverage_guard", "message": f"refused: {REFUSAL}"})
    agent = bearer(await grant(app, "1001", "agent", agent="1001"))
    assert await call(http, "POST", "/api/agents/1001/pause",
                      {"reason": "午休", "override": {"reason": "我自己批准"}}, headers=agent) == (
        403, {"error": "not_head", "message": f"only the head of market may override: {REFUSAL}"})
    status, body = await call(http, "POST", "/api/agents/1001/pause",
                              {"reason": "午休", "override": {"by": "head-market", "reason": "冒名"}}, headers=agent)
    assert (status, body["error"], body["fields"]) == (400, "unknown_fields", ["override.by"])
    other = bearer(await grant(app, "1002", "agent", agent="1002"))
    status, body = await call(http, "POST", "/api/agents/1001/pause", {"reason": "午休"}, headers=other)
    assert (status, body["error"]) == (403, "forbidden")
    for override in ({}, {"reason": "  "}):
        status, body = await call(http, "POST", "/api/agents/1001/pause", {"reason": "午休", "override": override})
        assert (status, body["error"], body["field"]) == (400, "reason_required", "override.reason")
    assert actions(server, "QueuePause") == [] and actions(server, "QueueRemove") == []
    assert await call(http, "GET", "/api/coverage/overrides", date="2026-11-23") == (200, {"overrides": []})

    status, body = await call(http, "POST", "/api/agents/1001/pause", {"reason": "午休", "override": OVERRIDE})
    assert (status, body) == (200, {"agent": "1001", "action": "pause", "overridden": True,
                                    "sent": [{"post": "market-1", "queue": "q-market", "action": "QueuePause"}]})
    [pause] = actions(server, "QueuePause")
    assert (pause["Queue"], pause["Interface"], pause["Paused"], pause["Reason"]) == ("q-market", A, "true", "午休")
    status, body = await call(http, "GET", "/api/coverage/overrides", date="2026-11-23")
    assert (status, body) == (200, {"overrides": [{
        "id": 1, "at": "2026-11-23T02:00:00+00:00", "agent": "1001", "action": "pause", "post": "market-1",
        "by": "head-market", "reason": "区长临时会议，B岗马上到岗", "refusal": REFUSAL}]})
    assert await call(http, "GET", "/api/coverage/overrides", date="2026-11-24") == (200, {"overrides": []})
    assert (await call(http, "GET", "/api/coverage/overrides", department="edu"))[1] == {"overrides": []}

    # A is paused: the coverage service brings B in (QueueAdd), B covers
    await eventually(lambda: state(app) == "b_covers")
    status, body = await call(http, "GET", "/api/coverage/live")
    [post] = body["posts"]
    assert (post["a"]["paused"], post["a"]["available"]) == (True, False)
    assert (post["b"]["logged_in"], post["b"]["available"], post["b"]["penalty"]) == (True, True, 1)

    # A is back; unpausing is never refused
    assert await call(http, "POST", "/api/agents/1001/unpause", {}) == (
        200, {"agent": "1001", "action": "unpause", "overridden": False,
              "sent": [{"post": "market-1", "queue": "q-market", "action": "QueuePause"}]})
    assert [(p["Interface"], p["Paused"]) for p in actions(server, "QueuePause")] == [(A, "true"), (A, "false")]
    await eventually(lambda: state(app) == "a_on")


async def test_logout_is_guarded_until_b_is_in(api):
    app, server, http = api
    assert await call(http, "POST", "/api/agents/1001/logout", {}) == (
        409, {"error": "coverage_guard", "message": f"refused: {REFUSAL}"})
    assert actions(server, "QueueRemove") == []
    server.emit(member("QueueMemberAdded", B, "Agent B 1002", 1))          # B logs in
    await eventually(lambda: app.service.presence.seats.get(("pbx1", "q-market", "1002")) is not None)
    assert await call(http, "POST", "/api/agents/1001/logout", {}) == (
        200, {"agent": "1001", "action": "logout", "overridden": False,
              "sent": [{"post": "market-1", "queue": "q-market", "action": "QueueRemove"}]})
    [remove] = actions(server, "QueueRemove")
    assert (remove["Queue"], remove["Interface"]) == ("q-market", A)
    await eventually(lambda: state(app) == "b_covers")
    # B may not leave now in turn (A is gone)
    assert (await call(http, "POST", "/api/agents/1002/pause", {"reason": "会议"}))[1]["error"] == "coverage_guard"


async def test_live_picture(api):
    app, server, http = api
    status, body = await call(http, "GET", "/api/coverage/live")
    assert status == 200 and body == {"as_of": "2026-11-23T02:00:00+00:00", "posts": [{
        "post": "market-1", "department": "market", "pbx": "pbx1", "queue": "q-market", "state": "a_on",
        "a": {"agent": "1001", "name": "张伟", "logged_in": True, "paused": False, "reachable": True,
              "available": True, "penalty": 0},
        "b": {"agent": "1002", "name": "王芳", "logged_in": False, "paused": False, "reachable": True,
              "available": False, "penalty": None}}]}
    server.emit(member("QueueMemberAdded", B, "Agent B 1002", 1))
    await eventually(lambda: app.service.presence.seats.get(("pbx1", "q-market", "1002")) is not None)
    [post] = (await call(http, "GET", "/api/coverage/live", department="market"))[1]["posts"]
    assert post["b"] == {"agent": "1002", "name": "王芳", "logged_in": True, "paused": False, "reachable": True,
                         "available": True, "penalty": 1}
    assert await call(http, "GET", "/api/coverage/live", department="edu") == (
        200, {"posts": [], "as_of": "2026-11-23T02:00:00+00:00"})
    status, body = await call(http, "GET", "/api/coverage/live", date="2026-11-23")
    assert (status, body["error"]) == (400, "unknown_parameters")


async def test_a_gap_is_an_incident(api):
    app, server, http = api
    app.settings.posts[0].b_activation = []          # B is not brought in automatically here
    app.coverage.board = CoverageBoard(post_specs(app.settings))
    assert await call(http, "GET", "/api/coverage/incidents", date="2026-11-23") == (200, {"incidents": []})
    status, _ = await call(http, "POST", "/api/agents/1001/pause", {"reason": "离岗", "override": OVERRIDE})
    assert status == 200
    await eventually(lambda: state(app) == "gap")
    await app.coverage.settled()
    assert (await call(http, "GET", "/api/coverage/live"))[1]["posts"][0]["state"] == "gap"
    assert await call(http, "GET", "/api/coverage/incidents", date="2026-11-23") == (200, {"incidents": [{
        "id": 1, "post": "market-1", "department": "market", "opened_at": "2026-11-23T02:00:00+00:00",
        "closed_at": None, "start_of_day": False, "fallback": "pool"}]})
    assert actions(server, "QueueAdd") == []

    assert (await call(http, "POST", "/api/agents/1001/unpause", {}))[0] == 200
    await eventually(lambda: state(app) == "a_on")
    await app.coverage.settled()
    [incident] = (await call(http, "GET", "/api/coverage/incidents"))[1]["incidents"]    # today by default
    assert incident["closed_at"] == "2026-11-23T02:00:00+00:00"
    assert await call(http, "GET", "/api/coverage/incidents", date="2026-11-22") == (200, {"incidents": []})
    assert (await call(http, "GET", "/api/coverage/incidents", department="edu"))[1] == {"incidents": []}
    for params, status, code in [({"date": "23/11/2026"}, 400, "invalid_parameter"),
                                 ({"day": "2026-11-23"}, 400, "unknown_parameters"),
                                 ({"department": "nope"}, 404, "not_found")]:
        status_, body = await call(http, "GET", "/api/coverage/incidents", **params)
        assert (status_, body["error"]) == (status, code)


async def test_bad_requests_change_nothing(api):
    app, server, http = api
    sent_before = len(server.actions)
    cases = [
        ("/api/agents/1001/pause", b"not json", 400, "malformed_json"),
        ("/api/agents/1001/pause", ["午休"], 400, "invalid_body"),
        ("/api/agents/1001/pause", {"reason": "午休", "by": "1001"}, 400, "unknown_fields"),
        ("/api/agents/1001/pause", {"reason": 5}, 400, "invalid_field"),
        ("/api/agents/1001/pause", {"reason": "午休\r\nAction: Originate"}, 400, "invalid_field"),
        ("/api/agents/1001/pause", {"override": "head-market"}, 400, "invalid_field"),
        ("/api/agents/1001/pause", {"override": {"by": "head-market", "reason": "x"}}, 400, "unknown_fields"),
        ("/api/agents/1001/pause", {"reason": "x" * 101}, 400, "invalid_field"),
        ("/api/agents/1001/pause", {"reason": "午休\u2028x"}, 400, "invalid_field"),
        ("/api/agents/1001%0D%0AAction:%20Originate/pause", {}, 400, "invalid_parameter"),
        ("/api/agents/1001/pause", {"override": {**OVERRIDE, "note": "x"}}, 400, "unknown_fields"),
        ("/api/agents/9999/pause", {"reason": "午休"}, 400, "unknown_agent"),
        ("/api/agents/1001/sleep", {}, 404, "not_found"),
    ]
    for path, body, status, code in cases:
        kwargs = {"data": body, "headers": {"Content-Type": "application/json"}} if isinstance(body, bytes) \
            else {"json": body}
        async with http.post(URL(path, encoded=True), **kwargs) as r:
            answer = await r.json()
        assert (r.status, answer["error"]) == (status, code), (path, body, answer)
    status, body = await call(http, "POST", "/api/agents/1001/pause", {"override": {**OVERRIDE, "extra": 1}})
    assert body["fields"] == ["override.extra"]
    assert len(server.actions) == sent_before and await call(
        http, "GET", "/api/coverage/overrides") == (200, {"overrides": []})


async def test_a_pbx_refusal_is_502(api):
    app, server, http = api
    server.emit(member("QueueMemberAdded", B, "Agent B 1002", 1))
    await eventually(lambda: app.service.presence.seats.get(("pbx1", "q-market", "1002")) is not None)
    server.on_action = lambda action: [{"Response": "Error", "Message": "Interface not found"}]
    status, body = await call(http, "POST", "/api/agents/1001/pause", {"reason": "午休"})
    assert (status, body) == (502, {"error": "pbx_refused",
                                    "message": "the PBX refused the pause: Interface not found"})


async def test_a_down_link_is_503_and_nothing_is_done(api):
    app, server, http = api
    sent_before = len(server.actions)
    await server.close()                               # the PBX goes away; the client keeps retrying
    await eventually(lambda: not app.service.clients["pbx1"].connected.is_set())
    status, body = await call(http, "POST", "/api/agents/1001/pause", {"reason": "午休", "override": OVERRIDE})
    assert (status, body) == (503, {"error": "pbx_not_connected",
                                    "message": "PBX pbx1 is not connected; nothing was done"})
    assert len(server.actions) == sent_before
    assert (await call(http, "GET", "/api/coverage/overrides"))[1] == {"overrides": []}
