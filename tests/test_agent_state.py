"""The agent state machine (callcenter/domain/agent_state.py), pure: real Asterisk traces fed through
the framing, the translator and the call tracker as the service does, and hand-made event sequences
for what the traces do not show (several queues, wrap-up, deferral, pause maxima, resync)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from callcenter.ami.framing import Framer
from callcenter.ami.server import load_trace, stamp
from callcenter.ami.translate import translate
from callcenter.domain import events as ev
from callcenter.domain import live_calls
from callcenter.domain.agent_state import (AgentStates, ApplyPending, DeskPolicy, EndWrapup, PauseOverMax,
                                           Pending, StartWrapup, State, StateError)
from callcenter.domain.calls import CallTracker
from tests.conftest import trace_path

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)        # 10:00 Shanghai
A, B = "Local/1001@agents/n", "Local/1002@agents/n"
POLICY = DeskPolicy(pause_max={"小休": 15 * 60}, wrapup_seconds=60, extend_seconds=60, max_seconds=150,
                    wrapup_reason="话后处理")


def machine(settings, policy=POLICY, tracker=None):
    agents = {a.id: a.name for a in settings.agents}
    lookup = (lambda pbx, linkedid: live_calls.describe(tracker, pbx, linkedid)) if tracker is not None else None
    return AgentStates(agents, policy, settings.directory(), lookup)


def replay(name: str, settings, policy=POLICY):
    """Feed a real trace; return the machine, the tracker and each agent's (state, reason) steps."""
    tracker = CallTracker(settings.directory(), settings.hotline_contexts())
    states = machine(settings, policy, tracker)
    framer, steps = Framer(expect_banner=False), {}
    for t, raw in load_trace(trace_path(name)).messages:
        for msg in framer.feed(stamp(raw, T0 + timedelta(seconds=t))):
            event = translate("pbx1", msg, T0)
            if event is None:
                continue
            tracker.feed(event)                        # the service feeds the trackers first
            for agent in states.feed(event):
                view = states.view(agent, event.at)
                step = (view.state.value, view.reason)
                if steps.setdefault(agent, [])[-1:] != [step]:
                    steps[agent].append(step)
    return states, tracker, steps


def member(cls, interface, queue="q-market", paused=False, reason="", at=T0, in_call=False, pbx="pbx1"):
    name = {A: "Agent A 1001", B: "Agent B 1002"}.get(interface, "")
    return cls(pbx, at, queue, interface, name, interface.replace("Local/", "Custom:").split("@")[0], 0,
               paused, reason, 1, in_call)


def call_event(cls, interface, linkedid="L1", at=T0, queue="q-market", **extra):
    name = {A: "Agent A 1001", B: "Agent B 1002"}.get(interface, "")
    fields = {ev.AgentRinging: {}, ev.AgentNoAnswer: {"ring_ms": 1000},
              ev.AgentConnected: {"hold_time": 3, "ring_time": 2},
              ev.AgentCompleted: {"talk_time": 30, "reason": "agent"}}[cls]
    return cls("pbx1", at, linkedid + ".1", linkedid, queue, interface, name, **{**fields, **extra})


def test_basic_trace_rings_connects_and_wraps_up(settings):
    states, _, steps = replay("basic", settings)
    assert steps["1001"] == [("available", ""), ("ringing", ""), ("on_call", ""), ("wrap_up", ""),
                             ("ringing", ""), ("on_call", ""), ("wrap_up", ""), ("logged_out", "")]
    assert steps["1002"] == [("available", ""), ("ringing", ""), ("on_call", ""), ("wrap_up", ""),
                             ("ringing", ""), ("on_call", ""), ("wrap_up", ""), ("logged_out", "")]
    effects = states.take_effects()
    assert [type(e).__name__ for e in effects].count("StartWrapup") == 4


