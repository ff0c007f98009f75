"""The week, month and quarter roll-ups (reports/period.py) as a printable zh-CN HTML page (A4),
an Excel workbook and a CSV table, and `period_output`, the one entry the command line calls for
any --format (json, table, html, xlsx, csv).

They follow the daily report's renderers and reuse their parts: the figure catalogue, cell
formats, pass/miss marks and formula guard (reports/render_csv.py), the CSS, table cells and
chart axis styles (reports/templates/daily.css, cells.html, charts.html), the targets row, the
key-figure boxes and clock formatting (reports/render_html.py) and the sheet writer
(reports/render_xlsx.py). What is the period's own: the departments in ranking order with their
名次 and tie note, a bar chart of each department's connect rate and resolution rate against
their targets, the 超期未办结 figure, the queue rows under each department, and the agents' rows
summed over the period (the daily report's 坐席 columns, reports/render_xlsx.py `AGENTS`, with the
average talk time and the wrap-ups due and done in time beside the compliance they give).

A head's scoped report (``scope``) has no 合计 row (the totals are the whole hotline's), as in
the daily report.
"""
from __future__ import annotations

import csv
import io
import json

from openpyxl import Workbook
from openpyxl.styles import Alignment

from .period import KIND_ZH, render_table
from .render_csv import (CALLS, CASES, CHECKED, COVERAGE, FOLLOWUP, MISSING, SERVICE, TITLES, _cell, check,
                         fmt, guard, mark, value)
from .render_html import ENV, _clock, _kpis, _stamp, _targets
from .render_xlsx import AGENTS as DAILY_AGENTS
from .render_xlsx import POSTS as DAILY_POSTS
from .render_xlsx import _sheet
from .text import clip

FORMATS = ("json", "table", "html", "xlsx", "csv")
PERIOD_CASES = CASES + [("cases_overdue", "超期未办结", "n")]
FIGURES = CALLS + SERVICE + FOLLOWUP + PERIOD_CASES + COVERAGE
PERIOD_TITLES = {key: title for key, title, _ in FIGURES}
CHECK_HEAD = [TITLES[key] + "达标" for key in CHECKED]
POSTS = [p for p in DAILY_POSTS if p[0] not in ("department_name", "a_name", "b_name")]
# the daily report's 坐席 figures (answered, talk, login, pause, compliance), with the average talk
# time and the wrap-up counts the compliance is worked out from
_AGENT = {key: (title, kind) for key, title, kind in DAILY_AGENTS}
AGENT_FIGURES = [(key, *(_AGENT.get(key) or extra)) for key, extra in (
    ("answered", None), ("talk_seconds", None), ("average_talk_seconds", (TITLES["average_talk_seconds"], "s")),
    ("login_seconds", None), ("pause_seconds", None), ("wrapups_due", ("应小结", "n")),
    ("wrapups_in_time", ("及时小结", "n")), ("wrapup_compliance", None))]


def period_output(report: dict, fmt: str) -> str | bytes:
    """The report in `fmt`: a str (json, table, html, csv) or the XLSX workbook's bytes."""
    if fmt == "json":
        return json.dumps(report, ensure_ascii=False, indent=2)
    if fmt == "table":
        return render_table(report)
    if fmt == "html":
        return render_period_html(report)
    if fmt == "xlsx":
        return render_period_xlsx(report)
    if fmt == "csv":
        return render_period_csv(report)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")


def filename(report: dict, fmt: str) -> str:
    """e.g. ``month-report-2026-10-01.xlsx``; a head's copy ends with its departments."""
    scope = "-".join(report.get("scope") or [])
    return f"{report['kind']}-report-{report['start']}{'-' + scope if scope else ''}.{fmt}"


def ranked(report: dict) -> list[tuple[dict | None, dict]]:
    """(ranking entry, department entry) in ranking order; departments missing from the ranking
    (none in a report period.py built) follow it unranked."""
    by_id = {d["department"]: d for d in report.get("departments") or []}
    out = [(r, by_id[r["department"]]) for r in report.get("ranking") or [] if r["department"] in by_id]
    seen = {d["department"] for _, d in out}
    return out + [(None, d) for d in report.get("departments") or [] if d["department"] not in seen]


