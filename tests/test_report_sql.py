"""The daily report's SQL aggregates (callcenter/storage/report_queries.py) give exactly the
figures of the reference Python path (`daily_figures` over the day's call records): on the real
traces replayed at chosen times, and on randomised days (waits on the thresholds to the
microsecond, transfers, IVR hang-ups, after-hours, stints after midnight, departments with
hours of their own, weekends); the report command opens the database read-only. `_compare`
checks the whole report built from either path, so every figure (calls by hour, wait bands,
longest wait, causes, checks, agents' answers, lost calls) agrees too; tests/test_report_content.py
adds a cut lost-call list with ties."""
from __future__ import annotations

import dataclasses
import json
import random
import sqlite3
import subprocess
import sys
from datetime import datetime, time, timedelta

import pytest

from callcenter.domain.metrics import DailyFigures, daily_figures, micros_at_most, micros_below
from callcenter.domain.records import CallRecord, Outcome, Stint, StintEnd
from callcenter.settings import Window
from callcenter.storage.report_queries import call_figures, sql_call_figures
from callcenter.storage.store import Store
from callcenter.workdays import build_calendar
from reports import daily
from tests.conftest import MONDAY_10, ROOT, SHANGHAI, TRACES
from tests.scenario import run

TRACE_NAMES = sorted(p.stem for p in TRACES.glob("*.queue_log"))
SPECIAL_WAITS = [0, 4.999999, 5, 5.000001, 14.999999, 15, 15.000001, 30.5, 59.999999, 60, 60.000001, 0.000001]


def _own_hours(settings) -> None:
    """Two departments with hours of their own (three hours profiles in all) and odd thresholds."""
    by_id = {d.id: d for d in settings.departments}
    by_id["edu"].business_hours = [Window(start=time(8, 0), end=time(20, 0))]
    by_id["health"].business_hours = [Window(start=time(0, 0), end=time(12, 0)),
                                      Window(start=time(12, 30), end=time(23, 59, 59))]
    settings.thresholds.short_abandon_seconds = 5
    settings.thresholds.service_level_seconds = [15, 30.5, 60]


def _snapshot(figures: DailyFigures) -> dict:
    def one(f):
        return (dict(f.counts), {k: v for k, v in f.answered_within.items() if v}, f.wait_us, f.talk_us)
    return {"queues": {k: one(f) for k, f in figures.queues.items()},
            "departments": dict(figures.queue_department), "totals": one(figures.totals)}


async def _compare(store, settings, day, expect_sql: bool = True) -> dict:
    """Both paths over the stored calls of `day`; returns the report built from the SQL figures."""
    ms = daily.metric_settings(settings)
    bounds = daily.day_bounds(day, SHANGHAI)
    records = await store.calls_between(*bounds)
    reference = daily_figures(records, settings.directory(), daily.opening_hours(settings), ms)
    sql = await sql_call_figures(store, settings, build_calendar(settings), *bounds, ms)
    if expect_sql:
        assert sql is not None, "the SQL path fell back"
        assert _snapshot(sql) == _snapshot(reference)
    either = await call_figures(store, settings, build_calendar(settings), *bounds, ms)
    assert _snapshot(either) == _snapshot(reference)
    report = daily.build(day, [], settings, figures=either)
    assert report == daily.build(day, records, settings)
    return report


# --- the real traces -------------------------------------------------------------------------------

async def test_real_traces_at_chosen_times_agree(settings, db_url):
    """Every trace, replayed through the domain at four moments (a working morning, the lunch
    break, a Saturday, just before midnight), all stored in one database."""
    _own_hours(settings)
    moments = [MONDAY_10, MONDAY_10.replace(hour=12), MONDAY_10 - timedelta(days=2),
               MONDAY_10.replace(hour=23, minute=59, second=30)]
    store = Store(db_url)
    try:
        await store.migrate()
        stored = 0
        for k, at in enumerate(moments):
            for name in TRACE_NAMES:
                records = run(name, settings, at)[0]
                stored += await store.save_calls([dataclasses.replace(r, id=f"{k}-{r.id}") for r in records])
        assert stored > 100
        for day in {m.date() for m in moments} | {MONDAY_10.date() + timedelta(days=1)}:
            report = await _compare(store, settings, day)
            if day == MONDAY_10.date():
                assert report["totals"]["offered"] > 50 and report["totals"]["after_hours"] > 0
                assert report["totals"]["ivr_abandoned"] > 0 and report["totals"]["answered"] > 0
    finally:
        await store.close()


