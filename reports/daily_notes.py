"""The daily report's words: zh-CN column titles, the notes that define every figure (shown under
every rendering of the report), the targets from configuration (`reports.targets`) and the
pass/miss checks beside each figure. Pure functions of the settings and one report entry."""
from __future__ import annotations

TITLES = {
    "offered": "呼入(进队列)", "answered": "接通", "connect_rate": "接通率",
    "abandoned": "放弃(含短放弃)", "short_abandoned": "其中短放弃", "timed_out": "排队超时",
    "no_agent": "无人值守", "unknown": "结果未知", "ivr_abandoned": "IVR挂机(未进队列)",
    "after_hours": "非工作时间来电", "service_level_15": "15秒接通率", "service_level_60": "60秒接通率",
    "average_wait_seconds": "平均等待(秒)", "longest_wait_seconds": "最长等待(秒)",
    "average_talk_seconds": "平均通话(秒)", "tasks_created": "回访任务", "tasks_contacted_in_time": "1个工作日内联系",
    "tasks_overdue": "超期未联系", "cases_opened": "新受理诉求", "resolved_first_contact": "首次来电解决",
    "resolved_in_time": "按期办结", "resolution_rate": "解决率", "escalated_12345": "转12345",
    "escalation_rate": "转12345占比", "coverage_pct": "在岗率(按观测时间)", "gap_minutes": "空岗(分钟)",
    "unobserved_minutes": "未观测(分钟)",
}
CAUSE_TITLES = {"abandoned": "排队放弃(不含短放弃)", "short_abandoned": "短放弃", "timed_out": "排队超时",
                "no_agent": "无人值守", "unknown": "结果未知", "ivr_abandoned": "IVR挂机", "after_hours": "非工作时间"}
LOST_TITLES = {"abandoned": "排队放弃", "abandoned_ivr": "IVR挂机", "timed_out": "排队超时", "no_agent": "无人值守",
               "after_hours": "非工作时间", "unknown": "结果未知"}
CALLBACK_TITLES = {"contacted_in_time": "已按时联系", "contacted_late": "已联系(超期)", "closed_unreached": "已办结·未联系上",
                   "overdue": "超期未联系", "pending": "待回访", "no_task_short_abandon": "短放弃·不回访",
                   "no_task_withheld_number": "未显示号码·无法回访", "no_task": "无回访任务"}
CHECKED = ("connect_rate", "service_level_15", "service_level_60", "resolution_rate", "escalation_rate")


def targets(settings) -> dict:
    t = settings.reports.targets
    escalation = t.escalation_rate_max if t.escalation_rate_max is not None else settings.cases.escalation_target
    return {"connect_rate": t.connect_rate, "service_level_15": t.service_level_15,
            "service_level_60": t.service_level_60, "resolution_rate": t.resolution_rate,
            "escalation_rate_max": escalation}


def _service_level(entry: dict, seconds: float):
    for level in entry.get("service_level", []):
        if level["seconds"] == seconds:
            return level["rate"]
    return None


def checks(entry: dict, goal: dict) -> dict:
    """{figure: {"value", "target", "pass"}} for the figures of `entry` that have a target;
    `pass` is None when the figure has no value (nothing to judge)."""
    values = {"connect_rate": entry.get("connect_rate"), "service_level_15": _service_level(entry, 15),
              "service_level_60": _service_level(entry, 60)}
    if "resolution_rate" in entry:
        values["resolution_rate"] = entry["resolution_rate"]
        values["escalation_rate"] = entry["escalation_rate"]
    out = {}
    for key, value in values.items():
        if key == "escalation_rate":
            target = goal["escalation_rate_max"]
            ok = None if value is None else value <= target
        else:
            target = goal[key]
            ok = None if value is None else value >= target
        out[key] = {"value": value, "target": target, "pass": ok}
    return out