def _queues(report: dict) -> list[dict]:
    """The queue rows of every department (ranking order), each with its department's name."""
    return [{**q, "department": d["department"], "department_name": d.get("name")}
            for _, d in ranked(report) for q in d.get("queues") or []]


def _span(report: dict) -> str:
    """共 N 天，工作日 M 天（节假日 …；调休上班 …）"""
    extra = []
    if report.get("holidays"):
        extra.append("节假日 " + "、".join(d[5:] for d in report["holidays"]))
    if report.get("makeup_workdays"):
        extra.append("调休上班 " + "、".join(d[5:] for d in report["makeup_workdays"]))
    return f"共 {report.get('days')} 天，工作日 {report.get('workdays')} 天" + (f"（{'；'.join(extra)}）" if extra else "")


def _as_of(report: dict) -> str:
    return f"统计中，截至 {_clock(report.get('as_of'), report.get('timezone'), '%Y-%m-%d %H:%M')}" \
        if report.get("in_progress") else "本期数据已完结"


# --- HTML ------------------------------------------------------------------------------------

W, LABEL, RIGHT, TOP, ROW, BAR = 680, 150, 80, 10, 34, 11


def rates_chart(report: dict) -> dict | None:
    """Horizontal bars: per department (ranking order) its connect rate and resolution rate on a
    0-100 % axis, with each target as a dashed line; a bar's label says 达标 (✓) or 未达标 (✗)."""
    rows = ranked(report)
    if not rows:
        return None
    targets = report.get("targets") or {}
    x0, x1 = LABEL, W - RIGHT

    def x(v):
        return x0 + (x1 - x0) * max(0.0, min(1.0, v))
    out_rows = []
    for i, (rank, d) in enumerate(rows):
        top = TOP + i * ROW
        name = d.get("name") or d.get("department")
        bars = []
        for j, (key, cls, title) in enumerate((("connect_rate", "connect", "接通率"),
                                               ("resolution_rate", "resolution", "解决率"))):
            v, verdict = d.get(key), check(d, key)
            y = top + 5 + j * (BAR + 2)
            label = fmt(v, "pct") + ("" if verdict is None else (" ✓" if verdict else " ✗"))
            bars.append({"cls": cls, "x": x0, "y": y, "w": 0 if v is None else x(v) - x0, "h": BAR,
                         "label": label, "label_x": x0 + 4 if v is None else x(v) + 4, "label_y": y + BAR - 2,
                         "mark": "" if verdict is None else ("pass" if verdict else "miss"),
                         "title": f"{name} {title} {fmt(v, 'pct')}"
                                  + ("" if verdict is None else f"（{mark(verdict)}）")})
        prefix = f"{rank['rank']}. " if rank and rank.get("rank") is not None else ""
        out_rows.append({"label": clip(prefix + name, 22), "y": top + ROW / 2 + 3, "bars": bars})
    base = TOP + len(rows) * ROW
    lines = []
    for key, cls, title in (("connect_rate", "connect", "接通率目标"), ("resolution_rate", "resolution", "解决率目标")):
        if targets.get(key) is not None:
            lines.append({"cls": cls, "x": x(targets[key]), "label": f"{title} ≥ {targets[key] * 100:.0f}%"})
    return {"w": W, "h": base + 44, "rows": out_rows, "targets": lines, "top": TOP, "base": base, "left": x0,
            "right": x1, "x": [{"x": x(t), "label": f"{t * 100:.0f}%"} for t in (0, 0.25, 0.5, 0.75, 1.0)]}


