"""The agent desk's own state across a restart (callcenter/domain/desk_state.py, saved and restored
by callcenter/checkpointer.py): a pause asked for during a call, a wrap-up's deadline and a pause
alarm already raised are not lost, reset or repeated, while the PBX's resync still decides who
is logged in, paused or in a call.

The whole app over TCP against the live AMI server (callcenter/ami/server.py), stopped and built
again on the same SQLite database; one run of `callcenter serve` as a real process killed with
SIGKILL (its last periodic checkpoint is what the next process resumes).
One post, market-1 (A 1001, B 1002 on q-market), both logged in; the clock at 10:00 on Monday
23 Nov 2026 (Shanghai) moves only when a test moves it."""
from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from datetime import timedelta

from sqlalchemy import select

from callcenter.ami.client import Endpoint
from callcenter.ami.server import AmiServer
from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.domain.agent_state import AgentStates, DeskPolicy, Pending, State
from callcenter.domain.desk_state import desk_from_state, desk_to_state
from callcenter.storage import tables as t
from tests.conftest import MONDAY_10, ROOT
from tests.fakepbx import free_port, serve, write_config
from tests.test_agent_desk import WRAPUP, agent_event, pauses, state
from tests.test_coverage import A, B, eventually, member
from tests.test_coverage_api import carry_out

CALLER = "1795340000.2"               # the caller's channel in agent_event's calls


def pbx() -> AmiServer:
    server = AmiServer()
    server.port = 0
    server.on_action = lambda action: carry_out(server, action)
    server.emit(member("QueueMemberAdded", A, "Agent A 1001", 0))
    server.emit(member("QueueMemberAdded", B, "Agent B 1002", 1))
    return server


async def first_start(settings, sqlite_url, server):
    settings.posts = [p for p in settings.posts if p.id == "market-1"]
    server.port = await server.start()
    app = await start_at(settings, sqlite_url, server, MONDAY_10)
    await eventually(lambda: state(app, "1001") == "available" and state(app, "1002") == "available")
    return app


async def start_at(settings, sqlite_url, server, at):
    """A new app on the same database, its clock going on from the old one's."""
    app = build(settings, sqlite_url, FixedClock(at))
    client = app.service.add_pbx(Endpoint("pbx1", "127.0.0.1", server.port, "cc", "x", connect_timeout=2,
                                          action_timeout=2, ping_interval=30, reconnect_min=0.05, reconnect_max=0.2))
    await app.start()
    await asyncio.wait_for(client.connected.wait(), 5)
    return app


async def restart(app, settings, sqlite_url, server):
    """Stop ``app`` (its final checkpoint) and start a new one on the same database at the same
    moment; returns it once its resync from the PBX is in."""
    now = app.clock.now()
    await app.stop()
    await app.store.close()
    app = await start_at(settings, sqlite_url, server, now)
    await eventually(lambda: not app.desk.states.stale and "pbx1" in app.coverage.known)
    await app.desk.settled()
    return app


def on_a_call(server, linkedid: str = "1795340000.1") -> None:
    server.emit({"Event": "Newchannel", "Channel": "SIP/caller-1", "Uniqueid": CALLER, "Linkedid": linkedid,
                 "Context": "hotline", "Exten": "12345", "CallerIDNum": "13800000001", "CallerIDName": ""})
    server.emit(agent_event("AgentCalled", A, linkedid))
    server.emit(agent_event("AgentConnect", A, linkedid))


def view(app, agent="1001"):
    return app.desk.states.view(agent, app.clock.now())


async def alarms(app) -> list[dict]:
    async with app.store.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(select(t.notifications).where(
            t.notifications.c.key.like("panel:pause-over-max:%")))).mappings().all()]


# --- the encoding (pure) ------------------------------------------------------------------------

