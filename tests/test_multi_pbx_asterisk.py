"""Several PBXes at once (issue 14) against two real Asterisks (../shared/asterisk, skipped when it
cannot start here), on different AMI ports, under one service configured by tests/multi_pbx/:
the same hotline number 62000001 and queue q-market on both PBXes belong to two departments;
q-edu is on every PBX with one post per PBX. Checked: calls, stints, cases, tasks (assigned on
the post's own PBX), the report, the coverage board, and that a pause request reaches only the PBX
of the agent's post (read back from each Asterisk with QueueStatus)."""
from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import pytest

from callcenter.ami.client import AmiClient, Endpoint
from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.domain.records import Outcome, StintEnd
from callcenter.settings import load_settings
from callcenter.storage import tables as t
from reports import daily
from tests.asterisk import require_bundle, start_asterisk, stop_asterisk
from tests.conftest import SHANGHAI
from tests.test_multi_pbx import until, write_config

SUNDAY = datetime(2026, 11, 29, 10, 0, tzinfo=SHANGHAI)    # the service's clock: closed, so the
                                                           # coverage sends nothing of its own


def _start(directory: Path) -> int:
    return start_asterisk(directory)[0]


@pytest.fixture
def asterisks(tmp_path):
    """Two Asterisks side by side: {"pbxA": port, "pbxB": port}."""
    require_bundle()
    started = []
    try:
        ports = {}
        for pbx in ("pbxA", "pbxB"):
            ports[pbx] = _start(tmp_path / pbx)
            started.append(tmp_path / pbx)
        yield ports
    finally:
        for directory in started:
            stop_asterisk(directory)


async def _driver(port: int) -> AmiClient:
    driver = AmiClient(Endpoint(f"drv{port}", "127.0.0.1", port, "callcenter", "ccsecret", reconnect_min=0.1),
                       lambda *_: None)
    driver.start()
    await asyncio.wait_for(driver.connected.wait(), 10)
    return driver


async def _agent(driver: AmiClient, agent: str, queue: str) -> None:
    for key, value in (("ring", 1), ("talk", 2)):
        await driver.action({"Action": "DBPut", "Family": "agent", "Key": f"{agent}/{key}", "Val": str(value)})
    await driver.action({"Action": "QueueAdd", "Queue": queue, "Interface": f"Local/{agent}@agents/n",
                         "MemberName": f"Agent {agent}", "Penalty": "0", "StateInterface": f"Custom:{agent}"})


async def _call(driver: AmiClient, hotline: str, queue: str, number: str, timeout: int = 60) -> None:
    await driver.action({"Action": "Originate", "Channel": f"Local/{hotline}@hotline", "Application": "Wait",
                         "Data": "20", "CallerID": f'"Caller {number}" <{number}>', "Async": "true",
                         "Variable": [f"__QNAME={queue}", f"__QTIMEOUT={timeout}", "__CHOICE=1", "__IVRWAIT=0"]})


async def _members(driver: AmiClient) -> dict[tuple[str, str], str]:
    """(queue, agent) -> the pause reason ("" when not paused), as this Asterisk reports it."""
    replies = await driver.action({"Action": "QueueStatus"})
    return {(m["Queue"], (m.get("Location") or m["Interface"]).split("/")[1].split("@")[0]):
            m.get("PausedReason", "") if m.get("Paused") == "1" else "" for m in replies if m.get("Event") == "QueueMember"}


