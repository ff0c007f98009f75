"""The daily report's formats: XLSX (read back with openpyxl), CSV (parsed back), HTML (escaping,
every contract key or "—"), `callcenter report daily --format ... --out`, and the REST formats.

The report is `reports.daily.build` over the real traces load, abandon, afterhours, ivr-hangup and
transfer (fed through the domain from Monday 23 Nov 10:00); contract keys the build does not give
yet are filled in by `contract` (from the report's own figures), never over real ones.
"""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from copy import deepcopy
from datetime import timedelta

import openpyxl
import pytest

from markupsafe import escape as jinja_escape

from reports import daily
from reports.render_csv import CAUSES, CHECKED, FIGURES, HEADER, TITLES, check, render_csv, value
from reports.render_html import render_html
from reports.render_xlsx import render_xlsx
from tests.conftest import MONDAY_10, ROOT, TRACES
from tests.scenario import run

HOSTILE = "<script>alert('x')</script>&\"科"
TARGETS = {"connect_rate": 0.9, "service_level_15": 0.8, "service_level_60": 0.95, "resolution_rate": 0.9,
           "escalation_rate_max": 0.1}


def real_report(settings) -> dict:
    records = []
    for name in ("load", "abandon", "afterhours", "ivr-hangup", "transfer"):
        records += run(name, settings, MONDAY_10)[0]
    return daily.build(MONDAY_10.date(), records, settings)


def _checks(entry: dict, targets: dict) -> dict:
    out = {}
    for key in ("connect_rate", "service_level_15", "service_level_60", "resolution_rate"):
        v = value(entry, key)
        out[key] = {"value": v, "target": targets[key], "pass": None if v is None else v >= targets[key]}
    return out


def contract(report: dict) -> dict:
    """The report with the contract's keys the build does not give (yet) filled in by hand."""
    r = deepcopy(report)
    r.setdefault("title", f"热线日报 {r['date']}")
    r.setdefault("in_progress", True)
    r.setdefault("as_of", (MONDAY_10 + timedelta(hours=4, minutes=5)).isoformat())
    r.setdefault("generated_at", (MONDAY_10 + timedelta(hours=4, minutes=5)).isoformat())
    r.setdefault("targets", TARGETS)
    for entry in r["departments"] + r["queues"] + [r["totals"]]:
        entry.setdefault("checks", _checks(entry, r["targets"]))
        entry.setdefault("unanswered_by_cause", {k: entry[k] for k in ("abandoned", "timed_out", "no_agent")})
    r.setdefault("notes", [{"key": "connect_rate", "title": "接通率", "text": "接通 / 呼入"},
                           {"key": "totals", "title": "合计", "text": "每通来电只计一次（按最后一段排队），不等于各行之和"}])
    r.setdefault("agents", [{"agent": "1001", "name": "张伟", "department": "market", "answered": 4,
                             "talk_seconds": 3725, "login_seconds": 14400, "pause_seconds": 600,
                             "wrapup_compliance": 0.75}])
    r.setdefault("lost_calls", [{"call_id": "1795347580.221", "at": "2026-11-23T02:00:00.727000+00:00",
                                 "caller": "139****0003", "department": "housing", "queue": "q-housing",
                                 "cause": "abandoned", "wait_seconds": 1.5, "task_status": "open",
                                 "callback_status": "未回拨"}])
    r.setdefault("trend", [{"date": (MONDAY_10.date() - timedelta(days=29 - i)).isoformat(),
                            "connect_rate": None if i in (5, 6) else 0.6 + i / 100,
                            "resolution_rate": None if i in (5, 6) else 0.9 - i / 200} for i in range(30)])
    return r


@pytest.fixture
def report(settings):
    return contract(real_report(settings))