def test_the_desk_state_round_trips_through_json():
    policy = DeskPolicy({"小休": 900})
    states = AgentStates({"1001": "张伟", "1002": "李娜"}, policy, start=MONDAY_10)
    a = states.agents["1001"]
    a.state, a.since = State.ON_CALL, MONDAY_10 + timedelta(seconds=5)
    a.call = {"pbx": "pbx1", "call_id": "1.1", "uniqueid": "1.2", "queue": "q-market", "since": "x"}
    a.pending = Pending("logout", "", "head-market", "区长同意", MONDAY_10 + timedelta(seconds=9))
    a.alarmed = ("小休", MONDAY_10)
    saved = json.loads(json.dumps(desk_to_state(states)))
    assert [x["id"] for x in saved["agents"]] == ["1001"]            # 1002: logged out, nothing to keep
    again = AgentStates({"1001": "张伟", "1002": "李娜"}, policy, start=MONDAY_10 + timedelta(hours=1))
    assert desk_from_state(again, saved) == 1
    b = again.agents["1001"]
    assert (b.state, b.since, b.call, b.pending, b.alarmed) == (a.state, a.since, a.call, a.pending, a.alarmed)
    assert again.stale == {"pbx1"}
    assert desk_from_state(AgentStates({"1002": "李娜"}, policy), saved) == 0    # no longer configured


def test_a_pause_asked_while_ringing_is_carried_out_at_the_first_resync(settings):
    """Ringing is not carried over (the PBX tells it again, or the caller moved on): the first
    resync after the restore settles every agent, so a pause asked for during the ring is done."""
    from callcenter.domain import events as ev
    from callcenter.domain.agent_state import ApplyPending
    from tests.test_agent_state import T0, call_event, machine, member as seat
    states = machine(settings)
    states.feed(ev.Resynced("pbx1", T0, frozenset(), (seat(ev.MemberState, A), seat(ev.MemberState, B))))
    states.feed(call_event(ev.AgentRinging, A))
    states.defer("1001", Pending("pause", "小休", asked_at=T0), T0)
    saved = json.loads(json.dumps(desk_to_state(states)))
    again = machine(settings)
    desk_from_state(again, saved)
    later = T0 + timedelta(seconds=20)
    assert again.tick(later) == set() and again.next_deadline() is None        # stale until the resync
    again.feed(ev.Resynced("pbx1", later, frozenset(), (seat(ev.MemberState, A, at=later),
                                                        seat(ev.MemberState, B, at=later))))
    assert again.take_effects() == [ApplyPending("1001", Pending("pause", "小休", asked_at=T0))]
    assert (again.state_of("1001"), again.stale) == (State.AVAILABLE, set())


# --- in-process restarts ----------------------------------------------------------------------

async def test_a_pause_asked_during_a_call_is_applied_when_the_call_ends_after_a_restart(settings, sqlite_url):
    server = pbx()
    app = await first_start(settings, sqlite_url, server)
    try:
        on_a_call(server)
        await eventually(lambda: state(app, "1001") == "on_call")
        done = await app.desk.request("1001", "pause", "用餐")
        assert (done["deferred"], pauses(server)) == (True, [])
        app = await restart(app, settings, sqlite_url, server)
        v = view(app)
        assert (v.state.value, v.pending, v.pending_reason, v.call["call_id"]) == ("on_call", "pause", "用餐",
                                                                                  "1795340000.1")
        assert v.since == MONDAY_10 and pauses(server) == []         # the call is still up: nothing sent
        server.emit(agent_event("AgentComplete", A))                  # ends under the new process
        await eventually(lambda: state(app, "1001") == "wrap_up" and pauses(server) == [(A, "true", WRAPUP)])
        assert view(app).pending == "pause"
        app.clock.advance(60)
        await app.desk.tick()                                         # the wrap-up over: the pause asked for
        await eventually(lambda: state(app, "1001") == "paused")
        assert pauses(server) == [(A, "true", WRAPUP), (A, "true", "用餐")]
        assert (view(app).reason, view(app).pending) == ("用餐", None)
    finally:
        await app.stop()
        await server.close()


