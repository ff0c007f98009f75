"""The IVR flow engine (callcenter/domain/ivr_flow.py), pure: every branch of the caller's walk
(open/closed, callback request, owner routing, coverage gaps, menu choices, 0, timeouts, wrong
keys, hang-ups at each level), the 好差评 survey, and properties over any key sequence."""
from __future__ import annotations

from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from callcenter.domain import ivr_flow as f
from callcenter.domain.calendar import WorkdayCalendar
from callcenter.domain.cases import Presence, route as owner_route
from callcenter.domain.ivr_flow import (Digits, Done, Emit, Facts, FlowConfig, Gather, Hangup, HungUp, Menu,
                                        MenuEntry, Play, Prompt, Record, Route, Session, survey_session)

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 30, 2, 0, tzinfo=timezone.utc)     # Monday 10:00 in Shanghai


def P(name: str) -> Prompt:
    return Prompt(f"{name}文本", f"callcenter/{name}")


PROMPTS = f.Prompts(welcome=P("welcome"), invalid=P("invalid"), closed=Prompt("工作时间是{hours}。留言请按1", "c/closed"),
                    callback_record=P("record"), callback_thanks=P("thanks"), goodbye=P("goodbye"),
                    owner=P("owner"), gap_callback=P("gap"), survey=P("survey"), survey_thanks=P("survey_thanks"))
SUB = Menu(P("sub"), (MenuEntry("1", "特种设备", "q-market", "特种设备资格"), MenuEntry("2", "酒类", "q-liquor", "酒类许可")))
MENU = Menu(P("menu"), (MenuEntry("1", "食品经营许可", "q-market", "食品经营许可"),
                        MenuEntry("2", "企业登记", "q-register", "企业登记档案查阅"),
                        MenuEntry("3", "其他许可", "q-market", None, SUB)))
FLOW = FlowConfig("market", "q-market", MENU, PROMPTS, timeout=4, max_repeats=2)


def facts(open_now=True, owner=None, gap=None, department="market") -> Facts:
    return Facts(NOW, "62000001", "13800000001", "pbx1", department, open_now, "工作日 9:00-11:30、13:30-16:30",
                 owner, gap)


def walk(results, flow=FLOW, **kw):
    """Start a session, feed the results; returns (session, every batch of steps)."""
    s = Session(flow, facts(**kw))
    batches = [s.start()]
    for r in results:
        batches.append(s.feed(r))
    return s, batches


def final(session_batches):
    s, batches = session_batches
    return s, batches[-1]


# --- open: the menu -------------------------------------------------------------------------

def test_welcome_then_the_menu_waits_for_one_key():
    s = Session(FLOW, facts())
    steps = s.start()
    assert steps == [Play(P("welcome")), Gather(P("menu"), 1, 4, "menu", 1)]
    assert not s.done and s.outcome is None and s.path == []


def test_a_menu_choice_routes_to_the_entrys_queue_with_the_ivrchoice_fact():
    s, steps = final(walk([Digits("2")]))
    assert steps == [Emit("IvrChoice", {"Queue": "q-register", "Choice": "2"}),
                     Route("queue", "q-register", None, "market", "企业登记档案查阅",
                           {"QNAME": "q-register", "CHOICE": "2", "LEVEL": "1"})]
    assert s.done and s.outcome == "queue" and s.route == steps[-1]
    assert s.path == [{"at_step": "menu", "choice": "2", "level": 1, "item": "企业登记档案查阅"}]


def test_zero_reaches_the_main_queue():
    s, steps = final(walk([Digits("0")]))
    assert steps[0] == Emit("IvrChoice", {"Queue": "q-market", "Choice": "0"})
    assert steps[-1].kind == "queue" and steps[-1].queue == "q-market" and steps[-1].item is None
    assert s.path == [{"at_step": "menu", "choice": "0", "level": 1}] and s.outcome == "queue"


