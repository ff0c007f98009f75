"""The demo: a simulated PBX that speaks AMI to the real service.

Step by step (no sockets, a fixed clock): the simulator's messages have the header sets of the real
traces and, framed, translated and tracked like any PBX's, give every kind of outcome, mapped
agents and no call left open; after-hours follows the business hours and the workday calendar.
Over TCP: `run` stores every call it started with UTF-8 names intact; the CLI exits 0 with a summary.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from callcenter.ami.framing import Framer
from callcenter.ami.server import format_message
from callcenter.ami.translate import translate
from callcenter.clock import FixedClock
from callcenter.demo.run import LEAD_SECONDS, demo_clock, run
from callcenter.demo.simulator import PbxSimulator, Timing
from callcenter.domain.calls import CallTracker
from callcenter.domain.presence import PresenceTracker
from callcenter.domain.records import Outcome, StintEnd
from callcenter.storage.store import Store
from reports import daily
from tests.conftest import MONDAY_10, ROOT, SHANGHAI, TRACES

CHINESE_NAME = re.compile(r"^[\u4e00-\u9fff]{2,3}$")


def drive(settings, at, seed=11, rate=2.0, seconds=60.0, step=0.05, timing=None):
    """Run the simulator on a fixed clock: `seconds` of arrivals, then until calls end, then close."""
    clock = FixedClock(at)
    messages: list[dict] = []
    sim = PbxSimulator(settings, messages.append, clock, seed=seed, rate=rate, timing=timing)
    sim.start()
    for _ in range(round(seconds / step)):
        clock.advance(step)
        sim.tick()
    sim.stop_arrivals()
    for _ in range(round(30 / step)):
        if not sim.in_flight:
            break
        clock.advance(step)
        sim.tick()
    sim.close()
    return sim, messages


def conclude(settings, messages, at):
    """What the service's domain concludes from the messages, as bytes on the wire."""
    directory = settings.directory()
    calls, presence = CallTracker(directory, settings.hotline_contexts()), PresenceTracker(directory)
    framer = Framer(expect_banner=False)
    records, sessions = [], []
    for message in messages:
        for parsed in framer.feed(format_message(message)):
            event = translate("pbx1", parsed, at)
            if event is not None:
                records += calls.feed(event)
                sessions += presence.feed(event)
    return records, sessions, calls.open_calls


def test_messages_have_the_header_sets_of_real_traces(settings):
    traces = sorted(TRACES.glob("*.jsonl"))
    if not traces:
        pytest.skip("no AMI traces available")
    real = set()
    for path in traces:
        for line in path.read_text(encoding="utf-8").splitlines():
            raw = json.loads(line).get("raw")
            if raw:
                message = Framer(expect_banner=False).feed(raw.encode("utf-8"))[0]
                real.add(_shape(message))
    _, messages = drive(settings, MONDAY_10.replace(hour=11, minute=29, second=30), seconds=45)
    shapes = Counter(_shape(m) for m in messages)
    assert {s[0] for s in shapes} >= {"Newchannel", "NewCallerid", "Newexten", "UserEvent/IvrChoice",
                                      "UserEvent/AfterHours", "UserEvent/QueueExit", "QueueCallerJoin",
                                      "AgentCalled", "AgentConnect", "AgentComplete", "AgentRingNoAnswer",
                                      "QueueCallerAbandon", "QueueCallerLeave", "Hangup", "QueueMemberAdded",
                                      "QueueMemberPause", "QueueMemberRemoved", "DeviceStateChange"}
    assert set(shapes) <= real, f"not as Asterisk sends them: {set(shapes) - real}"


def _shape(message: dict) -> tuple:
    name = message["Event"] + ("/" + message["UserEvent"] if message["Event"] == "UserEvent" else "")
    return (name,) + tuple(k for k in message if k not in ("Timestamp", "_extra"))


def test_working_hours_give_every_outcome_with_mapped_agents(settings):
    sim, messages = drive(settings, MONDAY_10)
    records, sessions, open_calls = conclude(settings, messages, MONDAY_10)

    assert open_calls == 0
    assert len(records) == sim.calls_started > 60
    outcomes = Counter(r.outcome for r in records)
    assert {Outcome.ANSWERED, Outcome.TRANSFERRED, Outcome.ABANDONED, Outcome.TIMED_OUT,
            Outcome.ABANDONED_IVR} <= set(outcomes), outcomes
    assert Outcome.AFTER_HOURS not in outcomes
    assert outcomes[Outcome.ANSWERED] > len(records) / 3

    agent_ids = {a.id for a in settings.agents}
    b_agents = {p.b for p in settings.posts}
    answered = [s for r in records for s in r.stints if s.end is StintEnd.ANSWERED]
    assert answered and all(s.agent in agent_ids for s in answered)
    assert any(s.agent in b_agents for s in answered), "B never covered for A"
    waits = [r.stints[-1].wait_seconds for r in records if r.outcome is Outcome.ABANDONED]
    assert min(waits) < 5 <= max(waits), "short and long abandons"
    assert any(s.no_answers for r in records for s in r.stints), "an agent let it ring"
    for r in (r for r in records if r.outcome is Outcome.TRANSFERRED):
        first, last = r.stints[0], r.stints[-1]
        assert first.transferred and first.completed_by == "transfer" and first.department != last.department
    for r in records:
        assert r.hotline in {h for d in settings.departments for h in d.hotlines}
        assert r.department == settings.directory().department_of_hotline(r.hotline)
        assert r.caller_num and r.ended_at >= r.started_at

    names = [r.caller_name for r in records if r.caller_name]
    assert names and all(CHINESE_NAME.match(n) for n in names if n != "Anonymous")
    kinds = Counter((s.kind, s.reason) for s in sessions)
    assert kinds[("login", "")] >= sum(len({p.a, p.b}) for p in settings.posts)
    assert kinds[("pause", "Auto-Pause")] and any(k == "pause" and r in ("会议", "培训", "临时离开")
                                                  for k, r in kinds)


