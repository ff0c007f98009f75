"""The daily report: metric formulas, unmapped queues, business hours, CLI output."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

from callcenter.domain.metrics import MetricSettings, daily_figures
from callcenter.replay import replay
from callcenter.storage.store import Store
from reports import daily
from tests.conftest import MONDAY_10, ROOT, SHANGHAI, TRACES
from tests.scenario import run


def _report(records, settings, day=MONDAY_10.date()):
    return daily.build(day, records, settings)


def test_short_abandons_and_connect_rate(settings):
    records, *_ = run("abandon", settings, MONDAY_10)          # waits of 3 s and 6 s
    [edu] = [q for q in _report(records, settings)["queues"] if q["queue"] == "q-edu"]
    assert (edu["offered"], edu["abandoned"], edu["short_abandoned"], edu["connect_rate"]) == (2, 2, 1, 0.0)
    settings.thresholds.exclude_short_abandons = True
    [edu] = [q for q in _report(records, settings)["queues"] if q["queue"] == "q-edu"]
    assert edu["connect_rate"] == 0.0 and "short_abandoned" in _report(records, settings)["definitions"]["connect_rate"]


def test_service_level_and_departments(settings):
    records, *_ = run("load", settings, MONDAY_10)
    report = _report(records, settings)
    market = next(q for q in report["queues"] if q["queue"] == "q-market")
    assert market["department"] == "market" and market["department_name"] == "区市场监管局"
    assert market["connect_rate"] == round(market["answered"] / market["offered"], 4)
    levels = {s["seconds"]: s for s in market["service_level"]}
    assert set(levels) == {15, 60} and levels[15]["answered"] <= levels[60]["answered"] <= market["answered"]
    dept = next(d for d in report["departments"] if d["department"] == "market")
    assert dept["offered"] == market["offered"] and dept["name"] == "区市场监管局"
    assert report["totals"]["offered"] == sum(q["offered"] for q in report["queues"])


def test_transfer_counts_per_department_and_once_in_totals(settings):
    records, *_ = run("transfer", settings, MONDAY_10)
    report = _report(records, settings)
    assert {d["department"]: (d["offered"], d["answered"]) for d in report["departments"]} == \
        {"market": (1, 1), "edu": (1, 1)}
    assert (report["totals"]["offered"], report["totals"]["answered"]) == (1, 1)


def test_calls_outside_business_hours_are_after_hours_not_offered(settings):
    lunch = MONDAY_10.replace(hour=12)              # the 11:30-13:30 break
    records, *_ = run("basic", settings, lunch)
    [market] = _report(records, settings, lunch.date())["queues"]
    assert (market["offered"], market["after_hours"]) == (0, 4)
    saturday = MONDAY_10 - timedelta(days=2)
    records, *_ = run("ivr-hangup", settings, saturday)
    [market] = _report(records, settings, saturday.date())["queues"]
    assert (market["offered"], market["ivr_abandoned"], market["after_hours"]) == (0, 0, 2)


def test_ivr_abandon_and_after_hours_lines(settings):
    records, *_ = run("ivr-hangup", settings, MONDAY_10)
    records += run("afterhours", settings, MONDAY_10)[0]
    [market] = _report(records, settings)["queues"]
    assert (market["offered"], market["answered"], market["ivr_abandoned"], market["after_hours"]) == (1, 1, 1, 1)


async def test_unmapped_queue_is_reported_not_dropped(settings, sqlite_url):
    settings.departments = [d for d in settings.departments if d.id != "market"]
    settings.posts = [p for p in settings.posts if p.department != "market"]
    await replay(settings, sqlite_url, [str(TRACES / "basic.jsonl")], MONDAY_10)
    store = Store(sqlite_url)
    records = await store.calls_between(*daily.day_bounds(MONDAY_10.date(), SHANGHAI))
    await store.close()
    assert len(records) == 4 and all(r.stints[0].department is None for r in records)
    report = _report(records, settings)
    [market] = report["queues"]
    assert market["queue"] == "q-market" and market["department"] is None and market["offered"] == 4
    assert report["unmapped_queues"] == ["q-market"] and report["departments"] == []


def test_figures_are_pure(settings):
    records, *_ = run("basic", settings, MONDAY_10)
    figures = daily_figures(records, settings.directory(), lambda d, at: True, MetricSettings())
    assert figures.queues[("pbx1", "q-market")].counts["answered"] == 4


def test_cli_report_and_calls_list(tmp_path):
    db = f"sqlite:///{tmp_path}/cli.db"
    cli = [sys.executable, "-m", "callcenter.cli"]
    subprocess.run(cli + ["replay", str(TRACES / "transfer.jsonl"), "--at", MONDAY_10.isoformat(), "--db", db],
                   check=True, cwd=ROOT, capture_output=True)
    out = subprocess.run(cli + ["report", "daily", "--date", "2026-11-23", "--format", "json", "--db", db],
                         check=True, cwd=ROOT, capture_output=True, text=True).stdout
    report = json.loads(out)
    assert set(report) >= {"date", "departments", "queues"}
    for q in report["queues"]:
        assert set(q) >= {"queue", "pbx", "department", "offered", "answered", "abandoned", "short_abandoned",
                          "timed_out", "ivr_abandoned", "after_hours", "connect_rate"}
    table = subprocess.run(cli + ["report", "daily", "--date", "2026-11-23", "--db", db],
                           check=True, cwd=ROOT, capture_output=True, text=True).stdout
    assert "区市场监管局" in table and "接通率" in table
    calls = json.loads(subprocess.run(cli + ["calls", "list", "--date", "2026-11-23", "--format", "json", "--db", db],
                                      check=True, cwd=ROOT, capture_output=True, text=True).stdout)
    [call] = calls
    assert call["id"] == "1795347569.207" and call["outcome"] == "transferred"
    assert [s["agent_name"] for s in call["stints"]] == ["张伟", "陈静"]
    assert call["started_at"].endswith("+08:00")


async def test_report_gains_follow_up_figures(settings, db_url):
    await replay(settings, db_url, [str(TRACES / n) for n in ("abandon.jsonl", "callback.jsonl", "nobody.jsonl")],
                 MONDAY_10)
    store = Store(db_url)
    bounds = daily.day_bounds(MONDAY_10.date(), SHANGHAI)
    records, facts = await store.calls_between(*bounds), await store.task_facts(*bounds)
    await store.close()
    # judged two days later: the deadline (Tuesday 16:30) has passed for the tasks nobody reached
    report = daily.build(MONDAY_10.date(), records, settings, facts, MONDAY_10 + timedelta(days=2))
    [edu] = [q for q in report["queues"] if q["queue"] == "q-edu"]
    assert edu["tasks_created"] == 3                     # two abandons and one timeout
    assert edu["tasks_contacted_in_time"] == 1           # the answered callback
    assert edu["tasks_contacted_in_time_rate"] == round(1 / 3, 4)
    assert edu["tasks_overdue"] == 2
    assert edu["tasks_closed"] == {"callback_completed": 1}
    [dept] = [d for d in report["departments"] if d["department"] == "edu"]
    assert (dept["tasks_created"], dept["tasks_overdue"]) == (3, 2)
    assert report["totals"]["tasks_created"] == 3
