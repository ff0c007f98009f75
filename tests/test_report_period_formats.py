"""The week, month and quarter roll-ups as HTML, XLSX and CSV (reports/render_period.py) and through
GET /api/reports/period?format=html|xlsx|csv, on the story of tests/test_report_period.py whose
figures are worked out by hand there.

October 2026 (the month): 区市场监管局 4 offered, 3 answered (75 %), 3 cases due, 2 in time
(66.67 %); 区教育局 4 offered, 3 answered (75 %), 1 case due, none in time (0 %): the same connect
rate, ranked by resolution rate, market first. The hotline: 8 offered, 6 answered. With the
configured targets (connect rate 95 %, resolution rate 90 %) every rate misses. The fourth
quarter: both departments 60 % and 40 %, sharing rank 1. The agents over the month (and the
quarter: nothing after October): 张伟 (1001, market) 4 answered, 330 s of talk (82.5 s average),
logged in 86.5 h (86:30:00) with 45 minutes paused, 2 of 3 wrap-ups in time (66.67 %); 王芳 (1002,
market) logged in 42 h; 陈静 (1005, edu) 3 answered, 150 s, 2 h in, 20 minutes paused, 2 of 3;
杨磊 (1006, edu) 1 answered, 45 s, 1 of 1. The HTML's print check in Chromium is
tests/browser/test_report_period_html.py.
"""
from __future__ import annotations

import csv
import io
import json
import re
from datetime import date

import openpyxl
import pytest

from callcenter.settings import load_settings
from callcenter.storage.store import Store
from callcenter.web.period_api import for_departments
from reports import daily_notes, period
from reports.render_period import (HEADER, W, LABEL, RIGHT, filename, period_output, render_period_csv,
                                   render_period_html, render_period_xlsx)
from tests.auth_helpers import bearer, grant
from tests.conftest import ROOT, _in_thread
from tests.test_report_period import AGENTS_MONTH, NOW, by_id, store_story, story_app

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def build_reports(url: str) -> dict:
    settings = load_settings(ROOT / "config")
    store = Store(url)
    await store.migrate()
    await store_story(store)
    try:
        return {kind: await period.period_report(store, settings, kind, day, NOW)
                for kind, day in (("week", date(2026, 10, 8)), ("month", date(2026, 10, 20)),
                                  ("quarter", date(2026, 11, 15)))}
    finally:
        await store.close()


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict:
    """The story's week, month and quarter, built once (SQLite; the figures are the same on
    PostgreSQL: tests/test_report_period.py runs on both)."""
    path = tmp_path_factory.mktemp("period") / "story.db"
    return _in_thread(build_reports(f"sqlite:///{path}"))


def read_csv(text: str) -> list[dict]:
    assert text.startswith("\ufeff") and "\r\n" in text
    return list(csv.DictReader(io.StringIO(text[1:], newline="")))


def sheet(book, name: str) -> list[dict]:
    rows = list(book[name].iter_rows(values_only=True))
    return [dict(zip(rows[0], r)) for r in rows[1:]]


def test_the_json_has_the_targets_checks_and_queue_rows(reports):
    month = reports["month"]
    assert month["targets"] == daily_notes.targets(load_settings(ROOT / "config"))
    m, e = by_id(month)["market"], by_id(month)["edu"]
    assert m["checks"]["connect_rate"] == {"value": 0.75, "target": 0.95, "pass": False}
    assert m["checks"]["resolution_rate"] == {"value": 0.6667, "target": 0.9, "pass": False}
    assert e["checks"]["escalation_rate"]["pass"] is None          # no case closed: nothing to judge
    assert month["totals"]["checks"]["connect_rate"]["value"] == 0.75
    [queue] = m["queues"]
    assert (queue["queue"], queue["pbx"], queue["offered"], queue["answered"]) == ("q-market", "pbx1", 4, 3)
    assert queue["checks"]["connect_rate"]["pass"] is False and "resolution_rate" not in queue["checks"]
    assert by_id(month)["construction"]["queues"] == [] and month["unmapped_queues"] == []
    assert month["notes"][-1]["key"] == "checks"