# --- randomised days ---------------------------------------------------------------------------------

def _random_calls(rng: random.Random, day_start: datetime, n: int, settings) -> list[CallRecord]:
    directory = settings.directory()
    queues = [q for qs in directory.department_queues.values() for _, q in qs] + ["q-unmapped"]
    departments = [None] + [d.id for d in settings.departments]
    out = []
    for i in range(n):
        started = day_start + timedelta(microseconds=rng.randrange(-3_600_000_000, 90_000_000_000))
        if rng.random() < 0.01:
            started = day_start + timedelta(hours=rng.choice([9, 11.5, 13.5, 16.5]))   # on a window's edge
        stints = []
        at = started + timedelta(seconds=rng.uniform(0, 40))
        if rng.random() < 0.2:                                       # a fraction of a second SQLite would round
            at = at.replace(microsecond=rng.choice([999500, 999501, 999999, 0, 500, 499]))
        for seq in range(rng.choice([0, 0, 1, 1, 1, 1, 2, 3]) if rng.random() > 0.02 else 0):
            if rng.random() < 0.03:
                at += timedelta(hours=rng.uniform(1, 20))          # a long call: into the next day
            queue = rng.choice(queues)
            wait = rng.choice(SPECIAL_WAITS) if rng.random() < 0.4 else rng.uniform(0, 200)
            end = rng.choice(list(StintEnd) + [StintEnd.ANSWERED, StintEnd.ABANDONED, None])
            waited = at + timedelta(seconds=wait)
            if rng.random() < 0.2:
                waited = waited.replace(microsecond=rng.choice([999500, 999999, 0, 1]))
            answered_at = waited if end is StintEnd.ANSWERED and rng.random() > 0.05 else None
            left_at = None if rng.random() < 0.05 else waited + timedelta(seconds=rng.uniform(0, 300))
            if rng.random() < 0.02:
                answered_at = at - timedelta(seconds=1)             # clocks disagree: a negative wait is 0
            talk = rng.choice([None, 0.0, round(rng.uniform(0, 900), rng.choice([0, 1, 3, 6])),
                               rng.uniform(0, 900), 0.0000005, 12.5])
            stints.append(Stint(queue=queue, department=directory.department_of_queue("pbx1", queue),
                                entered_at=at, left_at=left_at, answered_at=answered_at, end=end,
                                talk_seconds=talk))
            at = (left_at or waited) + timedelta(seconds=1)
        outcome = rng.choice(list(Outcome))
        out.append(CallRecord(
            pbx=rng.choice(["pbx1", "pbx1", "pbx2"]), id=f"r{i}", linkedid=f"r{i}", caller_num=f"138{i:08d}",
            caller_name="", hotline=rng.choice(["12345", "", "88886666"]), department=rng.choice(departments),
            started_at=started, ended_at=at + timedelta(seconds=5), outcome=outcome,
            ivr_queue=rng.choice(["", "", "q-edu", "q-health", "q-unmapped"]) if not stints else "",
            after_hours=rng.random() < 0.08, stints=stints))
    return out


@pytest.mark.parametrize("seed", [1, 2])
async def test_randomised_days_agree(settings, db_url, seed):
    _own_hours(settings)
    rng = random.Random(seed)
    monday = datetime.combine(MONDAY_10.date(), time(0), SHANGHAI)
    store = Store(db_url)
    try:
        await store.migrate()
        for k, day_start in enumerate([monday, monday - timedelta(days=2), monday + timedelta(days=1)]):
            calls = _random_calls(rng, day_start, 700, settings)
            await store.save_calls([dataclasses.replace(c, id=f"{k}-{c.id}") for c in calls])
        for offset in (-2, -1, 0, 1, 2):
            await _compare(store, settings, monday.date() + timedelta(days=offset))
    finally:
        await store.close()


