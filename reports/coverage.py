"""A/B post coverage of one day: the `posts` list of the daily report and /api/coverage/daily.

Glue around the pure figures (callcenter/domain/coverage_figures.py, where the definitions are):
the configuration says which agents hold a post and which queue it is on, the workday calendar
and the department's business hours give the day's windows, the stored agent sessions (plus, in
the running service, the ones still open) are the facts.

A post's queue is its own ``queue`` setting if it has one, else its department's first queue on
the session's PBX; sessions are matched by agent id and queue name. With several PBXes (or a post
that names its ``pbx``) a post is on one PBX (``Settings.post_pbx``, issue 14): only sessions on
that PBX count, and only that PBX's observation.

``observed`` (PBX id -> periods, callcenter/storage/checkpoints.py ``observed``): when the
service's link to that PBX was up. Business time outside the periods of a post's PBXes (the
department's queue PBXes; ``*`` means every PBX) is ``unobserved_minutes``, not a gap.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Iterable
from zoneinfo import ZoneInfo

from callcenter.domain.calendar import WorkdayCalendar, normalize_windows
from callcenter.domain.coverage_figures import Interval, coverage_pct, minutes, post_figures
from callcenter.domain.presence import AgentSession
from callcenter.settings import Department, Post, Settings
from callcenter.workdays import build_calendar

ROLL_UP_SUMS = ("business_minutes", "covered_minutes", "gap_count", "gap_minutes", "b_takeovers",
                "b_takeover_minutes", "unobserved_minutes")

DEFINITION = ("coverage_pct = minutes of the department's business hours (workdays only, up to report time) "
              "with the post's A or B available (logged in to the post's queue, not paused, device "
              "reachable; busy on a call counts) / business minutes x 100; a gap: a maximal period in "
              "business hours with neither available; b_takeovers: maximal periods in business hours "
              "with B available and A not; unobserved_minutes: business minutes when the service was not running "
              "or its PBX link was down (neither covered nor a gap; coverage_pct is over the observed business "
              "minutes); department: weighted by observed business minutes")


def day_windows(day: date, windows, calendar: WorkdayCalendar) -> list[Interval]:
    """The business windows of ``day`` as aware datetimes; none on a non-workday."""
    if not calendar.is_workday(day):
        return []
    spans = normalize_windows([(w.start, w.end) if hasattr(w, "start") else w for w in windows])
    return [(datetime.combine(day, start, calendar.tz), datetime.combine(day, end, calendar.tz))
            for start, end in spans]


def post_queue(post: Post, department: Department | None, pbx: str) -> str | None:
    """The queue a post is staffed on, on one PBX."""
    own = getattr(post, "queue", None)
    if own:
        return own
    for ref in department.queues if department else []:
        if ref.pbx in ("*", pbx):
            return ref.name
    return None


def post_observed(post: Post, department: Department | None,
                  observed: dict[str, list[Interval]] | None) -> list[Interval] | None:
    """When the service saw the post's PBXes (None: no observation record, all observed)."""
    if observed is None:
        return None
    pbxes = {ref.pbx for ref in department.queues} if department else {"*"}
    return [span for pbx, spans in observed.items() if "*" in pbxes or pbx in pbxes for span in spans]


def posts(day: date, settings: Settings, sessions: Iterable[AgentSession], now: datetime | None = None,
          calendar: WorkdayCalendar | None = None,
          observed: dict[str, list[Interval]] | None = None) -> list[dict]:
    """One entry per configured post, in configuration order. ``now``: business time after it is
    not counted (today's report before closing)."""
    calendar = calendar or build_calendar(settings)
    tz = ZoneInfo(settings.timezone)
    departments = {d.id: d for d in settings.departments}
    names = {a.id: a.name for a in settings.agents}
    by_agent: dict[str | None, list[AgentSession]] = {}
    for s in sessions:
        by_agent.setdefault(s.agent, []).append(s)
    out = []
    several = len(settings.pbxes) > 1
    for post in settings.posts:
        dept = departments.get(post.department)
        facts = by_agent.get(post.a, []) + (by_agent.get(post.b, []) if post.b != post.a else [])
        windows = day_windows(day, settings.hours_of(post.department), calendar)
        on_pbx, on_queue = settings.post_pbx(post)
        if several or post.pbx is not None:               # one PBX: its sessions, its observation

            def in_queue(pbx: str, queue: str, on_pbx=on_pbx, on_queue=on_queue) -> bool:
                return (pbx, queue) == (on_pbx, on_queue)
            seen = None if observed is None else list(observed.get(on_pbx, []))
        else:                                             # a single PBX: whatever its id in the facts

            def in_queue(pbx: str, queue: str, post=post, dept=dept) -> bool:
                return queue == post_queue(post, dept, pbx)
            seen = post_observed(post, dept, observed)

        figures = post_figures(facts, post.a, post.b, in_queue, windows, until=now, observed=seen)
        out.append({
            "post": post.id, "department": post.department, "department_name": dept.name if dept else None,
            "a": post.a, "b": post.b, "a_name": names.get(post.a), "b_name": names.get(post.b),
            "pbx": on_pbx,
            "queue": on_queue or getattr(post, "queue", None) or (dept.queues[0].name if dept else None),
            **figures.as_dict(),
            "gap_periods": [_period(p, tz) for p in figures.gaps],
            "b_takeover_periods": [_period(p, tz) for p in figures.takeovers],
            "unobserved_periods": [_period(p, tz) for p in figures.unobserved],
        })
    return out