def test_the_csv_rows_in_ranking_order_with_marks(reports):
    rows = read_csv(render_period_csv(reports["month"]))
    assert list(rows[0]) == HEADER
    departments = [r for r in rows if r["范围"] == "部门"]
    assert [r["部门"] for r in departments[:2]] == ["market", "edu"]
    market, edu = departments[:2]
    assert (market["周期"], market["开始"], market["结束"], market["名次"]) == ("月报", "2026-10-01", "2026-10-31", "1")
    assert (market["呼入(进队列)"], market["接通"], market["接通率"], market["解决率"]) == ("4", "3", "75.00%", "66.67%")
    assert (market["接通率达标"], market["解决率达标"], market["超期未办结"]) == ("未达标", "未达标", "0")
    assert market["排名说明"] == "接通率与区教育局相同，按解决率排序"
    assert (edu["名次"], edu["解决率"], edu["转12345占比"], edu["转12345占比达标"]) == ("2", "0.00%", "—", "—")
    assert all(r["名次"] == "—" and r["排名说明"] == "本期无呼入，不参与排名" for r in departments[2:])
    queues = [r for r in rows if r["范围"] == "队列"]
    assert [(q["队列"], q["PBX"], q["部门名称"], q["呼入(进队列)"]) for q in queues] == [
        ("q-market", "pbx1", "区市场监管局", "4"), ("q-edu", "pbx1", "区教育局", "4")]
    [total] = [r for r in rows if r["范围"] == "合计"]
    assert (total["部门名称"], total["呼入(进队列)"], total["接通"], total["接通率"]) == ("合计", "8", "6", "75.00%")
    assert all(r["截至"] == "" for r in rows)                       # the month has ended
    quarter = read_csv(render_period_csv(reports["quarter"]))
    assert [r["名次"] for r in quarter[:2]] == ["1", "1"] and {r["截至"] for r in quarter} == {NOW.isoformat()}


def test_the_csv_has_a_row_per_agent(reports):
    rows = read_csv(render_period_csv(reports["month"]))
    agents = {r["工号"]: r for r in rows if r["范围"] == "坐席"}
    assert list(agents) == [str(1001 + i) for i in range(16)]            # every configured agent, in order
    assert all(r["工号"] == "" for r in rows if r["范围"] != "坐席")
    a = agents["1001"]
    assert (a["姓名"], a["部门"], a["部门名称"], a["名次"], a["队列"]) == ("张伟", "market", "区市场监管局", "", "")
    assert (a["接通"], a["平均通话(秒)"], a["通话(秒)"], a["签入(秒)"], a["暂停(秒)"]) == ("4", "82.5", "330", "311400", "2700")
    assert (a["应小结"], a["及时小结"], a["小结及时率"]) == ("3", "2", "66.67%")
    assert (a["接通率"], a["呼入(进队列)"], a["接通率达标"], a["排名说明"]) == ("", "", "", "")
    for agent, (answered, talk, average, login, pause, due, done, rate) in AGENTS_MONTH.items():
        r = agents[agent]
        assert (float(r["接通"]), float(r["通话(秒)"]), float(r["签入(秒)"]), float(r["暂停(秒)"])) == (
            answered, talk, login, pause)
        assert (int(r["应小结"]), int(r["及时小结"])) == (due, done)
        assert r["平均通话(秒)"] == ("—" if average is None else f"{average:g}")
        assert r["小结及时率"] == ("—" if rate is None else f"{rate * 100:.2f}%")
    assert (agents["1003"]["接通"], agents["1003"]["签入(秒)"], agents["1003"]["小结及时率"]) == ("0", "0", "—")


