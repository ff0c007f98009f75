"""More than one instance (issue 9, item 9): two instances on one PostgreSQL database both ingest,
exactly one (the advisory lock's holder) sends AMI actions, and when it dies the other takes
over within seconds. Real parts: two full apps, one local AMI server recording the actions it
receives, one PostgreSQL database; and two `callcenter serve` processes, one killed with
SIGKILL."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from callcenter.ami.client import Endpoint
from callcenter.ami.server import AmiServer
from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.domain.tasks import Reason
from callcenter.followup.service import TaskError
from callcenter.leader import Leadership
from tests.conftest import MONDAY_10, ROOT
from tests.test_coverage import A, B, actions, eventually, member

POLL = 0.2


def pbx() -> AmiServer:
    server = AmiServer()

    def on_action(action):                       # the PBX carries out QueueAdd like Asterisk does
        if action.get("Action") == "QueueAdd":
            server.emit(member("QueueMemberAdded", action["Interface"], action.get("MemberName", ""),
                               int(action.get("Penalty", 0))))
        return None
    server.on_action = on_action
    server.emit(member("QueueMemberAdded", A, "Agent A 1001", 0))           # A is at work
    return server


async def next_decision(server: AmiServer, settle: float = 1.0) -> None:
    """A comes back, B logs out (nothing to do), A pauses again: B must be brought in."""
    server.emit(member("QueueMemberPause", A, "Agent A 1001", 0, paused=False))
    server.emit({"Event": "QueueMemberRemoved", "Queue": "q-market", "MemberName": "王芳", "Interface": B})
    await asyncio.sleep(settle)                   # judged: A is on, B is off duty
    server.emit(member("QueueMemberPause", A, "Agent A 1001", 0, paused=True, reason="会议"))


async def instance(settings, url: str, port: int):
    app = build(settings, url, FixedClock(MONDAY_10))
    app.service.add_pbx(Endpoint("pbx1", "127.0.0.1", port, "cc", "x", connect_timeout=2, action_timeout=2,
                                 ping_interval=30, reconnect_min=0.05, reconnect_max=0.2))
    await app.start()
    await asyncio.wait_for(app.service.clients["pbx1"].connected.wait(), 5)
    return app


async def test_on_sqlite_the_one_instance_is_active(sqlite_url):
    leadership = Leadership(sqlite_url)
    await leadership.start()
    assert leadership() and leadership.active
    await leadership.stop()


async def test_two_instances_act_once_and_the_other_takes_over(settings, postgres_url):
    settings.posts = [p for p in settings.posts if p.id == "market-1"]
    settings.instance.leader_poll_seconds = POLL
    server = pbx()
    port = await server.start()
    first = await instance(settings, postgres_url, port)
    second = await instance(settings, postgres_url, port)
    apps = [first, second]
    try:
        await eventually(lambda: [a.leadership.active for a in apps].count(True) == 1)
        active, standby = (first, second) if first.leadership.active else (second, first)
        await asyncio.sleep(3 * POLL)
        assert active.leadership.active and not standby.leadership.active      # it stays that way
        await eventually(lambda: active.coverage.board.state.get("market-1") == "a_on")

        # one decision (A pauses: bring B in): one QueueAdd, from the active instance; both ingest
        server.emit(member("QueueMemberPause", A, "Agent A 1001", 0, paused=True, reason="午休"))
        await eventually(lambda: all(("pbx1", "q-market", "1002") in a.service.presence.seats for a in apps))
        await asyncio.sleep(0.5)
        await active.coverage.settled()
        assert len(actions(server, "QueueAdd")) == 1 and standby.coverage.executed == []

        # a callback: the active instance dials once; the standby one refuses without dialling
        task = await active.followup.request("13800001234", "market", Reason.CALLBACK_REQUEST, MONDAY_10,
                                             "pbx1", "ivr-1")
        with pytest.raises(TaskError) as refused:
            await standby.callbacks.start(task["id"], "1001")
        assert (refused.value.status, refused.value.code) == (503, "not_active")
        await active.callbacks.start(task["id"], "1001")
        assert len(actions(server, "Originate")) == 1

        # the active one dies (its lock connection drops without a word): the other takes over
        active.leadership._task.cancel()
        active.leadership._conn.terminate()
        died = time.monotonic()
        await eventually(lambda: standby.leadership.active, timeout=10)
        takeover = time.monotonic() - died
        print(f"takeover after the lock connection dropped: {takeover:.2f} s")
        await active.stop()
        apps = [standby]
        assert takeover < 3, f"takeover took {takeover:.1f} s"

        # the next decision is the new active instance's, once: A back, B logs out, A pauses again
        await next_decision(server)
        await eventually(lambda: len(actions(server, "QueueAdd")) == 2)
        await asyncio.sleep(0.5)
        await standby.coverage.settled()
        assert len(actions(server, "QueueAdd")) == 2 and len(actions(server, "Originate")) == 1
    finally:
        for app in apps:
            await app.stop()
        await server.close()


# --- two `serve` processes, one killed -9 ---------------------------------------------------

def serve_config(tmp_path: Path, port: int) -> Path:
    """The example configuration, one post, business hours all day today, the PBX on ``port``."""
    out = tmp_path / "config"
    out.mkdir()
    for src in (ROOT / "config").glob("*.yaml"):
        data = yaml.safe_load(src.read_text(encoding="utf-8"))
        if "pbxes" in data:
            data["pbxes"] = [{"id": "pbx1", "host": "127.0.0.1", "port": port, "username": "cc", "secret": "x",
                              "reconnect_min": 0.05, "reconnect_max": 0.5}]
            data["business_hours"] = ["00:00-23:59"]
            tz = ZoneInfo(data.get("timezone", "Asia/Shanghai"))
            today = datetime.now(tz).date()
            calendar = data.setdefault("calendar", {}) or {}
            data["calendar"] = calendar
            calendar["extra_workdays"] = sorted(set(calendar.get("extra_workdays") or []) | {today})
            calendar["extra_holidays"] = [d for d in calendar.get("extra_holidays") or [] if d != today]
            data.setdefault("web", {})["port"] = 0
            data["instance"] = {"leader_poll_seconds": POLL, "checkpoint_seconds": 0.5}
            for department in data.get("departments", []):
                department.pop("business_hours", None)
        if "posts" in data:
            data["posts"] = [{**p, "fallback": {"kind": "pool"}} for p in data["posts"] if p["id"] == "market-1"]
        (out / src.name).write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return out


def start_serve(config: Path, url: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "callcenter.cli", "serve", "--config", str(config), "--db", url],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(log, "w"),
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def is_active(log: Path) -> bool:
    lines = [line for line in log.read_text().splitlines() if "leadership: this instance is" in line]
    return bool(lines) and "active" in lines[-1].split("this instance is")[1].split()[0]


async def test_serve_killed_minus_9_the_other_takes_over(tmp_path, postgres_url):
    server = pbx()
    port = await server.start()
    config = serve_config(tmp_path, port)
    logs = [tmp_path / "one.log", tmp_path / "two.log"]
    procs = [start_serve(config, postgres_url, logs[0])]
    try:
        await eventually(lambda: is_active(logs[0]), timeout=30)       # the first one alone: active at once
        procs.append(start_serve(config, postgres_url, logs[1]))
        await eventually(lambda: server.logins == 2, timeout=30)
        await asyncio.sleep(1)
        assert not is_active(logs[1])

        server.emit(member("QueueMemberPause", A, "Agent A 1001", 0, paused=True, reason="午休"))
        await eventually(lambda: len(actions(server, "QueueAdd")) == 1, timeout=10)
        await asyncio.sleep(1)
        assert len(actions(server, "QueueAdd")) == 1

        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(10)
        died = time.monotonic()
        await eventually(lambda: is_active(logs[1]), timeout=15)
        takeover = time.monotonic() - died
        print(f"takeover after kill -9: {takeover:.2f} s")
        assert takeover < 5
        await next_decision(server)
        await eventually(lambda: len(actions(server, "QueueAdd")) == 2, timeout=10)
        await asyncio.sleep(1)
        assert len(actions(server, "QueueAdd")) == 2
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        await server.close()