def test_timeouts_repeat_the_menu_then_the_queue_takes_the_call():
    s, batches = walk([Digits(""), Digits(""), Digits("")])
    assert batches[1] == [Gather(P("menu"), 1, 4, "menu", 1)]      # no "输入有误" for silence
    assert batches[2] == [Gather(P("menu"), 1, 4, "menu", 1)]
    assert batches[3][-1] == Route("queue", "q-market", None, "market", None,
                                   {"QNAME": "q-market", "CHOICE": "", "LEVEL": "1"})
    assert batches[3][0] == Emit("IvrChoice", {"Queue": "q-market", "Choice": ""})
    assert s.path == [{"at_step": "menu", "timeout": True, "level": 1}] * 3 and s.outcome == "queue"


def test_an_invalid_key_says_so_and_repeats_then_a_valid_choice_counts():
    s, batches = walk([Digits("9"), Digits("1")])
    assert batches[1] == [Play(P("invalid")), Gather(P("menu"), 1, 4, "menu", 1)]
    assert batches[2][-1].queue == "q-market" and batches[2][-1].variables["CHOICE"] == "1"
    assert s.path[0] == {"at_step": "menu", "invalid": "9", "level": 1}


def test_wrong_keys_and_silence_together_use_up_the_repeats():
    s, batches = walk([Digits("#"), Digits(""), Digits("7")])
    assert batches[2] == [Gather(P("menu"), 1, 4, "menu", 1)]
    assert batches[3][-1].kind == "queue" and batches[3][-1].queue == "q-market"
    assert [list(p)[1] for p in s.path] == ["invalid", "timeout", "invalid"]


def test_no_repeats_configured_sends_the_first_silence_to_the_queue():
    flow = FlowConfig("market", "q-market", MENU, PROMPTS, max_repeats=0)
    s, steps = final(walk([Digits("")], flow=flow))
    assert steps[-1].kind == "queue" and s.outcome == "queue"


def test_a_sub_menu_is_a_second_level_and_the_choice_records_the_way_down():
    s, batches = walk([Digits("3"), Digits("2")])
    assert batches[1] == [Gather(P("sub"), 1, 4, "menu", 2)]
    assert batches[2] == [Emit("IvrChoice", {"Queue": "q-liquor", "Choice": "32"}),
                          Route("queue", "q-liquor", None, "market", "酒类许可",
                                {"QNAME": "q-liquor", "CHOICE": "32", "LEVEL": "2"})]
    assert [p["level"] for p in s.path] == [1, 2]


def test_repeats_start_again_in_a_sub_menu_and_zero_there_reaches_the_main_queue():
    s, batches = walk([Digits(""), Digits(""), Digits("3"), Digits(""), Digits(""), Digits("0")])
    assert batches[4] == [Gather(P("sub"), 1, 4, "menu", 2)]
    assert batches[6][-1].queue == "q-market" and batches[6][-1].variables["CHOICE"] == "30"


def test_a_department_without_items_goes_straight_to_the_queue():
    flow = FlowConfig("office", "q-office", Menu(P("menu")), PROMPTS)
    s = Session(flow, facts(department="office"))
    steps = s.start()
    assert steps[0] == Play(P("welcome")) and steps[-1].kind == "queue" and steps[-1].queue == "q-office"
    assert s.done and s.outcome == "queue"


def test_two_digit_menus_gather_two_digits():
    entries = tuple(MenuEntry(str(i), f"事项{i}", "q-market", f"事项{i}") for i in range(1, 12))
    flow = FlowConfig("market", "q-market", Menu(P("menu"), entries), PROMPTS, max_digits=2)
    s = Session(flow, facts())
    assert s.start()[-1].max_digits == 2
    assert s.feed(Digits("11"))[-1].item == "事项11"


# --- hang-ups, recorded where they happen ---------------------------------------------------

