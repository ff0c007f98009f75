"""The agent desk (agents/desk.py) with the whole app connected over TCP to a live AMI
server that carries out QueueAdd, QueuePause and QueueRemove like Asterisk and records them, and
the HTTP route `POST /api/agents/{agent}/{action}` over real HTTP.

One post, market-1 (A 1001, B 1002 on q-market), both logged in; the clock stands at 10:00 on
Monday 23 Nov 2026 (Shanghai), in business hours, and moves only when a test moves it."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from callcenter.ami.client import Endpoint
from callcenter.ami.server import AmiServer, load_trace, stamp
from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.followup.service import TaskError
from callcenter.storage import tables as t
from callcenter.web.app import init_app
from tests.auth_helpers import bearer, grant
from tests.conftest import MONDAY_10, trace_path
from tests.test_coverage import A, B, actions, eventually, member
from tests.test_coverage_api import OVERRIDE, call, carry_out

WRAPUP = "话后处理"


def agent_event(event: str, interface: str, linkedid: str = "1795340000.1", **extra) -> dict:
    name = "Agent B 1002" if interface == B else "Agent A 1001"
    return {"Event": event, "Privilege": "agent,all", "Queue": "q-market", "Uniqueid": linkedid[:-1] + "2",
            "Linkedid": linkedid, "Interface": interface, "MemberName": name, "HoldTime": 3, "RingTime": 2,
            "TalkTime": 30, "Reason": "agent", **extra}


async def start_app(settings, sqlite_url, server: AmiServer):
    port = await server.start()
    app = build(settings, sqlite_url, FixedClock(MONDAY_10))
    client = app.service.add_pbx(Endpoint("pbx1", "127.0.0.1", port, "cc", "x", connect_timeout=2,
                                          action_timeout=2, ping_interval=30, reconnect_min=0.05, reconnect_max=0.2))
    await app.start()
    await asyncio.wait_for(client.connected.wait(), 5)
    return app


@pytest.fixture
async def desk(settings, sqlite_url):
    settings.posts = [p for p in settings.posts if p.id == "market-1"]
    server = AmiServer()
    server.on_action = lambda action: carry_out(server, action)
    server.emit(member("QueueMemberAdded", A, "Agent A 1001", 0))
    server.emit(member("QueueMemberAdded", B, "Agent B 1002", 1))
    app = await start_app(settings, sqlite_url, server)
    head = await grant(app, "head-market", "head", ["market"])
    agent = await grant(app, "1001", "agent", agent="1001")
    http = TestClient(TestServer(await init_app(app)), headers=bearer(agent))
    await http.start_server()
    await eventually(lambda: state(app, "1001") == "available" and state(app, "1002") == "available")
    try:
        yield app, server, http, bearer(head)
    finally:
        await http.close()
        await app.stop()
        await server.close()


def state(app, agent: str) -> str:
    return app.desk.states.state_of(agent).value


def pauses(server) -> list[tuple]:
    return [(p["Interface"], p["Paused"], p.get("Reason", "")) for p in actions(server, "QueuePause")]


async def on_a_call(app, server, interface=A, linkedid="1795340000.1"):
    server.emit(agent_event("AgentCalled", interface, linkedid))
    server.emit(agent_event("AgentConnect", interface, linkedid))
    agent = "1002" if interface == B else "1001"
    await eventually(lambda: state(app, agent) == "on_call")


async def test_a_pause_during_a_call_waits_for_the_call_and_its_wrapup(desk):
    app, server, http, _ = desk
    await on_a_call(app, server)
    status, body = await call(http, "POST", "/api/agents/1001/pause", {"reason": "用餐"})
    assert (status, body) == (200, {"agent": "1001", "action": "pause", "state": "on_call", "deferred": True,
                                    "sent": [], "overridden": False})
    view = app.desk.states.view("1001", app.clock.now())
    assert (view.pending, view.pending_reason) == ("pause", "用餐")
    assert pauses(server) == []                                       # nothing at the PBX during the call

    server.emit(agent_event("AgentComplete", A))                      # the call ends: wrap-up, paused for it
    await eventually(lambda: pauses(server) == [(A, "true", WRAPUP)])
    await eventually(lambda: state(app, "1001") == "wrap_up")
    assert app.coverage.seat("pbx1", "q-market", "1001").available    # the guard counts wrap-up as available
    # a second pause during the wrap-up replaces the pending one
    status, body = await call(http, "POST", "/api/agents/1001/pause", {"reason": "会议"})
    assert (status, body["deferred"], body["state"]) == (200, True, "wrap_up")

    status, body = await call(http, "POST", "/api/agents/1001/ready", {})   # wrap-up over: the pause now
    assert body.pop("state") in ("available", "paused")      # whether the PBX's answer came in already
    assert (status, body) == (200, {"agent": "1001", "action": "ready", "deferred": False, "overridden": False,
                                    "sent": [{"post": "market-1", "queue": "q-market", "action": "QueuePause",
                                              "pbx": "pbx1"}]})
    assert pauses(server) == [(A, "true", WRAPUP), (A, "true", "会议")]
    await eventually(lambda: state(app, "1001") == "paused")
    assert app.desk.states.view("1001", app.clock.now()).reason == "会议"


async def test_the_guard_is_checked_when_asked_and_the_override_carried(desk):
    app, server, http, head = desk
    server.emit({"Event": "QueueMemberRemoved", "Queue": "q-market", "MemberName": "Agent B 1002", "Interface": B})
    await eventually(lambda: state(app, "1002") == "logged_out")
    app.coverage.on_leadership(True)
    await app.coverage.settled()
    server.actions.clear()
    await on_a_call(app, server)
    status, body = await call(http, "POST", "/api/agents/1001/logout", {})
    assert (status, body["error"]) == (409, "coverage_guard")
    status, body = await call(http, "POST", "/api/agents/1001/logout", {"override": OVERRIDE}, headers=head)
    assert (status, body["deferred"], body["overridden"]) == (200, True, True)
    assert actions(server, "QueueRemove") == []
    [row] = (await call(http, "GET", "/api/coverage/overrides", headers=head))[1]["overrides"]
    assert (row["action"], row["by"]) == ("logout", "head-market")

    server.emit(agent_event("AgentComplete", A))
    await eventually(lambda: state(app, "1001") == "wrap_up" and pauses(server) == [(A, "true", WRAPUP)])
    assert actions(server, "QueueRemove") == []
    status, body = await call(http, "POST", "/api/agents/1001/ready", {})     # carried out unguarded now
    assert (status, body["sent"]) == (200, [{"post": "market-1", "queue": "q-market", "action": "QueueRemove",
                                             "pbx": "pbx1"}])
    [remove] = actions(server, "QueueRemove")
    assert (remove["Queue"], remove["Interface"]) == ("q-market", A)
    await eventually(lambda: state(app, "1001") == "logged_out")


async def test_unpause_during_a_call_drops_the_pending_pause(desk):
    app, server, http, _ = desk
    await on_a_call(app, server)
    assert (await call(http, "POST", "/api/agents/1001/pause", {"reason": "小休"}))[1]["deferred"] is True
    status, body = await call(http, "POST", "/api/agents/1001/unpause", {})
    assert (status, body) == (200, {"agent": "1001", "action": "unpause", "overridden": False, "sent": []})
    assert app.desk.states.view("1001", app.clock.now()).pending is None
    server.emit(agent_event("AgentComplete", A))
    await eventually(lambda: state(app, "1001") == "wrap_up")
    await call(http, "POST", "/api/agents/1001/ready", {})
    await eventually(lambda: state(app, "1001") == "available")
    assert pauses(server) == [(A, "true", WRAPUP), (A, "false", "")]


async def test_wrapup_expires_on_the_clock_and_extends(desk):
    app, server, http, _ = desk
    await on_a_call(app, server)
    server.emit(agent_event("AgentComplete", A))
    await eventually(lambda: state(app, "1001") == "wrap_up" and pauses(server) == [(A, "true", WRAPUP)])
    status, body = await call(http, "POST", "/api/agents/1001/extend", {})
    assert (status, body["state"], body["sent"]) == (200, "wrap_up", [])
    view = app.desk.states.view("1001", app.clock.now())
    assert view.wrapup_until == MONDAY_10 + timedelta(seconds=120)
    d = view.to_dict(app.clock.now())
    assert (d["state"], d["wrapup_seconds_left"], d["call"]["call_id"]) == ("wrap_up", 120, "1795340000.1")
    for _ in range(3):                                                # up to max_seconds (300) in all
        assert (await call(http, "POST", "/api/agents/1001/extend", {}))[0] == 200
    status, body = await call(http, "POST", "/api/agents/1001/extend", {})
    assert (status, body["error"]) == (409, "wrapup_at_max")

    app.clock.advance(299)
    await app.desk.tick()
    assert state(app, "1001") == "wrap_up" and len(pauses(server)) == 1
    app.clock.advance(1)
    await app.desk.tick()                                             # ran out: the wrap-up pause is lifted
    assert pauses(server) == [(A, "true", WRAPUP), (A, "false", "")]
    await eventually(lambda: state(app, "1001") == "available")
    status, body = await call(http, "POST", "/api/agents/1001/ready", {})
    assert (status, body["error"]) == (409, "not_in_wrapup")


async def test_login_sends_queue_add_with_the_seats_penalty(desk):
    app, server, http, head = desk
    server.emit({"Event": "QueueMemberRemoved", "Queue": "q-market", "MemberName": "Agent B 1002", "Interface": B})
    await eventually(lambda: state(app, "1002") == "logged_out")
    server.actions.clear()
    status, body = await call(http, "POST", "/api/agents/1002/login", {}, headers=head)
    assert (status, body["sent"], body["deferred"]) == (
        200, [{"post": "market-1", "queue": "q-market", "action": "QueueAdd"}], False)
    [add] = actions(server, "QueueAdd")
    assert (add["Queue"], add["Interface"], add["Penalty"], add["Paused"], add["StateInterface"]) == (
        "q-market", B, "1", "false", "Custom:1002")
    await eventually(lambda: state(app, "1002") == "available")
    assert (await call(http, "POST", "/api/agents/1002/login", {}, headers=head))[1]["sent"] == []   # already in
    # A logs out (B covers), then back in at penalty 0
    assert (await call(http, "POST", "/api/agents/1001/logout", {}))[0] == 200
    await eventually(lambda: state(app, "1001") == "logged_out")
    status, body = await call(http, "POST", "/api/agents/1001/login", {})
    assert status == 200 and [a["Penalty"] for a in actions(server, "QueueAdd")] == ["1", "0"]
    await eventually(lambda: state(app, "1001") == "available")
    status, body = await call(http, "POST", "/api/agents/1001/pause", {"reason": WRAPUP})
    assert (status, body["error"]) == (400, "reserved_reason")


async def test_a_pause_over_its_maximum_alarms_the_head_once(desk):
    app, server, http, _ = desk
    assert (await call(http, "POST", "/api/agents/1001/pause", {"reason": "小休"}))[0] == 200
    await eventually(lambda: state(app, "1001") == "paused")
    app.clock.advance(15 * 60)
    await app.desk.tick()
    assert not app.desk.states.view("1001", app.clock.now()).over_max
    app.clock.advance(60)
    await app.desk.tick()
    await app.desk.tick()
    app.clock.advance(600)
    await app.desk.tick()
    assert app.desk.states.view("1001", app.clock.now()).to_dict(app.clock.now())["over_max"] is True
    async with app.store.engine.connect() as conn:
        rows = (await conn.execute(select(t.notifications).where(t.notifications.c.key.like("panel:pause-over-max:%"))
                                   )).mappings().all()
    assert [(r["channel"], r["recipient"], r["subject"]) for r in rows] == [("panel", "head:market", "暂停超时")]
    assert "张伟" in rows[0]["body"] and "小休" in rows[0]["body"] and "10:00" in rows[0]["body"]
    assert app.desk.failures == 0


@pytest.fixture
async def replayed(settings, sqlite_url, tmp_path):
    """The real `basic` trace (A and B answer four calls) without its last log-outs, replayed over
    TCP: both agents are left in wrap-up after their last call."""
    settings.posts = [p for p in settings.posts if p.id == "market-1"]
    settings.panel.wrapup.require_disposition = True
    trace = load_trace(trace_path("basic"))
    kept = [(s, raw) for s, raw in trace.messages if b"QueueMemberRemoved" not in raw]
    server = AmiServer(messages=[stamp(raw, MONDAY_10 + timedelta(seconds=s)) for s, raw in kept],
                       times=[s for s, _ in kept], banner=trace.banner)
    app = await start_app(settings, sqlite_url, server)
    await asyncio.wait_for(server.done.wait(), 5)
    await eventually(lambda: state(app, "1001") == "wrap_up" and state(app, "1002") == "wrap_up")
    try:
        yield app, server
    finally:
        await app.stop()
        await server.close()


async def test_ready_needs_a_disposition_when_required(replayed):
    app, server = replayed
    call_ = app.desk.states.wrapup_call("1001")
    assert (call_["call_id"], call_["caller_num"], call_["ivr_choice"]) == ("1795347503.178", "13800000002", "1")
    await app.desk.settled()
    assert (A, "true", WRAPUP) in pauses(server)
    with pytest.raises(TaskError) as exc:
        await app.desk.request("1001", "ready")
    assert (exc.value.status, exc.value.code) == (409, "disposition_required")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not any(c["call_id"] == "1795347503.179" for c in await _case_calls(app)):   # the answered call's case
        assert loop.time() < deadline, "the answered call never got its case"
        await asyncio.sleep(0.02)
    await app.cases.dispose("pbx1", "1795347503.179", "1001", "resolved")
    done = await app.desk.request("1001", "ready")
    assert (done["state"], done["deferred"]) == ("available", False)
    assert [(s["queue"], s["action"]) for s in done["sent"]] == [("q-market", "QueuePause")]
    assert pauses(server)[-1] == (A, "false", "")


async def _case_calls(app) -> list[dict]:
    async with app.store.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(select(t.case_calls))).mappings().all()]


async def test_one_refused_action_does_not_stop_the_others(desk, caplog):
    """A in two queues: the PBX refuses the wrap-up pause on one; the other is still paused, one
    line is logged, and the wrap-up goes on."""
    app, server, http, _ = desk
    server.emit({**member("QueueMemberAdded", A, "Agent A 1001", 0), "Queue": "q-edu"})
    await eventually(lambda: len(app.desk.states.seats_of("1001")) == 2)

    def refuse_market(action):
        if action.get("Action") == "QueuePause" and action.get("Queue") == "q-market":
            return [{"Response": "Error", "Message": "Interface not found"}]
        return carry_out(server, action)
    server.on_action = refuse_market
    await on_a_call(app, server)
    server.emit(agent_event("AgentComplete", A))
    await eventually(lambda: len(actions(server, "QueuePause")) == 2)
    await app.desk.settled()
    assert sorted((p["Queue"], p["Paused"]) for p in actions(server, "QueuePause")) == [
        ("q-edu", "true"), ("q-market", "true")]
    assert app.desk.failures == 1 and state(app, "1001") == "wrap_up"
    assert [r.message for r in caplog.records if r.name == "agents.desk"] == [
        "desk: QueuePause on pbx1/q-market for agent 1001 not carried out: Interface not found"]