async def test_a_pending_logout_whose_call_ended_while_down_is_applied_at_once(settings, sqlite_url):
    server = pbx()
    app = await first_start(settings, sqlite_url, server)
    try:
        on_a_call(server)
        await eventually(lambda: state(app, "1001") == "on_call")
        assert (await app.desk.request("1001", "logout", ""))["deferred"] is True
        now = app.clock.now()
        await app.stop()
        await app.store.close()
        server.emit(agent_event("AgentComplete", A))                  # nobody listens
        server.emit({"Event": "Hangup", "Uniqueid": CALLER, "Linkedid": "1795340000.1", "Channel": "SIP/caller-1"})
        app = await start_at(settings, sqlite_url, server, now + timedelta(seconds=20))
        await eventually(lambda: state(app, "1001") == "logged_out")
        [remove] = [a for a in server.actions if a.get("Action") == "QueueRemove"]
        assert (remove["Queue"], remove["Interface"]) == ("q-market", A)
        assert state(app, "1002") == "available" and view(app).pending is None
    finally:
        await app.stop()
        await server.close()


async def test_a_wrapup_keeps_its_deadline_and_its_extensions(settings, db_url):
    sqlite_url = db_url                                               # and PostgreSQL, when there is one
    server = pbx()
    app = await first_start(settings, sqlite_url, server)
    try:
        on_a_call(server)
        await eventually(lambda: state(app, "1001") == "on_call")
        server.emit(agent_event("AgentComplete", A))
        await eventually(lambda: state(app, "1001") == "wrap_up" and pauses(server) == [(A, "true", WRAPUP)])
        await app.desk.request("1001", "extend")
        await app.desk.request("1001", "extend")                      # until 10:03, 60 s short of the cap
        app = await restart(app, settings, sqlite_url, server)
        app.clock.advance(90)                                         # the PBX still shows the wrap-up pause
        await app.desk.tick()
        v = view(app)
        assert (v.state.value, v.wrapup_until, v.call["call_id"]) == ("wrap_up", MONDAY_10 + timedelta(seconds=180),
                                                                      "1795340000.1")
        await app.desk.request("1001", "extend")                      # one more (the cap is 10:05)
        assert view(app).wrapup_until == MONDAY_10 + timedelta(seconds=240)
        app.clock.advance(149)
        await app.desk.tick()
        assert state(app, "1001") == "wrap_up" and len(pauses(server)) == 1
        app.clock.advance(1)
        await app.desk.tick()                                         # the original end, extensions kept
        assert pauses(server) == [(A, "true", WRAPUP), (A, "false", "")]
        await eventually(lambda: state(app, "1001") == "available")
    finally:
        await app.stop()
        await server.close()


async def test_a_pause_over_its_maximum_is_alarmed_once_across_a_restart(settings, sqlite_url):
    server = pbx()
    app = await first_start(settings, sqlite_url, server)
    try:
        await app.desk.request("1001", "pause", "小休")
        await eventually(lambda: state(app, "1001") == "paused")
        since = view(app).since
        app.clock.advance(16 * 60)
        await app.desk.tick()
        assert len(await alarms(app)) == 1
        app = await restart(app, settings, sqlite_url, server)
        app.clock.advance(17 * 60)
        v = view(app)
        assert (v.state.value, v.reason, v.since, v.over_max) == ("paused", "小休", since, True)
        for _ in range(3):                                            # far past the maximum again
            app.clock.advance(15 * 60)
            await app.desk.tick()
        await app.desk.settled()
        assert len(await alarms(app)) == 1 and app.desk.failures == 0
        # the PBX wins: unpaused (at the phone) and paused again, it is a new pause with its own alarm
        server.emit(member("QueueMemberPause", A, "Agent A 1001", 0))
        server.emit(member("QueueMemberPause", A, "Agent A 1001", 0, paused=True, reason="小休"))
        await eventually(lambda: view(app).since == app.clock.now())
        app.clock.advance(16 * 60)
        await app.desk.tick()
        await app.desk.settled()
        assert len(await alarms(app)) == 2
    finally:
        await app.stop()
        await server.close()