@pytest.mark.parametrize("results, where", [
    ([HungUp()], {"hangup_at": "menu", "level": 1}),
    ([Digits(""), HungUp()], {"hangup_at": "menu", "level": 1}),
    ([Digits("3"), HungUp()], {"hangup_at": "menu", "level": 2}),
    ([Digits("3"), Digits("9"), HungUp()], {"hangup_at": "menu", "level": 2}),
])
def test_a_hang_up_in_the_menu_records_the_level(results, where):
    s, batches = walk(results)
    assert batches[-1] == [] and s.done and s.outcome == "hangup" and s.route is None
    assert s.path[-1] == where


def test_hang_ups_after_hours_record_the_step():
    s, _ = walk([HungUp()], open_now=False)
    assert s.path == [{"hangup_at": "closed"}] and s.outcome == "hangup"
    s, _ = walk([Digits("1"), HungUp()], open_now=False)
    assert s.path == [{"at_step": "closed", "choice": "1"}, {"hangup_at": "callback_record"}]
    assert s.outcome == "hangup"
    s, _ = walk([HungUp()], gap=("callback", None))
    assert s.path == [{"hangup_at": "gap_callback"}]


def test_a_hang_up_before_the_route_was_carried_out_is_recorded():
    s, _ = walk([Digits("3"), Digits("1"), HungUp()])
    assert s.path[-1] == {"hangup_at": "route", "kind": "queue", "level": 2} and s.outcome == "hangup"
    assert s.route.queue == "q-market"                           # where the caller was going
    assert s.feed(HungUp()) == [] and len(s.path) == 3
    r = owner_route("market", "q-market", 7, "a1", {"a1": Presence("a1", True, ("PJSIP/1001",))}, [])
    s = Session(FLOW, facts(owner=r))
    s.start()
    s.feed(HungUp())
    assert s.path[-1] == {"hangup_at": "route", "kind": "owner"} and s.outcome == "hangup"
    s, _ = walk([Digits(""), HungUp()], open_now=False)         # goodbye played: stays "closed"
    assert s.outcome == "closed"


def test_only_dtmf_keys_are_read():
    assert f.clean_digits("1\r\nAction: x") == "1" and f.clean_digits("*#0123456789") == "*#012345"
    s, steps = final(walk([Digits(" 2\n")]))
    assert steps[-1].variables["CHOICE"] == "2"
    s, _ = walk([Digits("abc")])
    assert s.path == [{"at_step": "menu", "timeout": True, "level": 1}]


def test_nothing_happens_after_the_end():
    s, _ = walk([Digits("1")])
    assert s.feed(Digits("2")) == [] and s.feed(Done()) == [] and s.outcome == "queue"
    assert len(s.path) == 1
    s, _ = walk([Digits(""), Digits(""), HungUp()], open_now=False)
    assert s.feed(HungUp()) == [] and s.path[-1] == {"at_step": "closed", "timeout": True}


# --- closed: hours and a callback request ---------------------------------------------------

def test_closed_announces_the_hours_and_records_a_callback_request():
    s = Session(FLOW, facts(open_now=False))
    steps = s.start()
    assert steps == [Play(P("welcome")), Emit("AfterHours", {"Hotline": "62000001"}),
                     Gather(Prompt("工作时间是工作日 9:00-11:30、13:30-16:30。留言请按1", "c/closed"), 1, 4, "closed")]
    assert s.feed(Digits("1")) == [Record(P("record"), 60)]
    steps = s.feed(Done())
    assert steps == [Emit("CallbackRequest", {"Hotline": "62000001", "Reason": "closed"}), Play(P("thanks")),
                     Route("callback_task", "q-market", None, "market", None, {"QNAME": "q-market", "CALLBACK": "1"})]
    assert s.outcome == "callback_request" and s.route.kind == "callback_task"
    assert s.path == [{"at_step": "closed", "choice": "1"}, {"at_step": "callback_record", "recorded": True}]


