"""Plain-text tables that line up with Chinese (double-width) characters, and the masking of
callers' numbers in lists (`--full-numbers` turns it off)."""
from __future__ import annotations

import re

from callcenter.domain.validation import mask_number, mask_numbers

MAX_CELL = 60                      # display columns; a longer value is cut with "…"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")   # never reaches a terminal (escapes, line breaks)
NUMBER_KEYS = ("caller_num", "number")          # masked whole: 138****0001
TEXT_KEYS = ("caller_name", "note")             # free text: every number-like run masked


def width(text: str) -> int:
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def clip(text: str, max_width: int = MAX_CELL) -> str:
    """One line, at most `max_width` display columns (control characters shown as '?')."""
    text = _CONTROL.sub("?", text)
    if width(text) <= max_width:
        return text
    out, used = [], 0
    for ch in text:
        w = width(ch)
        if used + w > max_width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def grid(header: list[str], rows: list[list[str]], max_width: int | list[int] = MAX_CELL) -> list[str]:
    """Columns padded to line up; every cell clipped to `max_width` (one for all, or per column)."""
    limits = max_width if isinstance(max_width, list) else [max_width] * len(header)
    rows = [[clip(c, m) for c, m in zip(r, limits)] for r in rows]
    widths = [max(width(r[i]) for r in [header] + rows) for i in range(len(header))]

    def fmt(r):
        return "  ".join(c + " " * (w - width(c)) for c, w in zip(r, widths)).rstrip()
    return [fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]