async def test_a_queue_with_two_departments_gets_the_first_one(settings, db_url):
    """Which department a queue's row gets depends on call order (the first stint's): grouped
    counts cannot say, so that row's first department is looked up on its own."""
    records = run("transfer", settings, MONDAY_10)[0]
    moved = [dataclasses.replace(r, id=f"x-{r.id}", started_at=r.started_at + timedelta(minutes=5),
                                 stints=[dataclasses.replace(s, department="edu") for s in r.stints])
             for r in records]
    store = Store(db_url)
    try:
        await store.migrate()
        await store.save_calls(records + moved)
        report = await _compare(store, settings, MONDAY_10.date())
        assert {q["queue"]: q["department"] for q in report["queues"]} == {"q-market": "market", "q-edu": "edu"}
        await store.save_calls([dataclasses.replace(r, id=f"y-{r.id}", started_at=r.started_at - timedelta(minutes=10))
                                for r in moved])
        report = await _compare(store, settings, MONDAY_10.date())
        assert {q["queue"]: q["department"] for q in report["queues"]} == {"q-market": "edu", "q-edu": "edu"}
    finally:
        await store.close()


def test_microsecond_thresholds_match_float_comparisons():
    for seconds in (0, 0.1, 2.5, 4.999999, 5, 15, 30.5, 60, 1e-7, 123.4567891):
        at_most, below = micros_at_most(seconds), micros_below(seconds)
        for m in range(max(0, at_most - 3), at_most + 4):
            assert (m <= at_most) == (m / 1e6 <= seconds)
            assert (m <= below) == (m / 1e6 < seconds)


# --- the command: read-only, never migrates ------------------------------------------------------------

CLI = [sys.executable, "-m", "callcenter.cli"]


