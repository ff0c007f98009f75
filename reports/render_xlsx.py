"""The daily report as an Excel workbook (openpyxl): sheets 部门, 队列, 坐席, 岗位, 未接来电, 说明.

Cells hold the JSON's values (rates as fractions shown as percentages, seconds as numbers shown
with one decimal), so a sheet read back equals the JSON; a missing figure is "—". Each sheet's
header row is frozen and bold, columns are sized to their content, and text a spreadsheet would
take for a formula is kept as text (a leading apostrophe).
"""
from __future__ import annotations

import io

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from .render_csv import (CALLBACKS, CAUSES, CHECKED, FIGURES, MISSING, TARGETS, TITLES, check, guard, mark, rows,
                         value)

FORMATS = {"pct": "0.0%", "pct100": '0.0"%"', "s": '0.0" 秒"', "min": '0" 分"', "n": "0"}
HEAD_FILL = PatternFill("solid", fgColor="DDE6F0")

POSTS = [("post", "岗位", None), ("department_name", "部门", None), ("a_name", "A岗", None), ("b_name", "B岗", None),
         ("coverage_pct", "在岗率", "pct100"), ("gap_count", "空岗次数", "n"), ("gap_minutes", "空岗分钟", "min"),
         ("longest_gap_minutes", "最长空岗分钟", "min"), ("b_takeovers", "B岗顶岗次数", "n"),
         ("b_takeover_minutes", "B岗顶岗分钟", "min"), ("unobserved_minutes", "未观测分钟", "min")]
AGENTS = [("agent", "工号", None), ("name", "姓名", None), ("department", "部门", None), ("answered", "接通", "n"),
          ("talk_seconds", "通话(秒)", "s"), ("login_seconds", "签入(秒)", "s"), ("pause_seconds", "暂停(秒)", "s"),
          ("wrapup_compliance", "小结及时率", "pct")]
LOST = [("at", "来电时间", None), ("caller", "来电号码", None), ("department", "部门", None), ("queue", "队列", None),
        ("cause", "未接原因", None), ("wait_seconds", "等待(秒)", "s"), ("task_status", "回访任务", None),
        ("callback_status", "回拨情况", None), ("call_id", "来电 ID", None)]


def _put(ws, row: int, col: int, v, kind: str | None) -> None:
    if v is None or isinstance(v, (dict, list)):
        ws.cell(row, col, MISSING).alignment = Alignment(horizontal="right")
    elif kind and isinstance(v, (int, float)) and not isinstance(v, bool):
        ws.cell(row, col, v).number_format = FORMATS[kind]
    else:
        ws.cell(row, col, guard(v))


def _sheet(wb: Workbook, title: str, header: list[str], body: list[list[tuple]]) -> None:
    """`body`: rows of (value, kind) cells."""
    ws = wb.create_sheet(title)
    widths = [max(8, _width(h) + 2) for h in header]
    for col, text in enumerate(header, 1):
        cell = ws.cell(1, col, text)
        cell.font, cell.fill = Font(bold=True), HEAD_FILL
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    for r, cells in enumerate(body, 2):
        for col, (v, kind) in enumerate(cells, 1):
            _put(ws, r, col, v, kind)
            widths[col - 1] = min(40, max(widths[col - 1], _width(str(v)) + 2))
    for col, w in enumerate(widths, 1):
        ws.column_dimensions[get_column_letter(col)].width = w
    ws.freeze_panes = "B2" if header and header[0] in ("部门", "队列", "岗位", "工号") else "A2"


def _width(text: str) -> int:
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _figures(entry: dict) -> list[tuple]:
    return ([(value(entry, key), kind) for key, _, kind in FIGURES]
            + [(mark(check(entry, key)), None) for key in CHECKED])


def render_xlsx(report: dict) -> bytes:
    wb = Workbook()
    wb.remove(wb.active)
    figure_head = [title for _, title, _ in FIGURES] + [TITLES[key] + "达标" for key in CHECKED]
    entries = rows(report)
    _sheet(wb, "部门", ["部门", "部门 ID"] + figure_head,
           [[(e.get("name"), None), (e.get("department"), None)] + _figures(e) for s, e in entries if s == "department"]
           + [[("合计", None), ("", None)] + _figures(e) for s, e in entries if s == "totals"])
    _sheet(wb, "队列", ["队列", "PBX", "部门"] + figure_head,
           [[(e.get("queue"), None), (e.get("pbx"), None), (e.get("department_name") or "未配置", None)] + _figures(e)
            for s, e in entries if s == "queue"])
    _sheet(wb, "坐席", [title for _, title, _ in AGENTS],
           [[(a.get(key), kind) for key, _, kind in AGENTS] for a in report.get("agents") or []])
    _sheet(wb, "岗位", [title for _, title, _ in POSTS],
           [[(p.get(key) if p.get(key) is not None or key not in ("a_name", "b_name") else p.get(key[0]), kind)
             for key, _, kind in POSTS] for p in report.get("posts") or []])
    _sheet(wb, "未接来电", [title for _, title, _ in LOST],
           [[(_lost(c, key), kind) for key, _, kind in LOST] for c in report.get("lost_calls") or []])
    _notes(wb, report)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def _lost(call: dict, key: str):
    v = call.get(key)
    if key == "cause":
        return CAUSES.get(v, v)
    if key == "callback_status":
        return CALLBACKS.get(v, v)
    if key == "department":
        return call.get("department_name") or v
    return v


def _notes(wb: Workbook, report: dict) -> None:
    """说明: the report's date and as-of time, the targets, and every note (definition)."""
    body = [[("日期", None), (report.get("date"), None)], [("时区", None), (report.get("timezone"), None)],
            [("截至", None), (report.get("as_of") if report.get("in_progress") else "当日数据已完结", None)],
            [("生成时间", None), (report.get("generated_at"), None)]]
    targets = report.get("targets") or {}
    body += [[(f"目标：{title}", None), (f"{sign} {targets[key] * 100:.1f}%" if targets.get(key) is not None
                                       else MISSING, None)] for key, title, sign in TARGETS]
    notes = report.get("notes") or []
    body += [[(n.get("title"), None), (n.get("text"), None)] for n in notes] or [[("说明", None), (MISSING, None)]]
    _sheet(wb, "说明", ["项目", "说明"], body)
    ws = wb["说明"]
    ws.column_dimensions["B"].width = 90
    for row in ws.iter_rows(min_row=2, min_col=2, max_col=2):
        row[0].alignment = Alignment(wrap_text=True, vertical="top")
