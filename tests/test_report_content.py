"""The daily report's content for a department head (issue 13): stories with known answers
(real traces replayed at chosen times, follow-up and case actions in the database) for short
abandons, transfers between departments, after-hours, holidays and make-up workdays; targets and
checks from configuration; the lost calls with their callback status; the agents; a day in
progress; the zh-CN notes and table."""
from __future__ import annotations

import dataclasses
import random
import shutil
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update

from callcenter.replay import replay
from callcenter.settings import ConfigError, load_settings
from callcenter.storage import tables as t
from callcenter.storage.report_queries import daily_report_inputs
from callcenter.storage.store import Store
from reports import daily
from tests.conftest import MONDAY_10, ROOT, SHANGHAI, TRACES
from tests.scenario import run

HOLIDAY = datetime(2026, 10, 1, 10, 0, tzinfo=SHANGHAI)      # National Day, a Thursday
MAKEUP = datetime(2026, 9, 20, 10, 0, tzinfo=SHANGHAI)       # a Sunday made a working day (调休)


def _report(records, settings, at=MONDAY_10, **kw):
    return daily.build(at.date(), records, settings, **kw)


def _dept(report, department):
    return next(d for d in report["departments"] if d["department"] == department)


def test_short_abandons_are_part_of_abandons_and_split_by_cause(settings):
    records, *_ = run("abandon", settings, MONDAY_10)          # waits of 3 s and 6 s on q-edu
    report = _report(records, settings)
    edu = _dept(report, "edu")
    assert (edu["offered"], edu["abandoned"], edu["short_abandoned"]) == (2, 2, 1)
    assert edu["unanswered_by_cause"] == {"abandoned": 1, "short_abandoned": 1, "timed_out": 0, "no_agent": 0,
                                          "unknown": 0, "ivr_abandoned": 0}
    assert 5 <= edu["longest_wait_seconds"] < 7 and edu["average_wait_seconds"] is None
    assert [b["answered"] for b in edu["wait_bands"]] == [0, 0, 0, 0]
    ten = edu["calls_by_hour"][10]
    assert (ten["hour"], ten["offered"], ten["answered"], ten["abandoned"]) == (10, 2, 0, 2)
    assert sum(h["offered"] for h in edu["calls_by_hour"]) == 2 and len(edu["calls_by_hour"]) == 24
    lost = report["lost_calls"]
    assert [(c["cause"], c["department"], c["queue"]) for c in lost] == [("abandoned", "edu", "q-edu")] * 2
    short, long_ = sorted(lost, key=lambda c: c["wait_seconds"])
    assert short["wait_seconds"] < 5 <= long_["wait_seconds"] == edu["longest_wait_seconds"]
    assert (short["short_abandon"], long_["short_abandon"]) == (True, False)
    assert all("*" in c["caller"] for c in lost if c["caller"])
    assert edu["checks"]["connect_rate"] == {"value": 0.0, "target": 0.95, "pass": False}
    titles = {n["key"]: n for n in report["notes"]}
    assert "包含短放弃" in titles["abandoned"]["text"] and "已包含在“放弃”内" in titles["short_abandoned"]["text"]


def test_transfer_between_departments_and_the_totals_note(settings):
    records, *_ = run("transfer", settings, MONDAY_10)
    report = _report(records, settings)
    market, edu = _dept(report, "market"), _dept(report, "edu")
    assert (market["offered"], market["answered"], edu["offered"], edu["answered"]) == (1, 1, 1, 1)
    totals = report["totals"]
    assert (totals["offered"], totals["answered"]) == (1, 1)             # each call once
    assert sum(d["offered"] for d in report["departments"]) == 2          # so not the sum of the rows
    assert totals["wait_bands"][0] == {"band": "0-15", "from": 0, "to": 15, "answered": 1}
    assert totals["wait_bands"][3] == {"band": "60+", "from": 60, "to": None, "answered": 0}
    assert report["lost_calls"] == []
    note = next(n for n in report["notes"] if n["key"] == "totals")
    assert note["title"] == "合计" and "合计不等于各行相加" in note["text"]
    assert {a["agent"]: a["answered"] for a in report["agents"] if a["answered"]} == {"1001": 1, "1005": 1}