def test_a_ringing_call_carries_the_caller_and_the_ivr_path(settings):
    tracker = CallTracker(settings.directory(), settings.hotline_contexts())
    states = machine(settings, tracker=tracker)
    framer, seen = Framer(expect_banner=False), None
    for t, raw in load_trace(trace_path("basic")).messages:
        for msg in framer.feed(stamp(raw, T0 + timedelta(seconds=t))):
            event = translate("pbx1", msg, T0)
            if event is None:
                continue
            tracker.feed(event)
            if "1001" in states.feed(event) and states.view("1001", event.at).state is State.RINGING and seen is None:
                seen = states.view("1001", event.at)
    assert seen.call == {"pbx": "pbx1", "call_id": "1795347500.170", "uniqueid": "1795347500.171",
                         "queue": "q-market", "caller_num": "13800000000", "caller_name": "Caller 13800000000",
                         "hotline": "62000001", "ivr_choice": "1", "ivr_queue": "q-market",
                         "since": seen.since.isoformat()}
    d = seen.to_dict(seen.since + timedelta(seconds=2))
    assert d["state"] == "ringing" and d["seconds_in_state"] == 2 and json.dumps(d, ensure_ascii=False)


def test_presence_trace_pauses_with_reasons(settings):
    _, _, steps = replay("presence", settings)
    assert steps["1001"] == [("available", ""), ("paused", "lunch"), ("available", ""), ("logged_out", "")]
    assert steps["1002"] == [("available", ""), ("paused", "meeting"), ("logged_out", "")]


def test_a_ring_ends_when_the_caller_abandons(settings):
    _, _, steps = replay("abandon", settings)
    assert steps["1001"] == [("available", ""), ("ringing", ""), ("available", ""), ("logged_out", "")]


def test_no_answer_then_auto_pause_and_b_takes_the_call(settings):
    states, _, steps = replay("a-noanswer-b-covers", settings)
    assert steps["1003"] == [("available", ""), ("ringing", ""), ("available", ""), ("paused", "Auto-Pause"),
                             ("logged_out", "")]
    assert steps["1004"] == [("available", ""), ("ringing", ""), ("on_call", ""), ("wrap_up", ""), ("logged_out", "")]


def test_one_state_over_several_queues(settings):
    s = machine(settings)
    s.feed(member(ev.MemberAdded, A, "q-market"))
    s.feed(member(ev.MemberAdded, A, "q-edu"))
    s.feed(member(ev.MemberPauseChanged, A, "q-market", paused=True, reason="小休"))
    assert s.view("1001", T0).state is State.AVAILABLE           # still offered calls in q-edu
    s.feed(member(ev.MemberPauseChanged, A, "q-edu", paused=True, reason="小休", at=T0 + timedelta(seconds=5)))
    v = s.view("1001", T0 + timedelta(seconds=5))
    assert (v.state, v.reason, v.since) == (State.PAUSED, "小休", T0 + timedelta(seconds=5))
    assert v.queues == (("pbx1", "q-edu", True, True, "小休"), ("pbx1", "q-market", True, True, "小休"))
    s.feed(ev.MemberRemoved("pbx1", T0, "q-market", A, "Agent A 1001"))
    assert s.view("1001", T0).state is State.PAUSED
    s.feed(ev.MemberRemoved("pbx1", T0, "q-edu", A, "Agent A 1001"))
    assert s.view("1001", T0).state is State.LOGGED_OUT


def test_the_wrapup_pause_is_not_a_pause(settings):
    s = machine(settings)
    s.feed(member(ev.MemberAdded, A))
    s.feed(call_event(ev.AgentConnected, A))
    s.feed(call_event(ev.AgentCompleted, A, at=T0 + timedelta(seconds=30)))
    assert s.take_effects() == [StartWrapup("1001")]
    s.feed(member(ev.MemberPauseChanged, A, paused=True, reason="话后处理", at=T0 + timedelta(seconds=30)))
    v = s.view("1001", T0 + timedelta(seconds=40))
    assert (v.state, v.reason, v.wrapup_until) == (State.WRAP_UP, "", T0 + timedelta(seconds=90))
    assert v.call["call_id"] == "L1" and v.call["talk_seconds"] == 30
    # the time runs out: the wrap-up ends, the pause is lifted
    assert s.tick(T0 + timedelta(seconds=89)) == set()
    assert s.tick(T0 + timedelta(seconds=90)) == {"1001"}
    assert s.take_effects() == [EndWrapup("1001", None)]
    assert s.view("1001", T0 + timedelta(seconds=90)).state is State.AVAILABLE     # lifting: available
    s.feed(member(ev.MemberPauseChanged, A, paused=False, at=T0 + timedelta(seconds=90)))
    assert s.view("1001", T0 + timedelta(seconds=91)).state is State.AVAILABLE


