"""Nothing a client sends reaches the PBX unchecked, over real TCP both ways: the service's HTTP
API on a real socket, its AMI client connected to a local AMI server that records every action.

CR, LF, NUL and other controls in a caller number, an agent id, a pause reason, a PBX id, a
reference, a call id or a note: 400 naming the field, and the PBX receives no action beyond the
service's own. Then a clean request goes through: exactly one Originate, to the clean number.
"""
from __future__ import annotations

import asyncio

import aiohttp
import pytest
from yarl import URL

from callcenter.ami.client import Endpoint
from callcenter.ami.server import AmiServer
from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.web.app import WebServer
from tests.auth_helpers import bearer, grant
from tests.conftest import MONDAY_10

EVIL = "\r\nAction: Originate\r\nChannel: Local/666@evil\r\nExten: 666\r\n\r\n"
CLEAN = "13900000077"


@pytest.fixture
async def live(settings, db_url):
    server = AmiServer()
    port = await server.start()
    app_obj = build(settings, db_url, FixedClock(MONDAY_10))      # SQLite and PostgreSQL (NUL!)
    pbx = app_obj.service.add_pbx(Endpoint("pbx1", "127.0.0.1", port, "cc", "cc", reconnect_min=0.05))
    web_server = WebServer(app_obj, "127.0.0.1", 0)
    app_obj.extras.append(web_server)
    await app_obj.start()
    try:
        await asyncio.wait_for(pbx.connected.wait(), 5)
        # a head of market who also takes calls as agent 1001: every request below is allowed
        token = await grant(app_obj, "lead", "head", ["market"], agent="1001")
        host, port_ = web_server.addresses[0][:2]
        async with aiohttp.ClientSession(f"http://{host}:{port_}", headers=bearer(token)) as http:
            yield app_obj, server, http
    finally:
        await app_obj.stop()
        await server.close()


def injections(task_id: int) -> list[tuple[str, str, dict | None, str]]:
    """(method, path, JSON body, the field named in the refusal)."""
    request = {"department": "market"}
    return [
        ("POST", "/api/callback-requests", {**request, "caller": CLEAN + EVIL}, "caller"),
        ("POST", "/api/callback-requests", {**request, "caller": CLEAN + "\x00"}, "caller"),
        ("POST", "/api/callback-requests", {**request, "caller": CLEAN + "\u2028"}, "caller"),
        ("POST", "/api/callback-requests", {**request, "caller": "张三"}, "caller"),
        ("POST", "/api/callback-requests", {**request, "caller": "abc; DROP TABLE tasks"}, "caller"),
        ("POST", "/api/callback-requests", {**request, "caller": "1" * 10_000}, "caller"),
        ("POST", "/api/callback-requests", {"caller": CLEAN, "department": ["market"]}, "department"),
        ("POST", "/api/callback-requests", {"caller": CLEAN, "department": "market" + EVIL}, "department"),
        ("POST", "/api/callback-requests", {**request, "caller": CLEAN, "pbx": {"x": 1}}, "pbx"),
        ("POST", "/api/callback-requests", {**request, "caller": CLEAN, "pbx": "pbx1" + EVIL}, "pbx"),
        ("POST", "/api/callback-requests", {**request, "caller": CLEAN, "ref": "r" + EVIL}, "ref"),
        ("POST", "/api/callback-requests", {"caller": CLEAN, "hotline": "62000001" + EVIL}, "hotline"),
        ("POST", "/api/agents/1001/pause", {"reason": "午休" + EVIL}, "reason"),
        ("POST", "/api/agents/1001/pause", {"reason": "午休\x00"}, "reason"),
        ("POST", "/api/agents/1001%0D%0AAction:%20Originate/pause", {"reason": "午休"}, "agent"),
        ("POST", "/api/agents/1001%00/logout", {}, "agent"),
        ("POST", "/api/agents/1001/pause", {"override": {"reason": "x\x00"}}, "override.reason"),
        ("PATCH", f"/api/tasks/{task_id}", {"assignee": "1002" + EVIL}, "assignee"),
        ("PATCH", f"/api/tasks/{task_id}", {"note": "x\x00y"}, "note"),
        ("PATCH", f"/api/tasks/{task_id}", {"closure": "wrong_number" + EVIL}, "closure"),
        ("POST", f"/api/tasks/{task_id}/callbacks", {"agent": "1001" + EVIL}, "agent"),
        ("POST", "/api/calls/pbx1%0D%0AAction:%20Originate/1795347500.171/disposition",
         {"disposition": "resolved"}, "pbx"),
        ("POST", "/api/calls/pbx1/1795347500.171%0D%0A/disposition", {"disposition": "resolved"}, "call_id"),
        ("GET", "/api/route.txt?caller=138%0D%0AAction:%20Originate&hotline=62000001", None, "caller"),
        ("GET", "/api/route?caller=13800000000&hotline=62000001&pbx=pbx1%0D%0A", None, "pbx"),
        ("GET", "/api/tasks?caller=139%00", None, "caller"),
        ("GET", "/api/tasks?date=9999-12-31", None, "date"),
        ("GET", "/api/cases?department=market&department=edu", None, "department"),
    ]


async def test_control_characters_never_reach_the_pbx(live):
    app_obj, server, http = live
    async with http.post("/api/callback-requests", json={"caller": CLEAN, "department": "market"}) as r:
        assert r.status == 201, await r.text()
        task = await r.json()
    await app_obj.coverage.settled()
    before = len(server.actions)
    for method, path, body, field in injections(task["id"]):
        async with http.request(method, URL(path, encoded=True), json=body) as r:
            answer = await r.json()
        assert (r.status, answer.get("field")) == (400, field), (path, body, answer)
        assert answer["error"] in ("invalid_field", "invalid_parameter", "unknown_fields"), answer
    await asyncio.sleep(0.1)                         # anything sent would have arrived by now
    for action in server.actions:
        assert not any(isinstance(v, str) and ("666" in v or "\r" in v or "\n" in v or "\x00" in v)
                       for v in action.values()), action
    assert not [a for a in server.actions[before:] if a.get("Action") in ("Originate", "QueuePause", "QueueRemove")]

    # the 1 MB caller of the issue: refused before it is read
    async with http.post("/api/callback-requests", json={"caller": "1" * (1 << 20), "department": "market"}) as r:
        assert r.status == 413
    # the same task, called back properly: one Originate, to the clean number
    async with http.post(f"/api/tasks/{task['id']}/callbacks", json={}) as r:
        assert r.status == 202, await r.text()
    [originate] = [a for a in server.actions if a.get("Action") == "Originate"]
    assert originate["Exten"] == CLEAN and originate["Channel"] == "Local/1001@agents/n"
