"""The daily report's IVR section (issue 12): per department and in total, from `ivr_sessions`
(SQL aggregates: callcenter/storage/ivr_queries.py). Keys are documented in docs/metrics.md
("IVR and survey").

`ivr_section(store, settings, day, now)` -> {"departments": [entry...], "totals": entry}; each
entry: department, department_name, entries, hangups, hangups_by_level {"<level>": n}, choices
[{item, digit, n}], callback_requests, survey_offered, survey_rated, survey_participation,
satisfied, basic, dissatisfied, satisfaction_rate (= satisfied / ratings given),
dissatisfied_contacted_in_time, dissatisfied_contact_due, dissatisfied_list [...]. Sessions
count on the day (Asia/Shanghai) they started, up to `now` while the day is in progress.
`table_lines(section)`: the zh-CN lines for the terminal report.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from callcenter.domain.validation import mask_number
from callcenter.storage.ivr_queries import ivr_figures

from .text import grid

COUNTS = ("entries", "hangups", "callback_requests", "survey_offered", "survey_rated", "satisfied", "basic",
          "dissatisfied")
RATING_NAMES = {"satisfied": "满意", "basic": "基本满意", "dissatisfied": "不满意"}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def contacted_in_time(row: dict, now: datetime) -> bool | None:
    """True: contacted by the contact deadline; False: contacted late, or the deadline passed
    without contact; None: no follow-up task (no number), or not contacted and not yet due."""
    deadline = row["deadline"]
    if row["task_id"] is None or deadline is None:
        return None
    if row["contacted_at"] is not None:
        return row["contacted_at"] <= deadline
    return False if deadline < now else None


def _listed(row: dict, now: datetime, agents: dict) -> dict:
    return {"call_id": row["uniqueid"], "pbx": row["pbx"], "at": _iso(row["ended_at"]),
            "caller": mask_number(row["caller_num"]) or "", "department": row["department"],
            "agent": row["agent"], "agent_name": agents.get(row["agent"]), "queue": row["queue"],
            "case_id": row["case_id"], "task_id": row["task_id"], "task_status": row["status"],
            "contact_deadline": _iso(row["deadline"]), "contacted_at": _iso(row["contacted_at"]),
            "contacted_in_time": contacted_in_time(row, now),
            "rectify_deadline": _iso(row["rectify_deadline"]), "rectify_kind": row["rectify_kind"]}


def _entry(department, name, counts: dict, hangups: dict, choices: dict, listed: list[dict]) -> dict:
    c = {k: counts.get(k, 0) for k in COUNTS}
    return {"department": department, "department_name": name, **c,
            "hangups_by_level": {str(level): n for level, n in sorted(hangups.items())},
            "choices": [{"item": item, "digit": digit, "n": n}
                        for (item, digit), n in sorted(choices.items(), key=lambda x: (x[0][1], x[0][0] or ""))],
            "survey_participation": _rate(c["survey_rated"], c["survey_offered"]),
            "satisfaction_rate": _rate(c["satisfied"], c["survey_rated"]),
            "dissatisfied_contacted_in_time": sum(1 for x in listed if x["contacted_in_time"] is True),
            "dissatisfied_contact_due": sum(1 for x in listed if x["contacted_in_time"] is not None),
            "dissatisfied_list": listed}


async def ivr_section(store, settings, day: date, now: datetime) -> dict:
    tz = ZoneInfo(settings.timezone)
    start = datetime.combine(day, time(0), tz)
    end = min(start + timedelta(days=1), max(now, start))
    figures = await ivr_figures(store, start, end)
    directory = settings.directory()
    names, agents = directory.department_names, directory.agent_names
    order = {d.id: i for i, d in enumerate(settings.departments)}
    departments = set(figures["counts"]) | {d for d, _ in figures["hangups"]} | {d for d, _, _ in figures["choices"]}
    listed = [_listed(r, now, agents) for r in figures["dissatisfied"]]
    entries = []
    for department in sorted(departments, key=lambda d: (d is None, order.get(d, len(order)), d or "")):
        entries.append(_entry(
            department, names.get(department) if department else "未归属部门", figures["counts"].get(department, {}),
            {lv: n for (d, lv), n in figures["hangups"].items() if d == department},
            {(item, digit): n for (d, item, digit), n in figures["choices"].items() if d == department},
            [x for x in listed if x["department"] == department]))
    totals_counts = {k: sum(c.get(k, 0) for c in figures["counts"].values()) for k in COUNTS}
    hangups: dict[int, int] = {}
    for (_, level), n in figures["hangups"].items():
        hangups[level] = hangups.get(level, 0) + n
    choices: dict[tuple, int] = {}
    for (_, item, digit), n in figures["choices"].items():
        choices[(item, digit)] = choices.get((item, digit), 0) + n
    return {"departments": entries, "totals": _entry(None, "合计", totals_counts, hangups, choices, listed)}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _local(value: str | None, size: int, tz: ZoneInfo) -> str:
    return datetime.fromisoformat(value).astimezone(tz).isoformat(" ")[:size] if value else "—"


def table_lines(section: dict | None, timezone: str = "Asia/Shanghai") -> list[str]:
    """The IVR section as zh-CN lines for the terminal report."""
    if not section:
        return ["IVR 与满意度评价：—"]
    tz = ZoneInfo(timezone)
    rows = []
    for e in section["departments"] + [section["totals"]]:
        levels = "、".join(f"{lv}级 {n}" if lv != "0" else f"菜单前 {n}" for lv, n in e["hangups_by_level"].items())
        rows.append([e["department_name"] or e["department"] or "—", str(e["entries"]), str(e["hangups"]),
                     levels or "—", str(e["callback_requests"]), str(e["survey_offered"]), str(e["survey_rated"]),
                     _pct(e["survey_participation"]), f"{e['satisfied']}/{e['basic']}/{e['dissatisfied']}",
                     _pct(e["satisfaction_rate"]),
                     f"{e['dissatisfied_contacted_in_time']}/{e['dissatisfied_contact_due']}"])
    lines = ["IVR 与满意度评价（好差评）"]
    lines += grid(["部门", "进入IVR", "IVR挂机", "各级挂机", "留言回拨", "邀评", "参评", "参评率", "满意/基本/不满意",
                   "满意率", "不满意1个工作日内联系"], rows)
    totals = section["totals"]
    if totals["choices"]:
        lines += ["", "按键选择（合计）"]
        lines += grid(["按键", "事项", "次数"], [[c["digit"], c["item"] or "人工服务", str(c["n"])] for c in totals["choices"]])
    if totals["dissatisfied_list"]:
        lines += ["", "不满意评价"]
        lines += grid(["时间", "来电", "部门", "坐席", "联系期限", "按时联系", "整改期限"], [
            [_local(x["at"], 16, tz), x["caller"] or "—", x["department"] or "—",
             x["agent_name"] or x["agent"] or "—", _local(x["contact_deadline"], 10, tz),
             {True: "是", False: "否", None: "待定"}[x["contacted_in_time"]], _local(x["rectify_deadline"], 10, tz)]
            for x in totals["dissatisfied_list"]])
    lines.append("满意率 = 满意评价数 / 参评数；参评率 = 参评数 / 邀评数；IVR挂机按到达的最深菜单层级计（菜单前：欢迎语、非工作时间提示等）。")
    return lines