@pytest.mark.parametrize("at, offered, after_hours", [
    (MONDAY_10, 2, 0),                        # a workday
    (HOLIDAY, 0, 2),                          # a statutory holiday on a Thursday
    (MAKEUP, 2, 0),                           # a Sunday that is a working day
    (MONDAY_10.replace(hour=12), 0, 2),       # the lunch break
])
def test_holidays_make_up_workdays_and_lunch(settings, at, offered, after_hours):
    records, *_ = run("abandon", settings, at)
    edu = _dept(_report(records, settings, at), "edu")
    assert (edu["offered"], edu["after_hours"]) == (offered, after_hours)
    assert sum(h["offered"] for h in edu["calls_by_hour"]) == offered
    assert len(_report(records, settings, at)["lost_calls"]) == 2           # lost either way


def test_after_hours_and_ivr_hangups_are_not_offered(settings):
    records = run("afterhours", settings, MONDAY_10)[0] + run("ivr-hangup", settings, MONDAY_10)[0]
    report = _report(records, settings)
    market = _dept(report, "market")
    assert (market["offered"], market["answered"], market["ivr_abandoned"], market["after_hours"]) == (1, 1, 1, 1)
    assert market["unanswered_by_cause"]["ivr_abandoned"] == 1
    assert sorted(c["cause"] for c in report["lost_calls"]) == ["abandoned_ivr", "after_hours"]
    text = {n["key"]: n["text"] for n in report["notes"]}
    assert "不计入呼入" in text["offered"] and "不计入呼入" in text["ivr_abandoned"]
    assert "无人登录" in text["no_agent"]


def test_targets_come_from_configuration(settings):
    settings.reports.targets.connect_rate = 0.5
    settings.reports.targets.service_level_15 = 1.0
    records, *_ = run("load", settings, MONDAY_10)
    report = _report(records, settings)
    assert report["targets"] == {"connect_rate": 0.5, "service_level_15": 1.0, "service_level_60": 0.95,
                                 "resolution_rate": 0.9, "escalation_rate_max": settings.cases.escalation_target}
    for entry in report["departments"] + report["queues"] + [report["totals"]]:
        check = entry["checks"]["connect_rate"]
        assert check["target"] == 0.5
        assert check["pass"] is (None if entry["connect_rate"] is None else entry["connect_rate"] >= 0.5)
        level = next(s["rate"] for s in entry["service_level"] if s["seconds"] == 15)
        assert entry["checks"]["service_level_15"]["value"] == level
    assert any(e["checks"]["connect_rate"]["pass"] is False for e in report["queues"])
    assert "resolution_rate" in report["departments"][0]["checks"] and "resolution_rate" not in \
        report["queues"][0]["checks"]


