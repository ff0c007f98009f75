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


def test_a_direct_dial_to_the_case_owner_is_a_stint_of_its_own(settings):
    """The dialplan honours the owner route: Dial(PJSIP/1001) before Queue(). The owner does not
    answer the first time (then the queue takes the call), answers the second time."""
    from datetime import timedelta

    from callcenter.domain import events as ev
    from callcenter.domain.calls import DIRECT, CallTracker
    tracker = CallTracker(settings.directory(), settings.hotline_contexts())
    t = MONDAY_10

    def call(uid, answer_direct):
        at = lambda s: t + timedelta(seconds=s)                                   # noqa: E731
        out = []
        steps = [
            ev.ChannelCreated("pbx1", at(0), uid, uid, f"PJSIP/trunk-{uid}", "hotline", "62000001",
                              "13800000002", "张三"),
            ev.DialplanStep("pbx1", at(0.1), uid, uid, "hotline", "62000001", "Answer"),
            ev.DialplanStep("pbx1", at(0.2), uid, uid, "hotline", "62000001", "Dial"),
            ev.ChannelCreated("pbx1", at(0.2), uid + "1", uid, "PJSIP/1001-0000001a", "agents", "1001", "", ""),
            ev.DialStarted("pbx1", at(0.2), uid, uid, uid + "1", "PJSIP/1001-0000001a", "PJSIP/1001"),
            ev.DialEnded("pbx1", at(3), uid, uid, uid + "1", uid, "ANSWER" if answer_direct else "NOANSWER"),
        ]
        if answer_direct:
            steps += [ev.ChannelHungup("pbx1", at(63), uid + "1", uid, "16"),
                      ev.ChannelHungup("pbx1", at(63), uid, uid, "16")]
        else:
            steps += [ev.ChannelHungup("pbx1", at(3), uid + "1", uid, "19"),
                      ev.QueueJoined("pbx1", at(3.5), uid, uid, "q-market", 1),
                      ev.QueueLeft("pbx1", at(5), uid, uid, "q-market"),
                      ev.AgentConnected("pbx1", at(5), uid, uid, "q-market", "Local/1002@agents/n", "Agent B 1002", 2, 1),
                      ev.AgentCompleted("pbx1", at(20), uid, uid, "q-market", "Local/1002@agents/n", "Agent B 1002", 15, "agent"),
                      ev.ChannelHungup("pbx1", at(20), uid, uid, "16")]
        for step in steps:
            out += tracker.feed(step)
        return out

    [missed_owner] = call("1800000000.1", answer_direct=False)
    direct, queued = missed_owner.stints
    assert (direct.queue, direct.agent, direct.end, direct.no_answers) == (DIRECT, "1001", StintEnd.NO_AGENT, ["1001"])
    assert (queued.queue, queued.agent, queued.end) == ("q-market", "1002", StintEnd.ANSWERED)
    assert missed_owner.outcome is Outcome.ANSWERED and missed_owner.caller_name == "张三"

    [reached_owner] = call("1800000100.1", answer_direct=True)
    [stint] = reached_owner.stints
    assert (stint.queue, stint.department, stint.agent, stint.end) == (DIRECT, "market", "1001", StintEnd.ANSWERED)
    assert round(stint.wait_seconds, 1) == 2.8 and stint.talk_seconds == 60.0
    assert reached_owner.outcome is Outcome.ANSWERED