async def test_the_pbx_wins_over_the_restored_picture(settings, sqlite_url):
    """Paused 用餐 when stopped; logged out at the phone while down: the new process shows logged
    out, not the restored pause."""
    server = pbx()
    app = await first_start(settings, sqlite_url, server)
    try:
        await app.desk.request("1001", "pause", "用餐")
        await eventually(lambda: state(app, "1001") == "paused")
        now = app.clock.now()
        await app.stop()
        await app.store.close()
        server.emit({"Event": "QueueMemberRemoved", "Queue": "q-market", "MemberName": "Agent A 1001", "Interface": A})
        app = await start_at(settings, sqlite_url, server, now + timedelta(seconds=20))
        await eventually(lambda: state(app, "1001") == "logged_out")
        assert view(app).queues == (("pbx1", "q-market", False, False, ""),)
    finally:
        await app.stop()
        await server.close()


# --- a real process, killed -------------------------------------------------------------------

async def test_kill_9_in_wrapup_keeps_the_original_deadline(tmp_path):
    """`callcenter serve` with a 6 s wrap-up and a checkpoint every 0.2 s: killed with SIGKILL
    in the wrap-up, started again 2.5 s after the call; the wrap-up pause is lifted at the first process's
    deadline, not 6 s after the second one's log-in."""
    loop = asyncio.get_running_loop()
    server = AmiServer()
    stamps: list[tuple[float, dict]] = []

    def act(action):
        stamps.append((loop.time(), action))
        if action.get("Action") == "QueuePause" and action.get("Interface") == A:
            server.emit({**member("QueueMemberPause", A, "Agent A 1001", 0, paused=action["Paused"] == "true",
                                  reason=action.get("Reason", "")), "Queue": action["Queue"]})
        return None
    server.on_action = act
    server.emit(member("QueueMemberAdded", A, "Agent A 1001", 0))
    server.emit(member("QueueMemberAdded", B, "Agent B 1002", 1))
    port = await server.start()
    (tmp_path / "queue_log").write_text("")
    config = write_config(ROOT / "config", tmp_path / "config", port, tmp_path / "queue_log", free_port())
    data = json.loads((config / "callcenter.yaml").read_text(encoding="utf-8"))
    data.setdefault("instance", {})["checkpoint_seconds"] = 0.2
    data["panel"]["wrapup"]["seconds"] = 6
    (config / "callcenter.yaml").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    db = tmp_path / "callcenter.db"
    url, log = f"sqlite:///{db}", tmp_path / "serve.log"

    def lifted() -> list[float]:
        return [at for at, a in stamps if a.get("Action") == "QueuePause" and a.get("Interface") == A
                and a.get("Paused") == "false"]

    def saved_wrapup() -> bool:
        try:
            with sqlite3.connect(db) as conn:
                row = conn.execute("select state from checkpoints where name = 'desk'").fetchone()
        except sqlite3.Error:
            return False
        return row is not None and any(a["id"] == "1001" and a["wrapup_until"] for a in json.loads(row[0])["agents"])

    first = await serve(config, url, log)
    second = None
    try:
        await eventually(lambda: server.logins >= 1, 30)
        await asyncio.sleep(1.0)                                      # the resync answered
        on_a_call(server)
        await asyncio.sleep(0.3)
        t0 = loop.time()
        server.emit(agent_event("AgentComplete", A))
        await eventually(lambda: any(a.get("Reason") == WRAPUP for _, a in stamps), 10)
        await eventually(saved_wrapup, 5)
        first.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(first.wait(), 10) == -signal.SIGKILL
        await asyncio.sleep(max(0.0, t0 + 2.5 - loop.time()))
        second = await serve(config, url, log)
        await eventually(lambda: server.logins >= 2, 30)
        login2 = loop.time()
        await eventually(lambda: len(lifted()) == 1, 20)
        assert lifted()[0] >= t0 + 6 - 0.3, log.read_text()[-3000:]   # not before the deadline
        assert lifted()[0] < max(t0 + 6, login2) + 2.5, (t0, login2, lifted())   # not a fresh 6 s
    finally:
        for proc in (first, second):
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()
        await server.close()
