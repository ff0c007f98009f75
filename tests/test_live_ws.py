"""The panel's WebSocket /api/live over a real aiohttp server, real WebSocket clients, and the app
built with `callcenter.bootstrap.build` (SQLite; PostgreSQL too when CALLCENTER_TEST_POSTGRES_URL is
set) against a live AMI server that replays the real `basic` trace over TCP (q-market: agents 1001
and 1002 log in, four callers are answered, both log out).

Users: agent 1001, head-market (head of market), head-edu, office, admin; the clock stands at
Monday 23 Nov 2026 10:30 (Shanghai), in business hours.
"""
from __future__ import annotations

import asyncio
import json
import socket
import time
from datetime import timedelta

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from callcenter.ami.client import Endpoint
from callcenter.ami.server import AmiServer, load_trace, stamp
from callcenter.auth import UserAdmin
from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.web.app import init_app
from callcenter.web.security import COOKIE
from tests.auth_helpers import bearer, grant
from tests.conftest import MONDAY_10, trace_path
from tests.test_coverage import eventually

NOW = MONDAY_10 + timedelta(minutes=30)
MARKUP = '<img src=x onerror="alert(1)">&amp;\'"'       # a caller name an attacker put on the line
USERS = {"1001": ("agent", [], "1001"), "head-market": ("head", ["market"], None),
         "head-edu": ("head", ["edu"], None), "office": ("office", [], None), "admin": ("admin", [], None)}
PASSWORD = "长城-correct-horse"


def first_join(trace: list[bytes]) -> int:
    """How many messages up to and including the first caller's QueueCallerJoin."""
    return next(i for i, raw in enumerate(trace) if raw.startswith(b"Event: QueueCallerJoin")) + 1


def basic_trace() -> list[bytes]:
    """The real basic trace, stamped from NOW; the first caller's name carries markup."""
    trace = load_trace(trace_path("basic"))
    return [stamp(raw.replace(b"Caller 13800000000", MARKUP.encode()), NOW + timedelta(seconds=t))
            for t, raw in trace.messages]


@pytest.fixture
async def rig(settings, db_url):
    settings.web = settings.web.model_copy(update={"allowed_origins": ["https://panel.example.gov.cn"]})
    server = AmiServer()                        # the trace is emitted by each test, once its clients listen
    port = await server.start()
    app_obj = build(settings, db_url, FixedClock(NOW))
    app_obj.live.figures_delay = 0.05
    app_obj.hub.recheck_seconds = 0.2
    pbx = app_obj.service.add_pbx(Endpoint("pbx1", "127.0.0.1", port, "cc", "cc", reconnect_min=0.05))
    await app_obj.start()
    http = TestClient(TestServer(await init_app(app_obj)))
    await http.start_server()
    try:
        await asyncio.wait_for(pbx.connected.wait(), 5)
        tokens = {user: await grant(app_obj, user, role, departments, agent)
                  for user, (role, departments, agent) in USERS.items()}
        yield app_obj, http, tokens, server
    finally:
        await http.close()
        await app_obj.stop()
        await server.close()


async def connect(http, token: str | None = None, **kwargs):
    headers = kwargs.pop("headers", {})
    if token:
        headers.update(bearer(token))
    return await http.ws_connect("/api/live", headers=headers, **kwargs)


async def receive(ws, timeout: float = 5.0) -> dict:
    msg = await ws.receive(timeout)
    assert msg.type == WSMsgType.TEXT, msg
    return json.loads(msg.data)