def test_xlsx_reads_back_with_the_json_values(report):
    book = openpyxl.load_workbook(io.BytesIO(render_xlsx(report)))
    assert book.sheetnames == ["部门", "队列", "坐席", "岗位", "未接来电", "说明"]
    sheet = book["部门"]
    header = [c.value for c in sheet[1]]
    assert sheet.freeze_panes == "B2" and header[:3] == ["部门", "部门 ID", TITLES["offered"]]
    rows = {row[1]: dict(zip(header, row)) for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert set(rows) == {d["department"] for d in report["departments"]} | {None}
    for d in report["departments"] + [report["totals"]]:
        row = rows[d.get("department")]
        for key, title, _ in FIGURES:
            v = value(d, key)
            assert row[title] == ("—" if v is None else v), (d.get("department"), key)
        for key in CHECKED:
            verdict = check(d, key)
            assert row[TITLES[key] + "达标"] == {True: "达标", False: "未达标", None: "—"}[verdict]
    assert rows[None]["部门"] == "合计" and rows[None][TITLES["offered"]] == report["totals"]["offered"] == 40
    pct = sheet.cell(2, header.index(TITLES["connect_rate"]) + 1)
    assert pct.number_format == "0.0%" and sheet.column_dimensions["A"].width >= 8
    queues = list(book["队列"].iter_rows(min_row=2, values_only=True))
    assert sorted(q[0] for q in queues) == sorted(q["queue"] for q in report["queues"])
    agents = list(book["坐席"].iter_rows(min_row=2, values_only=True))
    first = report["agents"][0]
    assert len(agents) == len(report["agents"]) and agents[0][:4] == tuple(
        first[k] for k in ("agent", "name", "department", "answered"))
    assert agents[0][7] == ("—" if first["wrapup_compliance"] is None else first["wrapup_compliance"])
    lost = list(book["未接来电"].iter_rows(min_row=2, values_only=True))
    assert [row[1] for row in lost] == [c["caller"] for c in report["lost_calls"]]
    assert "****" in lost[0][1] and {row[4] for row in lost} <= set(CAUSES.values()) | {"—"}
    notes = dict(book["说明"].iter_rows(min_row=2, values_only=True))
    assert {n["title"]: n["text"] for n in report["notes"]}.items() <= notes.items() and "合计" in notes
    assert notes["目标：接通率"] == f"≥ {report['targets']['connect_rate'] * 100:.1f}%"
    assert notes["截至"] == (report["as_of"] if report["in_progress"] else "当日数据已完结")


def test_csv_parses_back_with_a_bom_and_a_scope_column(report):
    text = render_csv(report)
    assert text.startswith("\ufeff")
    table = list(csv.reader(io.StringIO(text[1:], newline="")))
    assert table[0] == HEADER
    rows = [dict(zip(HEADER, row)) for row in table[1:]]
    assert [r["范围"] for r in rows] == (["部门"] * len(report["departments"]) + ["队列"] * len(report["queues"])
                                         + ["合计"])
    edu = next(r for r in rows if r["范围"] == "部门" and r["部门"] == "edu")
    dept = next(d for d in report["departments"] if d["department"] == "edu")
    assert int(edu[TITLES["offered"]]) == dept["offered"] and float(edu[TITLES["connect_rate"]].rstrip("%")) / 100 == pytest.approx(
        dept["connect_rate"], abs=1e-9)
    assert float(edu[TITLES["average_wait_seconds"]]) == dept["average_wait_seconds"]
    assert edu[TITLES["connect_rate"] + "达标"] == ("达标" if dept["checks"]["connect_rate"]["pass"] else "未达标")
    assert rows[-1]["部门名称"] == "合计" and int(rows[-1][TITLES["offered"]]) == report["totals"]["offered"]
    report["departments"][0]["name"] = "=HYPERLINK(\"x\")"
    guarded = list(csv.reader(io.StringIO(render_csv(report)[1:], newline="")))
    assert guarded[1][3] == "'=HYPERLINK(\"x\")"


def test_html_shows_every_contract_key_and_escapes_hostile_names(report):
    report["departments"][0]["name"] = HOSTILE
    report["agents"][0]["name"] = HOSTILE
    report.update(in_progress=True, as_of=(MONDAY_10 + timedelta(hours=4, minutes=5)).isoformat())
    html = render_html(report)
    assert html.startswith("<!doctype html>") and '<html lang="zh-CN">' in html
    assert "<script" not in html and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&#34;科" in html
    assert "截至 14:05，当日数据尚未完结" in html
    assert html.count("<svg") == 3 and "<polyline" in html and "src=" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert "@page { size: A4" in html and "display: table-header-group" in html
    assert "未达标" in html and "合计" in html and f"≥ {report['targets']['connect_rate'] * 100:.1f}%" in html
    assert all(str(jinja_escape(n["text"])) in html for n in report["notes"])
    talk = report["agents"][0]["talk_seconds"]
    assert f"{talk // 3600:.0f}:{talk % 3600 // 60:02.0f}:{talk % 60:02.0f}" in html     # the agent's talk time
    # without the contract's additions: the same page, "—" where a key is missing
    bare = {k: v for k, v in report.items() if k not in ("targets", "notes", "agents", "lost_calls", "trend",
                                                         "as_of", "in_progress", "generated_at")}
    for entry in bare["departments"]:
        entry.pop("checks"), entry.pop("calls_by_hour", None)
    page = render_html(bare)
    assert "尚未完结" not in page and "截至：—" in page and "<td>—</td>" in page and page.count("<svg") == 2


def test_a_heads_report_has_no_totals_row_and_charts_its_departments(report):
    two = report["departments"][:2]
    html = render_html({**report, "scope": [d["department"] for d in two], "departments": two})
    assert 'class="total"' not in html and "范围：" + "、".join(d["name"] for d in two) in html
    offered = sum(h["offered"] for d in two for h in d["calls_by_hour"] if h["hour"] == 10)
    assert offered and f"<title>10时 呼入 {offered}</title>" in html


def test_a_finished_day_says_so(report):
    report.update(in_progress=False, as_of=None)
    html = render_html(report)
    assert "当日数据已完结" in html and "尚未完结" not in html


# --- the command -------------------------------------------------------------------------------

CLI = [sys.executable, "-m", "callcenter.cli"]


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    db = f"sqlite:///{tmp_path_factory.mktemp('formats')}/cli.db"
    subprocess.run(CLI + ["replay", str(TRACES / "load.jsonl"), str(TRACES / "abandon.jsonl"),
                          "--at", MONDAY_10.isoformat(), "--db", db], check=True, cwd=ROOT, capture_output=True)
    return db


def cli(*args, cwd=ROOT):
    return subprocess.run(CLI + ["report", "daily", "--date", "2026-11-23", "--config", str(ROOT / "config"), *args],
                          cwd=cwd, capture_output=True)


def test_the_command_writes_each_format(replayed, tmp_path):
    as_json = json.loads(cli("--format", "json", "--db", replayed).stdout)
    out = tmp_path / "r.xlsx"
    done = cli("--format", "xlsx", "--out", str(out), "--db", replayed)
    assert done.returncode == 0 and str(out) in done.stdout.decode()
    sheet = openpyxl.load_workbook(out)["部门"]
    header = [c.value for c in sheet[1]]
    offered = {row[1]: row[header.index(TITLES["offered"])] for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert offered == {**{d["department"]: d["offered"] for d in as_json["departments"]},
                       None: as_json["totals"]["offered"]}
    default = cli("--format", "xlsx", "--db", replayed, cwd=tmp_path)     # binary never to a terminal
    assert default.returncode == 0 and (tmp_path / "daily-report-2026-11-23.xlsx").read_bytes()[:2] == b"PK"
    piped = cli("--format", "xlsx", "--out", "-", "--db", replayed)          # into a pipe: allowed
    assert piped.returncode == 0 and piped.stdout[:2] == b"PK"
    html = cli("--format", "html", "--db", replayed).stdout.decode()
    assert "热线日报" in html and "区教育局" in html and html.count("<svg") >= 2
    cli("--format", "csv", "--out", str(tmp_path / "r.csv"), "--db", replayed)
    assert (tmp_path / "r.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    bad = cli("--format", "csv", "--out", str(tmp_path / "missing" / "r.csv"), "--db", replayed)
    assert bad.returncode == 2 and bad.stderr.decode().startswith("callcenter: --out: cannot write")
    assert "Traceback" not in bad.stderr.decode() and not (tmp_path / "missing").exists()


def test_the_period_commands_write_each_format(replayed, tmp_path):
    """`report week|month|quarter --format ... [--out]` as `report daily` (reports/render_period.py)."""
    def period_cli(kind, *args, cwd=ROOT):
        return subprocess.run(CLI + ["report", kind, "--date", "2026-11-23", "--config", str(ROOT / "config"),
                                     "--db", replayed, *args], cwd=cwd, capture_output=True)
    as_json = json.loads(period_cli("month", "--format", "json").stdout)
    offered = as_json["totals"]["offered"]
    assert offered > 0
    default = period_cli("month", "--format", "xlsx", cwd=tmp_path)           # binary never to a terminal
    assert default.returncode == 0
    book = openpyxl.load_workbook(tmp_path / "month-report-2026-11-01.xlsx")
    assert any(offered in row for sheet in book for row in sheet.iter_rows(values_only=True))
    piped = period_cli("week", "--format", "xlsx", "--out", "-")
    assert piped.returncode == 0 and piped.stdout[:2] == b"PK"
    html = period_cli("quarter", "--format", "html").stdout.decode()
    assert "热线季报" in html and "<svg" in html and "区教育局" in html
    assert period_cli("week", "--format", "csv", "--out", str(tmp_path / "w.csv")).returncode == 0
    assert (tmp_path / "w.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert "热线月报" in period_cli("month").stdout.decode()                  # the table, as before
    bad = period_cli("month", "--format", "csv", "--out", str(tmp_path / "missing" / "m.csv"))
    assert bad.returncode == 2 and bad.stderr.decode().startswith("callcenter: --out: cannot write")


# --- the REST API (the rig of tests/test_lost_calls.py: load, afterhours, ivr-hangup, abandon) ---

from tests import test_lost_calls  # noqa: E402

lost_db, rig = test_lost_calls.lost_db, test_lost_calls.rig         # the fixtures

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def fetch(client, headers, **params):
    async with client.get("/api/reports/daily", params={"date": "2026-11-23", **params}, headers=headers) as r:
        return r.status, r.headers, await r.read()


async def test_the_api_serves_each_format_scoped_to_a_head(rig):
    app_obj, client, headers = rig
    status, _, raw = await fetch(client, headers["head-edu"])
    assert status == 200
    as_json = json.loads(raw)
    status, h, raw = await fetch(client, headers["head-edu"], format="xlsx")
    assert (status, h["Content-Type"]) == (200, XLSX)
    assert h["Content-Disposition"] == 'attachment; filename="daily-report-2026-11-23-edu.xlsx"'
    book = openpyxl.load_workbook(io.BytesIO(raw))
    rows = list(book["部门"].iter_rows(min_row=2, values_only=True))
    assert [r[:3] for r in rows] == [("区教育局", "edu", as_json["departments"][0]["offered"])]   # no 合计
    assert {r[2] for r in book["队列"].iter_rows(min_row=2, values_only=True)} == {"区教育局"}
    status, h, raw = await fetch(client, headers["head-edu"], format="csv")
    assert (status, h["Content-Type"]) == (200, "text/csv; charset=utf-8") and raw.startswith(b"\xef\xbb\xbf")
    assert h["Content-Disposition"] == 'attachment; filename="daily-report-2026-11-23-edu.csv"'
    table = list(csv.reader(io.StringIO(raw[3:].decode("utf-8"), newline="")))
    assert {row[2] for row in table[1:]} == {"edu"} and "合计" not in {row[1] for row in table[1:]}
    status, h, raw = await fetch(client, headers["head-edu"], format="html")
    assert (status, h["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert h["Content-Disposition"] == 'inline; filename="daily-report-2026-11-23-edu.html"'
    page = raw.decode("utf-8")
    assert "区教育局" in page and "区市场监管局" not in page and "<svg" in page
    # the office: every department and the 合计 row
    status, h, raw = await fetch(client, headers["office"], format="csv")
    assert h["Content-Disposition"] == 'attachment; filename="daily-report-2026-11-23.csv"'
    table = list(csv.reader(io.StringIO(raw[3:].decode("utf-8"), newline="")))
    [total] = [row for row in table[1:] if row[1] == "合计"]
    assert int(total[HEADER.index(TITLES["offered"])]) == json.loads((await fetch(client, headers["office"]))[2])["totals"]["offered"]
    status, _, raw = await fetch(client, headers["office"], format="pdf")
    assert status == 400 and json.loads(raw)["parameter"] == "format"