def test_reports_section_errors_name_file_and_key(tmp_path):
    conf = tmp_path / "config"
    shutil.copytree(ROOT / "config", conf)
    (conf / "reports.yaml").write_text("reports:\n  targets:\n    connect_rate: 1.5\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_settings(conf)
    assert "reports.yaml" in str(exc.value) and "connect_rate" in str(exc.value)
    (conf / "reports.yaml").write_text("reports:\n  targets:\n    resolution_rate: 0.8\n", encoding="utf-8")
    assert load_settings(conf).reports.targets.resolution_rate == 0.8


def test_sections_are_merged_and_a_finished_day_is_final(settings):
    records, *_ = run("basic", settings, MONDAY_10)
    report = daily.build(MONDAY_10.date(), records, settings, now=MONDAY_10 + timedelta(days=1),
                         sections={"ivr": {"departments": []}, "trend": [{"date": "2026-11-23"}]})
    assert report["ivr"] == {"departments": []} and report["trend"] == [{"date": "2026-11-23"}]
    assert report["in_progress"] is False and report["as_of"] is None
    assert report["generated_at"] == "2026-11-24T10:00:00+08:00"
    assert report["title"] == "政务服务热线日报 2026-11-23"


def test_table_shows_the_new_figures_in_chinese(settings):
    records = run("load", settings, MONDAY_10)[0] + run("abandon", settings, MONDAY_10)[0]
    report = daily.build(MONDAY_10.date(), records, settings, now=MONDAY_10 + timedelta(hours=1))
    assert report["in_progress"] is True and report["as_of"] == "2026-11-23T11:00:00+08:00"
    table = daily.render_table(report)
    for words in ("截至 11:00，当日尚未结束", "放弃(含短放弃)", "其中短放弃", "15秒接通率", "0-15秒", "60秒以上",
                  "未达标", "七、当日未接来电", "五、分时段", "说明", "合计不等于各行相加"):
        assert words in table, words
    assert "口径：接通率 = answered" not in table


# --- from the database: lost calls' callbacks, agents, wrap-ups, a day in progress --------------

async def _inputs(db_url, settings, day, now):
    store = Store(db_url, read_only=True)
    try:
        return await daily_report_inputs(store, settings, day, now)
    finally:
        await store.close()


async def test_lost_calls_carry_their_callback_status(settings, db_url):
    await replay(settings, db_url, [str(TRACES / n) for n in ("abandon.jsonl", "callback.jsonl", "nobody.jsonl")],
                 MONDAY_10)
    later = MONDAY_10 + timedelta(days=2)          # past Tuesday 16:30, the 1-workday deadline
    report = daily.build(MONDAY_10.date(), [], settings, **await _inputs(db_url, settings, MONDAY_10.date(), later))
    edu = _dept(report, "edu")
    lost = [c for c in report["lost_calls"] if c["department"] == "edu"]
    assert sorted(c["cause"] for c in lost) == ["abandoned", "abandoned", "timed_out"]
    # one miss per task here: as many contacted in time / overdue as the task figures say
    statuses = [c["callback_status"] for c in lost]
    assert statuses.count("contacted_in_time") == edu["tasks_contacted_in_time"] == 1
    assert statuses.count("overdue") == edu["tasks_overdue"] == 2
    assert all(c["task_status"] in ("open", "closed") for c in lost)
    early = MONDAY_10 + timedelta(hours=1)
    report = daily.build(MONDAY_10.date(), [], settings, **await _inputs(db_url, settings, MONDAY_10.date(), early))
    assert report["in_progress"] is True and report["as_of"].startswith("2026-11-23T11:00")
    assert "overdue" not in [c["callback_status"] for c in report["lost_calls"]]


async def test_callback_status_when_the_day_is_counted_from_records(settings, db_url):
    """A stint entered days after its call makes the SQL counts give way to the records: the lost
    calls still get their callback status."""
    await replay(settings, db_url, [str(TRACES / n) for n in ("abandon.jsonl", "nobody.jsonl")], MONDAY_10)
    later = MONDAY_10 + timedelta(days=2)
    before = daily.build(MONDAY_10.date(), [], settings, **await _inputs(db_url, settings, MONDAY_10.date(), later))
    records, *_ = run("basic", settings, MONDAY_10)
    odd = dataclasses.replace(records[0], id="odd-1", stints=[dataclasses.replace(
        records[0].stints[0], entered_at=MONDAY_10 + timedelta(days=3))])
    store = Store(db_url)
    try:
        await store.save_calls([odd])
    finally:
        await store.close()
    from callcenter.storage.report_queries import sql_call_figures
    from callcenter.workdays import build_calendar
    store = Store(db_url, read_only=True)
    try:
        assert await sql_call_figures(store, settings, build_calendar(settings),
                                      *daily.day_bounds(MONDAY_10.date(), SHANGHAI),
                                      daily.metric_settings(settings)) is None       # counted from records
    finally:
        await store.close()
    after = daily.build(MONDAY_10.date(), [], settings, **await _inputs(db_url, settings, MONDAY_10.date(), later))
    assert [(c["call_id"], c["callback_status"]) for c in after["lost_calls"]] == \
        [(c["call_id"], c["callback_status"]) for c in before["lost_calls"]]
    assert {c["callback_status"] for c in after["lost_calls"]} <= {"overdue", "no_task_short_abandon"}
    assert len(after["lost_calls"]) == 3


async def test_agents_login_split_at_midnight_and_wrapup_compliance(settings, db_url):
    await replay(settings, db_url, [str(TRACES / "basic.jsonl")], MONDAY_10)
    sunday_22 = MONDAY_10.replace(hour=22) - timedelta(days=1)
    row = {"pbx": "pbx1", "agent": "1003", "interface": "PJSIP/1003", "member_name": "", "queue": "q-housing",
           "reason": "", "reconciled": False}
    store = Store(db_url)
    try:
        async with store.begin() as conn:
            await conn.execute(insert(t.agent_sessions), [
                {**row, "kind": "login", "started_at": sunday_22, "ended_at": sunday_22 + timedelta(hours=4)},
                {**row, "kind": "login", "queue": "q-market", "started_at": sunday_22 + timedelta(hours=1),
                 "ended_at": sunday_22 + timedelta(hours=3)},                   # overlaps: counted once
                {**row, "kind": "pause", "reason": "lunch", "started_at": sunday_22 + timedelta(hours=3),
                 "ended_at": sunday_22 + timedelta(hours=3, minutes=30)}])
            calls = (await conn.execute(select(t.case_calls.c.call_id, t.case_calls.c.answered_at, t.case_calls.c.agent)
                                        .order_by(t.case_calls.c.answered_at))).all()
            assert len(calls) == 4
            for (call_id, answered, _), minutes in zip(calls, (2, 9, 30)):           # the fourth: never
                await conn.execute(update(t.case_calls).where(t.case_calls.c.call_id == call_id).values(
                    disposition="resolved", disposed_at=answered + timedelta(minutes=minutes)))
    finally:
        await store.close()
    now = MONDAY_10 + timedelta(days=1)
    report = daily.build(MONDAY_10.date(), [], settings, **await _inputs(db_url, settings, MONDAY_10.date(), now))
    agents = {a["agent"]: a for a in report["agents"]}
    assert (agents["1003"]["login_seconds"], agents["1003"]["pause_seconds"]) == (2 * 3600, 1800)
    sunday = daily.build(sunday_22.date(), [], settings, **await _inputs(db_url, settings, sunday_22.date(), now))
    assert {a["agent"]: a for a in sunday["agents"]}["1003"]["login_seconds"] == 2 * 3600
    done = {}
    for (call_id, answered, agent), minutes in zip(calls, (2, 9, 30, None)):
        due, ok = done.get(agent, (0, 0))
        done[agent] = (due + 1, ok + (minutes is not None and minutes <= settings.cases.wrapup_minutes))
    for agent, (due, ok) in done.items():
        assert (agents[agent]["wrapups_due"], agents[agent]["wrapups_in_time"]) == (due, ok)
        assert agents[agent]["wrapup_compliance"] == round(ok / due, 4)
    assert sum(a["answered"] for a in report["agents"]) == 4
    assert sum(a["talk_seconds"] for a in report["agents"]) > 0
    assert agents["1003"]["answered"] == 0 and agents["1003"]["name"]


# --- the SQL path agrees with the reference on the new figures --------------------------------

async def test_sql_lost_calls_and_agents_agree_with_records(settings, db_url):
    from callcenter.domain.metrics import daily_figures
    from callcenter.storage.report_queries import sql_call_figures
    from callcenter.workdays import build_calendar
    from tests.test_report_sql import _own_hours, _random_calls
    _own_hours(settings)
    settings.reports.lost_calls_per_department = 7                # the list is cut: which ones must agree
    rng = random.Random(11)
    monday = datetime.combine(MONDAY_10.date(), datetime.min.time(), SHANGHAI)
    store = Store(db_url)
    try:
        await store.migrate()
        calls = _random_calls(rng, monday, 900, settings)
        for call in calls:
            for stint in call.stints:
                stint.agent = rng.choice(["1001", "1002", "1005", None])
        calls += [dataclasses.replace(c, id=f"tie-{c.id}", started_at=monday + timedelta(hours=10))
                  for c in calls[:60]]                             # ties on the start time
        await store.save_calls(calls)
        for day in (monday.date(), monday.date() + timedelta(days=1)):
            bounds = daily.day_bounds(day, SHANGHAI)
            ms = daily.metric_settings(settings)
            records = await store.calls_between(*bounds)
            want = daily_figures(records, settings.directory(), daily.opening_hours(settings), ms, SHANGHAI, 7)
            got = await sql_call_figures(store, settings, build_calendar(settings), *bounds, ms)
            assert got is not None and got.lost == want.lost and got.agents == want.agents
            if day == monday.date():
                assert len(want.lost) > 20 and len(want.agents) >= 1
                assert max(sum(c.department == d for c in want.lost) for d in {c.department for c in want.lost}) == 7
            for key, f in want.queues.items():
                assert (got.queues[key].hours, got.queues[key].bands, got.queues[key].longest_wait_us) == \
                    (f.hours, f.bands, f.longest_wait_us)
            assert daily.build(day, [], settings, figures=got) == daily.build(day, records, settings)
    finally:
        await store.close()


def test_day_bounds_are_whole_local_days():
    start, end = daily.day_bounds(date(2026, 11, 23), SHANGHAI)
    assert (end - start) == timedelta(days=1) and start.hour == 0
