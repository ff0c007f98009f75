"""`callcenter cases list`: first-ask cases as JSON (the API's dicts) or a zh-CN table."""
from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from .text import grid

STATUS_ZH = {"open": "办理中", "resolved": "已办结", "escalated": "已转12345", "out_of_scope": "已引导"}
DISPOSITION_ZH = {"resolved": "已解决", "follow_up_simple": "跟进·简单", "follow_up_complex": "跟进·复杂",
                  "escalated_12345": "转12345", "out_of_scope": "非受理范围", "knowledge_gap": "知识库缺失"}
# 事项 last: some service items contain spaces
HEADER = ["编号", "来电号码", "部门", "承办人", "状态", "处置", "受理时间", "办结时限", "工单/去向", "事项"]


def render_json(cases: list[dict]) -> str:
    return json.dumps(cases, ensure_ascii=False, indent=2)


def render_table(cases: list[dict], tz: ZoneInfo) -> str:
    def local(iso: str) -> str:
        return datetime.fromisoformat(iso).astimezone(tz).strftime("%m-%d %H:%M")

    rows = []
    for c in cases:
        status = STATUS_ZH.get(c["status"], c["status"]) + ("·超时" if c["overdue"] else "")
        owner = f"{c['owner_name'] or ''}({c['owner']})" if c["owner"] else "—"
        deadline = (local(c["deadline"]) + ("*" if c["deadline_provisional"] else "")) if c["deadline"] else "—"
        disposition = DISPOSITION_ZH.get(c["disposition"], c["disposition"] or "待小结")
        rows.append([str(c["id"]), c["caller_num"] or "（未显示）", c["department_name"] or c["department"], owner,
                     status, disposition, local(c["opened_at"]), deadline,
                     c["work_order"] or c["directed_to"] or "—", c["item"] or "—"])
    lines = grid(HEADER, rows)
    counts = {s: sum(c["status"] == s for c in cases) for s in STATUS_ZH}
    overdue = sum(c["overdue"] for c in cases)
    lines.append(f"共 {len(cases)} 件：办理中 {counts['open']}（已超时 {overdue}），已办结 {counts['resolved']}，"
                 f"转12345 {counts['escalated']}，已引导 {counts['out_of_scope']}（时间为 {tz.key}）")
    if any(c["deadline_provisional"] for c in cases):
        lines.append("* 该年度节假日安排尚未公布，时限为暂定")
    return "\n".join(lines)
