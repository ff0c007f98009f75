"""The daily report as one flat CSV table (UTF-8 with a BOM, so Excel reads the Chinese), and the
catalogue of figures (key, zh-CN title, kind) that the HTML and XLSX renderers share.

One row per department, per queue and the 合计 row, with a 范围 (scope) column. Rates are
written as percentages with two decimals ("60.00%": the JSON's fraction, exactly, and Excel reads
it as a number); seconds and counts as plain numbers; a missing figure is "—". A text cell that a
spreadsheet would take for a formula gets a leading apostrophe.
"""
from __future__ import annotations

import csv
import io

from . import daily_notes

MISSING = "—"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# (key, title, kind); kind: "n" count, "pct" fraction, "pct100" already x100, "s" seconds, "min" minutes
CALLS = [("offered", "呼入", "n"), ("answered", "接通", "n"), ("connect_rate", "接通率", "pct"),
         ("abandoned", "放弃(含短放弃)", "n"), ("short_abandoned", "短放弃", "n"), ("timed_out", "超时", "n"),
         ("no_agent", "无人值守", "n"), ("ivr_abandoned", "IVR挂机", "n"), ("after_hours", "非工作时间", "n")]
SERVICE = [("service_level_15", "15秒内接通率", "pct"), ("service_level_60", "60秒内接通率", "pct"),
           ("average_wait_seconds", "平均等待(秒)", "s"), ("longest_wait_seconds", "最长等待(秒)", "s"),
           ("average_talk_seconds", "平均通话(秒)", "s")]
FOLLOWUP = [("tasks_created", "回访任务", "n"), ("tasks_contacted_in_time", "按时联系", "n"),
            ("tasks_contacted_in_time_rate", "回访及时率", "pct"), ("tasks_overdue", "超期任务", "n")]
CASES = [("cases_opened", "新建诉求", "n"), ("resolved_first_contact", "首次解决", "n"),
         ("cases_due", "应办结", "n"), ("resolved_in_time", "按期办结", "n"), ("resolution_rate", "解决率", "pct"),
         ("escalated_12345", "转12345", "n"), ("escalation_rate", "转12345占比", "pct")]
COVERAGE = [("coverage_pct", "在岗率", "pct100"), ("gap_count", "空岗次数", "n"),
            ("gap_minutes", "空岗分钟", "min"), ("unobserved_minutes", "未观测分钟", "min")]
CALLS, SERVICE, FOLLOWUP, CASES, COVERAGE = ([(k, daily_notes.TITLES.get(k, t), kind) for k, t, kind in group]
                                            for group in (CALLS, SERVICE, FOLLOWUP, CASES, COVERAGE))
FIGURES = CALLS + SERVICE + FOLLOWUP + CASES + COVERAGE         # the titles of reports/daily_notes.py first
TITLES = {key: title for key, title, _ in FIGURES}
TARGETS = [("connect_rate", "接通率", "≥"), ("service_level_15", "15秒内接通率", "≥"),
           ("service_level_60", "60秒内接通率", "≥"), ("resolution_rate", "解决率", "≥"),
           ("escalation_rate_max", "转12345占比", "≤")]
CAUSES = {"abandoned": "排队放弃", "short_abandoned": "短放弃", "timed_out": "排队超时", "no_agent": "无人值守",
          "ivr_abandoned": "IVR挂机", "after_hours": "非工作时间", "unknown": "结果未知",
          **daily_notes.CAUSE_TITLES, "abandoned_ivr": "IVR挂机"}
CALLBACKS = daily_notes.CALLBACK_TITLES
SCOPES = {"department": "部门", "queue": "队列", "totals": "合计"}


def value(entry: dict | None, key: str):
    """A figure of an entry; ``service_level_N`` from its ``service_level`` list; None when missing."""
    if not entry:
        return None
    if key in entry:
        return entry[key]
    if key.startswith("service_level_"):
        seconds = key.rsplit("_", 1)[1]
        for level in entry.get("service_level") or []:
            if f"{level.get('seconds'):g}" == seconds:
                return level.get("rate")
    return None


def check(entry: dict | None, key: str) -> bool | None:
    """The entry's pass (True) / miss (False) for a figure, None when it has no verdict."""
    verdict = ((entry or {}).get("checks") or {}).get(key)
    return verdict.get("pass") if isinstance(verdict, dict) else None


def mark(verdict: bool | None) -> str:
    return MISSING if verdict is None else ("达标" if verdict else "未达标")


def fmt(v, kind: str) -> str:
    """A figure as the HTML and the terminal show it (rates with one decimal)."""
    if v is None or isinstance(v, (dict, list)):
        return MISSING
    if kind == "pct":
        return f"{v * 100:.1f}%"
    if kind == "pct100":
        return f"{v:.1f}%"
    if kind in ("s", "min"):
        return f"{v:.1f}" if isinstance(v, float) and v != int(v) else f"{v:g}"
    return str(v)


def guard(text) -> str:
    text = MISSING if text is None else str(text)
    return "'" + text if text.startswith(FORMULA_START) else text


def _cell(v, kind: str) -> str:
    if v is None or isinstance(v, (dict, list)):
        return MISSING
    if kind == "pct":
        return f"{v * 100:.2f}%"
    return f"{v:g}" if isinstance(v, float) else str(v)


def rows(report: dict) -> list[tuple[str, dict]]:
    """(scope, entry) in order: departments, queues, 合计 (the totals, unless a head's scoped copy)."""
    out = [("department", d) for d in report.get("departments") or []]
    out += [("queue", q) for q in report.get("queues") or []]
    if "scope" not in report and report.get("totals"):
        out.append(("totals", report["totals"]))
    return out


CHECKED = [key for key, _, _ in TARGETS if not key.endswith("_max")] + ["escalation_rate"]
HEADER = (["日期", "范围", "部门", "部门名称", "队列", "PBX"] + [title for _, title, _ in FIGURES]
          + [TITLES[key] + "达标" for key in CHECKED] + ["截至"])


def render_csv(report: dict) -> str:
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    as_of = report.get("as_of") if report.get("in_progress") else None
    for scope, e in rows(report):
        name = e.get("name") if scope == "department" else e.get("department_name")
        lead = [report.get("date"), SCOPES[scope], e.get("department") if scope != "totals" else None,
                name if scope != "totals" else "合计", e.get("queue"), e.get("pbx")]
        writer.writerow([guard(c) if c is not None else "" for c in lead]
                        + [_cell(value(e, key), kind) for key, _, kind in FIGURES]
                        + [mark(check(e, key)) for key in CHECKED] + [as_of or ""])
    return out.getvalue()
