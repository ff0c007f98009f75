"""A/B post coverage figures: the interval arithmetic (table-driven), the real presence traces fed
through the pure domain, the daily report, the CLI and /api/coverage/daily."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime, time, timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.domain.coverage_figures import (Coverage, intersect, merge, open_sessions, post_figures,
                                                subtract)
from callcenter.domain.presence import AgentSession, Member
from callcenter.replay import replay
from callcenter.web.app import init_app
from callcenter.workdays import build_calendar
from reports import coverage, daily
from tests.conftest import MONDAY_10, ROOT, SHANGHAI, TRACES
from tests.scenario import run

DAY = MONDAY_10.date()                              # Monday 23 November 2026, a workday
HOURS = [(time(9), time(11, 30)), (time(13, 30), time(16, 30))]
WINDOWS = [(datetime.combine(DAY, s, SHANGHAI), datetime.combine(DAY, e, SHANGHAI)) for s, e in HOURS]


def t(hh: int, mm: int = 0, day: date = DAY) -> datetime:
    return datetime.combine(day, time(hh, mm), SHANGHAI)


def s(agent, kind, start, end, reason="", queue="q", interface=None, pbx="pbx1"):
    return AgentSession(pbx, agent, interface or f"PJSIP/{agent}", f"Agent {agent}", queue, kind, reason,
                        start, end)


def login(agent, start, end, **kw):
    return s(agent, "login", start, end, **kw)


def pause(agent, start, end, reason="", **kw):
    return s(agent, "pause", start, end, reason, **kw)


def unreachable(agent, start, end, **kw):
    return s(agent, "unreachable", start, end, **kw)


ALL_DAY = login("A", t(8, 30), t(17))
PREV_DAY = DAY - timedelta(days=1)

# name, sessions, windows, expected figures (a subset of PostFigures.as_dict())
CASES = [
    ("nobody logged in", [], WINDOWS,
     {"coverage_pct": 0.0, "gap_count": 2, "gap_minutes": 330.0, "longest_gap_minutes": 180.0, "b_takeovers": 0}),
    ("gap at the start of the day", [login("A", t(9, 10), t(17))], WINDOWS,
     {"coverage_pct": 97.0, "gap_count": 1, "gap_minutes": 10.0, "longest_gap_minutes": 10.0}),
    ("lunch break is not business time", [login("A", t(9), t(11, 30)), login("A", t(13, 30), t(16, 30))], WINDOWS,
     {"coverage_pct": 100.0, "gap_count": 0, "gap_minutes": 0.0, "business_minutes": 330.0}),
    ("a pause over lunch does not count", [ALL_DAY, pause("A", t(11, 30), t(13, 30), "lunch")], WINDOWS,
     {"coverage_pct": 100.0, "gap_count": 0, "agents": {"A": {"login_minutes": 330.0, "available_minutes": 330.0,
                                                               "unreachable_minutes": 0.0, "pauses_by_reason": {}},
                                                         "B": {"login_minutes": 0.0, "available_minutes": 0.0,
                                                               "unreachable_minutes": 0.0, "pauses_by_reason": {}}}}),
    ("a pause splits availability", [ALL_DAY, pause("A", t(10), t(10, 15), "toilet")], WINDOWS,
     {"coverage_pct": 95.5, "gap_count": 1, "gap_minutes": 15.0, "covered_minutes": 315.0}),
    ("unreachable splits availability", [ALL_DAY, unreachable("A", t(14), t(14, 30))], WINDOWS,
     {"coverage_pct": 90.9, "gap_count": 1, "gap_minutes": 30.0, "longest_gap_minutes": 30.0}),
    ("B covers while A is paused",
     [ALL_DAY, pause("A", t(10), t(11), "meeting"), login("B", t(9), t(16, 30))], WINDOWS,
     {"coverage_pct": 100.0, "gap_count": 0, "b_takeovers": 1, "b_takeover_minutes": 60.0}),
    ("B paused too: a gap while both are paused",
     [ALL_DAY, pause("A", t(10), t(11), "meeting"), login("B", t(9), t(16, 30)), pause("B", t(10, 30), t(12), "")],
     WINDOWS, {"gap_count": 1, "gap_minutes": 30.0, "b_takeovers": 1, "b_takeover_minutes": 30.0}),
    ("a takeover across lunch is two takeovers",
     [login("A", t(9), t(11)), login("A", t(14), t(17)), login("B", t(8), t(18))], WINDOWS,
     {"coverage_pct": 100.0, "gap_count": 0, "b_takeovers": 2, "b_takeover_minutes": 60.0}),
    ("B while A is available is no takeover", [ALL_DAY, login("B", t(9), t(16, 30))], WINDOWS,
     {"coverage_pct": 100.0, "b_takeovers": 0, "b_takeover_minutes": 0.0}),
    ("overlapping and duplicate sessions count once",
     [ALL_DAY, ALL_DAY, login("A", t(9), t(12), interface="Local/A@agents/n")], WINDOWS,
     {"coverage_pct": 100.0, "agents.A.login_minutes": 330.0}),
    ("a pause on one interface while the other is free",
     [login("A", t(9), t(12), interface="PJSIP/A"), pause("A", t(10), t(11), "x", interface="PJSIP/A"),
      login("A", t(10), t(16, 30), interface="Local/A")], WINDOWS,
     {"coverage_pct": 100.0, "gap_count": 0, "agents.A.pauses_by_reason": {"x": 60.0}}),
    ("sessions crossing midnight",
     [login("A", datetime.combine(PREV_DAY, time(20), SHANGHAI), t(10)),
      login("A", t(16), datetime.combine(DAY + timedelta(days=1), time(1), SHANGHAI))], WINDOWS,
     {"gap_count": 2, "gap_minutes": 240.0, "covered_minutes": 90.0, "agents.A.login_minutes": 90.0}),
    ("a session across the windows' edges", [login("A", t(11), t(14))], WINDOWS,
     {"covered_minutes": 60.0, "gap_count": 2, "longest_gap_minutes": 150.0, "agents.A.login_minutes": 60.0}),
    ("other queues do not count", [login("A", t(8), t(17), queue="q-other")], WINDOWS,
     {"coverage_pct": 0.0, "agents.A.login_minutes": 0.0}),
    ("unspecified and repeated pause reasons",
     [ALL_DAY, pause("A", t(9), t(9, 5)), pause("A", t(14), t(14, 10), "lunch"), pause("A", t(15), t(15, 5), "lunch")],
     WINDOWS, {"gap_count": 3, "agents.A.pauses_by_reason": {"lunch": 15.0, "unspecified": 5.0}}),
    ("no business windows (not a workday)", [ALL_DAY], [],
     {"coverage_pct": None, "business_minutes": 0.0, "gap_count": 0, "gap_minutes": 0.0, "b_takeovers": 0,
      "agents.A.login_minutes": 0.0}),
    ("a gap of one second is not 100 %", [login("A", t(9), t(16, 30)), unreachable("A", t(10), t(10) + timedelta(seconds=1))],
     WINDOWS, {"coverage_pct": 99.9, "gap_count": 1, "gap_minutes": 0.02}),
]


def _pick(figures: dict, key: str):
    for part in key.split("."):
        figures = figures[part]
    return figures


@pytest.mark.parametrize("name, sessions, windows, expected", CASES, ids=[c[0] for c in CASES])
def test_post_figures(name, sessions, windows, expected):
    figures = post_figures(sessions, "A", "B", "q", windows).as_dict()
    assert {k: _pick(figures, k) for k in expected} == expected


def test_report_time_cuts_the_windows():
    open_login = login("A", t(9), t(10))             # still open at 10:00: the caller ends it at now
    f = post_figures([open_login], "A", "B", "q", WINDOWS, until=t(10)).coverage
    assert (f.business, f.covered, f.gap_count, f.coverage_pct) == (timedelta(hours=1), timedelta(hours=1), 0, 100.0)
    before = post_figures([], "A", "B", "q", WINDOWS, until=t(8)).coverage
    assert before == Coverage() and before.coverage_pct is None


def test_gap_and_takeover_periods():
    f = post_figures([ALL_DAY, pause("A", t(10), t(11), "meeting"), login("B", t(10, 30), t(12))],
                     "A", "B", "q", WINDOWS)
    assert f.gaps == ((t(10), t(10, 30)),)
    assert f.takeovers == ((t(10, 30), t(11)),)
    assert f.coverage.longest_gap == timedelta(minutes=30)


def test_queue_predicate_sees_the_pbx():
    sessions = [login("A", t(9), t(11, 30), pbx="pbx1"), login("A", t(13, 30), t(16, 30), queue="q2", pbx="pbx2")]
    f = post_figures(sessions, "A", "B", lambda pbx, q: (pbx, q) in {("pbx1", "q"), ("pbx2", "q2")}, WINDOWS)
    assert f.coverage.coverage_pct == 100.0


@pytest.mark.parametrize("a, b, expected", [
    ([(t(9), t(10))], [(t(9, 30), t(9, 40))], [(t(9), t(9, 30)), (t(9, 40), t(10))]),
    ([(t(9), t(10))], [(t(8), t(11))], []),
    ([(t(9), t(10)), (t(11), t(12))], [(t(9, 30), t(11, 30))], [(t(9), t(9, 30)), (t(11, 30), t(12))]),
    ([(t(9), t(10))], [], [(t(9), t(10))]),
    ([(t(9), t(10)), (t(10), t(11))], [(t(10), t(10))], [(t(9), t(11))]),      # touching ones merge
])
def test_subtract(a, b, expected):
    assert subtract(a, b) == expected


def test_merge_and_intersect():
    assert merge([(t(10), t(11)), (t(9), t(10)), (t(12), t(12)), (t(10, 30), t(10, 45))]) == [(t(9), t(11))]
    assert intersect([(t(9), t(12))], [(t(8), t(9, 30)), (t(11), t(13))]) == [(t(9), t(9, 30)), (t(11), t(12))]


def test_open_sessions_of_a_live_tracker():
    m = Member("pbx1", "q", "PJSIP/A", "Agent A", "A", "PJSIP/A", 0, t(9))
    m.paused, m.paused_reason, m.paused_since = True, "lunch", t(10)
    m.unreachable_since = t(10, 30)
    got = {(x.kind, x.reason, x.started_at, x.ended_at) for x in open_sessions([m], t(11))}
    assert got == {("login", "", t(9), t(11)), ("pause", "lunch", t(10), t(11)), ("unreachable", "", t(10, 30), t(11))}
    f = post_figures(open_sessions([m], t(11)), "A", "B", "q", WINDOWS, until=t(11)).coverage
    assert (f.covered, f.gap_count) == (timedelta(hours=1), 1)


def test_day_windows_follow_the_statutory_calendar(settings):
    calendar = build_calendar(settings)
    hours = settings.hours_of("market")
    assert coverage.day_windows(DAY, hours, calendar) == WINDOWS
    assert coverage.day_windows(date(2026, 11, 21), hours, calendar) == []       # Saturday
    assert coverage.day_windows(date(2026, 10, 1), hours, calendar) == []        # National Day
    assert len(coverage.day_windows(date(2026, 9, 20), hours, calendar)) == 2    # a Sunday worked (调休)
    saturday = coverage.posts(date(2026, 11, 21), settings, [login("1001", t(8, day=date(2026, 11, 21)),
                                                                     t(17, day=date(2026, 11, 21)), queue="q-market")])
    market = next(p for p in saturday if p["post"] == "market-1")
    assert (market["coverage_pct"], market["gap_count"], market["business_minutes"]) == (None, 0, 0.0)


# --- the real traces, through the pure domain -------------------------------------------------
# Times after MONDAY_10 (10:00:00 Shanghai), from the sessions the PresenceTracker closes.
#
# presence.jsonl (q-market, post market-1: A 1001, B 1002)
#   1001 login 0.000500 - 3.012600, paused "lunch"   0.503800 - 1.506600
#   1002 login 0.000800 - 3.012200, paused "meeting" 1.005100 - 3.012200 (logged out while paused),
#        unreachable 2.009000 - 2.510800 (while paused: changes nothing)
#   => B takes over 0.503800 - 1.005100, gap (both paused) 1.005100 - 1.506600
# a-noanswer-b-covers.jsonl (q-housing, post housing-1: A 1003, B 1004)
#   1003 login 0.002800 - 15.052700, "Auto-Pause" after ring-no-answer 8.515000 - 15.052700
#   1004 login 0.003300 - 15.053100
#   => B takes over 8.515000 - 15.053100 (until B logs out), no gap

def at(microseconds: int) -> datetime:
    return MONDAY_10 + timedelta(microseconds=microseconds)


def us(microseconds: int) -> timedelta:
    return timedelta(microseconds=microseconds)


def span(sessions) -> list:
    return [(min(x.started_at for x in sessions), max(x.ended_at for x in sessions))]


def test_presence_trace_figures(settings):
    _, sessions, _, _ = run("presence", settings, MONDAY_10)
    assert span(sessions) == [(at(500), at(3_012_600))]
    f = post_figures(sessions, "1001", "1002", "q-market", span(sessions))
    assert f.gaps == ((at(1_005_100), at(1_506_600)),)
    assert f.takeovers == ((at(503_800), at(1_005_100)),)
    c = f.coverage
    assert (c.business, c.covered) == (us(3_012_100), us(3_012_100 - 501_500))
    assert (c.gap_count, c.gap_time, c.longest_gap) == (1, us(501_500), us(501_500))
    assert (c.takeover_count, c.takeover_time) == (1, us(501_300))
    assert c.coverage_pct == 83.4                                         # 2.5106 / 3.0121
    a, b = f.agents["1001"], f.agents["1002"]
    assert (a.login, a.available, a.pauses, a.unreachable) == (us(3_012_100), us(2_009_300),
                                                               {"lunch": us(1_002_800)}, us(0))
    assert (b.login, b.available, b.pauses, b.unreachable) == (us(3_011_400), us(1_004_300),
                                                               {"meeting": us(2_007_100)}, us(501_800))


def test_a_noanswer_b_covers_trace_figures(settings):
    _, sessions, _, _ = run("a-noanswer-b-covers", settings, MONDAY_10)
    f = post_figures(sessions, "1003", "1004", "q-housing", span(sessions))
    assert f.gaps == ()
    assert f.takeovers == ((at(8_515_000), at(15_053_100)),)
    assert (f.coverage.coverage_pct, f.coverage.takeover_count, f.coverage.takeover_time) == (100.0, 1, us(6_538_100))
    assert f.agents["1003"].pauses == {"Auto-Pause": us(6_537_700)}
    assert f.agents["1004"].pauses == {}


def test_traces_over_the_real_business_day(settings):
    sessions = run("presence", settings, MONDAY_10)[1] + run("a-noanswer-b-covers", settings, MONDAY_10)[1]
    entries = {p["post"]: p for p in coverage.posts(DAY, settings, sessions)}
    market, housing = entries["market-1"], entries["housing-1"]
    assert {k: market[k] for k in ("queue", "a", "b", "a_name", "b_name", "department_name")} == {
        "queue": "q-market", "a": "1001", "b": "1002", "a_name": "张伟", "b_name": "王芳",
        "department_name": "区市场监管局"}
    # 330 business minutes: 09:00 - 10:00, the gap in the trace, after the trace to 11:30, 13:30 - 16:30
    assert {k: market[k] for k in ("business_minutes", "coverage_pct", "gap_count", "gap_minutes",
                                   "longest_gap_minutes", "b_takeovers", "b_takeover_minutes")} == {
        "business_minutes": 330.0, "coverage_pct": 0.0, "gap_count": 4, "gap_minutes": round(330 - 2.5106 / 60, 2),
        "longest_gap_minutes": 180.0, "b_takeovers": 1, "b_takeover_minutes": 0.01}
    assert [(g["start"], g["end"]) for g in market["gap_periods"]][1] == (
        "2026-11-23T10:00:01.005100+08:00", "2026-11-23T10:00:01.506600+08:00")
    assert market["agents"]["1002"]["pauses_by_reason"] == {"meeting": 0.03}
    assert (housing["gap_count"], housing["b_takeovers"], housing["b_takeover_minutes"]) == (3, 1, 0.11)
    assert housing["agents"]["1003"]["pauses_by_reason"] == {"Auto-Pause": 0.11}
    assert all(p["coverage_pct"] == 0.0 and p["gap_count"] == 2 for n, p in entries.items()
               if n not in ("market-1", "housing-1"))
    # the department roll-up: one post each here
    depts = coverage.department_figures(entries.values())
    assert depts["market"]["coverage_pct"] == 0.0 and depts["market"]["gap_count"] == 4
    assert depts["housing"]["post_count"] == 1 and depts["housing"]["b_takeover_minutes"] == 0.11


def test_department_roll_up_is_weighted_by_business_minutes():
    entries = [{"department": "d", "business_minutes": 330.0, "covered_minutes": 330.0, "gap_count": 0,
                "gap_minutes": 0.0, "longest_gap_minutes": 0.0, "b_takeovers": 1, "b_takeover_minutes": 5.0},
               {"department": "d", "business_minutes": 110.0, "covered_minutes": 0.0, "gap_count": 1,
                "gap_minutes": 110.0, "longest_gap_minutes": 110.0, "b_takeovers": 0, "b_takeover_minutes": 0.0}]
    assert coverage.department_figures(entries)["d"] == {
        "post_count": 2, "business_minutes": 440.0, "covered_minutes": 330.0, "coverage_pct": 75.0,
        "gap_count": 1, "gap_minutes": 110.0, "longest_gap_minutes": 110.0, "b_takeovers": 1,
        "b_takeover_minutes": 5.0, "unobserved_minutes": 0.0}


def test_daily_report_carries_posts(settings):
    sessions = run("presence", settings, MONDAY_10)[1]
    posts = coverage.posts(DAY, settings, sessions)
    report = daily.build(DAY, [], settings, posts=posts)
    assert report["posts"] == posts and "coverage" in report["definitions"]
    by_dept = {d["department"]: d for d in report["departments"]}
    assert set(by_dept) == {p.department for p in settings.posts}           # departments with posts appear
    assert (by_dept["market"]["gap_count"], by_dept["market"]["b_takeovers"], by_dept["market"]["offered"]) == (4, 1, 0)
    assert "AB岗在岗" in daily.render_table(report)
    assert "posts" not in daily.build(DAY, [], settings)                    # without posts: as before


def test_cli_report_has_posts(tmp_path):
    db = f"sqlite:///{tmp_path}/cli.db"
    cli = [sys.executable, "-m", "callcenter.cli"]
    subprocess.run(cli + ["replay", str(TRACES / "presence.jsonl"), "--at", MONDAY_10.isoformat(), "--db", db],
                   check=True, cwd=ROOT, capture_output=True)
    out = subprocess.run(cli + ["report", "daily", "--date", DAY.isoformat(), "--format", "json", "--db", db],
                         check=True, cwd=ROOT, capture_output=True, text=True).stdout
    report = json.loads(out)
    keys = {"post", "department", "department_name", "a", "b", "a_name", "b_name", "queue", "coverage_pct",
            "gap_count", "gap_minutes", "longest_gap_minutes", "b_takeovers", "b_takeover_minutes", "agents"}
    assert [p["post"] for p in report["posts"]] == [p["post"] for p in report["posts"] if keys <= set(p)]
    market = next(p for p in report["posts"] if p["post"] == "market-1")
    assert set(market["agents"]) == {"1001", "1002"}
    assert set(market["agents"]["1001"]) >= {"login_minutes", "pauses_by_reason"}
    dept = next(d for d in report["departments"] if d["department"] == "market")
    assert set(dept) >= {"coverage_pct", "gap_count", "gap_minutes", "longest_gap_minutes", "b_takeovers"}


async def test_coverage_api(settings, tmp_path):
    db = f"sqlite:///{tmp_path}/api.db"
    await replay(settings, db, [str(TRACES / "presence.jsonl")], MONDAY_10)
    app_obj = build(settings, db, FixedClock(t(10, 30)))
    await app_obj.start()
    # housing's A has been logged in since 09:00 and still is: only the live tracker knows
    member = Member("pbx1", "q-housing", "PJSIP/1003", "Agent A 1003", "1003", "PJSIP/1003", 0, t(9))
    app_obj.service.presence.members[("pbx1", "q-housing", "PJSIP/1003")] = member
    from tests.auth_helpers import bearer, grant
    office = await grant(app_obj, "office", "office")              # the service office sees every post
    client = TestClient(TestServer(await init_app(app_obj)), headers=bearer(office))
    await client.start_server()
    try:
        async with client.get("/api/coverage/daily", params={"date": "2026-11-23"}) as r:
            assert r.status == 200
            body = await r.json()
        assert body["date"] == "2026-11-23" and body["as_of"] == "2026-11-23T10:30:00+08:00"
        posts = {p["post"]: p for p in body["posts"]}
        # 09:00 - 10:30 so far; the service saw pbx1 only while the trace played (10:00:00.0005 -
        # 10:00:03.0126): the rest is unobserved, not a gap. The one gap is inside the trace
        market = posts["market-1"]
        assert (market["business_minutes"], market["gap_count"], market["b_takeovers"]) == (90.0, 1, 1)
        assert (market["unobserved_minutes"], market["coverage_pct"]) == (89.95, 83.4)
        assert (posts["housing-1"]["coverage_pct"], posts["housing-1"]["gap_count"]) == (100.0, 0)
        assert {d["department"] for d in body["departments"]} == {p.department for p in settings.posts}
        async with client.get("/api/coverage/daily", params={"department": "housing"}) as r:
            body = await r.json()
        assert [p["post"] for p in body["posts"]] == ["housing-1"] and body["date"] == "2026-11-23"
        for query, status, code in [({"date": "23/11/2026"}, 400, "invalid_parameter"),
                                    ({"day": "2026-11-23"}, 400, "unknown_parameters"),
                                    ({"department": "nope"}, 404, "not_found")]:
            async with client.get("/api/coverage/daily", params=query) as r:
                assert (r.status, (await r.json())["error"]) == (status, code)
    finally:
        await client.close()
        await app_obj.stop()