def render_period_html(report: dict) -> str:
    whole = "scope" not in report
    return ENV.get_template("period.html").render(
        r=report, whole=whole, title=report.get("title") or KIND_ZH.get(report.get("kind"), "热线报表"),
        generated=_stamp(report), span=_span(report), as_of=_as_of(report), kind=KIND_ZH.get(report.get("kind")),
        targets=_targets(report.get("targets")), chart=rates_chart(report), kpis=_kpis(report, whole),
        ranked=ranked(report), queues=_queues(report), posts=report.get("posts") or [],
        agents=report.get("agents") or [],
        names={d["department"]: d.get("name") for d in report.get("departments") or []},
        sections=[("话务", CALLS), ("服务水平与等待", SERVICE), ("回访任务", FOLLOWUP), ("诉求办理", PERIOD_CASES),
                  ("AB岗在岗", COVERAGE)],
        queue_sections=[("话务", CALLS), ("服务水平与等待", SERVICE), ("回访任务", FOLLOWUP)],
        post_columns=POSTS[1:], value=value, check=check, fmt=fmt, mark=mark, missing=MISSING, titles=PERIOD_TITLES)


# --- XLSX ------------------------------------------------------------------------------------

def _figures(entry: dict) -> list[tuple]:
    return ([(value(entry, key), kind) for key, _, kind in FIGURES]
            + [(mark(check(entry, key)), None) for key in CHECKED])


def render_period_xlsx(report: dict) -> bytes:
    """Sheets 概况 (the period, its targets and the key figures), 部门 (ranking order: 名次, the
    figures, 达标 columns, the tie note; 合计 last), 队列, 岗位, 坐席 (per agent, summed over the
    period) and 说明 (every definition)."""
    wb = Workbook()
    wb.remove(wb.active)
    head = [title for _, title, _ in FIGURES] + CHECK_HEAD
    _summary(wb, report)
    body = [[(d.get("name"), None), (d.get("department"), None), (r.get("rank") if r else None, "n")]
            + _figures(d) + [((r or {}).get("note") or "", None)] for r, d in ranked(report)]
    if "scope" not in report and report.get("totals"):
        body.append([("合计", None), ("", None), ("", None)] + _figures(report["totals"]) + [("", None)])
    _sheet(wb, "部门", ["部门", "部门 ID", "名次"] + head + ["排名说明"], body)
    _sheet(wb, "队列", ["队列", "PBX", "部门"] + head,
           [[(q.get("queue"), None), (q.get("pbx"), None), (q.get("department_name"), None)] + _figures(q)
            for q in _queues(report)])
    names = {d["department"]: d.get("name") for d in report.get("departments") or []}
    _sheet(wb, "岗位", ["岗位", "部门"] + [title for _, title, _ in POSTS[1:]],
           [[(p.get("post"), None), (names.get(p.get("department"), p.get("department")), None)]
            + [(p.get(key), kind) for key, _, kind in POSTS[1:]] for p in report.get("posts") or []])
    _sheet(wb, "坐席", ["工号", "姓名", "部门"] + [title for _, title, _ in AGENT_FIGURES],
           [[(a.get("agent"), None), (a.get("name"), None),
             (names.get(a.get("department"), a.get("department")), None)]
            + [(a.get(key), kind) for key, _, kind in AGENT_FIGURES] for a in report.get("agents") or []])
    notes = report.get("notes") or []
    _sheet(wb, "说明", ["项目", "说明"],
           [[(n.get("title"), None), (n.get("text"), None)] for n in notes] or [[("说明", None), (MISSING, None)]])
    ws = wb["说明"]
    ws.column_dimensions["B"].width = 90
    for row in ws.iter_rows(min_row=2, min_col=2, max_col=2):
        row[0].alignment = Alignment(wrap_text=True, vertical="top")
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


SUMMARY = [("offered", "n"), ("answered", "n"), ("connect_rate", "pct"), ("service_level_15", "pct"),
           ("service_level_60", "pct"), ("tasks_created", "n"), ("tasks_overdue", "n"), ("cases_opened", "n"),
           ("cases_due", "n"), ("resolved_in_time", "n"), ("resolution_rate", "pct"), ("escalation_rate", "pct"),
           ("cases_overdue", "n"), ("coverage_pct", "pct100")]


