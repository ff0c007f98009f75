"""`callcenter calls list`: one entry per call with its stints (JSON or a zh-CN table)."""
from __future__ import annotations

from zoneinfo import ZoneInfo

from callcenter.domain.directory import Directory
from callcenter.domain.records import CallRecord

from .text import grid

OUTCOME_ZH = {"answered": "已接通", "transferred": "已转接", "abandoned": "排队放弃", "abandoned_ivr": "IVR挂机",
              "timed_out": "排队超时", "no_agent": "无人值守", "after_hours": "非工作时间", "unknown": "未知"}


def call_to_dict(record: CallRecord, tz: ZoneInfo, directory: Directory) -> dict:
    def iso(moment):
        return None if moment is None else moment.astimezone(tz).isoformat()
    return {
        "id": record.id, "pbx": record.pbx, "linkedid": record.linkedid,
        "caller_num": record.caller_num, "caller_name": record.caller_name,
        "withheld": record.withheld, "hotline": record.hotline, "department": record.department,
        "started_at": iso(record.started_at), "ended_at": iso(record.ended_at),
        "outcome": record.outcome.value, "ivr_choice": record.ivr_choice,
        "after_hours": record.after_hours, "reconciled": record.reconciled,
        "stints": [{
            "queue": s.queue, "department": s.department, "agent": s.agent,
            "agent_name": directory.agent_names.get(s.agent) if s.agent else None,
            "member_name": s.member_name, "interface": s.interface,
            "entered_at": iso(s.entered_at), "left_at": iso(s.left_at), "answered_at": iso(s.answered_at),
            "wait_seconds": None if s.wait_seconds is None else round(s.wait_seconds, 1),
            "talk_seconds": s.talk_seconds, "end": s.end.value if s.end else None,
            "completed_by": s.completed_by, "transferred": s.transferred,
            "no_answers": s.no_answers,
        } for s in record.stints],
    }


def render_table(calls: list[dict]) -> str:
    def seconds(value):
        return "—" if value is None else f"{value:g}s"
    rows = []
    for c in calls:
        stints = "；".join(
            f"{s['queue']} {s['agent_name'] or s['member_name'] or '—'} 等待{seconds(s['wait_seconds'])} "
            f"通话{seconds(s['talk_seconds'])}" for s in c["stints"]) or "—"
        rows.append([c["started_at"][11:19], c["caller_num"] or "（未显示）", c["caller_name"] or "—",
                     c["hotline"], OUTCOME_ZH.get(c["outcome"], c["outcome"]), stints])
    lines = grid(["时间", "来电号码", "主叫姓名", "热线", "结果", "队列 坐席 等待 通话"], rows,
                 [20, 24, 24, 24, 12, 160])
    lines.append(f"共 {len(calls)} 通")
    return "\n".join(lines)