async def until(ws, condition, timeout: float = 5.0) -> dict:
    """The first message for which `condition` holds (earlier ones are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        message = await receive(ws, max(0.01, deadline - time.monotonic()))
        if condition(message):
            return message


def waiting_names(message: dict) -> list[str]:
    return [c["caller_name"] for c in message["waiting"]["calls"]]


async def test_a_replayed_call_reaches_the_head_the_office_and_the_agent(rig):
    app_obj, http, tokens, server = rig
    head, office, agent = [await connect(http, tokens[u]) for u in ("head-market", "office", "1001")]
    hello = await receive(head)
    assert hello["type"] == "hello" and hello["identity"]["user"] == "head-market"
    [board] = hello["dashboards"]
    assert (board["department"], board["waiting"]["count"], board["today"]["answered"]) == ("market", 0, 0)
    assert [a["agent"] for a in board["agents"]] == ["1001", "1002"]
    assert {d["department"] for d in (await receive(office))["dashboards"]} == {
        d.id for d in app_obj.settings.departments}
    hello = await receive(agent)
    assert hello["agent"]["view"]["state"] == "logged_out" and hello["agent"]["posts"][0]["post"] == "market-1"

    trace = basic_trace()
    for raw in trace[:first_join(trace)]:      # A and B log in, the first caller joins q-market
        server.emit(raw)
    board = await until(head, lambda m: m["type"] == "dashboard" and m["waiting"]["count"] == 1)
    [call] = board["waiting"]["calls"]
    assert (call["caller_num"], call["caller_name"], call["queue"]) == ("13800000000", MARKUP, "q-market")
    assert board["event_at"] and board["sent_at"] and board["as_of"]
    seen = await until(office, lambda m: m["type"] == "dashboard" and m["department"] == "market"
                       and m["waiting"]["count"] == 1)
    assert (seen["waiting"]["calls"][0]["caller_num"], seen["waiting"]["calls"][0]["caller_name"]) == (
        "138****0000", MARKUP)                  # the office's copy is masked; the name is passed on as is
    mine = await until(agent, lambda m: m["type"] == "agent" and m["view"]["state"] != "logged_out")
    assert mine["agent"] == "1001" and mine["event_at"] and mine["sent_at"]
    [post] = mine["posts"]
    assert (post["a"]["agent"], post["b"]["agent"], post["role"]) == ("1001", "1002", "a")
    mine = await until(agent, lambda m: m["type"] == "agent" and m["posts"][0]["state"] == "a_on")
    assert mine["posts"][0]["available"] == ["1001", "1002"]      # the coverage board's judgement, pushed too

    rings = next(i for i, raw in enumerate(trace) if raw.startswith(b"Event: AgentCalled")) + 1
    for raw in trace[first_join(trace):rings]:  # the queue offers the call to 1001
        server.emit(raw)
    ringing = await until(agent, lambda m: m["type"] == "ringing")
    assert (ringing["call"]["caller_num"], ringing["call"]["caller_name"], ringing["call"]["queue"]) == (
        "13800000000", MARKUP, "q-market")
    assert ringing["event_at"] and ringing["sent_at"]
    board = await until(head, lambda m: m["type"] == "dashboard" and m["agents"][0]["state"] == "ringing")
    assert board["agents"][0]["call"]["queue"] == "q-market"

    for raw in trace[rings:]:
        server.emit(raw)
    board = await until(head, lambda m: m["type"] == "dashboard" and m["today"]["answered"] == 4
                        and m["waiting"]["count"] == 0, timeout=10)
    today = board["today"]
    assert (today["offered"], today["answered"], today["abandoned"], today["connect_rate"]) == (4, 4, 0, 1.0)
    assert [s["seconds"] for s in today["service_level"]] == [15, 60]
    mine = await until(agent, lambda m: m["type"] == "agent" and m["view"]["state"] == "logged_out"
                       and m["posts"][0]["available"] == [])
    assert mine["posts"][0]["a"]["logged_in"] is False
    for ws in (head, office, agent):
        await ws.close()


async def test_the_origin_of_the_upgrade_must_be_ours_or_allowed(rig):
    app_obj, http, tokens, server = rig
    for origin in ("https://evil.example", "null", f"http://{http.host}:{http.port + 1}"):
        async with http.get("/api/live", headers={"Origin": origin, **bearer(tokens["1001"]), "Upgrade": "websocket",
                                                  "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                                                  "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}) as r:
            assert (r.status, (await r.json())["error"]) == (403, "bad_origin"), origin
    for origin in (f"http://{http.host}:{http.port}", "https://panel.example.gov.cn"):
        ws = await connect(http, tokens["1001"], headers={"Origin": origin})
        assert (await receive(ws))["type"] == "hello"
        await ws.close()


async def test_anonymous_and_roles_without_call_data_are_refused(rig):
    app_obj, http, tokens, server = rig
    async with http.get("/api/live", headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                              "Sec-WebSocket-Version": "13",
                                              "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}) as r:
        assert (r.status, (await r.json())["error"]) == (401, "unauthenticated")
    async with http.get("/api/live", headers=bearer(tokens["admin"])) as r:
        assert (r.status, (await r.json())["error"]) == (403, "forbidden")
    async with http.get("/api/live", headers=bearer(tokens["1001"])) as r:     # no upgrade headers
        assert (r.status, (await r.json())["error"]) == (400, "not_websocket")


async def test_a_head_sees_only_their_departments(rig):
    app_obj, http, tokens, server = rig
    edu, market = await connect(http, tokens["head-edu"]), await connect(http, tokens["head-market"])
    assert [d["department"] for d in (await receive(edu))["dashboards"]] == ["edu"]
    await receive(market)
    trace = basic_trace()
    for raw in trace[:first_join(trace)]:
        server.emit(raw)
    await until(market, lambda m: m["type"] == "dashboard" and m["waiting"]["count"] == 1)
    await asyncio.sleep(0.2)                       # whatever was coming has come
    while True:
        try:
            message = await receive(edu, 0.05)
        except asyncio.TimeoutError:
            break
        assert message.get("department") == "edu", message
    async with http.get("/api/panel/dashboard", params={"department": "market"},
                        headers=bearer(tokens["head-edu"])) as r:
        assert r.status == 403
    async with http.get("/api/panel/agent", params={"agent": "1001"}, headers=bearer(tokens["head-edu"])) as r:
        assert r.status == 403
    await edu.close()
    await market.close()


async def raw_upgrade(http, token: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads: a small receive
    buffer, so the server's writes back up at once."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (http.host, http.port))
    await loop.sock_sendall(sock, (f"GET /api/live HTTP/1.1\r\nHost: {http.host}:{http.port}\r\n"
                                   "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                   f"Authorization: Bearer {token}\r\n\r\n").encode())
    head = await loop.sock_recv(sock, 1024)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


async def test_a_slow_client_does_not_hold_up_the_others(rig):
    app_obj, http, tokens, server = rig
    slow = await raw_upgrade(http, tokens["1001"])
    fast = await connect(http, tokens["head-market"])
    await receive(fast)
    await eventually(lambda: len(app_obj.hub.subscribers) == 2)
    [stuck] = [s for s in app_obj.hub.subscribers if "agent:1001" in s.topics]
    big = "长" * 20000                            # 60 kB per snapshot: the socket's buffers fill at once
    started = time.perf_counter()
    for i in range(300):
        app_obj.hub.publish("agent:1001", {"type": "agent", "agent": "1001", "n": i, "pad": big}, key="1001")
        app_obj.hub.publish("dept:market", {"type": "dashboard", "department": "market", "n": i}, key="market")
        if i % 10 == 0:
            await asyncio.sleep(0)                 # let the writers run
    assert time.perf_counter() - started < 2.0    # publishing never waited for the slow socket
    last = await until(fast, lambda m: m.get("n") == 299)
    assert last["type"] == "dashboard"
    assert len(stuck.pending) <= 1 and stuck.superseded > 250     # stale snapshots replaced, never queued up
    app_obj.hub.publish("agent:1001", {"type": "notification", "id": 1, "subject": "s", "body": "b"})
    app_obj.hub.publish("agent:1001", {"type": "notification", "id": 2, "subject": "s", "body": "b"})
    assert sum(1 for k in stuck.pending if k[0] == "_") == 2        # notifications are never dropped
    slow.close()
    await fast.close()


async def test_the_end_of_the_session_ends_the_socket(rig):
    app_obj, http, tokens, server = rig
    await UserAdmin(app_obj.store, app_obj.settings, app_obj.clock).passwd("1001", PASSWORD)
    async with http.post("/api/login", json={"user": "1001", "password": PASSWORD}) as r:
        csrf = (await r.json())["csrf_token"]
    assert http.session.cookie_jar.filter_cookies(http.make_url("/api/live"))[COOKIE].value
    ws = await http.ws_connect("/api/live", headers={"Origin": f"http://{http.host}:{http.port}"})
    assert (await receive(ws))["identity"]["via"] == "session"
    async with http.post("/api/logout", json={}, headers={"X-CSRF-Token": csrf}) as r:
        assert r.status == 200
    msg = await until_closed(ws)
    assert (msg.type, ws.close_code, msg.extra) == (WSMsgType.CLOSE, 4401, "unauthenticated")


async def test_a_revoked_token_ends_the_socket(rig):
    app_obj, http, tokens, server = rig
    ws = await connect(http, tokens["head-market"])
    await receive(ws)
    await UserAdmin(app_obj.store, app_obj.settings, app_obj.clock).revoke("head-market")
    msg = await until_closed(ws)
    assert (msg.type, ws.close_code, msg.extra) == (WSMsgType.CLOSE, 4401, "unauthenticated")


async def until_closed(ws, timeout: float = 5.0):
    """The close frame (pushes before it are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        msg = await ws.receive(max(0.01, deadline - time.monotonic()))
        if msg.type != WSMsgType.TEXT:
            return msg


async def test_notifications_arrive_live_and_are_acknowledged_over_the_socket(rig):
    app_obj, http, tokens, server = rig
    ws = await connect(http, tokens["1001"])
    assert (await receive(ws))["notifications"] == []
    await app_obj.notifier.notify("test:live", "panel", "1001", "任务即将逾期", "<b>13600000009</b> 的回访")
    note = await until(ws, lambda m: m["type"] == "notification")
    assert (note["subject"], note["body"]) == ("任务即将逾期", "<b>13600000009</b> 的回访")
    await ws.send_str(json.dumps({"type": "ack", "id": note["id"]}))
    await ws.send_str("not json")
    assert (await until(ws, lambda m: m["type"] == "error"))["error"] == "bad_message"

    async def acked() -> bool:
        return (await app_obj.panel.inbox.get(note["id"]))["acked_by"] == "1001"
    deadline = time.monotonic() + 5
    while not await acked():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    again = await connect(http, tokens["1001"])
    assert (await receive(again))["notifications"] == []         # acknowledged: not listed again
    await ws.close()
    await again.close()


async def test_sockets_are_closed_cleanly_when_the_server_stops(rig):
    app_obj, http, tokens, server = rig
    ws = await connect(http, tokens["head-market"])
    await receive(ws)
    stopping = asyncio.get_running_loop().create_task(http.server.close())
    msg = await ws.receive(5)
    assert (msg.type, ws.close_code, msg.extra) == (WSMsgType.CLOSE, 1001, "server shutdown")
    await stopping


def test_the_panel_benchmark_runs(tmp_path):
    """benchmarks/bench_panel.py end to end for 2 s with 8 panels (the real run is by hand)."""
    from benchmarks import bench_panel
    out = tmp_path / "panel.json"
    assert bench_panel.main(["--agents", "6", "--heads", "2", "--departments", "2", "--posts", "3", "--rate", "100",
                             "--seconds", "2", "--concurrent", "4", "--settle", "0.2", "--no-check",
                             "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert (figures["clients"], figures["events"], figures["client_failures"]) == (8, 200, 0)
    assert figures["pushes_with_event_at"] > 20 and {"agent", "dashboard"} <= set(figures["by_type"])