def _summary(wb: Workbook, report: dict) -> None:
    """概况: what the report covers, the targets, and the hotline's (or a head's one department's)
    key figures with their pass/miss."""
    scope = "、".join(d.get("name") or d["department"] for d in report.get("departments") or []) \
        if "scope" in report else "全部部门"
    body = [[("报表", None), (report.get("title"), None), ("", None)],
            [("周期", None), (f"{report.get('start')} 至 {report.get('end')}", None), ("", None)],
            [("天数", None), (_span(report), None), ("", None)],
            [("时区", None), (report.get("timezone"), None), ("", None)],
            [("截至", None), (_as_of(report), None), ("", None)],
            [("生成时间", None), (_stamp(report), None), ("", None)],
            [("范围", None), (scope, None), ("", None)]]
    if report.get("calendar_provisional"):
        body.append([("工作日历", None), ("该年度节假日安排尚未公布，工作日按周一至周五暂计", None), ("", None)])
    body += [[(f"目标：{title}", None), (v, None), ("", None)] for title, v in _targets(report.get("targets"))]
    departments = report.get("departments") or []
    entry = report.get("totals") if "scope" not in report else (departments[0] if len(departments) == 1 else None)
    if entry:
        label = "合计" if "scope" not in report else entry.get("name")
        body += [[(f"{label}：{PERIOD_TITLES[key]}", None),
                  (value(entry, key), kind), (mark(check(entry, key)) if key in CHECKED else "", None)]
                 for key, kind in SUMMARY]
    _sheet(wb, "概况", ["项目", "内容", "达标"], body)
    wb["概况"].column_dimensions["B"].width = 60


# --- CSV -------------------------------------------------------------------------------------

AGENT_COLUMNS = [(key, title, kind) for key, title, kind in AGENT_FIGURES if key not in PERIOD_TITLES]
HEADER = (["周期", "开始", "结束", "范围", "名次", "部门", "部门名称", "队列", "PBX"]
          + [title for _, title, _ in FIGURES] + CHECK_HEAD + ["排名说明", "截至"]
          + ["工号", "姓名"] + [title for _, title, _ in AGENT_COLUMNS])


def render_period_csv(report: dict) -> str:
    """One row per department (ranking order, with 名次 and the tie note), per queue, 合计 (not in
    a head's copy), then one 坐席 row per agent; UTF-8 with a BOM, CRLF, cells as
    reports/render_csv.py writes them. The agent columns (工号, 姓名, 通话, 签入, 暂停, the
    wrap-ups) come last, after 截至, and are empty on the other rows; an agent row fills 接通 and
    平均通话 of the figure columns and leaves the rest (department figures) empty."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    lead = [KIND_ZH.get(report.get("kind"), report.get("kind")), report.get("start"), report.get("end")]
    as_of = report.get("as_of") if report.get("in_progress") else ""
    entries = [("部门", r, d, d.get("department"), d.get("name"), None, None) for r, d in ranked(report)]
    entries += [("队列", None, q, q.get("department"), q.get("department_name"), q.get("queue"), q.get("pbx"))
                for q in _queues(report)]
    if "scope" not in report and report.get("totals"):
        entries.append(("合计", None, report["totals"], None, "合计", None, None))
    for scope, rank, e, department, name, queue, pbx in entries:
        place = (MISSING if rank.get("rank") is None else rank["rank"]) if rank else ""
        cells = lead + [scope, place, department, name, queue, pbx]
        writer.writerow([guard(c) if c not in (None, "") else "" for c in cells]
                        + [_cell(value(e, key), kind) for key, _, kind in FIGURES]
                        + [mark(check(e, key)) for key in CHECKED]
                        + [guard(rank["note"]) if rank and rank.get("note") else "", as_of or ""]
                        + [""] * (2 + len(AGENT_COLUMNS)))
    names = {d["department"]: d.get("name") for d in report.get("departments") or []}
    for a in report.get("agents") or []:
        department = a.get("department")
        cells = lead + ["坐席", "", department, names.get(department, department) if department else None, None, None]
        writer.writerow([guard(c) if c not in (None, "") else "" for c in cells]
                        + [_cell(a.get(key), kind) if key in a else "" for key, _, kind in FIGURES]
                        + [""] * len(CHECK_HEAD) + ["", as_of or ""]
                        + [guard(a.get("agent")), guard(a.get("name"))]
                        + [_cell(a.get(key), kind) for key, _, kind in AGENT_COLUMNS])
    return out.getvalue()
