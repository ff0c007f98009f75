"""Week, month and quarter roll-ups (issue 13): per department the daily report's core figures
over a period, summed over its days, and a ranking of the departments; JSON or a zh-CN table
(reports/render_period.py renders HTML, XLSX and CSV).

Weeks start on Monday, months and quarters are calendar ones; a period is judged in the
configured time zone. Counts come from one range query each (callcenter/storage/period_queries.py);
every rate is recomputed from the summed counts, never averaged over days. Coverage is worked
out day by day over the stored agent sessions and summed, so a login or pause that spans the
period's edge (or midnight, or the lunch break) counts only its part inside the business windows
of the period. The targets and the pass/miss checks of each entry are the daily report's
(reports/daily_notes.py); each department lists its queues' rows (the figures the roll-up sums
anyway). Per agent, the daily report's entries (reports/daily.py `agent_rows`) over the whole
period: answers and talk time of its calls, login and pause time of its sessions (the part inside
the period), wrap-ups of its calls; the average talk time and wrap-up compliance recomputed from
those sums. JSON keys: docs/metrics.md, "Period roll-ups".
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

from callcenter.domain.metrics import Figures, TaskFigures, finish_case_figures

from . import coverage, daily_notes
from .text import grid

KINDS = ("week", "month", "quarter")
KIND_ZH = {"week": "周报", "month": "月报", "quarter": "季报"}
CASE_SUMS = ("cases_opened", "resolved_first_contact", "resolved_in_time", "cases_overdue", "cases_closed",
             "escalated_12345", "out_of_scope", "knowledge_gaps", "cases_due")


def period_bounds(kind: str, day: date) -> tuple[date, date]:
    """The first and last day of the week (Monday-Sunday), month or quarter holding `day`."""
    if kind == "week":
        first = day - timedelta(days=day.weekday())
        return first, first + timedelta(days=6)
    if kind == "month":
        first = day.replace(day=1)
    elif kind == "quarter":
        first = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    else:
        raise ValueError(f"period kind must be one of {', '.join(KINDS)}, got {kind!r}")
    months = 1 if kind == "month" else 3
    year, month = divmod(first.month - 1 + months, 12)
    return first, date(first.year + year, month + 1, 1) - timedelta(days=1)


def title(kind: str, first: date, last: date) -> str:
    if kind == "week":
        iso_year, week, _ = first.isocalendar()
        return f"热线周报 {iso_year}年第{week}周（{first} 至 {last}）"
    if kind == "month":
        return f"热线月报 {first.year}年{first.month}月（{first} 至 {last}）"
    return f"热线季报 {first.year}年第{(first.month - 1) // 3 + 1}季度（{first} 至 {last}）"


async def period_report(store, settings, kind: str, day: date, now: datetime) -> dict:
    """The roll-up of the `kind` period holding `day`, read from the store (never written)."""
    from callcenter.storage.period_queries import period_inputs
    from callcenter.workdays import build_calendar

    from .daily import metric_settings
    first, last = period_bounds(kind, day)
    calendar = build_calendar(settings)
    inputs = await period_inputs(store, settings, calendar, first, last, now, metric_settings(settings))
    return build(kind, first, last, settings, calendar, now, **inputs)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _post_entries(first, last, settings, calendar, sessions, now, observed) -> list[dict]:
    """`coverage.posts` of every day of the period, each day given the sessions that touch it."""
    tz = calendar.tz
    by_day: dict[date, list] = {}
    for s in sessions:
        d = max(s.started_at.astimezone(tz).date(), first)
        while d <= min(s.ended_at.astimezone(tz).date(), last):
            by_day.setdefault(d, []).append(s)
            d += timedelta(days=1)
    out = []
    for d in _days(first, last):
        out += coverage.posts(d, settings, by_day.get(d, []), now, calendar, observed=observed)
    return out


def build(kind: str, first: date, last: date, settings, calendar, now: datetime, figures, task_groups,
          case_counts, sessions=(), observed=None, agent_wrapups=None, agent_time=None) -> dict:
    """The period's report from its counts (`period_queries.period_inputs`). `agent_wrapups`
    (agent -> (due, in time)) and `agent_time` (agent -> (login, pause)) over the period complete
    the agents, as in the daily report (`None`: not read, the figures are null)."""
    from .daily import agent_rows, checked, metric_settings, queue_figures
    ms = metric_settings(settings)
    directory = settings.directory()
    tz = ZoneInfo(settings.timezone)
    goal = daily_notes.targets(settings)
    rows, by_department, all_tasks = queue_figures(figures, task_groups)   # the daily report's rows
    queue_rows: dict[str | None, list[dict]] = {}
    for pbx, queue, department, f, tf in rows:
        queue_rows.setdefault(department, []).append(
            checked({"queue": queue, "pbx": pbx, **f.as_dict(ms), **tf.as_dict()}, goal))
    target = settings.cases.escalation_target
    by_case = finish_case_figures({d: dict(c) for d, c in case_counts.items()}, {}, target)
    case_totals = finish_case_figures({"": {k: sum(c.get(k, 0) for c in case_counts.values())
                                            for k in CASE_SUMS}}, {}, target)[""]
    no_cases = finish_case_figures({"": dict.fromkeys(CASE_SUMS, 0)}, {}, target)[""]
    posts = _post_entries(first, last, settings, calendar, sessions, now, observed) if settings.posts else []
    by_post = coverage.department_figures(posts)
    for department in list(by_case) + list(by_post):
        by_department.setdefault(department, (Figures(), TaskFigures()))
    departments = []
    for d, (f, tf) in sorted(by_department.items()):
        cases = {k: v for k, v in by_case.get(d, no_cases).items() if k != "wrapup_pending"}
        departments.append(checked({"department": d, "name": directory.department_names.get(d, d),
                                     **f.as_dict(ms), **tf.as_dict(), **cases, **by_post.get(d, coverage.NO_POSTS),
                                     "queues": queue_rows.get(d, [])}, goal))
    post_totals = [{**p, "department": p["post"]} for p in posts]
    per_post = coverage.department_figures(post_totals)
    names = {p.id: p for p in settings.posts}
    in_progress = now < datetime.combine(last + timedelta(days=1), datetime.min.time(), tz)
    days = _days(first, last)
    return {
        "kind": kind, "title": title(kind, first, last),
        "start": first.isoformat(), "end": last.isoformat(), "timezone": settings.timezone,
        "generated_at": now.astimezone(tz).isoformat(),
        "in_progress": in_progress, "as_of": now.astimezone(tz).isoformat() if in_progress else None,
        "days": len(days), "workdays": sum(calendar.is_workday(d) for d in days),
        "holidays": [d.isoformat() for d in days if d.weekday() < 5 and not calendar.is_workday(d)],
        "makeup_workdays": [d.isoformat() for d in days if d.weekday() >= 5 and calendar.is_workday(d)],
        "calendar_provisional": any(not calendar.is_covered(d) for d in {first, last}),
        "targets": goal,
        "departments": departments,
        "unmapped_queues": [q["queue"] for q in queue_rows.get(None, [])],
        "totals": checked({**figures.totals.as_dict(ms), **all_tasks.as_dict(), **case_totals,
                            **coverage.department_figures([{**p, "department": ""} for p in posts]).get(
                                "", coverage.NO_POSTS)}, goal),
        "posts": [{"post": p, "department": names[p].department if p in names else None, **v}
                  for p, v in per_post.items()],
        "agents": agent_rows(settings, figures, agent_wrapups, agent_time),
        "ranking": ranking(departments, ms.exclude_short_abandons),
        "notes": notes(kind, ms.exclude_short_abandons),
    }


def _exact(part: int, whole: int) -> Fraction | None:
    return Fraction(part, whole) if whole > 0 else None


def ranking(departments: list[dict], exclude_short: bool) -> list[dict]:
    """Departments by connect rate, then resolution rate (both highest first, compared exactly,
    not as rounded shares); equal on both: the same rank. A department without offered calls
    is listed last, unranked. Every tie says how it was broken (zh-CN `note`)."""
    rows = []
    for d in departments:
        denominator = d["offered"] - (d["short_abandoned"] if exclude_short else 0)
        rows.append((d, _exact(d["answered"], denominator), _exact(d["resolved_in_time"], d["cases_due"])))
    ranked = sorted((r for r in rows if r[1] is not None),
                    key=lambda r: (-r[1], r[2] is None, -(r[2] or 0), r[0]["department"]))
    out, previous = [], None
    for position, (d, connect, resolution) in enumerate(ranked, 1):
        same_connect = [x[0]["name"] for x in ranked if x[1] == connect and x[0] is not d]
        tied = [x[0]["name"] for x in ranked if x[1] == connect and x[2] == resolution and x[0] is not d]
        rank = previous["rank"] if previous and (previous["_key"] == (connect, resolution)) else position
        if tied:
            note = f"与{'、'.join(tied)}并列：接通率、解决率均相同"
        elif same_connect and resolution is None:
            note = f"接通率与{'、'.join(same_connect)}相同；本期无到期事项（解决率为空），排在其后"
        elif same_connect:
            note = f"接通率与{'、'.join(same_connect)}相同，按解决率排序"
        else:
            note = None
        previous = {"rank": rank, "_key": (connect, resolution)}
        out.append(_rank_entry(d, rank, note))
    for d, connect, _ in rows:
        if connect is None:
            out.append(_rank_entry(d, None, "本期无呼入，不参与排名"))
    return out


def _rank_entry(d: dict, rank: int | None, note: str | None) -> dict:
    return {"rank": rank, "department": d["department"], "name": d["name"], "connect_rate": d["connect_rate"],
            "resolution_rate": d["resolution_rate"], "offered": d["offered"], "answered": d["answered"],
            "cases_due": d["cases_due"], "resolved_in_time": d["resolved_in_time"], "note": note}


def notes(kind: str, exclude_short: bool) -> list[dict]:
    denominator = "（呼入 − 短放弃）" if exclude_short else "呼入"
    return [
        {"key": "period", "title": "统计周期",
         "text": {"week": "自然周（周一至周日）", "month": "自然月", "quarter": "自然季度"}[kind]
         + "，按北京时间（配置的时区）划分日期；节假日与调休上班日按法定工作日历计。"},
        {"key": "summing", "title": "汇总口径",
         "text": "各项数量为周期内逐日数量之和；各项比率由汇总后的数量重新计算，不是每日比率的平均。"},
        {"key": "connect_rate", "title": "接通率", "text": f"接通 ÷ {denominator}。"},
        {"key": "resolution_rate", "title": "解决率",
         "text": "按时解决的事项 ÷ 周期内到期的事项（当场解决或在办结时限内解决；非受理范围的除外）。"},
        {"key": "escalation_rate", "title": "转12345占比", "text": "转12345的事项 ÷ 周期内办结的事项。"},
        {"key": "cases_overdue", "title": "超期事项", "text": "统计时仍未办结且已过办结时限的事项（只计一次，不按天累加）。"},
        {"key": "coverage", "title": "AB岗在岗率",
         "text": "逐日计算后汇总；跨越周期起止、午休或零点的签入、暂停只计其在周期工作时段内的部分。"
                 "服务未运行或与交换机断开的时间为“未观测”，不计入；观测不足工作时间一成时标注。"},
        {"key": "ranking", "title": "排名",
         "text": "先按接通率从高到低，接通率相同时按解决率从高到低；两者均相同的并列同一名次；本期无呼入的部门不参与排名。"},
        {"key": "agents", "title": "坐席",
         "text": "接通与通话时长：周期内来电中由该坐席接听的次数与通话总时长（含非工作时间的来电）；"
                 "签入、暂停时长：周期内（统计中的周期截至报表时间）签入任一队列及签入期间暂停的时长，"
                 "跨越周期起止的只计周期内部分，同时签入多个队列只计一次；"
                 "平均通话与小结及时率由周期内汇总的数量重新计算，不是每日数值的平均。"},
        {"key": "totals", "title": "合计", "text": "全热线合计：每通来电只计一次（按其最后进入的队列），因此不一定等于各部门之和。"},
        {"key": "checks", "title": "达标",
         "text": "目标来自配置 reports.targets（与日报相同）；“达标”/“未达标”按本期汇总后的比率判断，无数据时不判断。"},
    ]


def _coverage(e: dict) -> str:
    """在岗率 over the observed business time, flagged when under a tenth was observed (a replay,
    a demo or a service mostly stopped: the rate says little then)."""
    if e.get("coverage_pct") is None:
        return "—"
    business, unobserved = e.get("business_minutes") or 0, e.get("unobserved_minutes") or 0
    thin = business > 0 and business - unobserved < business / 10
    return f"{e['coverage_pct']:.1f}%" + ("（观测不足1成）" if thin else "")


def render_table(report: dict) -> str:
    def pct(v):
        return "—" if v is None else f"{v * 100:.1f}%"

    def num(v):
        return "—" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))

    levels = [s["seconds"] for s in report["totals"]["service_level"]]

    def row(label, e):
        sl = {s["seconds"]: s["rate"] for s in e["service_level"]}
        return [label, num(e["offered"]), num(e["answered"]), pct(e["connect_rate"]), num(e["abandoned"]),
                num(e["short_abandoned"]), *[pct(sl.get(s)) for s in levels], num(e["average_wait_seconds"]),
                num(e["tasks_created"]), num(e["tasks_contacted_in_time"]), num(e["tasks_overdue"]),
                num(e["cases_opened"]), pct(e["resolution_rate"]), pct(e["escalation_rate"]),
                _coverage(e)]

    lines = [report["title"] + f"（{report['timezone']}）"]
    if report["in_progress"]:
        lines.append(f"统计中，截至 {report['as_of'][:16].replace('T', ' ')}")
    extra = []
    if report["holidays"]:
        extra.append("节假日 " + "、".join(d[5:] for d in report["holidays"]))
    if report["makeup_workdays"]:
        extra.append("调休上班 " + "、".join(d[5:] for d in report["makeup_workdays"]))
    lines.append(f"共 {report['days']} 天，工作日 {report['workdays']} 天" + (f"（{'；'.join(extra)}）" if extra else ""))
    if report["calendar_provisional"]:
        lines.append("* 该年度节假日安排尚未公布，工作日按周一至周五暂计")
    header = ["部门", "呼入", "接通", "接通率", "放弃", "短放弃", *[f"{s:g}秒接通率" for s in levels], "平均等待秒",
              "回访任务", "按时联系", "超期任务", "受理事项", "解决率", "转12345占比", "在岗率"]
    rows = [row(d["name"], d) for d in report["departments"]] + [row("合计", report["totals"])]
    lines += [""] + grid(header, rows)
    rank_rows = [["—" if r["rank"] is None else str(r["rank"]), r["name"], pct(r["connect_rate"]),
                  pct(r["resolution_rate"]), r["note"] or ""] for r in report["ranking"]]
    lines += ["", "部门排名"] + grid(["名次", "部门", "接通率", "解决率", "说明"], rank_rows, [8, 40, 10, 10, 120])
    agents = [a for a in report.get("agents") or [] if a["answered"] or a["login_seconds"] or a["wrapups_due"]]
    if agents:
        names = {d["department"]: d["name"] for d in report["departments"]}

        def hours(seconds):
            return "—" if seconds is None else f"{seconds / 3600:.1f}"
        lines += ["", "按坐席（时长单位：小时）"] + grid(
            ["坐席", "部门", "接通", "通话", "平均通话(秒)", "签入", "暂停", "小结及时率"],
            [[f"{a['name'] or a['agent']}({a['agent']})", names.get(a["department"], a["department"] or "—"),
              str(a["answered"]), hours(a["talk_seconds"]), num(a["average_talk_seconds"]),
              hours(a["login_seconds"]), hours(a["pause_seconds"]), pct(a["wrapup_compliance"])] for a in agents])
    lines += [""] + [f"{n['title']}：{n['text']}" for n in report["notes"]]
    return "\n".join(lines)