def test_closed_without_a_callback_request_says_goodbye():
    s, steps = final(walk([Digits("")], open_now=False))
    assert steps == [Play(P("goodbye")), Hangup("closed")]
    assert s.outcome == "closed" and s.path == [{"at_step": "closed", "timeout": True}]


def test_closed_wrong_key_is_repeated_then_silence_ends_the_call():
    s, batches = walk([Digits("5"), Digits("")], open_now=False)
    assert batches[1][0] == Play(P("invalid")) and batches[1][-1].name == "closed"
    assert batches[2][-1] == Hangup("closed") and s.outcome == "closed"


def test_closed_wrong_keys_beyond_the_repeats_end_the_call():
    s, batches = walk([Digits("5"), Digits("5"), Digits("5")], open_now=False)
    assert batches[3][-1] == Hangup("closed")
    assert [p.get("invalid") for p in s.path] == ["5", "5", "5"]


def test_closed_with_callbacks_disabled_announces_and_hangs_up():
    flow = FlowConfig("market", "q-market", MENU, PROMPTS, callback_enabled=False)
    s = Session(flow, facts(open_now=False))
    steps = s.start()
    assert steps[-1] == Hangup("closed") and Play(P("goodbye")) in steps and s.done and s.outcome == "closed"


def test_closed_wins_over_an_owner_route():
    r = owner_route("market", "q-market", 7, "a1", {"a1": Presence("a1", True, ("PJSIP/1001",))}, [])
    s = Session(FLOW, facts(open_now=False, owner=r))
    assert s.start()[-1].name == "closed"


# --- owner routing (首问负责) and coverage gaps ----------------------------------------------

def test_a_repeat_caller_reaches_the_available_owner_first():
    r = owner_route("market", "q-market", 7, "a1", {"a1": Presence("a1", True, ("PJSIP/1001", "PJSIP/1001b"))}, [])
    s = Session(FLOW, facts(owner=r))
    steps = s.start()
    assert steps == [Play(P("welcome")), Play(P("owner")),
                     Route("owner", "q-market", "PJSIP/1001&PJSIP/1001b", "market", None,
                           {"QNAME": "q-market", "TARGET": "PJSIP/1001&PJSIP/1001b", "AGENT": "a1",
                            "ROUTE": "owner", "RINGTIME": "20", "CASE": "7"})]
    assert s.done and s.outcome == "owner" and s.path == [{"at_step": "owner", "agent": "a1", "kind": "owner"}]


def test_an_away_owner_passes_to_an_available_post_agent():
    presence = {"a1": Presence("a1", False, ("PJSIP/1001",)), "b1": Presence("b1", True, ("PJSIP/1002",))}
    r = owner_route("market", "q-market", 7, "a1", presence, [("x", "b1")])
    steps = Session(FLOW, facts(owner=r)).start()
    assert steps[-1].kind == "agent" and steps[-1].target == "PJSIP/1002" and steps[-1].variables["AGENT"] == "b1"


@pytest.mark.parametrize("owner", [
    owner_route("market", "q-market", 7, "a1", {"a1": Presence("a1", False, ("PJSIP/1001",))}, []),   # nobody
    owner_route("market", "q-market", None, None, {}, []),                                            # no case
    owner_route(None, "q-x", None, None, {}, []),                                                     # unknown dept
    None])
def test_without_an_available_owner_or_post_agent_the_menu_follows(owner):
    s = Session(FLOW, facts(owner=owner))
    assert s.start()[-1] == Gather(P("menu"), 1, 4, "menu", 1) and s.path == []


@pytest.mark.parametrize("gap, queue", [(("pool", "q-market"), "q-market"), (("post:p2", "q-backup"), "q-backup"),
                                        (("pool", None), "q-register")])
