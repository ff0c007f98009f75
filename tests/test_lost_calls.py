"""Lost calls for the head dashboard, their CSV export, and the daily report over HTTP.

The database is the real traces load, afterhours, ivr-hangup and abandon replayed from Monday
23 Nov 10:00 (27 unanswered calls: abandoned, short abandons, timeouts, an after-hours call and an
IVR hang-up), each turned into a follow-up task by the service; the clock stands at 10:30.
"""
from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from callcenter.domain.records import CallRecord, Outcome, Stint, StintEnd
from callcenter.replay import replay
from callcenter.settings import load_settings
from callcenter.web.app import init_app
from callcenter.web.lost_api import CSV_COLUMNS, guard_cell
from tests.auth_helpers import bearer, grant
from tests.conftest import MONDAY_10, ROOT, trace_path
from tests.test_cases_api import build_app

TRACES = ("load", "afterhours", "ivr-hangup", "abandon")
USERS = {"head-edu": ("head", ["edu"], None), "head-all": ("head", ["edu", "housing", "market"], None),
         "office": ("office", [], None), "1005": ("agent", [], "1005")}


@pytest.fixture(scope="module")
def lost_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lost") / "callcenter.db"
    asyncio.run(replay(load_settings(ROOT / "config"), f"sqlite:///{path}",
                       [str(trace_path(name)) for name in TRACES], MONDAY_10))
    return path


@pytest.fixture
async def rig(settings, lost_db, tmp_path):
    copy = tmp_path / "callcenter.db"
    with closing(sqlite3.connect(lost_db)) as source, closing(sqlite3.connect(copy)) as target:
        source.backup(target)
    app_obj = build_app(settings, f"sqlite:///{copy}")
    await app_obj.start()
    client = TestClient(TestServer(await init_app(app_obj)))
    await client.start_server()
    headers = {user: bearer(await grant(app_obj, user, *spec)) for user, spec in USERS.items()}
    try:
        yield app_obj, client, headers
    finally:
        await client.close()
        await app_obj.stop()


async def lost(client, headers, **params) -> tuple[int, dict]:
    async with client.get("/api/lost-calls", params=params, headers=headers) as r:
        return r.status, await r.json()


async def download(client, headers, **params):
    async with client.get("/api/lost-calls.csv", params=params, headers=headers) as r:
        assert r.status == 200, await r.text()
        return r.headers, await r.read()


def parse(raw: bytes) -> list[list[str]]:
    assert raw.startswith(b"\xef\xbb\xbf")                     # the BOM: Excel reads UTF-8
    return list(csv.reader(io.StringIO(raw[3:].decode("utf-8"), newline="")))


async def test_a_head_sees_the_lost_calls_of_their_departments_each_with_its_task(rig):
    app_obj, client, headers = rig
    status, body = await lost(client, headers["head-all"])
    assert status == 200 and body["date"] == "2026-11-23"
    rows = body["lost_calls"]
    assert len(rows) == 27
    reasons = {(r["department"], r["reason"], r["short_abandon"]) for r in rows}
    assert reasons == {("edu", "abandoned", False), ("edu", "abandoned", True), ("housing", "abandoned", False),
                       ("housing", "abandoned", True), ("market", "abandoned", True), ("housing", "timed_out", False),
                       ("market", "after_hours", False), ("market", "ivr_abandoned", False)}
    assert [r["started_at"] for r in rows] == sorted(r["started_at"] for r in rows)
    for r in rows:
        task = r["task"]
        assert task["status"] == "open" and not task["overdue"] and task["attempts"] == 0
        assert task["deadline"] == "2026-11-24T08:30:00+00:00"       # 1 workday: Tuesday 16:30
        assert "*" not in r["caller_num"] and r["handled"] is False
    assert all(r["short_abandon"] == (r["wait_seconds"] < 5) for r in rows if r["reason"] == "abandoned")

    status, edu = await lost(client, headers["head-edu"])
    assert {r["department"] for r in edu["lost_calls"]} == {"edu"} and len(edu["lost_calls"]) == 10
    status, body = await lost(client, headers["head-edu"], department="housing")
    assert (status, body["error"]) == (403, "forbidden")

    # filters: reason, short abandons, a day without calls, the limit
    assert {r["reason"] for r in (await lost(client, headers["head-all"], reason="timed_out"))[1]["lost_calls"]} \
        == {"timed_out"}
    short = (await lost(client, headers["head-all"], reason="short_abandon"))[1]["lost_calls"]
    assert len(short) == 12 and all(r["short_abandon"] for r in short)
    assert (await lost(client, headers["head-all"], date="2026-11-24"))[1]["lost_calls"] == []
    assert len((await lost(client, headers["head-all"], limit="5"))[1]["lost_calls"]) == 5
    for bad in ({"reason": "hung_up"}, {"status": "closed"}, {"date": "23.11.2026"}, {"department": "<b>"}):
        status, body = await lost(client, headers["head-all"], **bad)
        assert (status, body["error"], body["parameter"]) == (400, "invalid_parameter", next(iter(bad))), body