async def test_two_real_asterisks_under_one_service(asterisks, tmp_path, sqlite_url):
    drivers = {pbx: await _driver(port) for pbx, port in asterisks.items()}
    app = None
    try:
        await _agent(drivers["pbxA"], "1001", "q-market")
        for agent, queue in (("2001", "q-market"), ("2002", "q-market"), ("3001", "q-housing")):
            await _agent(drivers["pbxB"], agent, queue)     # 3001 (A of edu-a, a pbxA post) works on pbxB
        settings = load_settings(write_config(tmp_path, asterisks))
        app = build(settings, sqlite_url, FixedClock(SUNDAY))
        for p in settings.pbxes:
            app.service.add_pbx(Endpoint(p.id, "127.0.0.1", p.port, "callcenter", "ccsecret", connect_timeout=5,
                                         action_timeout=5, ping_interval=5, reconnect_min=0.1, reconnect_max=0.5))
        await app.start()
        assert await until(lambda: app.coverage.known == {"pbxA", "pbxB"}, 15)
        await _call(drivers["pbxA"], "62000001", "q-market", "13800000001")
        await _call(drivers["pbxB"], "62000001", "q-market", "13800000002")
        await _call(drivers["pbxB"], "62000002", "q-edu", "13800000003", timeout=3)     # nobody there: times out

        async def stored():
            return await app.store.calls_where(t.calls.c.pbx.in_(["pbxA", "pbxB"]))
        assert await until(lambda: _has(stored, 3), 30), "the three calls were not stored"
        calls = {(c.pbx, c.caller_num): c for c in await stored()}
        a, b, edu = calls["pbxA", "13800000001"], calls["pbxB", "13800000002"], calls["pbxB", "13800000003"]
        assert (a.hotline, a.department, b.hotline, b.department) == ("62000001", "market", "62000001", "market_b")
        assert [(s.department, s.agent, s.end) for s in a.stints] == [("market", "1001", StintEnd.ANSWERED)]
        [stint] = b.stints
        assert stint.department == "market_b" and stint.agent in {"2001", "2002"} and stint.end is StintEnd.ANSWERED
        assert (edu.department, edu.outcome) == ("edu", Outcome.TIMED_OUT)

        await app.after_commit.settled(15)
        cases = {(c["pbx"], c["department"], c["owner"]) for c in await app.cases.list()}
        assert cases == {("pbxA", "market", "1001"), ("pbxB", "market_b", stint.agent)}
        [task] = await app.followup.list()
        # edu-a (pbxA) comes first, but its A (3001) is logged in on pbxB only: edu-b's A takes it
        assert (task["department"], task["pbx"], task["assignee"], task["assigned_via"]) == \
            ("edu", "pbxB", "2002", "post_a")

        report = daily.build(a.started_at.astimezone(SHANGHAI).date(), await stored(), settings)
        queues = {(q["pbx"], q["queue"]): q["department"] for q in report["queues"]}
        assert queues == {("pbxA", "q-market"): "market", ("pbxB", "q-market"): "market_b", ("pbxB", "q-edu"): "edu"}
        live = {p["post"]: (p["pbx"], p["a"]["logged_in"]) for p in app.coverage.live()}
        assert live == {"market-1": ("pbxA", True), "market_b-1": ("pbxB", True), "edu-a": ("pbxA", False),
                        "edu-b": ("pbxB", False)}

        # a pause reaches only the PBX of the agent's post
        answer = await app.coverage.request("2001", "pause", "小休")
        assert [(s["post"], s["queue"]) for s in answer["sent"]] == [("market_b-1", "q-market")]
        assert (await app.coverage.request("3001", "pause", "小休"))["sent"] == []     # not on his post's PBX
        members_a, members_b = await _members(drivers["pbxA"]), await _members(drivers["pbxB"])
        assert set(members_b) == {("q-market", "2001"), ("q-market", "2002"), ("q-housing", "3001")}
        assert set(members_a) == {("q-market", "1001")}
        # (an agent may be paused for the panel's wrap-up after a call: another reason)
        assert [k for k, reason in {**members_a, **members_b}.items() if reason == "小休"] == [("q-market", "2001")]
        assert await until(lambda: app.service.presence.seats[("pbxB", "q-market", "2001")].paused, 10)
    finally:
        if app is not None:
            await app.stop()
        for driver in drivers.values():
            await driver.stop()


async def _has(stored, n: int) -> bool:
    return len(await stored()) >= n