def test_a_coverage_gap_sends_the_menu_choice_to_the_fallback_queue(gap, queue):
    r = owner_route("market", "q-market", 7, "a1", {"a1": Presence("a1", True, ("PJSIP/1001",))}, [], gap)
    s, steps = final(walk([Digits("2")], owner=r, gap=gap))
    assert steps[-1].kind == "queue" and steps[-1].queue == queue and steps[-1].item == "企业登记档案查阅"
    assert steps[-1].variables == {"QNAME": queue, "CHOICE": "2", "LEVEL": "1", "FALLBACK": gap[0]}
    assert steps[0] == Emit("IvrChoice", {"Queue": queue, "Choice": "2"})


def test_a_coverage_gap_with_callback_fallback_offers_a_callback_request():
    s = Session(FLOW, facts(gap=("callback", None)))
    steps = s.start()
    assert steps[1] == Emit("CoverageGap", {"Fallback": "callback"}) and steps[-1] == Gather(P("gap"), 1, 4, "gap_callback")
    assert s.feed(Digits("1")) == [Record(P("record"), 60)]
    steps = s.feed(Done())
    assert steps[0] == Emit("CallbackRequest", {"Hotline": "62000001", "Reason": "coverage_gap"})
    assert steps[-1].kind == "callback_task" and s.outcome == "callback_request"


@pytest.mark.parametrize("key", ["", "2"])
def test_declining_the_gap_callback_still_reaches_the_queue(key):
    s, steps = final(walk([Digits(key)] if not key else [Digits(key), Digits(key), Digits(key)], gap=("callback", None)))
    assert steps[-1] == Route("queue", "q-market", None, "market", None, {"QNAME": "q-market", "CHOICE": "", "LEVEL": "0"})
    assert s.outcome == "queue"


def test_a_gap_callback_without_callbacks_goes_to_the_queue():
    flow = FlowConfig("market", "q-market", MENU, PROMPTS, callback_enabled=False)
    s = Session(flow, facts(gap=("callback", None)))
    assert s.start()[-1].kind == "queue" and s.outcome == "queue"


# --- the survey (好差评) ---------------------------------------------------------------------

@pytest.mark.parametrize("digit, rating", [("1", "satisfied"), ("2", "basic"), ("3", "dissatisfied")])
def test_the_survey_returns_the_rating(digit, rating):
    s = survey_session(FLOW, facts())
    assert s.start() == [Gather(P("survey"), 1, 5.0, "survey")]
    steps = s.feed(Digits(digit))
    assert steps == [Emit("SurveyRating", {"Rating": rating, "Digit": digit, "Hotline": "62000001"}),
                     Play(P("survey_thanks")), Hangup("survey_done")]
    assert s.rating == rating and s.outcome == "rated" and s.path == [{"at_step": "survey", "choice": digit, "rating": rating}]


def test_the_survey_asks_again_once_after_a_wrong_key_or_silence():
    s = survey_session(FLOW, facts())
    s.start()
    assert s.feed(Digits("7")) == [Play(P("invalid")), Gather(P("survey"), 1, 5.0, "survey")]
    assert s.feed(Digits("3"))[-1] == Hangup("survey_done") and s.rating == "dissatisfied"
    s = survey_session(FLOW, facts())
    s.start()
    assert s.feed(Digits("")) == [Gather(P("survey"), 1, 5.0, "survey")]
    assert s.feed(Digits("")) == [Play(P("goodbye")), Hangup("survey_no_answer")]
    assert s.rating is None and s.outcome == "no_rating" and len(s.path) == 2


def test_the_survey_hang_up_and_disabled():
    s = survey_session(FLOW, facts())
    s.start()
    assert s.feed(HungUp()) == [] and s.rating is None and s.outcome == "hangup"
    assert s.path == [{"hangup_at": "survey"}]
    flow = FlowConfig("market", "q-market", MENU, PROMPTS, survey_enabled=False)
    s = survey_session(flow, facts())
    assert s.start() == [Hangup("survey_disabled")] and s.done and s.outcome == "disabled"