def test_extend_is_capped_and_ready_ends_the_wrapup(settings):
    s = machine(settings)
    s.feed(member(ev.MemberAdded, A))
    s.feed(call_event(ev.AgentConnected, A))
    s.feed(call_event(ev.AgentCompleted, A, at=T0))
    s.extend("1001", T0)
    assert s.view("1001", T0).wrapup_until == T0 + timedelta(seconds=120)
    s.extend("1001", T0)
    assert s.view("1001", T0).wrapup_until == T0 + timedelta(seconds=150)        # max_seconds
    with pytest.raises(StateError) as exc:
        s.extend("1001", T0)
    assert exc.value.code == "wrapup_at_max"
    s.take_effects()
    s.ready("1001", T0 + timedelta(seconds=10))
    assert s.take_effects() == [EndWrapup("1001", None)]
    with pytest.raises(StateError) as exc:
        s.ready("1001", T0 + timedelta(seconds=11))
    assert exc.value.code == "not_in_wrapup"


def test_a_pause_asked_during_a_call_waits_for_the_wrapup_to_end(settings):
    s = machine(settings)
    s.feed(member(ev.MemberAdded, A))
    s.feed(call_event(ev.AgentRinging, A))
    s.defer("1001", Pending("logout", asked_at=T0), T0)
    s.feed(call_event(ev.AgentConnected, A))
    s.defer("1001", Pending("pause", "用餐", "head-market", "急事", T0), T0)      # replaces the log-out
    v = s.view("1001", T0)
    assert (v.state, v.pending, v.pending_reason) == (State.ON_CALL, "pause", "用餐")
    s.feed(call_event(ev.AgentCompleted, A, at=T0 + timedelta(seconds=30)))
    assert s.view("1001", T0).pending == "pause" and s.take_effects() == [StartWrapup("1001")]
    s.tick(T0 + timedelta(seconds=90))
    assert s.take_effects() == [EndWrapup("1001", Pending("pause", "用餐", "head-market", "急事", T0))]
    assert s.view("1001", T0 + timedelta(seconds=90)).pending is None


def test_without_wrapup_the_pending_action_follows_the_call(settings):
    s = machine(settings, DeskPolicy(wrapup_seconds=0))
    s.feed(member(ev.MemberAdded, A))
    s.feed(call_event(ev.AgentConnected, A))
    s.defer("1001", Pending("pause", "小休"), T0)
    s.feed(call_event(ev.AgentCompleted, A))
    assert s.take_effects() == [ApplyPending("1001", Pending("pause", "小休"))]
    assert s.view("1001", T0).state is State.AVAILABLE
    # a pause asked while ringing, the ring unanswered: applied at once
    s.feed(call_event(ev.AgentRinging, A, "L2"))
    s.defer("1001", Pending("logout"), T0)
    s.feed(call_event(ev.AgentNoAnswer, A, "L2"))
    assert s.take_effects() == [ApplyPending("1001", Pending("logout"))]


def test_a_pause_over_its_maximum_is_alarmed_once(settings):
    s = machine(settings)
    s.feed(member(ev.MemberAdded, A))
    s.feed(member(ev.MemberPauseChanged, A, paused=True, reason="小休", at=T0))
    assert s.next_deadline() == T0 + timedelta(minutes=15)
    s.tick(T0 + timedelta(minutes=15))
    assert s.take_effects() == [] and not s.view("1001", T0 + timedelta(minutes=15)).over_max
    assert s.tick(T0 + timedelta(minutes=16)) == {"1001"}
    [alarm] = s.take_effects()
    assert alarm == PauseOverMax("1001", "张伟", "小休", T0, 900, f"panel:pause-over-max:1001:{T0.isoformat()}")
    assert s.view("1001", T0 + timedelta(minutes=16)).over_max
    s.tick(T0 + timedelta(minutes=30))
    assert s.take_effects() == [] and s.next_deadline() is None
    # a new pause (another reason, then the same again) is a new alarm
    later = T0 + timedelta(minutes=31)
    s.feed(member(ev.MemberPauseChanged, A, paused=True, reason="培训", at=later))
    assert not s.view("1001", later).over_max
    s.feed(member(ev.MemberPauseChanged, A, paused=True, reason="小休", at=later + timedelta(minutes=1)))
    s.tick(later + timedelta(minutes=17))
    [again] = s.take_effects()
    assert again.since == later + timedelta(minutes=1) and again.key != alarm.key


