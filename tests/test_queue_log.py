"""queue_log as a second source: the parser and rules (callcenter/domain/queue_log.py), the file
tail (rotation, truncation), `import-queue-log`, and the resync's use of the PBX's own figures
(QueueEntry Wait, channel durations; no wait counted to the reconnect)."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from callcenter.domain import events as ev
from callcenter.domain.calls import CallTracker
from callcenter.domain.queue_log import QueueLogCalls, QueueLogError, parse_line, reconcile, record_from
from callcenter.domain.records import CallRecord, Outcome, Stint, StintEnd
from callcenter.ami.server import PbxState, format_message
from callcenter.queuelog.tail import Tail
from tests import queue_log as truth
from tests.conftest import ROOT, TRACES

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)
NAMES = sorted(p.stem for p in TRACES.glob("*.queue_log"))


def fold(text: str) -> dict:
    calls = QueueLogCalls()
    done = {}
    for offset, line in enumerate(text.splitlines()):
        for call in calls.feed(parse_line(line), offset):
            done[call.callid] = call
    return done


def test_bad_lines_are_named():
    with pytest.raises(QueueLogError, match="fields"):
        parse_line("1795347500|x|q")
    with pytest.raises(QueueLogError, match="time: not an epoch"):
        parse_line("yesterday|1.1|q-edu|NONE|ENTERQUEUE||1|1")


@pytest.mark.parametrize("name", NAMES)
def test_every_trace_queue_log_folds_to_its_calls(name, settings):
    path = TRACES / f"{name}.queue_log"
    per_queue, agents, queued = truth.parse(path)
    done = fold(path.read_text())
    assert set(done) == queued
    directory = settings.directory()
    names = {f"Agent {a}": a for a in ("1001", "1002", "1003", "1004", "1005")} | {
        f"Agent {x} {a}": a for x in "AB" for a in ("1001", "1002", "1003", "1004", "1005")}
    counts: dict = {}
    for call in done.values():
        record = record_from("pbx1", call, directory, names)
        assert record.reconciled and record.department is not None
        for s in record.stints:
            key = {"answered": "answered", "abandoned": "abandoned", "timed_out": "timed_out"}.get(s.end.value)
            counts.setdefault(s.queue, {}).setdefault("offered", 0)
            counts[s.queue]["offered"] += 1
            if key:
                counts[s.queue][key] = counts[s.queue].get(key, 0) + 1
            if s.end is StintEnd.ANSWERED:
                assert s.member_name == agents[f"{call.callid}|{s.queue}"] and s.agent is not None
                assert s.talk_seconds is not None and s.wait_seconds is not None
    assert counts == {q: dict(v) for q, v in per_queue.items()}


def test_transfer_from_queue_log_alone(settings):
    (call,) = fold((TRACES / "transfer.queue_log").read_text()).values()
    record = record_from("pbx1", call, settings.directory(), {})
    assert record.outcome is Outcome.TRANSFERRED
    first, second = record.stints
    assert (first.queue, first.transferred, first.completed_by, first.talk_seconds) == ("q-market", True, "transfer", 6.0)
    assert (second.queue, second.end, second.wait_seconds) == ("q-edu", StintEnd.ANSWERED, 1.0)


def test_asterisk_restart_ends_open_calls_unknown_without_a_wait():
    lines = ["1795347600|1.1|q-edu|NONE|ENTERQUEUE||13900000001|1",
             "1795347601|1.2|q-edu|NONE|ENTERQUEUE||13900000002|2",
             "1795347603|1.2|q-edu|Agent 1005|CONNECT|2|1.3|1",
             "1795347640|NONE|NONE|NONE|QUEUESTART|"]
    done = fold("\n".join(lines))
    waiting, talking = done["1.1"].stints[0], done["1.2"].stints[0]
    assert waiting.end is StintEnd.UNKNOWN and waiting.hold is None     # never "waited until the restart"
    assert talking.end is StintEnd.ANSWERED and talking.talk is None and talking.hold == 2


def _record(stints, outcome=Outcome.UNKNOWN) -> CallRecord:
    return CallRecord("pbx1", "1.1", "1.0", "13900000001", "", "62000002", "edu", T0, T0 + timedelta(seconds=9),
                      outcome, reconciled=True, stints=stints)


def test_partly_seen_call_takes_the_missing_facts(settings):
    directory = settings.directory()
    epoch = int(T0.timestamp())
    lines = [f"{epoch}|1.1|q-edu|NONE|ENTERQUEUE||13900000001|1",
             f"{epoch + 7}|1.1|q-edu|NONE|ABANDON|1|1|7"]
    call = fold("\n".join(lines))["1.1"]
    # the link was down when it ended: our stint ended unknown at the moment we lost sight
    seen = _record([Stint("q-edu", "edu", T0 + timedelta(seconds=0.4), left_at=T0 + timedelta(seconds=3),
                          end=StintEnd.UNKNOWN)])
    merged = reconcile(seen, call, directory, {})
    (stint,) = merged.stints
    assert merged.outcome is Outcome.ABANDONED and merged.reconciled
    assert stint.end is StintEnd.ABANDONED and stint.wait_seconds == 7.0      # Asterisk's waittime
    # the join fell in the gap: the AMI view had the call as an IVR hang-up
    ivr = reconcile(_record([], Outcome.ABANDONED_IVR), call, directory, {})
    assert ivr.outcome is Outcome.ABANDONED and ivr.stints[0].entered_at == T0
    # nothing in queue_log (a direct dial, an IVR hang-up): kept as seen, flagged
    # open across a link drop: queue_log confirms what we saw -> left as it was, not reconciled
    whole = replace(seen, reconciled=False, outcome=Outcome.ABANDONED, stints=[
        Stint("q-edu", "edu", T0 + timedelta(seconds=0.4), left_at=T0 + timedelta(seconds=7.4), end=StintEnd.ABANDONED)])
    assert reconcile(whole, call, directory, {}) is whole
    # open across a link drop that swallowed its QueueCallerJoin: an "IVR hang-up" no more
    missed = reconcile(replace(whole, stints=[], outcome=Outcome.ABANDONED_IVR), call, directory, {})
    assert missed.reconciled and missed.outcome is Outcome.ABANDONED
    kept = reconcile(_record([], Outcome.ABANDONED_IVR), None, directory, {})
    assert kept.outcome is Outcome.ABANDONED_IVR and kept.reconciled


def test_tail_survives_rotation_and_truncation(tmp_path):
    path = tmp_path / "queue_log"
    path.write_text("1|a\n2|b\n3|")
    tail = Tail(str(path), None, from_end=False)
    assert [line for _, line in tail.read()] == ["1|a", "2|b"]          # a partial line waits
    with open(path, "a") as fh:
        fh.write("c\n")
    assert tail.read() == [(8, "3|c")]
    again = Tail(str(path), tail.position)                              # a restart: from the position
    assert again.read() == []
    os.rename(path, tmp_path / "queue_log.1")                           # logrotate
    with open(tmp_path / "queue_log.1", "a") as fh:
        fh.write("4|d\n")                                               # the last line of the old file
    path.write_text("5|e\n")
    assert [line for _, line in again.read()] == ["4|d", "5|e"]
    path.write_text("6\n")                                              # copytruncate: shorter
    assert [line for _, line in again.read()] == ["6"]


async def test_import_queue_log_twice_stores_once(tmp_path, settings):
    from callcenter.bootstrap import build
    from callcenter.queuelog.backfill import import_queue_log
    db = f"sqlite:///{tmp_path}/cc.db"
    src = tmp_path / "queue_log"
    src.write_text((TRACES / "load.queue_log").read_text() + "garbage\n")
    app = build(settings, db)
    try:
        first = await import_queue_log(app, str(src), "pbx1")
        assert (first.calls, first.stored, first.bad_lines, first.unfinished) == (36, 36, 1, 0)
        tasks = await app.followup.list(status="open")
    finally:
        await app.store.close()
    assert tasks                                  # the unanswered calls got their follow-up
    # the command, a second time: nothing new; a missing file is one line, exit 1
    cli = [sys.executable, "-m", "callcenter.cli", "import-queue-log", str(src), "--db", db,
           "--config", str(ROOT / "config")]
    again = subprocess.run(cli, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "0 stored as new (36 already stored)" in again.stdout, again.stderr
    missing = subprocess.run(cli[:4] + [str(tmp_path / "missing")] + cli[5:], capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 1 and "No such file" in missing.stderr and "Traceback" not in missing.stderr


# --- the resync: the PBX's own figures -------------------------------------------------------

def _tracker(settings) -> CallTracker:
    return CallTracker(settings.directory(), settings.hotline_contexts())


def _join(tracker, at, uid, queue="q-edu"):
    tracker.feed(ev.ChannelCreated("pbx1", at, uid, uid, f"Local/62000002@hotline-1;{uid}", "hotline",
                                   "62000002", "13900000001", ""))
    tracker.feed(ev.DialplanStep("pbx1", at, uid, uid, "hotline", "62000002", "Answer"))
    tracker.feed(ev.QueueJoined("pbx1", at, uid, uid, queue, 1))


def test_waiting_caller_never_seen_gets_the_pbx_wait(settings):
    tracker = _tracker(settings)
    at = T0 + timedelta(seconds=30)
    channel = ev.LiveChannel("9.1", "9.0", "Local/62000002@hotline-1;2", "hotline", "62000002", "13900000009",
                             "Queue", "q-edu,t,,,60", 25, None)
    tracker.feed(ev.Resynced("pbx1", at, frozenset({"9.1"}), (),
                             (ev.WaitingCaller("q-edu", "9.1", channel.channel, "13900000009", 12, 1),), (channel,)))
    done = tracker.feed(ev.ChannelHungup("pbx1", at + timedelta(seconds=3), "9.1", "9.0", "16"))
    (record,) = done
    assert record.reconciled and record.caller_num == "13900000009" and record.started_at == T0 + timedelta(seconds=5)
    assert record.stints[0].entered_at == T0 + timedelta(seconds=18)                 # 30 - Wait 12
    assert record.stints[0].wait_seconds == 15.0 and record.outcome is Outcome.ABANDONED


def test_pbx_died_no_wait_counted_to_the_reconnect(settings):
    tracker = _tracker(settings)
    _join(tracker, T0, "1.1")                                                       # waiting
    _join(tracker, T0, "2.1")                                                       # talking
    tracker.feed(ev.AgentConnected("pbx1", T0 + timedelta(seconds=2), "2.1", "2.1", "q-edu",
                                   "Local/1005@agents/n", "Agent 1005", 2, 1))
    tracker.feed(ev.DialplanStep("pbx1", T0 + timedelta(seconds=4), "1.1", "1.1", "hotline", "62000002", "Queue"))
    tracker.feed(ev.LinkLost("pbx1", T0 + timedelta(seconds=5), "disconnected"))
    done = tracker.feed(ev.Resynced("pbx1", T0 + timedelta(seconds=25), frozenset()))   # a new PBX: nothing alive
    by_id = {r.id: r for r in done}
    waiting, talking = by_id["1.1"].stints[0], by_id["2.1"].stints[0]
    assert by_id["1.1"].reconciled and waiting.end is StintEnd.UNKNOWN
    assert waiting.wait_seconds == 4.0                          # until the last event seen, not 25
    assert by_id["1.1"].outcome is Outcome.UNKNOWN              # no "abandoned" task from a guess
    assert talking.end is StintEnd.ANSWERED and talking.talk_seconds == 2.0
    assert by_id["2.1"].ended_at == T0 + timedelta(seconds=4)


def test_call_answered_while_blind_takes_bridged_duration(settings):
    tracker = _tracker(settings)
    _join(tracker, T0, "3.1")
    tracker.feed(ev.LinkLost("pbx1", T0 + timedelta(seconds=1), "disconnected"))
    channel = ev.LiveChannel("3.1", "3.1", "Local/62000002@hotline-1;2", "hotline", "62000002", "13900000001",
                             "Queue", "q-edu,t,,,60", 20, 8, True)
    tracker.feed(ev.Resynced("pbx1", T0 + timedelta(seconds=20), frozenset({"3.1"}), (), (), (channel,)))
    tracker.feed(ev.AgentCompleted("pbx1", T0 + timedelta(seconds=30), "3.1", "3.1", "q-edu", "Local/1005@agents/n",
                                   "Agent 1005", 18, "agent"))
    (record,) = tracker.feed(ev.ChannelHungup("pbx1", T0 + timedelta(seconds=30), "3.1", "3.1", "16"))
    (stint,) = record.stints
    assert record.reconciled and stint.end is StintEnd.ANSWERED and stint.agent == "1005"
    assert stint.wait_seconds == 12.0 and stint.talk_seconds == 18.0       # 20 - BridgedDuration 8


def test_answered_while_blind_without_bridged_duration_takes_queue_logs_holdtime(settings):
    """The lab's Asterisk gives BridgeId but no BridgedDuration: answered at the last moment
    seen, then queue_log's holdtime (9 s, not 1 s) corrects the wait."""
    tracker = _tracker(settings)
    _join(tracker, T0, "4.1")
    tracker.feed(ev.DialplanStep("pbx1", T0 + timedelta(seconds=1), "4.1", "4.1", "hotline", "62000002", "Queue"))
    tracker.feed(ev.LinkLost("pbx1", T0 + timedelta(seconds=1), "disconnected"))
    channel = ev.LiveChannel("4.1", "4.1", "Local/62000002@hotline-1;2", "hotline", "62000002", "13900000001",
                             "Queue", "q-edu,t,,,60", 20, None, True)
    tracker.feed(ev.Resynced("pbx1", T0 + timedelta(seconds=20), frozenset({"4.1"}), (), (), (channel,)))
    (record,) = tracker.feed(ev.ChannelHungup("pbx1", T0 + timedelta(seconds=25), "4.1", "4.1", "16"))
    assert record.reconciled and record.stints[0].wait_seconds == 1.0 and record.outcome is Outcome.ANSWERED
    epoch = int(T0.timestamp())
    call = fold("\n".join([f"{epoch}|4.1|q-edu|NONE|ENTERQUEUE||13900000001|1",
                           f"{epoch + 9}|4.1|q-edu|Agent 1005|CONNECT|9|4.2|1",
                           f"{epoch + 25}|4.1|q-edu|Agent 1005|COMPLETECALLER|9|16|1"]))["4.1"]
    (stint,) = reconcile(record, call, settings.directory(), {"Agent 1005": "1005"}).stints
    assert stint.wait_seconds == 9.0 and stint.talk_seconds == 16.0 and stint.agent == "1005"