def department_figures(entries: Iterable[dict]) -> dict[str, dict]:
    """Roll-up per department of `posts` entries: sums, the longest gap, and coverage weighted
    by business minutes."""
    out: dict[str, dict] = {}
    for e in entries:
        d = out.setdefault(e["department"], {"post_count": 0, "longest_gap_minutes": 0.0,
                                             **{k: 0 for k in ROLL_UP_SUMS}})
        d["post_count"] += 1
        for k in ROLL_UP_SUMS:
            d[k] += e.get(k, 0)
        d["longest_gap_minutes"] = max(d["longest_gap_minutes"], e["longest_gap_minutes"])
    for d in out.values():
        for k in ROLL_UP_SUMS:
            if k.endswith("_minutes"):
                d[k] = round(d[k], 2)
        pct = coverage_pct(timedelta(minutes=d["business_minutes"] - d["unobserved_minutes"]),
                           timedelta(minutes=d["covered_minutes"]))
        d["coverage_pct"] = 99.9 if pct == 100.0 and d["gap_count"] else pct
    return out


NO_POSTS = {"post_count": 0, "business_minutes": 0.0, "covered_minutes": 0.0, "coverage_pct": None,
            "gap_count": 0, "gap_minutes": 0.0, "longest_gap_minutes": 0.0, "b_takeovers": 0,
            "b_takeover_minutes": 0.0, "unobserved_minutes": 0.0}


def departments(entries: list[dict], settings: Settings) -> list[dict]:
    """The roll-up as a list, one entry per department that has posts, sorted by id."""
    names = {d.id: d.name for d in settings.departments}
    return [{"department": d, "name": names.get(d, d), **f} for d, f in sorted(department_figures(entries).items())]


def daily(day: date, settings: Settings, sessions: Iterable[AgentSession], now: datetime | None = None,
          calendar: WorkdayCalendar | None = None, observed: dict[str, list[Interval]] | None = None) -> dict:
    """The /api/coverage/daily answer."""
    entries = posts(day, settings, sessions, now, calendar, observed)
    tz = ZoneInfo(settings.timezone)
    return {"date": day.isoformat(), "timezone": settings.timezone,
            "as_of": now.astimezone(tz).isoformat() if now else None,
            "definition": DEFINITION, "posts": entries, "departments": departments(entries, settings)}


def _period(p: Interval, tz: ZoneInfo) -> dict:
    return {"start": p[0].astimezone(tz).isoformat(), "end": p[1].astimezone(tz).isoformat(),
            "minutes": minutes(p[1] - p[0])}


def table_lines(report: dict) -> list[str]:
    """The zh-CN section of the daily table (empty without posts): minutes with one decimal, the
    on-duty rate over observed time only ("—" when nothing was observed, e.g. a replay's day
    outside the replayed minutes), unobserved time in a column of its own."""
    from .text import grid
    entries = report.get("posts") or []
    if not entries:
        return []

    def pct(e):
        observed = e["business_minutes"] - e.get("unobserved_minutes", 0)
        if e["coverage_pct"] is not None:       # a sliver of observed time (a replay, a demo) is no verdict
            return f"{e['coverage_pct']:.1f}%" + ("（观测不足1成）" if observed < e["business_minutes"] / 10 else "")
        return "—（未观测）" if e["business_minutes"] else "—（非工作日）"

    def mins(v):
        return f"{v:.1f}"

    several = len({e.get("pbx") for e in entries}) > 1          # the PBX shown when there are several

    def post(e):
        return f"{e['post']}（{e['department_name'] or e['department']}）" + (f" @{e['pbx']}" if several else "")

    rows = [[post(e), f"{e['a_name'] or e['a']}/{e['b_name'] or e['b']}", mins(e["business_minutes"]),
             mins(e["business_minutes"] - e.get("unobserved_minutes", 0)), pct(e),
             str(e["gap_count"]), mins(e["gap_minutes"]), mins(e["longest_gap_minutes"]),
             str(e["b_takeovers"]), mins(e["b_takeover_minutes"]), mins(e.get("unobserved_minutes", 0))]
            for e in entries]
    header = ["岗位", "A/B", "工作时间", "已观测", "在岗率(按已观测)", "空岗次数", "空岗", "最长空岗", "B岗顶岗次数",
              "B岗顶岗", "未观测"]
    return ["", "AB岗在岗（时长单位：分钟，保留一位小数）"] + grid(header, rows)