def _report_cmd(db: str, *extra: str):
    return subprocess.run(CLI + ["report", "daily", "--date", "2026-11-23", "--db", db, *extra],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_report_command_reads_without_the_write_lock(tmp_path):
    path = tmp_path / "r.db"
    db = f"sqlite:///{path}"
    subprocess.run(CLI + ["replay", str(TRACES / "transfer.jsonl"), "--at", MONDAY_10.isoformat(), "--db", db],
                   check=True, capture_output=True, cwd=ROOT, timeout=60)
    writer = sqlite3.connect(path, timeout=0)
    writer.execute("BEGIN IMMEDIATE")                       # another process holds the write lock
    writer.execute("UPDATE calls SET caller_name = caller_name")
    try:
        out = _report_cmd(db, "--format", "json")
    finally:
        writer.rollback()
        writer.close()
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert (report["totals"]["offered"], report["totals"]["answered"]) == (1, 1)


def test_report_command_refuses_an_old_schema_and_a_missing_file(tmp_path):
    path = tmp_path / "old.db"
    db = f"sqlite:///{path}"
    subprocess.run(CLI + ["replay", str(TRACES / "basic.jsonl"), "--at", MONDAY_10.isoformat(), "--db", db],
                   check=True, capture_output=True, cwd=ROOT, timeout=60)
    con = sqlite3.connect(path)
    con.execute("UPDATE alembic_version SET version_num = '0009'")
    con.commit()
    con.close()
    before = path.read_bytes()
    out = _report_cmd(db)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "revision 0009" in out.stderr and "never migrates" in out.stderr
    con = sqlite3.connect(path)
    assert con.execute("SELECT version_num FROM alembic_version").fetchall() == [("0009",)]
    con.close()
    assert path.read_bytes() == before                     # nothing written
    missing = tmp_path / "missing.db"
    out = _report_cmd(f"sqlite:///{missing}")
    assert out.returncode == 1 and not missing.exists()
    assert out.stderr.strip().splitlines()[-1] == (
        f"callcenter: error: database sqlite:///{missing}: "
        "OperationalError: (sqlite3.OperationalError) unable to open database file")


# --- follow-up tasks and cases ------------------------------------------------------------------------

def _task_and_case_rows(rng: random.Random, day_start: datetime, n: int):
    edges = [day_start, day_start + timedelta(days=1), day_start - timedelta(microseconds=1),
             day_start + timedelta(days=1, microseconds=-1)]

    def moment():
        if rng.random() < 0.15:
            return rng.choice(edges)
        return day_start + timedelta(seconds=rng.uniform(-3 * 86400, 3 * 86400))
    tasks, cases = [], []
    for i in range(n):
        missed = moment()
        deadline = missed + timedelta(hours=rng.uniform(1, 60)) if rng.random() > 0.1 else moment()
        contacted = rng.choice([None, deadline, deadline + timedelta(microseconds=1), moment()])
        closed = rng.choice([None, moment(), contacted])
        tasks.append({"caller_num": f"139{i:08d}", "department": rng.choice(["edu", "market", "x"]),
                      "pbx": rng.choice(["pbx1", "pbx2"]), "queue": rng.choice([None, "q-edu", "q-market"]),
                      "status": "closed" if closed else rng.choice(["open", "closed"]), "reason": "abandoned",
                      "created_at": missed, "first_missed_at": missed, "last_missed_at": missed, "deadline": deadline,
                      "assigned_via": "pool", "contacted_at": contacted, "closed_at": closed,
                      "closure": rng.choice([None, "", "reached", "unreachable"]) if closed else None})
        opened = moment()
        deadline = rng.choice([None, opened + timedelta(days=rng.uniform(0, 4)), moment()])
        status = rng.choice(["open", "resolved", "escalated", "out_of_scope"])
        closed = None if status == "open" and rng.random() < 0.8 else rng.choice([moment(), deadline, opened])
        cases.append({"caller_num": f"137{i:08d}", "department": rng.choice(["edu", "market", "health"]),
                      "pbx": "pbx1", "status": status, "opened_at": opened, "deadline": deadline, "closed_at": closed,
                      "resolved_first_contact": rng.random() < 0.3, "knowledge_gap": rng.random() < 0.1})
    return tasks, cases


@pytest.mark.parametrize("seed", [3, 4])
async def test_task_and_case_aggregates_agree(settings, db_url, seed):
    from sqlalchemy import insert

    from callcenter.domain.metrics import case_figures, task_figures
    from callcenter.storage import tables as t
    from callcenter.storage.report_queries import case_counts, task_groups
    rng = random.Random(seed)
    monday = datetime.combine(MONDAY_10.date(), time(0), SHANGHAI)
    store = Store(db_url)
    try:
        await store.migrate()
        tasks, cases = _task_and_case_rows(rng, monday, 600)
        async with store.begin() as conn:
            await conn.execute(insert(t.tasks), tasks)
            await conn.execute(insert(t.cases), cases)
        for day in (monday.date(), monday.date() + timedelta(days=1)):
            start, end = daily.day_bounds(day, SHANGHAI)
            for now in (start + timedelta(hours=10), end, end + timedelta(days=3),
                        start + timedelta(days=1, microseconds=-1)):
                want = task_figures(await store.task_facts(start, end), start, end, now)
                got = await task_groups(store, start, end, now)
                assert {k: v.as_dict() for k, v in got.items()} == {k: v.as_dict() for k, v in want.items()}
                assert sum(v.created for v in want.values()) > 10
                pending = {"edu": 2, "office": 1}
                want = case_figures(await store.case_facts(start, end), pending, start, end, now, 0.1)
                report = daily.build(day, [], settings, now=now, pending_wrapups=pending,
                                     case_counts=await case_counts(store, start, end, now))
                expected = daily.build(day, [], settings, now=now, pending_wrapups=pending,
                                       cases=await store.case_facts(start, end))
                assert report == expected
                assert {d["department"] for d in report["departments"]} >= set(want)
                assert sum(v["cases_due"] for v in want.values()) > 5
    finally:
        await store.close()
