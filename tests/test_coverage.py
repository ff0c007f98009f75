"""A/B coverage, live, against a local AMI server that records the actions it receives:
B brought in when A goes away, penalties kept, the guard on pause and logout, the head's
override, the gap incident and its notifications, and the picture rebuilt after a reconnect."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from callcenter.ami.client import Endpoint
from callcenter.ami.server import AmiServer
from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.coverage.service import post_specs
from callcenter.domain.coverage import CoverageBoard
from callcenter.followup.service import TaskError
from callcenter.storage import tables as t
from tests.conftest import MONDAY_10

A, B = "Local/1001@agents/n", "Local/1002@agents/n"


def member(event: str, interface: str, name: str, penalty: int, paused: bool = False, reason: str = "",
           status: int = 1) -> dict:
    return {"Event": event, "Privilege": "agent,all", "Queue": "q-market", "MemberName": name,
            "Interface": interface, "StateInterface": interface.replace("Local/", "Custom:").split("@")[0],
            "Membership": "dynamic", "Penalty": penalty, "CallsTaken": 0, "LastCall": 0, "LastPause": 0,
            "LoginTime": 0, "InCall": 0, "Status": status, "Paused": int(paused), "PausedReason": reason,
            "Ringinuse": 0, "Wrapuptime": 0}


async def eventually(condition, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


def actions(server, name: str) -> list[dict]:
    return [a for a in server.actions if a.get("Action") == name]


@pytest.fixture
async def rig(settings, sqlite_url):
    """One post (market-1: A 1001, B 1002 on q-market), a live AMI server where A is logged in,
    and the whole app connected to it at 10:00 on a Monday."""
    settings.posts = [p for p in settings.posts if p.id == "market-1"]
    server = AmiServer()

    def on_action(action):                      # the PBX carries out QueueAdd like Asterisk does
        if action.get("Action") == "QueueAdd":
            name = "Agent B 1002" if action["Interface"] == B else "Agent A 1001"
            server.emit(member("QueueMemberAdded", action["Interface"], name, int(action.get("Penalty", 0))))
        return None
    server.on_action = on_action
    server.emit(member("QueueMemberAdded", A, "Agent A 1001", 0))     # A is at work when we connect
    port = await server.start()
    app = build(settings, sqlite_url, FixedClock(MONDAY_10))
    client = app.service.add_pbx(Endpoint("pbx1", "127.0.0.1", port, "cc", "x", connect_timeout=2,
                                          action_timeout=2, ping_interval=30, reconnect_min=0.05, reconnect_max=0.2))
    await app.start()
    await asyncio.wait_for(client.connected.wait(), 5)
    yield app, server, client
    await app.stop()
    await server.close()


async def test_b_is_brought_in_and_sent_back(rig):
    app, server, _ = rig
    await eventually(lambda: app.coverage.board.state.get("market-1") == "a_on")
    assert actions(server, "QueueAdd") == []

    # A pauses for lunch: nobody is available -> B added to the queue (penalty 1), an incident, B told
    server.emit(member("QueueMemberPause", A, "Agent A 1001", 0, paused=True, reason="午休"))
    await eventually(lambda: app.coverage.board.state.get("market-1") == "b_covers")
    [add] = actions(server, "QueueAdd")
    assert (add["Queue"], add["Interface"], add["Penalty"], add["Paused"]) == ("q-market", B, "1", "false")
    async with app.store.engine.connect() as conn:
        [incident] = (await conn.execute(select(t.coverage_incidents))).mappings().all()
    assert incident["post"] == "market-1" and incident["closed_at"] is not None     # B came in: closed
    panel = [m["body"] for m in app.panel.recent]
    assert any("请您立即接替" in m for m in panel) and any("AB岗空岗" in m for m in panel)

    # A is back: B returns to backup (penalty mode: stays in the queue at penalty 1, is told)
    server.emit(member("QueueMemberPause", A, "Agent A 1001", 0, paused=False))
    await eventually(lambda: app.coverage.board.state.get("market-1") == "a_on")
    await app.coverage.settled()
    assert actions(server, "QueueRemove") == []
    assert any("恢复为B岗备岗" in m["body"] for m in app.panel.recent)


async def test_penalties_are_kept_and_a_paused_b_is_unpaused(rig):
    app, server, _ = rig
    server.emit(member("QueueMemberAdded", B, "Agent B 1002", 0, paused=True, reason="会议"))   # wrong penalty
    await eventually(lambda: len(actions(server, "QueuePenalty")) == 1)
    [penalty] = actions(server, "QueuePenalty")
    assert (penalty["Interface"], penalty["Penalty"]) == (B, "1")
    # A logs out while B is paused in a meeting: B is unpaused to take the calls
    server.emit({"Event": "QueueMemberRemoved", "Queue": "q-market", "MemberName": "Agent A 1001", "Interface": A})
    await eventually(lambda: len(actions(server, "QueuePause")) == 1)
    [unpause] = actions(server, "QueuePause")
    assert (unpause["Interface"], unpause["Paused"]) == (B, "false")


async def test_guard_refuses_and_the_head_overrides(rig):
    app, server, _ = rig
    await eventually(lambda: app.coverage.board.state.get("market-1") == "a_on")
    # B is not logged in: A's pause would leave the post empty
    with pytest.raises(TaskError) as refused:
        await app.coverage.request("1001", "pause", reason="午休")
    assert refused.value.status == 409 and refused.value.code == "coverage_guard"
    assert "market-1" in str(refused.value) and actions(server, "QueuePause") == []
    with pytest.raises(TaskError) as not_head:
        await app.coverage.request("1001", "pause", reason="午休", override_by="1002", override_reason="x")
    assert not_head.value.status == 403
    done = await app.coverage.request("1001", "pause", reason="午休", override_by="head-market",
                                      override_reason="区长临时会议，B岗马上到岗")
    assert done["overridden"] and [a["Paused"] for a in actions(server, "QueuePause")] == ["true"]
    async with app.store.engine.connect() as conn:
        [override] = (await conn.execute(select(t.coverage_overrides))).mappings().all()
    assert (override["agent"], override["by"], override["post"]) == ("1001", "head-market", "market-1")
    assert override["reason"] == "区长临时会议，B岗马上到岗" and "nobody" in override["refusal"]
    # with B in and available, A may pause without anyone's leave
    server.emit(member("QueueMemberAdded", B, "Agent B 1002", 1))
    server.emit(member("QueueMemberPause", A, "Agent A 1001", 0, paused=False))
    await eventually(lambda: app.service.presence.seats.get(("pbx1", "q-market", "1002")) is not None)
    assert not (await app.coverage.request("1001", "logout"))["overridden"]
    assert actions(server, "QueueRemove")[-1]["Interface"] == A


async def test_gap_routes_callers_to_the_fallback(rig):
    app, server, _ = rig
    app.settings.posts[0].b_activation = []          # B is not brought in automatically here
    app.coverage.board = CoverageBoard(post_specs(app.settings))
    server.emit(member("QueueMemberPause", A, "Agent A 1001", 0, paused=True, reason="离岗"))
    await eventually(lambda: app.coverage.board.state.get("market-1") == "gap")
    await app.coverage.settled()                     # the incident is written after the state is judged
    route = await app.cases.route("13800000000", hotline="62000001")
    assert (route.reason, route.fallback, route.queue) == ("coverage_gap", "pool", "q-market")
    async with app.store.engine.connect() as conn:
        [incident] = (await conn.execute(select(t.coverage_incidents))).mappings().all()
    assert incident["closed_at"] is None and incident["fallback"] == "pool"
    server.emit(member("QueueMemberPause", A, "Agent A 1001", 0, paused=False))
    await eventually(lambda: app.coverage.board.state.get("market-1") == "a_on")
    await app.coverage.settled()
    async with app.store.engine.connect() as conn:
        [incident] = (await conn.execute(select(t.coverage_incidents))).mappings().all()
    assert incident["closed_at"] is not None
    assert (await app.cases.route("13800000000", hotline="62000001")).reason == "no_case"


async def test_after_a_reconnect_the_picture_comes_from_the_resync(rig):
    app, server, client = rig
    server.emit(member("QueueMemberAdded", B, "Agent B 1002", 1))
    await eventually(lambda: app.service.presence.seats.get(("pbx1", "q-market", "1002")) is not None)
    # while the link is down the PBX restarts: B is gone, A came back with the wrong penalty
    await server.drop_clients()
    server.state.members.pop(("q-market", B))
    server.state.members[("q-market", A)]["Penalty"] = "3"
    await eventually(lambda: client.logins == 2)
    await eventually(lambda: ("pbx1", "q-market", "1002") not in app.service.presence.seats)
    await eventually(lambda: len(actions(server, "QueuePenalty")) == 1)
    [fix] = actions(server, "QueuePenalty")
    assert (fix["Interface"], fix["Penalty"]) == (A, "0")
    live = {p["post"]: p for p in app.coverage.live()}
    assert live["market-1"]["a"]["logged_in"] and not live["market-1"]["b"]["logged_in"]
    assert live["market-1"]["a"]["penalty"] == 3       # as the PBX reported it before the fix lands


def test_a_post_fallback_sends_callers_to_the_other_posts_queue(settings):
    """market-1's callers go to the service office's post during a gap (config/agents.yaml)."""
    from datetime import datetime, timezone

    from callcenter.domain.coverage import NOT_LOGGED_IN, PostState
    board = CoverageBoard(post_specs(settings))
    commands = board.evaluate(lambda pbx, queue, agent: NOT_LOGGED_IN, lambda spec: True,
                              datetime(2026, 11, 23, 2, tzinfo=timezone.utc))
    assert board.state["market-1"] is PostState.GAP
    assert any(type(c).__name__ == "OpenIncident" and c.post == "market-1" for c in commands)
    spec = board.specs["market-1"]
    assert (spec.fallback.kind, spec.fallback.post) == ("post", "office-1")
    assert board.specs["office-1"].queue == "q-office"