def notes(settings, ms, has_posts: bool) -> list[dict]:
    """Every figure's definition, in the order a reader meets them."""
    short = f"{ms.short_abandon_seconds:g}"
    levels = "、".join(f"{s:g}" for s in ms.service_level_seconds)
    denominator = "呼入 − 短放弃（按配置，短放弃不计入分母）" if ms.exclude_short_abandons else "呼入"
    goal = targets(settings)
    contact = settings.followup.contact_workdays
    items = [
        ("offered", "呼入(进队列)", "在本部门工作时间内（法定工作日，含调休上班日；不含午休）进入本部门队列的来电次数。"
         "IVR挂机和非工作时间来电不计入呼入，单列在后两列。一通来电转到另一部门，在转入部门再计一次呼入。"),
        ("answered", "接通", "呼入中由话务员接听的次数。"),
        ("connect_rate", "接通率", f"接通 ÷ {denominator}。目标 ≥ {goal['connect_rate']:.0%}。"),
        ("abandoned", "放弃(含短放弃)", f"来电者在排队中挂机的次数，包含短放弃；“其中短放弃”是其中等待不足 {short} 秒的部分。"),
        ("short_abandoned", "其中短放弃", f"排队等待不足 {short} 秒即挂机，多为误拨或立即挂断；已包含在“放弃”内。"),
        ("timed_out", "排队超时", "排队等待达到队列上限仍无人接听，被系统转出或结束的次数。"),
        ("no_agent", "无人值守", "来电进入队列时该队列没有可接听的话务员（无人登录、全部不可用或队列已满），未能排队等待的次数。"),
        ("unknown", "结果未知", "与交换机的连接中断期间结束、且队列日志也无法说明结果的来电。"),
        ("ivr_abandoned", "IVR挂机(未进队列)", "工作时间内在语音导航（IVR）中挂机、没有进入任何队列的来电；不计入呼入。"),
        ("after_hours", "非工作时间来电", "工作时间以外（夜间、午休、周末、法定节假日）打进的来电；不计入呼入，另建回访任务。"),
        ("service_level", "15秒/60秒接通率", f"排队 N 秒内接通的次数 ÷ {denominator}，N = {levels} 秒。"
         f"目标：15秒 ≥ {goal['service_level_15']:.0%}，60秒 ≥ {goal['service_level_60']:.0%}。"),
        ("wait", "平均/最长等待", "平均等待：已接通呼叫从进入队列到接通的平均秒数；最长等待：所有呼入中排队时间最长的一次（含未接通）。"),
        ("average_talk_seconds", "平均通话", "已接通呼叫的平均通话秒数。"),
        ("wait_bands", "等待时长分布", "已接通呼叫按等待时间分段：0-15秒（含15秒）、15-30秒、30-60秒、60秒以上。"),
        ("calls_by_hour", "分时段", "按来电开始时间（报表时区）的小时统计呼入、接通、放弃。"),
        ("unanswered_by_cause", "未接通原因", "呼入中未接通的按原因拆分（放弃不含短放弃、短放弃、排队超时、无人值守、结果未知），"
         "另列工作时间内的IVR挂机。"),
        ("lost_calls", "当日未接来电", "当日没有任何话务员接听的来电（含IVR挂机和非工作时间来电），及其回访任务状态；"
         f"每个部门最多列出 {settings.reports.lost_calls_per_department} 通。来电号码已脱敏。"),
        ("tasks", "回访任务", f"回访任务：当日产生的回访任务数（未接来电、留言回拨，以及“不满意”评价的回访；不满意评价另见“IVR 与满意度评价”）；1个工作日内联系：在时限（{contact} 个工作日）内联系上来电者的任务数；"
         "超期未联系：已过时限仍未联系上的任务数（截至报表时间）。"),
        ("cases", "诉求办理", "新受理诉求：当日首次接听产生的诉求；首次来电解决：其中在首次通话中解决的；"
         "按期办结：当日到期或当日在通话中解决的诉求中，在时限内解决的件数。"),
        ("resolution_rate", "解决率", f"按期办结 ÷ 当日应办结（不含非受理范围）。目标 ≥ {goal['resolution_rate']:.0%}。"),
        ("escalation_rate", "转12345占比", f"当日转12345的诉求 ÷ 当日办结的诉求。目标 ≤ {goal['escalation_rate_max']:.0%}。"),
        ("wrapup", "小结及时率", f"当日接听并关联诉求的来电中，在接听后 {settings.cases.wrapup_minutes:g} 分钟内完成小结的比例。"),
        ("agents", "话务员", "接听数与通话时长：当日来电中由该话务员接听的次数与通话总时长；登录、暂停时长：当日 0 点至 24 点"
         "（进行中的一天截至报表时间）内的部分，跨零点的登录只计当日部分，多个队列同时登录只计一次。"),
        ("totals", "合计", "合计按来电计：每通来电只计一次（按其最后一段排队），所以一通转给另一部门的来电在两个部门各计一次、"
         "在合计中只计一次，合计不等于各行相加。诉求与回访任务属于唯一部门，其合计等于各部门之和。"),
        ("checks", "达标", "目标来自配置 reports.targets；“达标”/“未达标”判断对应指标，无数据时不判断。"),
        ("in_progress", "截至时间", "当天尚未结束时，报表只统计到“截至”时间，数字仍会变化。"),
    ]
    if has_posts:
        items.append(("coverage", "AB岗在岗", "在岗率 = 观测到的工作时间内 A 岗或 B 岗至少一人可接听（已登录队列、未暂停、话机可用，通话中也算）"
                      "的分钟数 ÷ 观测到的工作时间分钟数。未观测（服务未运行或与交换机断开，例如回放、演示或停机期间）"
                      "的时间单列为“未观测”，既不算在岗也不算空岗，不参与在岗率；全部未观测时在岗率显示“—”。"
                      "空岗：工作时间内 A、B 都不可接听的连续时段。时长单位均为分钟，保留一位小数。"))
    return [{"key": k, "title": title, "text": text} for k, title, text in items]