# --- helpers and replay ----------------------------------------------------------------------

def test_hours_text_and_open_now():
    windows = [(time(13, 30), time(16, 30)), (time(9, 0), time(11, 30))]
    assert f.hours_text(windows) == "工作日 9:00-11:30、13:30-16:30"
    assert f.hours_text([]) == ""
    cal = WorkdayCalendar([date(2026, 10, 1)], [date(2026, 9, 27)], [2026], SH)
    assert f.open_now(cal, NOW, windows)                                              # Monday 10:00
    assert not f.open_now(cal, datetime(2026, 11, 30, 4, 0, tzinfo=timezone.utc), windows)   # 12:00 lunch
    assert not f.open_now(cal, datetime(2026, 10, 1, 2, 0, tzinfo=timezone.utc), windows)    # holiday
    assert f.open_now(cal, datetime(2026, 9, 27, 2, 0, tzinfo=timezone.utc), windows)       # Sunday worked (调休)
    assert not f.open_now(cal, NOW, [])


def test_replay_rebuilds_the_same_session():
    results = [Digits("9"), Digits("3"), Digits(""), Digits("1")]
    live, _ = walk(results)
    again = Session.replay(FLOW, facts(), results)
    assert again.path == live.path and again.route == live.route and again.outcome == live.outcome


# --- properties ------------------------------------------------------------------------------

RESULTS = st.one_of(st.builds(Digits, st.sampled_from(["", "0", "1", "2", "3", "4", "9", "*", "#", "12"])),
                    st.just(HungUp()), st.just(Done()))


@hsettings(max_examples=300, deadline=None)
@given(st.lists(RESULTS, max_size=40), st.booleans(), st.sampled_from([None, ("callback", None), ("pool", None)]),
       st.integers(0, 3))
def test_any_key_sequence_ends_in_a_route_or_a_hangup_within_bounded_steps(results, open_now, gap, repeats):
    flow = FlowConfig("market", "q-market", MENU, PROMPTS, max_repeats=repeats)
    s = Session(flow, facts(open_now=open_now, gap=gap))
    batch, fed, given_results = s.start(), 0, []
    bound = 2 * (repeats + 1) + 3          # two menu levels, or an offer plus a recording
    while not s.done:
        assert fed <= bound
        assert batch and isinstance(batch[-1], (Gather, Record))
        assert not any(isinstance(x, (Gather, Record, Route, Hangup)) for x in batch[:-1])
        r = results[fed] if fed < len(results) else Digits("")
        if isinstance(batch[-1], Record) and isinstance(r, Digits):
            r = Done()
        batch = s.feed(r)
        given_results.append(r)
        fed += 1
    assert s.outcome in {"queue", "callback_request", "closed", "hangup"}
    if s.outcome == "hangup":
        assert batch == [] and "hangup_at" in s.path[-1]
    else:
        assert isinstance(batch[-1], (Route, Hangup))
        if isinstance(batch[-1], Route) and batch[-1].kind == "queue":
            assert isinstance(batch[-2], Emit) and batch[-2].name == "IvrChoice"
            assert batch[-2].fields["Queue"] == batch[-1].queue == batch[-1].variables["QNAME"]
    assert len(s.path) <= fed
    again = Session.replay(flow, facts(open_now=open_now, gap=gap), given_results)
    assert (again.path, again.outcome, again.route) == (s.path, s.outcome, s.route)


@hsettings(max_examples=100, deadline=None)
@given(st.lists(RESULTS, max_size=6))
def test_the_survey_ends_within_three_answers(results):
    s = survey_session(FLOW, facts())
    s.start()
    fed = 0
    while not s.done:
        s.feed(results[fed] if fed < len(results) else Digits(""))
        fed += 1
        assert fed <= 2
    assert s.rating in (None, "satisfied", "basic", "dissatisfied")
    assert (s.rating is None) == (s.outcome != "rated")