async def test_a_handled_call_leaves_the_open_list_and_agents_are_refused(rig):
    app_obj, client, headers = rig
    _, body = await lost(client, headers["head-edu"])
    first = body["lost_calls"][0]
    await app_obj.followup.close(first["task"]["id"], "reached_resolved", "head-edu", "已回电")
    _, body = await lost(client, headers["head-edu"])
    assert first["call_id"] not in {r["call_id"] for r in body["lost_calls"]} and len(body["lost_calls"]) == 9
    _, body = await lost(client, headers["head-edu"], status="all")
    [closed] = [r for r in body["lost_calls"] if r["call_id"] == first["call_id"]]
    assert closed["handled"] and closed["task"]["status"] == "closed" and closed["task"]["closure"] == "reached_resolved"
    status, body = await lost(client, headers["1005"])
    assert (status, body["error"]) == (403, "forbidden")
    async with client.get("/api/lost-calls.csv", headers=headers["1005"]) as r:
        assert r.status == 403


async def test_the_office_sees_every_department_with_callers_numbers_masked(rig):
    app_obj, client, headers = rig
    _, body = await lost(client, headers["office"])
    rows = body["lost_calls"]
    assert len(rows) == 27 and all(r["caller_num"].startswith("139****") or r["caller_num"].startswith("136****")
                                   for r in rows)
    _, raw = await download(client, headers["office"])
    numbers = [row[1] for row in parse(raw)[1:]]
    assert len(numbers) == 27 and all("****" in n for n in numbers)


async def test_the_csv_opens_in_excel_masks_and_never_runs_a_formula(rig):
    app_obj, client, headers = rig
    at = MONDAY_10 + timedelta(minutes=20)
    hostile = [("+8613912349999", '=HYPERLINK("http://evil.example/","点我")'), ("13912348888", "@SUM(A1:A9)"),
               ("13912347777", "-2+3"), ("13912346666", "<script>alert(1)</script>")]
    records = []
    for n, (number, name) in enumerate(hostile):
        stint = Stint("q-edu", "edu", at, left_at=at + timedelta(seconds=30), end=StintEnd.ABANDONED)
        records.append(CallRecord("pbx1", f"hostile.{n}", f"hostile.{n}", number, name, "62000002", "edu", at,
                                  at + timedelta(seconds=31), Outcome.ABANDONED, stints=[stint]))
    await app_obj.store.save_calls(records)
    await app_obj.after_commit.catch_up()

    response_headers, raw = await download(client, headers["head-edu"], department="edu")
    assert response_headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response_headers["Content-Disposition"] == 'attachment; filename="lost-calls-2026-11-23-edu.csv"'
    table = parse(raw)
    assert table[0] == CSV_COLUMNS and table[0][:3] == ["来电时间", "来电号码", "主叫名称"]
    rows = {row[1].lstrip("'"): dict(zip(CSV_COLUMNS, row)) for row in table[1:]}
    assert len(rows) == 14
    assert rows["+8613912349999"]["来电号码"] == "'+8613912349999"
    assert rows["+8613912349999"]["主叫名称"] == "'" + hostile[0][1]
    assert rows["13912348888"]["主叫名称"] == "'@SUM(A1:A9)" and rows["13912347777"]["主叫名称"] == "'-2+3"
    assert rows["13912346666"]["主叫名称"] == "<script>alert(1)</script>"   # text, not a formula: as is
    assert not [c for row in table[1:] for c in row if c[:1] in "=+-@" and c]
    sample = rows["13912346666"]
    assert (sample["部门"], sample["队列"], sample["未接原因"], sample["短放弃"]) == ("区教育局", "q-edu", "排队放弃", "否")
    assert (sample["处理时限"], sample["是否超期"], sample["回访次数"], sample["处理情况"]) == \
        ("2026-11-24 16:30", "否", "0", "待回访")
    assert sample["来电时间"] == "2026-11-23 10:20:00" and sample["回访任务"].isdigit()
    # the same rows as the JSON, filters included
    _, body = await lost(client, headers["head-edu"], department="edu", reason="abandoned")
    _, raw = await download(client, headers["head-edu"], department="edu", reason="abandoned")
    assert len(parse(raw)) - 1 == len(body["lost_calls"]) == 14


