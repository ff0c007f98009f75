"""The head dashboard and the agent snapshot (agents/live/views.py, push.py, api.py) over real
HTTP: today's figures are the daily report's, the store's counts, the alarms, the throttle.

The database is the real traces basic, transfer and ivr-hangup replayed from Monday 23 Nov 10:00
(tests/test_cases_api.py): calls answered in q-market by 1001 and 1002, one transferred to q-edu,
one IVR hang-up (13600000009, whose follow-up task is open in market). The service's clock stands
at 10:30 the same day; a live AMI server stands in for the PBX.
"""
from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from callcenter.ami.client import Endpoint
from callcenter.ami.server import AmiServer
from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.web.app import init_app
from reports import daily
from tests.auth_helpers import bearer, grant
from tests import test_cases_api
from tests.test_cases_api import NOW
from tests.test_coverage import eventually, member

replayed_db, db_url = test_cases_api.replayed_db, test_cases_api.db_url       # the replayed database (fixtures)
FIGURES = ("offered", "answered", "abandoned", "short_abandoned", "timed_out", "connect_rate", "service_level")
JOIN = {"Event": "QueueCallerJoin", "Privilege": "call,all", "Channel": "Local/62000001@hotline-0000aa;2",
        "ChannelState": "6", "CallerIDNum": "13900000001", "CallerIDName": "Caller",
        "Context": "hotline", "Exten": "62000001", "Priority": "5", "Uniqueid": "1763900000.901",
        "Linkedid": "1763900000.900", "Queue": "q-market", "Position": "1", "Count": "1"}


@pytest.fixture
async def rig(settings, db_url):
    server = AmiServer()
    port = await server.start()
    clock = FixedClock(NOW)
    app_obj = build(settings, db_url, clock)
    app_obj.live.figures_delay = 0.05
    pbx = app_obj.service.add_pbx(Endpoint("pbx1", "127.0.0.1", port, "cc", "cc", reconnect_min=0.05))
    await app_obj.start()
    http = TestClient(TestServer(await init_app(app_obj)))
    await http.start_server()
    try:
        await asyncio.wait_for(pbx.connected.wait(), 5)
        users = {"head-market": ("head", ["market"], None), "office": ("office", [], None),
                 "1001": ("agent", [], "1001")}
        tokens = {u: bearer(await grant(app_obj, u, *spec)) for u, spec in users.items()}
        yield app_obj, http, tokens, server, clock
    finally:
        await http.close()
        await app_obj.stop()
        await server.close()


async def get(http, path: str, headers: dict, **params) -> tuple[int, dict]:
    async with http.get(path, params=params, headers=headers) as r:
        return r.status, await r.json()


async def test_todays_figures_are_the_daily_reports(rig):
    app_obj, http, tokens, server, clock = rig
    records = await app_obj.store.calls_between(*daily.day_bounds(NOW.date(), NOW.tzinfo))
    report = {d["department"]: d for d in daily.build(NOW.date(), records, app_obj.settings)["departments"]}
    status, board = await get(http, "/api/panel/dashboard", tokens["head-market"], department="market")
    assert status == 200 and board["type"] == "dashboard" and board["name"] == "区市场监管局"
    assert {k: board["today"][k] for k in FIGURES} == {k: report["market"][k] for k in FIGURES}
    assert board["today"]["answered"] >= 5
    status, body = await get(http, "/api/panel/dashboard", tokens["office"])
    boards = {b["department"]: b for b in body["dashboards"]}
    assert set(boards) == {d.id for d in app_obj.settings.departments}
    assert {k: boards["edu"]["today"][k] for k in FIGURES} == {k: report["edu"][k] for k in FIGURES}
    status, body = await get(http, "/api/panel/dashboard", tokens["head-market"])
    assert [b["department"] for b in body["dashboards"]] == ["market"]
    assert (await get(http, "/api/panel/dashboard", tokens["head-market"], department="nope"))[0] == 404
    status, body = await get(http, "/api/panel/dashboard", tokens["office"], date="2026-11-23")
    assert (status, body["error"]) == (400, "unknown_parameters")