def test_after_hours_follow_business_hours_and_calendar(settings):
    lunch = MONDAY_10.replace(hour=11, minute=29, second=50)
    records, _, open_calls = conclude(settings, drive(settings, lunch, seconds=30)[1], lunch)
    assert open_calls == 0
    closed = lunch + timedelta(seconds=10)                      # 11:30
    for r in records:
        decided = r.started_at + timedelta(seconds=Timing().ivr_answer)    # the dialplan checks the hours
        assert (r.outcome is Outcome.AFTER_HOURS) == (decided >= closed), r
        if r.outcome is Outcome.AFTER_HOURS:
            assert r.after_hours and not r.stints
    assert {Outcome.AFTER_HOURS, Outcome.ANSWERED} <= {r.outcome for r in records}

    saturday = MONDAY_10 + timedelta(days=5)
    records, _, _ = conclude(settings, drive(settings, saturday, seconds=10)[1], saturday)
    assert records and {r.outcome for r in records} == {Outcome.AFTER_HOURS}


def test_a_seed_replays_the_same_calls(settings):
    first = drive(settings, MONDAY_10, seed=3, seconds=10)[1]
    second = drive(settings, MONDAY_10, seed=3, seconds=10)[1]
    other = drive(settings, MONDAY_10, seed=4, seconds=10)[1]
    assert first == second and first != other


def test_demo_clock_is_the_wall_clock_unless_every_line_is_closed(settings):
    clock, notice = demo_clock(settings, None, FixedClock(MONDAY_10))
    assert clock.now() == MONDAY_10 and "当前时间" in notice

    evening = MONDAY_10.replace(hour=20, minute=32)
    clock, notice = demo_clock(settings, None, FixedClock(evening))
    tuesday_nine = MONDAY_10 + timedelta(days=1, hours=-1)
    assert clock.now() == tuesday_nine - timedelta(seconds=LEAD_SECONDS)
    assert "不在工作时间" in notice

    friday_evening = MONDAY_10 + timedelta(days=4, hours=10)          # next opening: Monday
    clock, _ = demo_clock(settings, None, FixedClock(friday_evening))
    assert clock.now() == MONDAY_10 + timedelta(days=7, hours=-1, seconds=-LEAD_SECONDS)

    clock, notice = demo_clock(settings, evening.replace(tzinfo=None), FixedClock(MONDAY_10))
    assert clock.now() == evening and "20:32:00" in notice


async def test_demo_over_tcp_stores_every_call(settings, sqlite_url):
    lines: list[str] = []
    result = await run(settings, sqlite_url, seconds=3, rate=6, seed=5, at=MONDAY_10, out=lines.append,
                       drain_seconds=1, timing=Timing().scaled(0.5), handle_signals=False)

    assert result.open_calls == 0
    assert result.calls_stored == result.calls_started >= 8
    store = Store(sqlite_url)
    try:
        records = await store.calls_between(*daily.day_bounds(MONDAY_10.date(), SHANGHAI))
    finally:
        await store.close()
    assert len(records) == result.calls_started
    assert all(r.pbx == settings.pbxes[0].id for r in records)
    outcomes = {r.outcome for r in records}
    assert {Outcome.ANSWERED, Outcome.ABANDONED, Outcome.ABANDONED_IVR} <= outcomes, outcomes
    agent_ids = {a.id for a in settings.agents}
    for r in records:
        assert r.ended_at >= r.started_at
        for s in r.stints:
            assert s.end is not None
            if s.end is StintEnd.ANSWERED:
                assert s.agent in agent_ids
    names = [r.caller_name for r in records if r.caller_name and r.caller_name != "Anonymous"]
    assert names and all(CHINESE_NAME.match(n) for n in names)
    printed = [line for line in lines if line[:2].isdigit()]
    assert len(printed) == len(records)
    assert any(n in line for n in names for line in printed)
    assert "已接通" in "\n".join(printed)
    assert "演示结束" in result.summary and "接通率" in result.summary
    assert f"入库 {len(records)} 通，未结束 0 通" in result.summary


def test_cli_demo_runs_and_summarises(tmp_path):
    """Without --db the demo writes a fresh database of its own (not callcenter.db in the
    working directory) and says where; the summary has the IVR's figures."""
    proc = subprocess.run(
        [sys.executable, "-m", "callcenter.cli", "demo", "--seconds", "3", "--rate", "4", "--seed", "1",
         "--config", str(ROOT / "config")],
        cwd=tmp_path, capture_output=True, text=True, encoding="utf-8", timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "演示结束" in out and "接通率" in out and "未结束 0 通" in out
    assert "模拟 PBX" in out and "随机种子 1" in out
    assert "语音导航（服务的 FastAGI IVR，经 TCP）" in out and "FastAGI 会话" in out
    assert list(tmp_path.iterdir()) == []                       # nothing written where it ran
    where = re.search(r"本次演示使用新建的数据库 (\S+demo\.db)", out)
    assert where and Path(where.group(1)).is_file() and Path(where.group(1)).parent != tmp_path
    shutil.rmtree(Path(where.group(1)).parent)


def test_the_readme_counts_the_departments_the_demo_shows(settings):
    """Issue 13: the README's quick start names as many departments as the demo's banner."""
    words = {"five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
    text = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    named = re.search(r"the example configuration of (\w+) Qingpu units", text)
    sim = PbxSimulator(settings, [].append, FixedClock(MONDAY_10))
    assert named and words[named.group(1)] == len(sim.queues) == len(settings.departments)