def test_the_xlsx_sheets_read_back(reports):
    book = openpyxl.load_workbook(io.BytesIO(render_period_xlsx(reports["month"])))
    assert book.sheetnames == ["概况", "部门", "队列", "岗位", "坐席", "说明"]
    summary = {r["项目"]: (r["内容"], r["达标"]) for r in sheet(book, "概况")}
    assert summary["报表"][0] == "热线月报 2026年10月（2026-10-01 至 2026-10-31）"
    assert summary["范围"][0] == "全部部门" and summary["截至"][0] == "本期数据已完结"
    assert summary["目标：接通率"][0] == "≥ 95.0%" and summary["目标：转12345占比"][0] == "≤ 10.0%"
    assert summary["合计：接通率"] == (0.75, "未达标") and summary["合计：呼入(进队列)"][0] == 8
    departments = sheet(book, "部门")
    market, edu = departments[:2]
    assert (market["部门"], market["部门 ID"], market["名次"], market["接通率"], market["解决率"]) == (
        "区市场监管局", "market", 1, 0.75, 0.6667)
    assert (market["接通率达标"], market["排名说明"]) == ("未达标", "接通率与区教育局相同，按解决率排序")
    assert (edu["名次"], edu["解决率"], edu["转12345占比"]) == (2, 0, "—")
    assert departments[-1]["部门"] == "合计" and departments[-1]["呼入(进队列)"] == 8
    assert departments[2]["名次"] == "—"
    ws = book["部门"]
    header = [c.value for c in ws[1]]
    assert ws.cell(2, header.index("接通率") + 1).number_format == "0.0%" and ws.freeze_panes == "B2"
    queues = sheet(book, "队列")
    assert [(q["队列"], q["部门"], q["接通"]) for q in queues] == [("q-market", "区市场监管局", 3), ("q-edu", "区教育局", 3)]
    agents = {r["工号"]: r for r in sheet(book, "坐席")}
    assert len(agents) == 16 and (agents["1001"]["姓名"], agents["1001"]["部门"]) == ("张伟", "区市场监管局")
    for agent, expected in AGENTS_MONTH.items():
        r = agents[agent]
        assert tuple(r[k] for k in ("接通", "通话(秒)", "平均通话(秒)", "签入(秒)", "暂停(秒)", "应小结", "及时小结",
                                    "小结及时率")) == tuple("—" if v is None else v for v in expected), agent
    ws = book["坐席"]
    header = [c.value for c in ws[1]]
    assert ws.cell(2, header.index("小结及时率") + 1).number_format == "0.0%" and ws.freeze_panes == "B2"
    notes = {r["项目"]: r["说明"] for r in sheet(book, "说明")}
    assert "先按接通率从高到低" in notes["排名"] and "reports.targets" in notes["达标"]
    assert "不是每日数值的平均" in notes["坐席"]


def test_the_html_shows_the_figures_the_chart_and_the_ranking(reports):
    page = render_period_html(reports["month"])
    assert "<title>热线月报 2026年10月（2026-10-01 至 2026-10-31）</title>" in page
    assert "共 31 天，工作日 18 天" in page and "调休上班 10-10" in page and "本期数据已完结" in page
    assert page.count("<svg") == 1 and "<script" not in page
    ranking = page[page.index("<h2>部门排名</h2>"):page.index("<h2>按部门</h2>")]
    rows = re.findall(r"<tr><td>([^<]*)</td><td class=\"l\">([^<]*)</td>", ranking)
    assert rows[:2] == [("1", "区市场监管局"), ("2", "区教育局")] and rows[2][0] == "—"
    assert '75.0% <span class="mark">✗未达标</span>' in ranking and "66.7%" in ranking
    assert "接通率与区教育局相同，按解决率排序" in ranking
    # the chart: two connect bars at 75 %, a resolution bar at 66.67 %, the targets at 95 % and 90 %
    width = W - RIGHT - LABEL
    bars = re.findall(r'<rect class="(connect|resolution)" x="[\d.]+" y="[\d.]+" width="([\d.]+)"', page)
    assert (("connect", f"{width * 0.75:.1f}") in bars and ("resolution", f"{width * 0.6667:.1f}") in bars)
    assert f'<line class="target connect" x1="{LABEL + width * 0.95:.1f}"' in page
    assert f'<line class="target resolution" x1="{LABEL + width * 0.9:.1f}"' in page
    assert "接通率目标 ≥ 95%" in page and "75.0% ✗" in page
    assert '<tr class="total"><td>合计</td><td>8</td><td>6</td>' in page
    assert "q-market" in page and "超期未办结" in page
    quarter = render_period_html(reports["quarter"])
    assert "统计中，截至 2026-12-15 12:00，本期数据尚未完结" in quarter and "并列" in quarter


