"""`callcenter tasks list`: follow-up tasks as JSON (the API's dicts) or a zh-CN table."""
from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from .text import grid

STATUS_ZH = {"open": "待处理", "closed": "已办结"}
REASON_ZH = {"abandoned": "排队放弃", "ivr_abandoned": "IVR挂机", "timed_out": "排队超时", "no_agent": "无人值守",
             "after_hours": "非工作时间", "ring_no_answer": "回拨未接"}
CLOSURE_ZH = {"caller_called_again": "来电已接通", "callback_completed": "回拨已接通",
              "reached_resolved": "已联系·已解决", "reached_needs_follow_up": "已联系·需跟进",
              "unreachable": "无法联系", "wrong_number": "号码错误"}
HEADER = ["编号", "来电号码", "部门", "状态", "原因", "未接", "首次未接", "办结时限", "承办人", "回拨", "结果"]


def render_json(tasks: list[dict]) -> str:
    return json.dumps(tasks, ensure_ascii=False, indent=2)


def render_table(tasks: list[dict], tz: ZoneInfo) -> str:
    def local(iso: str) -> str:
        return datetime.fromisoformat(iso).astimezone(tz).strftime("%m-%d %H:%M")

    rows = []
    for t in tasks:
        status = STATUS_ZH.get(t["status"], t["status"]) + ("·超时" if t["overdue"] else "")
        reason = REASON_ZH.get(t["reason"], t["reason"]) + ("（短）" if t["short_abandon"] else "")
        assignee = f"{t['assignee_name'] or ''}({t['assignee']})" if t["assignee"] else "部门池"
        deadline = local(t["deadline"]) + ("*" if t["deadline_provisional"] else "")
        rows.append([str(t["id"]), t["caller_num"] or "（未显示）", t["department_name"] or t["department"],
                     status, reason, str(t["misses"]), local(t["first_missed_at"]), deadline, assignee,
                     str(t["attempts"]), CLOSURE_ZH.get(t["closure"], t["closure"] or "—")])
    lines = grid(HEADER, rows)
    open_ = [t for t in tasks if t["status"] == "open"]
    overdue = sum(t["overdue"] for t in open_)
    lines.append(f"共 {len(tasks)} 条：待处理 {len(open_)}（已超时 {overdue}），已办结 {len(tasks) - len(open_)}"
                 f"（时间为 {tz.key}）")
    if any(t["deadline_provisional"] for t in tasks):
        lines.append("* 该年度节假日安排尚未公布，时限为暂定")
    return "\n".join(lines)
