"""Durable open state (issue 9, item 2): the trackers' open calls and sessions survive a restart,
and a report run during the day counts sessions still open and tells unobserved time from gaps.

Real parts: the trackers fed with the real traces, the service over TCP against the local AMI
server, SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from callcenter.ami.client import Endpoint
from callcenter.ami.server import AmiServer, load_trace, stamp
from callcenter.bootstrap import build
from callcenter.checkpointer import stale_after
from callcenter.clock import StreamClock
from callcenter.domain.calls import CallTracker
from callcenter.domain.presence import PresenceTracker
from callcenter.domain.tracker_state import (calls_from_state, calls_to_state, presence_from_state,
                                             presence_to_state)
from callcenter.ami.framing import Framer
from callcenter.ami.translate import translate
from callcenter.storage import tables as t
from callcenter.storage.checkpoints import coverage_facts
from reports import coverage
from tests.conftest import MONDAY_10, trace_path
from tests.scenario import run
from tests.test_coverage import eventually

DAY = MONDAY_10.date()


def events_of(name: str, settings, at: datetime = MONDAY_10) -> list:
    framer, out = Framer(expect_banner=False), []
    for offset, raw in load_trace(trace_path(name)).messages:
        for msg in framer.feed(stamp(raw, at + timedelta(seconds=offset))):
            event = translate("pbx1", msg, at)
            if event is not None:
                out.append(event)
    return out


@pytest.mark.parametrize("name", ["basic-timestamped", "transfer", "a-noanswer-b-covers", "presence"])
def test_a_tracker_restored_from_its_state_goes_on_as_if_never_stopped(settings, name):
    """Cut the stream anywhere, carry the open state through JSON into new trackers: the calls
    and sessions completed are exactly those of the uninterrupted run."""
    records, sessions, *_ = run(name, settings, MONDAY_10)
    events = events_of(name, settings)
    directory, contexts = settings.directory(), settings.hotline_contexts()
    for cut in range(0, len(events) + 1, max(1, len(events) // 12)):
        calls, presence = CallTracker(directory, contexts), PresenceTracker(directory)
        got_records, got_sessions = [], []
        for event in events[:cut]:
            got_records += calls.feed(event)
            got_sessions += presence.feed(event)
        state = json.loads(json.dumps({"calls": calls_to_state(calls), "presence": presence_to_state(presence)}))
        calls, presence = CallTracker(directory, contexts), PresenceTracker(directory)
        calls_from_state(calls, state["calls"])
        presence_from_state(presence, state["presence"])
        for event in events[cut:]:
            got_records += calls.feed(event)
            got_sessions += presence.feed(event)
        assert got_records == records, f"cut at event {cut}"
        assert got_sessions == sessions, f"cut at event {cut}"


# --- the service, stopped and started mid-call ------------------------------------------------

def stamped(name: str, at: datetime) -> list[bytes]:
    return [stamp(raw, at + timedelta(seconds=offset)) for offset, raw in load_trace(trace_path(name)).messages]


async def connect(settings, db_url: str, port: int, clock):
    app = build(settings, db_url, clock)
    client = app.service.add_pbx(Endpoint("pbx1", "127.0.0.1", port, "cc", "x", connect_timeout=2, action_timeout=2,
                                          ping_interval=30, reconnect_min=0.05, reconnect_max=0.2))
    await app.start()
    await asyncio.wait_for(client.connected.wait(), 5)
    return app


async def feed(app, server: AmiServer, messages: list[bytes]) -> None:
    before = app.service.clients["pbx1"].events_received
    for raw in messages:
        server.emit(raw)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while app.service.clients["pbx1"].events_received < before + len(messages):
        assert loop.time() < deadline, "the service did not receive the stream"
        await asyncio.sleep(0.01)
    await app.service.settled(timeout=10)


async def stored_calls(store) -> dict:
    return {r.id: r for r in await store.calls_between(MONDAY_10 - timedelta(hours=1), MONDAY_10 + timedelta(hours=1))}


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_a_call_open_across_a_stop_and_start_is_one_record(settings, db_url, how):
    """basic-timestamped: four answered calls. The service stops at 4.5 s, while two of them are up
    (one talking, one ringing its agent); a new process resumes them from the checkpoint and also
    follows the fourth, which begins after the restart. "kill": no final checkpoint is written
    (as with kill -9); the last periodic one is resumed."""
    settings.instance.checkpoint_seconds = 0.1
    uninterrupted = {r.id: r for r in run("basic-timestamped", settings, MONDAY_10)[0]}
    messages = stamped("basic-timestamped", MONDAY_10)
    cut = next(i for i, (offset, _) in enumerate(load_trace(trace_path("basic-timestamped")).messages) if offset > 4.5)
    server = AmiServer()
    port = await server.start()
    try:
        first = await connect(settings, db_url, port, StreamClock(MONDAY_10))
        await feed(first, server, messages[:cut])
        open_before = first.service.calls.open_calls
        across = {live.caller_leg for live in first.service.calls.calls.values()}
        if how == "kill":
            saved = first.service.checkpointer.saved
            await eventually(lambda: first.service.checkpointer.saved > saved + 1)
            first.service.checkpointer._task.cancel()
            first.service.checkpointer = None              # dies without a last word
        await first.stop()
        assert open_before == 2
        async with first.store.engine.connect() as conn:
            [saved] = (await conn.execute(select(t.checkpoints).where(t.checkpoints.c.name == "calls"))).mappings().all()
        assert len(json.loads(saved["state"])["calls"]) == open_before
        await first.store.close()

        second = await connect(settings, db_url, port, StreamClock(MONDAY_10 + timedelta(seconds=5)))
        assert second.service.calls.open_calls == open_before          # resumed before the first event
        await feed(second, server, messages[cut:])
        await second.stop()
        calls = await stored_calls(second.store)
        await second.store.close()
    finally:
        await server.close()
    assert set(calls) == set(uninterrupted) and len(calls) == 4
    for call_id, want in uninterrupted.items():
        got = calls[call_id]
        # one record with its real start and end; only a call open across the restart may be
        # flagged reconciled (whether it is depends on what the resync finds: calls.py's rule)
        assert (got.started_at, got.ended_at, got.outcome) == (want.started_at, want.ended_at, want.outcome), call_id
        assert not got.reconciled or call_id in across, call_id
        assert [(s.queue, s.agent, s.end, s.wait_seconds, s.talk_seconds) for s in got.stints] == [
            (s.queue, s.agent, s.end, s.wait_seconds, s.talk_seconds) for s in want.stints], call_id


# --- a report during the day ----------------------------------------------------------------

async def test_a_report_during_the_day_counts_open_sessions_and_unobserved_time(settings, db_url):
    """presence.jsonl without its two logouts: at 10:30 A (1001) and B (1002, paused "meeting")
    are still logged in. The service first saw pbx1 at 10:00, so 09:00-10:00 is unobserved, not
    a gap; A's open login counts up to the report time."""
    messages = [m for m in stamped("presence", MONDAY_10) if b"QueueMemberRemoved" not in m]
    server = AmiServer()
    port = await server.start()
    clock = StreamClock(MONDAY_10)
    ten_thirty = MONDAY_10 + timedelta(minutes=30)
    stale = stale_after(settings.instance.checkpoint_seconds)
    bounds = (MONDAY_10.replace(hour=0), MONDAY_10.replace(hour=0) + timedelta(days=1))
    try:
        app = await connect(settings, db_url, port, clock)
        await feed(app, server, messages)
        clock.observe(ten_thirty)                      # half an hour on, nothing happened since
        await app.service.checkpointer.save()

        # as `callcenter report daily` sees it, from another process, while the service runs
        sessions, observed = await coverage_facts(app.store, *bounds, ten_thirty, stale)
        market = next(p for p in coverage.posts(DAY, settings, sessions, ten_thirty, observed=observed)
                      if p["post"] == "market-1")
        assert market["business_minutes"] == 90.0
        assert market["unobserved_minutes"] == 60.0 and market["unobserved_periods"][0]["start"].endswith("09:00:00+08:00")
        assert (market["gap_count"], market["gap_minutes"]) == (2, 0.01)     # before A's login, and inside the trace
        assert (market["covered_minutes"], market["coverage_pct"]) == (29.99, 99.9)      # over the observed 30 min
        assert market["agents"]["1001"]["login_minutes"] == 30.0
        assert market["agents"]["1002"]["pauses_by_reason"] == {"meeting": 29.98}
        closed_only = next(p for p in coverage.posts(DAY, settings, await app.store.sessions_between(*bounds),
                                                     ten_thirty) if p["post"] == "market-1")
        assert closed_only["agents"]["1001"]["login_minutes"] == 0.0           # what the report said before

        # the service stops at 10:30; a report at 11:00 counts the open sessions up to the stop
        await app.stop()
        eleven = MONDAY_10 + timedelta(hours=1)
        sessions, observed = await coverage_facts(app.store, *bounds, eleven, stale)
        market = next(p for p in coverage.posts(DAY, settings, sessions, eleven, observed=observed)
                      if p["post"] == "market-1")
        assert (market["business_minutes"], market["unobserved_minutes"]) == (120.0, 90.0)
        assert market["agents"]["1001"]["login_minutes"] == 30.0 and market["gap_count"] == 2
        depts = {d["department"]: d for d in coverage.departments(
            coverage.posts(DAY, settings, sessions, eleven, observed=observed), settings)}
        assert depts["market"]["unobserved_minutes"] == 90.0 and depts["market"]["coverage_pct"] == market["coverage_pct"]
        await app.store.close()
    finally:
        await server.close()