def test_the_html_has_the_agents_summed_over_the_period(reports):
    page = render_period_html(reports["month"])
    agents = page[page.index("<h2>按坐席</h2>"):page.index("<h2>说明</h2>")]
    rows = {m[0]: m[1:] for m in re.findall(
        r'<tr><td class="l">([^<]*)</td><td class="l">([^<]*)</td>\s*<td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>'
        r'\s*<td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>\s*<td>([^<]*)</td><td>([^<]*)</td></tr>', agents)}
    assert len(rows) == 16
    # department, answered, talk, average talk, login, pause, wrap-ups due, in time, compliance
    assert rows["张伟（1001）"] == ("区市场监管局", "4", "0:05:30", "82.5", "86:30:00", "0:45:00", "3", "2", "66.7%")
    assert rows["王芳（1002）"] == ("区市场监管局", "0", "0:00:00", "—", "42:00:00", "0:00:00", "0", "0", "—")
    assert rows["陈静（1005）"] == ("区教育局", "3", "0:02:30", "50", "2:00:00", "0:20:00", "3", "2", "66.7%")
    assert rows["杨磊（1006）"] == ("区教育局", "1", "0:00:45", "45", "0:00:00", "0:00:00", "1", "1", "100.0%")
    assert "不是每日数值的平均" in page                             # the note under 说明


def test_a_heads_copy_has_no_totals_and_keeps_its_rank(reports):
    mine = for_departments(reports["month"], ["edu"])
    page = render_period_html(mine)
    assert "区教育局" in page and '<tr class="total">' not in page and "范围：区教育局" in page
    assert "q-market" not in page and page.count(f'<rect class="connect" x="{LABEL:.1f}"') == 1
    assert "陈静（1005）" in page and "杨磊（1006）" in page and "张伟" not in page
    rows = read_csv(render_period_csv(mine))
    assert [(r["范围"], r["部门"], r["名次"], r["工号"]) for r in rows] == [
        ("部门", "edu", "2", ""), ("队列", "edu", "", ""), ("坐席", "edu", "", "1005"), ("坐席", "edu", "", "1006")]
    book = openpyxl.load_workbook(io.BytesIO(render_period_xlsx(mine)))
    assert [(r["部门"], r["名次"]) for r in sheet(book, "部门")] == [("区教育局", 2)]
    assert [(r["工号"], r["部门"], r["接通"]) for r in sheet(book, "坐席")] == [("1005", "区教育局", 3),
                                                                              ("1006", "区教育局", 1)]
    summary = {r["项目"]: r["内容"] for r in sheet(book, "概况")}
    assert summary["范围"] == "区教育局" and summary["区教育局：接通率"] == 0.75 and "合计：接通率" not in summary
    assert filename(mine, "csv") == "month-report-2026-10-01-edu.csv"


def test_text_is_escaped_and_guarded(reports):
    week = json.loads(json.dumps(reports["week"]))
    week["departments"][0]["name"] = "<b>=1+1</b>"
    week["ranking"] = [{**r, "name": "<b>=1+1</b>"} if r["department"] == week["departments"][0]["department"]
                       else r for r in week["ranking"]]
    page = render_period_html(week)
    assert "<b>=1+1</b>" not in page and "&lt;b&gt;=1+1&lt;/b&gt;" in page
    names = {r["部门名称"] for r in read_csv(render_period_csv(week))}
    assert "<b>=1+1</b>" in names
    week["departments"][0]["name"] = "=HYPERLINK(1)"
    names = {r["部门名称"] for r in read_csv(render_period_csv(week))}
    assert "'=HYPERLINK(1)" in names
    book = openpyxl.load_workbook(io.BytesIO(render_period_xlsx(week)))
    assert "'=HYPERLINK(1)" in {r["部门"] for r in sheet(book, "部门")}
    week["agents"][0]["name"] = "<b>=1+1</b>"                          # an agent's name from the configuration
    assert "&lt;b&gt;=1+1&lt;/b&gt;（1001）" in render_period_html(week)
    assert [r["姓名"] for r in read_csv(render_period_csv(week)) if r["工号"] == "1001"] == ["<b>=1+1</b>"]
    week["agents"][0]["name"] = "=HYPERLINK(1)"
    assert [r["姓名"] for r in read_csv(render_period_csv(week)) if r["工号"] == "1001"] == ["'=HYPERLINK(1)"]
    book = openpyxl.load_workbook(io.BytesIO(render_period_xlsx(week)))
    assert sheet(book, "坐席")[0]["姓名"] == "'=HYPERLINK(1)"