def test_local_server_answers_queue_entry_and_durations():
    state = PbxState(now=lambda: 1000.0, bridged_duration=True)
    for raw in [
        {"Event": "Newchannel", "Timestamp": "990.0", "Uniqueid": "1.1", "Linkedid": "1.1", "Channel": "Local/x;2",
         "Context": "hotline", "Exten": "62000002", "CallerIDNum": "139"},
        {"Event": "QueueCallerJoin", "Timestamp": "993.5", "Uniqueid": "1.1", "Queue": "q-edu", "Position": "1",
         "Channel": "Local/x;2", "CallerIDNum": "139"},
    ]:
        state.observe(format_message(raw))
    (entry,) = state.entry_list()
    assert (entry["Event"], entry["Queue"], entry["Uniqueid"], entry["Wait"], entry["Position"]) == \
        ("QueueEntry", "q-edu", "1.1", "6", "1")
    (channel,) = state.channel_list()
    assert channel["Duration"] == "00:00:10" and "BridgedDuration" not in channel
    state.observe(format_message({"Event": "QueueCallerLeave", "Timestamp": "995", "Uniqueid": "1.1", "Queue": "q-edu"}))
    state.observe(format_message({"Event": "BridgeEnter", "Timestamp": "995", "Uniqueid": "1.1", "BridgeUniqueid": "b"}))
    assert state.entry_list() == [] and state.channel_list()[0]["BridgedDuration"] == "00:00:05"