async def test_overdue_tasks_and_open_incidents_are_counted(rig):
    app_obj, http, tokens, server, clock = rig
    await app_obj.coverage.settled()
    clock.advance(3 * 86400)                       # Thursday: the IVR hang-up's 1-workday deadline has passed
    await app_obj.live.today.refresh_counts(clock.now())
    status, board = await get(http, "/api/panel/dashboard", tokens["head-market"], department="market")
    assert board["overdue"] == {"tasks": 1, "cases": 0}
    incidents = [i for i in await app_obj.coverage.incidents(NOW - timedelta(days=1), clock.now())
                 if i["department"] == "market" and i["closed_at"] is None]
    assert board["coverage"]["open_incidents"] == len(incidents) == 1


async def test_alarms_a_gap_and_a_wait_over_target(rig):
    app_obj, http, tokens, server, clock = rig
    await eventually(lambda: app_obj.coverage.board.state.get("market-1") == "gap")   # nobody logged in at 10:30
    server.emit(JOIN)
    await eventually(lambda: app_obj.service.calls.open_calls == 1)
    status, board = await get(http, "/api/panel/dashboard", tokens["head-market"], department="market")
    assert [a["kind"] for a in board["alarms"]] == ["post_gap"]
    assert (board["waiting"]["count"], board["waiting"]["calls"][0]["queue"]) == (1, "q-market")
    sub = app_obj.hub.subscribe(["dept:market"])
    clock.advance(61)                              # over the 60 s target: the ticker notices
    pushed = json.loads((await asyncio.wait_for(sub.next(), 3))[-1])
    assert [a["kind"] for a in pushed["alarms"]] == ["post_gap", "longest_wait"]
    assert pushed["waiting"]["longest_seconds"] >= 61 and "最长等待" in pushed["alarms"][1]["text"]
    sub.close()


async def test_a_burst_of_changes_is_one_dashboard_push_per_interval(rig):
    app_obj, http, tokens, server, clock = rig
    sub = app_obj.hub.subscribe(["dept:market"])
    live = app_obj.live
    await asyncio.sleep(live.dashboard_interval * 2)
    before = sub.sent
    for _ in range(100):                           # one loop turn: the first push goes at once
        live.dirty_departments({"market"})
    first = await asyncio.wait_for(sub.next(), 1)
    for _ in range(5):                             # within the interval: wait for its end, then one push
        live.dirty_departments({"market"})
        await asyncio.sleep(0.005)
    second = await asyncio.wait_for(sub.next(), 1)
    assert (len(first), len(second), sub.sent - before) == (1, 1, 2)
    assert json.loads(second[0])["event_at"] is not None
    sub.close()


async def test_the_agent_snapshot_over_rest(rig):
    app_obj, http, tokens, server, clock = rig
    status, mine = await get(http, "/api/panel/agent", tokens["1001"])
    assert status == 200 and (mine["type"], mine["agent"], mine["view"]["agent"]) == ("agent", "1001", "1001")
    [post] = mine["posts"]
    assert (post["post"], post["a"]["agent"], post["a"]["name"], post["b"]["agent"]) == ("market-1", "1001", "张伟", "1002")
    assert (await get(http, "/api/panel/agent", tokens["1001"], agent="1002"))[0] == 403
    assert (await get(http, "/api/panel/agent", tokens["head-market"], agent="1002"))[0] == 200
    status, body = await get(http, "/api/panel/agent", tokens["head-market"])
    assert (status, body["error"]) == (400, "agent_required")
    assert (await get(http, "/api/panel/agent", tokens["office"], agent="9999"))[0] == 404


async def test_a_pause_over_its_maximum_alarms_the_head(rig):
    app_obj, http, tokens, server, clock = rig
    server.emit(member("QueueMemberAdded", "PJSIP/1001", "张伟", 0, paused=True, reason="小休"))   # 15 min at most
    await eventually(lambda: app_obj.desk.states.view("1001", clock.now()).state == "paused")
    status, board = await get(http, "/api/panel/dashboard", tokens["head-market"], department="market")
    assert "pause_over_max" not in [a["kind"] for a in board["alarms"]]
    sub = app_obj.hub.subscribe(["dept:market"])
    clock.advance(16 * 60)
    pushed = json.loads((await asyncio.wait_for(sub.next(), 3))[-1])
    [alarm] = [a for a in pushed["alarms"] if a["kind"] == "pause_over_max"]
    assert (alarm["agent"], alarm["reason"]) == ("1001", "小休")
    row = next(r for r in pushed["agents"] if r["agent"] == "1001")
    assert (row["state"], row["reason"], row["over_max"], row["seconds_in_state"]) == ("paused", "小休", True, 960)
    sub.close()
