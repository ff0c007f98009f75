"""The demo's callers walk the service's real FastAGI IVR over TCP (issue 12).

One short demo run (scaled-down timing) with three departments open only in the afternoon, so
that at 10:00 their callers meet the closed-hours IVR while the others meet the menus: every
call is one or more FastAGI sessions (the server's own counts), the IVR's facts reach the stored
calls through the UserEvents it raises (IvrChoice, AfterHours), after-hours callers leave callback
requests, answered callers who call again are dialled to their case owner (or the post's other
agent) before the queue, and callers rate the service after the agent hangs up.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from callcenter.clock import FixedClock
from callcenter.demo.agi_client import AgiCall, parse_args, user_event
from callcenter.demo.ivr_summary import demo_database
from callcenter.demo.run import run
from callcenter.demo.simulator import PbxSimulator, Timing
from ivr.agi_protocol import app_options, encode, parse_env
from callcenter.domain.records import Outcome, StintEnd
from callcenter.settings_ivr import flow_for_hotline
from callcenter.settings_org import Window
from callcenter.storage.store import DEFAULT_URL, Store
from reports import daily
from tests.conftest import MONDAY_10, SHANGHAI, trace_path

AFTERNOON_ONLY = ("science", "health", "construction")


@pytest.fixture
def mixed_hours(settings):
    afternoon = [Window.model_validate("13:30-16:30")]
    departments = [d.model_copy(update={"business_hours": afternoon}) if d.id in AFTERNOON_ONLY else d
                   for d in settings.departments]
    return settings.model_copy(update={"departments": departments})


@pytest.mark.parametrize("seed", [5])
async def test_demo_callers_walk_the_fastagi_ivr(mixed_hours, sqlite_url, seed):
    settings = mixed_hours
    lines: list[str] = []
    result = await run(settings, sqlite_url, seconds=8, rate=6, seed=seed, at=MONDAY_10, out=lines.append,
                       drain_seconds=2, timing=Timing().scaled(0.3), handle_signals=False)
    store = Store(sqlite_url)
    try:
        records = await store.calls_between(*daily.day_bounds(MONDAY_10.date(), SHANGHAI))
    finally:
        await store.close()
    assert result.open_calls == 0 and len(records) == result.calls_started >= 25

    # every call went through the FastAGI server: one IVR session each (a transfer: one more),
    # one survey session per rated or asked caller; none failed
    counts, tally, events = result.agi_counts, result.ivr, result.ivr_events
    assert result.calls_started - result.cut_short <= tally.entries <= result.calls_started + result.transfers
    assert counts["sessions"] == counts["completed"] == tally.entries + tally.surveys
    assert counts["failed"] == counts["bad_header"] == counts["unknown_script"] == 0

    # DTMF choices across the department menus, as the stored calls know them (IvrChoice from the IVR)
    menus = {h: {e.digit for e in flow_for_hotline(settings, h).menu.entries} | {"0", ""}
             for d in settings.departments for h in d.hotlines}
    chosen = [r for r in records if r.stints and r.ivr_queue]
    assert len(chosen) >= 10 and all(r.ivr_choice in menus[r.hotline] for r in chosen)
    assert len({r.department for r in chosen if r.ivr_choice not in ("0", "")}) >= 3
    assert sum(tally.items.values()) >= 5 and events["IvrChoice"] >= len(chosen)
    assert all(r.ivr_queue in {s.queue for s in r.stints} for r in chosen)   # the queue the IVR chose

    # after hours: only the afternoon departments, told by the IVR; most leave a callback request
    closed = [r for r in records if r.outcome is Outcome.AFTER_HOURS]
    assert closed and all(r.department in AFTERNOON_ONLY and not r.stints for r in closed)
    assert all(r.department not in AFTERNOON_ONLY for r in records if r.stints)
    assert events["AfterHours"] == tally.after_hours == len(closed)
    assert 1 <= tally.outcomes["callback_request"] == events["CallbackRequest"] <= len(closed)

    # repeat callers: an answered caller calls the same department again and is dialled directly
    # (首问负责: the case owner, or the post's other agent when the owner is away), then the queue
    direct = [(r, s) for r in records for s in r.stints if s.queue == "direct"]
    assert tally.outcomes["owner"] + tally.outcomes["agent"] == len(direct) >= 1
    agents = {a.id for a in settings.agents}
    for r, s in direct:
        before = [p for p in records if p.caller_num == r.caller_num and p.started_at < r.started_at
                  and any(x.end is StintEnd.ANSWERED and x.department == r.department for x in p.stints)]
        assert before, "dialled directly without an earlier answered call"
        assert s.agent in agents and s.end in (StintEnd.ANSWERED, StintEnd.NO_AGENT)

    # the survey after the agent hung up: ratings as the IVR raised them
    rated = sum(tally.ratings.values())
    assert rated >= 1 and events.get("SurveyRating", 0) == rated
    assert tally.surveys >= rated and set(tally.ratings) <= {"satisfied", "basic", "dissatisfied"}

    summary = result.summary
    assert "语音导航（服务的 FastAGI IVR，经 TCP）" in summary
    assert f"进入语音导航 {tally.entries} 次" in summary and f"留言请求回电 {tally.outcomes['callback_request']} 次" in summary
    assert f"评价 {rated} 次" in summary and "满意率" in summary
    assert f"FastAGI 会话 {counts['sessions']} 个" in summary


def test_the_demo_database_is_fresh_unless_given(tmp_path):
    given = f"sqlite:///{tmp_path}/mine.db"
    assert demo_database(given) == (given, None)
    first, where = demo_database(None)
    second, _ = demo_database(DEFAULT_URL)
    assert first != second and first.startswith("sqlite:///") and first.endswith("/demo.db")
    assert "callcenter.db" not in first and first.removeprefix("sqlite:///") in where
    for url in (first, second):
        shutil.rmtree(Path(url.removeprefix("sqlite:///")).parent)


def test_the_agi_header_is_the_one_asterisk_sends(settings):
    """The simulated PBX's agi_ environment has the keys, in the order, of the recorded FastAGI
    conversation (tests/traces/fastagi-ivr-dtmf.jsonl), with the caller channel's uniqueid and
    caller ID, and the service reads it as it reads Asterisk's."""
    rows = [json.loads(x) for x in trace_path("fastagi-ivr-dtmf").read_text().splitlines()]
    recorded = [r["line"].split(":", 1)[0] for r in rows[:rows.index(next(r for r in rows if r["line"] == "\n"))]]
    sim = PbxSimulator(settings, [].append, FixedClock(MONDAY_10), seed=1, agi=("127.0.0.1", 4573))
    call = sim.start_call("market")
    script = f"ivr?hotline={call.two.exten}&pbx=pbx1"
    header = AgiCall(sim, call, "127.0.0.1", 4573, script, 9).header().decode()
    lines = header.split("\n")
    assert header.endswith("\n\n") and [line.split(":", 1)[0] for line in lines[:-2]] == recorded
    request = parse_env(lines[:-2])
    assert (request.script, request.params) == ("ivr", {"hotline": "62000001", "pbx": "pbx1"})
    assert (request.uniqueid, request.caller) == (call.two.uniqueid, call.two.cid[0])
    assert request.env["channel"] == call.two.channel and request.env["context"] == "hotline"


def test_commands_are_read_as_asterisk_reads_them():
    """What the IVR writes (ivr/agi_protocol.encode) the simulated PBX splits as res_agi does."""
    line = encode("EXEC", "UserEvent", app_options("CallbackRequest", "Hotline: 62000001", "Reason: closed"))
    args = parse_args(line.decode().rstrip("\n"))
    assert args == ["EXEC", "UserEvent", "CallbackRequest,Hotline: 62000001,Reason: closed"]
    assert user_event(args[2]) == ("CallbackRequest", {"Hotline": "62000001", "Reason": "closed"})
    assert parse_args(encode("SET VARIABLE", "TARGET", 'Local/1001@agents/n&"x\\"').decode().rstrip("\n")) == \
        ["SET", "VARIABLE", "TARGET", 'Local/1001@agents/n&"x\\"']