def test_ringall_the_others_stop_ringing_when_one_answers(settings):
    s = machine(settings)
    s.feed(member(ev.MemberAdded, A))
    s.feed(member(ev.MemberAdded, B))
    s.feed(call_event(ev.AgentRinging, A))
    s.feed(call_event(ev.AgentRinging, B))
    assert s.view("1002", T0).state is State.RINGING
    assert s.feed(call_event(ev.AgentConnected, A)) == {"1001", "1002"}
    assert (s.view("1001", T0).state, s.view("1002", T0).state) == (State.ON_CALL, State.AVAILABLE)


def test_the_resync_rebuilds_the_picture(settings):
    s = machine(settings)
    s.feed(member(ev.MemberAdded, A))
    s.feed(member(ev.MemberAdded, B))
    s.feed(call_event(ev.AgentConnected, A))
    s.feed(ev.LinkLost("pbx1", T0, "eof"))
    later = T0 + timedelta(minutes=2)
    # while we were away: A's call ended, B was removed, A is paused with the wrap-up reason
    snapshot = (member(ev.MemberState, A, paused=True, reason="话后处理", at=later),)
    assert s.feed(ev.Resynced("pbx1", later, frozenset(), snapshot)) == {"1001", "1002"}
    a, b = s.view("1001", later), s.view("1002", later)
    assert (a.state, a.wrapup_until, b.state) == (State.WRAP_UP, later + timedelta(seconds=60), State.LOGGED_OUT)
    assert s.take_effects() == []                    # the PBX already shows the wrap-up pause
    # a member the PBX reports in a call is on a call
    snapshot = (member(ev.MemberState, B, in_call=True, at=later),)
    s.feed(ev.Resynced("pbx1", later, frozenset({"x"}), snapshot))
    assert (s.view("1002", later).state, s.view("1002", later).call) == (State.ON_CALL, None)
    assert s.view("1001", later).state is State.LOGGED_OUT


def test_policy_from_the_panel_settings(settings):
    p = DeskPolicy.from_settings(settings.panel)
    assert p.pause_max == {"小休": 900, "用餐": 3600, "培训": 7200, "会议": 5400}
    assert (p.wrapup_seconds, p.extend_seconds, p.max_seconds, p.require_disposition, p.wrapup_reason) == (
        60, 60, 300, False, "话后处理")


def test_a_call_the_queues_did_not_offer_is_a_call_too(settings):
    """A callback or a direct call: the agent's device in use makes them busy; a pause waits."""
    s = machine(settings)
    s.feed(member(ev.MemberAdded, A))
    assert s.feed(ev.DeviceStateChanged("pbx1", T0, "Custom:1001", "INUSE")) == {"1001"}
    v = s.view("1001", T0)
    assert (v.state, v.call) == (State.ON_CALL, None)
    s.defer("1001", Pending("pause", "小休"), T0)
    assert s.feed(ev.DeviceStateChanged("pbx1", T0, "Custom:1001", "RINGING")) == set()
    s.feed(ev.DeviceStateChanged("pbx1", T0 + timedelta(seconds=40), "Custom:1001", "NOT_INUSE"))
    assert s.take_effects() == [ApplyPending("1001", Pending("pause", "小休"))]    # no wrap-up: not a queue call
    assert s.view("1001", T0).state is State.AVAILABLE
    assert s.feed(ev.DeviceStateChanged("pbx1", T0, "Custom:9999", "INUSE")) == set()
