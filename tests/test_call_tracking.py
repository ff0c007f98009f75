"""Scenario tests of the pure call tracker, fed with the real traces (no network)."""
from __future__ import annotations

from datetime import timedelta

from callcenter.domain.records import Outcome, StintEnd
from tests.conftest import MONDAY_10
from tests.scenario import run


def test_transfer_keeps_both_stints(settings):
    records, *_ = run("transfer", settings, MONDAY_10)
    [call] = records
    assert call.id == "1795347569.207" and call.linkedid == "1795347569.206"
    assert call.outcome is Outcome.TRANSFERRED
    assert call.caller_num == "13800009999" and call.hotline == "62000001"
    assert call.department == "market"
    first, second = call.stints
    assert (first.queue, first.department, first.agent, first.end) == ("q-market", "market", "1001", StintEnd.ANSWERED)
    assert first.transferred and first.completed_by == "transfer" and first.talk_seconds == 6
    assert (second.queue, second.department, second.agent, second.end) == ("q-edu", "edu", "1005", StintEnd.ANSWERED)
    assert second.talk_seconds == 2 and second.completed_by == "agent"


def test_timeout_is_not_an_abandon(settings):
    """Asterisk sends QueueCallerAbandon on a timeout too; the dialplan going on tells them apart."""
    [call], *_ = run("nobody", settings, MONDAY_10)
    assert call.outcome is Outcome.TIMED_OUT
    assert call.stints[0].end is StintEnd.TIMED_OUT
    assert round(call.stints[0].wait_seconds) == 5


def test_abandons_with_wait_times(settings):
    records, *_ = run("abandon", settings, MONDAY_10)
    assert [r.outcome for r in records] == [Outcome.ABANDONED, Outcome.ABANDONED]
    assert [round(r.stints[0].wait_seconds) for r in records] == [3, 6]
    assert all(r.stints[0].rings >= 0 for r in records)


def test_after_hours_and_ivr_hangup(settings):
    [after], *_ = run("afterhours", settings, MONDAY_10)
    assert after.outcome is Outcome.AFTER_HOURS and after.after_hours and after.stints == []
    assert after.department == "market"
    ivr, answered = run("ivr-hangup", settings, MONDAY_10)[0]
    assert ivr.outcome is Outcome.ABANDONED_IVR and ivr.caller_num == "13600000009"
    assert ivr.id == "1795347491.165"          # the caller leg (;2), not the Local ;1 half
    assert answered.outcome is Outcome.ANSWERED


def test_ring_no_answer_then_b_answers(settings):
    [call], *_ = run("a-noanswer-b-covers", settings, MONDAY_10)
    stint = call.stints[0]
    assert stint.no_answers == ["Agent A 1003"]
    assert stint.agent == "1004" and stint.member_name == "Agent B 1004"
    assert stint.rings == 2


def test_callbacks_are_not_hotline_calls(settings):
    records, _, tracker, _ = run("callback", settings, MONDAY_10)
    assert records == [] and tracker.open_calls == 0


def test_event_times_come_from_timestamps(settings):
    records, *_ = run("basic", settings, MONDAY_10)
    assert all(r.started_at.tzinfo is not None for r in records)
    first = min(r.started_at for r in records)
    assert MONDAY_10 <= first < MONDAY_10 + timedelta(seconds=5)


def test_presence_sessions(settings):
    _, sessions, _, presence = run("presence", settings, MONDAY_10)
    pauses = sorted((s.agent, s.reason) for s in sessions if s.kind == "pause")
    assert pauses == [("1001", "lunch"), ("1002", "meeting")]
    logins = sorted(s.agent for s in sessions if s.kind == "login")
    assert logins == ["1001", "1002"]
    unreachable = [s for s in sessions if s.kind == "unreachable"]
    assert [s.agent for s in unreachable] == ["1002"] and unreachable[0].seconds > 0
    assert presence.members == {}


def test_auto_pause_after_ring_no_answer(settings):
    _, sessions, _, presence = run("a-noanswer-b-covers", settings, MONDAY_10)
    pauses = [s for s in sessions if s.kind == "pause"]
    assert [(s.agent, s.reason) for s in pauses] == [("1003", "Auto-Pause")]