def test_the_injection_guard():
    assert [guard_cell(v) for v in ("=1+1", "+1", "-1", "@x", "\tx", "\rx", "a=b", "", None, 12)] == \
        ["'=1+1", "'+1", "'-1", "'@x", "'\tx", "'\rx", "a=b", "", "", "12"]


# --- the daily report -----------------------------------------------------------------------

async def test_the_daily_report_for_a_head_and_the_office_as_json_and_html(rig):
    app_obj, client, headers = rig
    async with client.get("/api/reports/daily", params={"date": "2026-11-23"}, headers=headers["head-edu"]) as r:
        report = await r.json()
    assert r.status == 200 and report["scope"] == ["edu"]
    [edu] = report["departments"]
    assert (edu["department"], edu["abandoned"], edu["tasks_created"]) == ("edu", 10, 10)
    assert {q["department"] for q in report["queues"]} == {"edu"}
    async with client.get("/api/reports/daily", params={"date": "2026-11-23"}, headers=headers["office"]) as r:
        whole = await r.json()
    assert "scope" not in whole and whole["totals"]["abandoned"] == 22 and len(whole["departments"]) == 8

    async with client.get("/api/reports/daily", params={"date": "2026-11-23", "format": "html"},
                          headers=headers["head-edu"]) as r:
        assert r.status == 200 and r.content_type == "text/html" and r.charset == "utf-8"
        assert "default-src 'none'" in r.headers["Content-Security-Policy"]
        page = await r.text()
    assert '<html lang="zh-CN">' in page and "热线日报 2026-11-23" in page and "区教育局" in page
    assert "区市场监管局" not in page and "<td>10</td>" in page
    # a queue name the PBX sends (no department configured for it) is shown as text
    at = MONDAY_10 + timedelta(minutes=5)
    stint = Stint("<img src=x onerror=alert(1)>", None, at, left_at=at + timedelta(seconds=9), end=StintEnd.ABANDONED)
    await app_obj.store.save_calls([CallRecord("pbx1", "odd.1", "odd.1", "13912345678", "", "62000009", None, at,
                                               at + timedelta(seconds=10), Outcome.ABANDONED, stints=[stint])])
    async with client.get("/api/reports/daily", params={"format": "html"}, headers=headers["office"]) as r:
        page = await r.text()
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img" not in page and "合计" in page
    async with client.get("/api/reports/daily", params={"format": "pdf"}, headers=headers["office"]) as r:
        assert (r.status, (await r.json())["parameter"]) == (400, "format")
    async with client.get("/api/reports/daily", headers=headers["1005"]) as r:
        assert r.status == 403