def test_period_output_gives_every_format(reports):
    week = reports["week"]
    assert json.loads(period_output(week, "json")) == json.loads(json.dumps(week))
    assert period_output(week, "table") == period.render_table(week)
    assert period_output(week, "xlsx")[:2] == b"PK" and period_output(week, "csv").startswith("\ufeff")
    assert period_output(week, "html").startswith("<!doctype html>")
    assert filename(week, "xlsx") == "week-report-2026-10-05.xlsx"
    with pytest.raises(ValueError, match="json, table, html, xlsx, csv"):
        period_output(week, "pdf")


# --- the REST API ------------------------------------------------------------------------------------

async def test_the_api_serves_each_format(settings, db_url):
    async with story_app(settings, db_url) as (app_obj, client):
        await _serves_each_format(app_obj, client)


async def _serves_each_format(app_obj, client):
    async def fetch(headers, **params):
        query = {"kind": "month", "date": "2026-10-20", **params}
        async with client.get("/api/reports/period", params=query, headers=headers) as r:
            return r.status, r.headers, await r.read()
    head_edu = bearer(await grant(app_obj, "head-edu", "head", ["edu"]))
    office = bearer(await grant(app_obj, "office", "office"))
    status, h, raw = await fetch(office, format="xlsx")
    assert (status, h["Content-Type"]) == (200, XLSX) and h["Cache-Control"] == "no-store"
    assert h["Content-Disposition"] == 'attachment; filename="month-report-2026-10-01.xlsx"'
    book = openpyxl.load_workbook(io.BytesIO(raw))
    assert [(r["部门"], r["名次"], r["接通率"]) for r in sheet(book, "部门")][:2] == [
        ("区市场监管局", 1, 0.75), ("区教育局", 2, 0.75)]
    status, h, raw = await fetch(office, format="csv")
    assert (status, h["Content-Type"]) == (200, "text/csv; charset=utf-8") and raw.startswith(b"\xef\xbb\xbf")
    assert h["Content-Disposition"] == 'attachment; filename="month-report-2026-10-01.csv"'
    [total] = [r for r in read_csv(raw.decode("utf-8")) if r["范围"] == "合计"]
    assert total["呼入(进队列)"] == "8"
    status, h, raw = await fetch(head_edu, format="html")
    assert (status, h["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert h["Content-Disposition"] == 'inline; filename="month-report-2026-10-01-edu.html"'
    assert h["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'"
    assert h["X-Content-Type-Options"] == "nosniff"
    page = raw.decode("utf-8")
    assert "热线月报" in page and "q-edu" in page and "q-market" not in page and '<tr class="total">' not in page
    status, h, raw = await fetch(head_edu, format="csv")
    assert {r["部门"] for r in read_csv(raw.decode("utf-8"))} == {"edu"}
    assert [r["工号"] for r in read_csv(raw.decode("utf-8")) if r["范围"] == "坐席"] == ["1005", "1006"]
    status, h, raw = await fetch(head_edu, format="xlsx")
    agents = sheet(openpyxl.load_workbook(io.BytesIO(raw)), "坐席")
    assert [(r["工号"], r["接通"], r["小结及时率"]) for r in agents] == [("1005", 3, 0.6667), ("1006", 1, 1)]
    status, _, raw = await fetch(head_edu)
    assert status == 200 and json.loads(raw)["departments"][0]["queues"][0]["queue"] == "q-edu"
    status, _, raw = await fetch(office, format="pdf")
    assert status == 400 and json.loads(raw)["parameter"] == "format"
    status, _, _ = await fetch(head_edu, format="xlsx", department="market")
    assert status == 403