def mask_personal(value):
    """A copy of a list's dicts (nested too) with callers' numbers masked."""
    if isinstance(value, list):
        return [mask_personal(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if key in NUMBER_KEYS and isinstance(item, str):
            out[key] = mask_number(item)
        elif key in TEXT_KEYS and isinstance(item, str):
            out[key] = mask_numbers(item)
        else:
            out[key] = mask_personal(item)
    return out


# --- the daily report as zh-CN text (`callcenter report daily`) ---------------------------------

def _pct(value) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _num(value, unit: str = "") -> str:
    return "—" if value is None else f"{value:g}{unit}"


def _judged(entry: dict, key: str, value) -> str:
    """A rate with 未达标 beside it when it misses its target."""
    check = entry.get("checks", {}).get(key)
    return _pct(value) + (" 未达标" if check and check["pass"] is False else "")


def _level(entry: dict, seconds: int):
    return next((s["rate"] for s in entry.get("service_level", []) if s["seconds"] == seconds), None)


def render_daily(report: dict) -> str:
    from .daily_notes import CALLBACK_TITLES, CAUSE_TITLES, LOST_TITLES, TITLES
    departments = [(d["name"], d) for d in report["departments"]] + [("合计*", report["totals"])]
    head = f"{report.get('title') or '热线日报 ' + report['date']}（{report['timezone']}）"
    if report.get("in_progress"):
        head += f"  截至 {report['as_of'][11:16]}，当日尚未结束，数字仍会变化"
    lines = [head, ""]

    calls = ["offered", "answered", "connect_rate", "abandoned", "short_abandoned", "timed_out", "no_agent",
             "ivr_abandoned", "after_hours"]

    def call_row(label, e):
        return [label] + [_judged(e, k, e.get(k)) if k == "connect_rate" else _num(e.get(k)) for k in calls]
    lines += ["一、话务（按部门）"] + grid(["部门"] + [TITLES[k] for k in calls], [call_row(n, e) for n, e in departments])
    several = len({q["pbx"] for q in report["queues"]}) > 1       # the PBX shown when there are several
    qrows = [call_row(f"{q['queue']}（{q['department_name'] or '未配置'}）" + (f" @{q['pbx']}" if several else ""), q)
             for q in report["queues"]]
    lines += ["", "按队列"] + grid(["队列"] + [TITLES[k] for k in calls], qrows)
    if report["unmapped_queues"]:
        unmapped = [f"{q['queue']}@{q['pbx']}" if several else q["queue"]
                    for q in report["queues"] if q["department"] is None]
        lines += ["", "未配置的队列：" + "、".join(unmapped)]

    def service_row(label, e):
        bands = [str(b["answered"]) for b in e.get("wait_bands", [])] or ["—"] * 4
        return [label, _judged(e, "service_level_15", _level(e, 15)), _judged(e, "service_level_60", _level(e, 60)),
                _num(e.get("average_wait_seconds")), _num(e.get("longest_wait_seconds")),
                _num(e.get("average_talk_seconds")), *bands]
    lines += ["", "二、服务水平与等待（已接通按等待时长分段）"] + grid(
        ["部门", "15秒接通率", "60秒接通率", "平均等待(秒)", "最长等待(秒)", "平均通话(秒)", "0-15秒", "15-30秒", "30-60秒",
         "60秒以上"], [service_row(n, e) for n, e in departments])

    def work_row(label, e):
        return [label, _num(e.get("tasks_created")), _num(e.get("tasks_contacted_in_time")), _num(e.get("tasks_overdue")),
                _num(e.get("cases_opened")), _num(e.get("resolved_first_contact")), _num(e.get("resolved_in_time")),
                _judged(e, "resolution_rate", e.get("resolution_rate")), _num(e.get("escalated_12345")),
                _judged(e, "escalation_rate", e.get("escalation_rate"))]
    lines += ["", "三、回访与诉求"] + grid(
        ["部门", "回访任务", "1个工作日内联系", "超期未联系", "新受理诉求", "首次来电解决", "按期办结", "解决率", "转12345",
         "转12345占比"], [work_row(n, e) for n, e in departments])

    causes = list(CAUSE_TITLES)[:-1]
    lines += ["", "四、未接通原因"] + grid(["部门"] + [CAUSE_TITLES[c] for c in causes],
                                        [[n] + [_num(e.get("unanswered_by_cause", {}).get(c)) for c in causes]
                                         for n, e in departments])
    hours = [h for h in report["totals"].get("calls_by_hour", []) if h["offered"]]
    if hours:
        lines += ["", "五、分时段（合计）"] + grid(["时段", "呼入", "接通", "放弃"], [
            [f"{h['hour']:02d}:00-{h['hour'] + 1:02d}:00", str(h["offered"]), str(h["answered"]), str(h["abandoned"])]
            for h in hours])
    agents = [a for a in report.get("agents", []) if a["answered"] or a["login_seconds"]]
    if agents:
        def minutes(seconds):
            return "—" if seconds is None else f"{seconds / 60:.1f}"
        lines += ["", "六、话务员（时长单位：分钟）"] + grid(
            ["话务员", "接听", "通话", "登录", "暂停", "小结及时率"],
            [[f"{a['name'] or a['agent']}({a['agent']})", str(a["answered"]), minutes(a["talk_seconds"]),
              minutes(a["login_seconds"]), minutes(a["pause_seconds"]), _pct(a["wrapup_compliance"])] for a in agents])
    lost = report.get("lost_calls", [])
    if lost:
        shown = lost[:20]
        lines += ["", f"七、当日未接来电（共 {len(lost)} 通" + ("，以下为前 20 通" if len(lost) > 20 else "") + "）"] + grid(
            ["时间", "来电号码", "部门", "原因", "等待(秒)", "回访"],
            [[c["at"][11:19], c["caller"] or "（未显示）", c["department_name"] or c["department"] or "—",
              LOST_TITLES.get(c["cause"], c["cause"]) + ("（短放弃）" if c.get("short_abandon") else ""),
              _num(c["wait_seconds"]), CALLBACK_TITLES.get(c["callback_status"], "—")] for c in shown])
    from .coverage import table_lines
    lines += table_lines(report)
    if "ivr" in report:                                # the IVR and survey (reports/ivr.py)
        from .ivr import table_lines as ivr_lines
        lines += [""] + ivr_lines(report["ivr"], report.get("timezone", "Asia/Shanghai"))
    if "probes" in report:                             # the hotline probes (reports/probes.py)
        from .probes import table_lines as probe_lines
        lines += [""] + probe_lines(report["probes"])
    lines += ["", "说明"] + [f"· {n['title']}：{n['text']}" for n in report.get("notes", [])]
    return "\n".join(lines)
