"""Week, month and quarter roll-ups and the 30-day trend (issue 13) on a story with known answers.

The story (2026, Asia/Shanghai) spans the National Day holidays: Monday 5 October is a holiday,
Thursday 8 October a workday, Saturday 10 October a make-up workday (调休), Sunday 11 October a
day off. Calls, cases, tasks and agent sessions are stored as the service stores them, on SQLite
and PostgreSQL; every expected figure below is worked out by hand from the story.

The agents (their figures summed over each period: `AGENTS_*` below): 张伟 (1001, market's A post)
answers the market calls, 陈静 (1005) and 杨磊 (1006, edu's post) the edu ones, with talk times and
wrap-ups (`CASE_CALLS`) chosen so that an average of the days' rates would differ from the rate of
the sums; the logins and pauses fall on days without business hours (a holiday, a Sunday), so
the posts' coverage is that of the two logins the coverage assertions work out.
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from callcenter.domain.presence import AgentSession
from callcenter.domain.records import CallRecord, Outcome, Stint, StintEnd
from callcenter.storage import tables as t
from callcenter.storage.report_queries import daily_report_inputs
from callcenter.storage.store import Store
from reports import daily, period
from reports.trend import trend_entry, trend_section
from tests.auth_helpers import bearer, grant
from tests.conftest import SHANGHAI

NOW = datetime(2026, 12, 15, 12, 0, tzinfo=SHANGHAI)     # after the story, before the quarter ends


def at(m, d, hh=10, mm=0, ss=0):
    return datetime(2026, m, d, hh, mm, ss, tzinfo=SHANGHAI)


def call(cid: str, department: str, started: datetime, wait: float, end: StintEnd, agent: str = "1001",
         talk: float = 60.0) -> CallRecord:
    """Answered `wait` s after entering the queue (2 s after the call started), talking `talk` s."""
    entered = started + timedelta(seconds=2)
    waited = entered + timedelta(seconds=wait)
    answered = end is StintEnd.ANSWERED
    stint = Stint(queue=f"q-{department}", department=department, entered_at=entered,
                  left_at=waited + timedelta(seconds=talk if answered else 0), answered_at=waited if answered else None,
                  end=end, agent=agent if answered else None, talk_seconds=talk if answered else None)
    return CallRecord(pbx="pbx1", id=cid, linkedid=cid, caller_num=f"1390000{abs(hash(cid)) % 10000:04d}",
                      caller_name="", hotline="", department=department, started_at=started,
                      ended_at=waited + timedelta(seconds=max(90, talk + 30)),
                      outcome=Outcome.ANSWERED if answered else Outcome.ABANDONED, stints=[stint])


A, X = StintEnd.ANSWERED, StintEnd.ABANDONED
CALLS = [
    call("sep30", "market", at(9, 30), 20, X),          # Q3, the week before
    call("oct05", "market", at(10, 5), 5, A),           # a holiday: after-hours, not offered (1001, 60 s)
    call("oct08a", "market", at(10, 8), 10, A),
    call("oct08b", "market", at(10, 8, 10, 5), 40, A, talk=120),
    call("oct08c", "market", at(10, 8, 10, 10), 3, X),  # a short abandon
    call("oct10a", "market", at(10, 10), 20, A, talk=90),   # the make-up Saturday: offered
    call("oct10b", "edu", at(10, 10, 10, 1), 5, A, agent="1005"),
    call("oct10c", "edu", at(10, 10, 10, 2), 5, A, agent="1006", talk=45),
    call("oct10d", "edu", at(10, 10, 10, 3), 30, X),
    call("oct11", "edu", at(10, 11), 5, A, agent="1005"),               # Sunday: after-hours
    call("oct12", "edu", at(10, 12), 8, A, agent="1005", talk=30),      # the next week, same month
    call("nov02a", "market", at(11, 2), 10, X),
    call("nov02b", "edu", at(11, 2, 10, 1), 10, X),
]


def case(n, department, opened, status, deadline=None, closed=None, first=False):
    return {"caller_num": f"1380000{n:04d}", "department": department, "pbx": "pbx1", "queue": f"q-{department}",
            "status": status, "opened_at": opened, "deadline": deadline, "closed_at": closed,
            "resolved_first_contact": first, "owner": "1001"}


CASES = [
    case(1, "market", at(10, 8, 10, 1), "resolved", None, at(10, 8, 10, 5), True),     # due 8 Oct, in time
    case(2, "market", at(10, 8, 10, 6), "resolved", at(10, 15, 17), at(10, 14)),        # due 15 Oct, in time
    case(3, "market", at(11, 2), "resolved", at(11, 10, 17), at(11, 12)),               # due 10 Nov, late
    case(4, "market", at(11, 2, 11), "resolved", at(11, 10, 17), at(11, 12)),           # due 10 Nov, late
    case(5, "market", at(10, 8, 10, 9), "escalated", None, at(10, 9)),                  # 12345: due 9 Oct, not resolved
    case(6, "edu", at(10, 10, 10, 1), "open", at(10, 20, 17)),                          # due 20 Oct, open, overdue
    case(7, "edu", at(11, 2, 10, 1), "resolved", at(11, 9, 17), at(11, 5)),             # due 9 Nov, in time
    case(8, "edu", at(11, 3), "resolved", None, at(11, 3, 10, 5), True),                # due 3 Nov, in time
    case(9, "edu", at(11, 4), "open", at(11, 20, 17)),                                  # due 20 Nov, open, overdue
    case(10, "edu", at(11, 4, 11), "resolved", at(11, 6, 17), at(11, 9)),               # due 6 Nov, late
]


def task(n, department, missed, deadline, contacted=None):
    return {"caller_num": f"1370000{n:04d}", "department": department, "pbx": "pbx1", "queue": f"q-{department}",
            "status": "closed" if contacted else "open", "reason": "abandoned", "created_at": missed,
            "first_missed_at": missed, "last_missed_at": missed, "deadline": deadline, "contacted_at": contacted,
            "assigned_via": "pool"}


TASKS = [task(1, "market", at(10, 8, 10, 10), at(10, 9, 17), at(10, 9, 9)),     # contacted in time
         task(2, "edu", at(10, 10, 10, 3), at(10, 12, 17))]                       # never contacted: overdue


def login(agent, start, end, queue="q-market", kind="login"):
    return AgentSession("pbx1", agent, f"Local/{agent}@agents/n", "", queue, kind, "", start, end)


SESSIONS = [login("1001", at(10, 4, 20), at(10, 8, 10, 30)),       # over the week's start: 9:00-10:30 on 8 Oct
            login("1001", at(10, 6, 12), at(10, 6, 12, 45), kind="pause"),        # a holiday: no business hours
            login("1002", at(10, 10, 16), at(10, 12, 10)),         # over the week's end: 16:00-16:30 on 10 Oct
            login("1005", at(10, 11, 9), at(10, 11, 11), "q-edu"),                 # a Sunday: no business hours
            login("1005", at(10, 11, 9, 30), at(10, 11, 9, 50), "q-edu", "pause")]


def answer(call_id: str, case_no: int, after: float, done: float | None) -> dict:
    """The case call of `call_id`'s answer (`after` s from the call's start), disposed `done` s after
    answering (None: still pending). The wrap-up limit is 10 minutes (config/callcenter.yaml)."""
    record = next(c for c in CALLS if c.id == call_id)
    answered = record.started_at + timedelta(seconds=after)
    return {"pbx": "pbx1", "call_id": call_id, "seq": 0, "case": case_no, "agent": record.stints[0].agent,
            "answered_at": answered, "disposition": None if done is None else "resolved",
            "disposed_at": None if done is None else answered + timedelta(seconds=done)}


CASE_CALLS = [answer("oct08a", 1, 12, 300),         # 1001: in time
              answer("oct08b", 2, 42, 1500),        # 1001: 25 minutes, late
              answer("oct10a", 5, 22, 120),         # 1001: in time (8 Oct 1 of 2, 10 Oct 1 of 1: 2 of 3)
              answer("oct10b", 6, 7, None),         # 1005: never disposed
              answer("oct10c", 6, 7, 480),          # 1006: 8 minutes, in time
              answer("oct11", 6, 7, 540),           # 1005: in time
              answer("oct12", 6, 10, 60)]           # 1005: in time (the next week)

# per agent: (answered, talk s, average talk s, login s, pause s, wrap-ups due, in time, compliance)
AGENTS_WEEK = {"1001": (4, 330, 82.5, (3 * 24 + 10.5) * 3600, 45 * 60, 3, 2, 0.6667),   # 5 Oct 0:00-8 Oct 10:30
               "1002": (0, 0, None, 32 * 3600, 0, 0, 0, None),                         # 10 Oct 16:00-12 Oct 0:00
               "1005": (2, 120, 60.0, 2 * 3600, 20 * 60, 2, 1, 0.5),
               "1006": (1, 45, 45.0, 0, 0, 1, 1, 1.0)}
AGENTS_MONTH = {"1001": (4, 330, 82.5, (4 + 3 * 24 + 10.5) * 3600, 45 * 60, 3, 2, 0.6667),  # from 4 Oct 20:00
                "1002": (0, 0, None, (8 + 24 + 10) * 3600, 0, 0, 0, None),              # to 12 Oct 10:00
                "1005": (3, 150, 50.0, 2 * 3600, 20 * 60, 3, 2, 0.6667),
                "1006": (1, 45, 45.0, 0, 0, 1, 1, 1.0)}
AGENT_KEYS = ("answered", "talk_seconds", "average_talk_seconds", "login_seconds", "pause_seconds", "wrapups_due",
              "wrapups_in_time", "wrapup_compliance")


def agent_figures(report) -> dict:
    """The agents with anything to show, as (answered, ..., compliance) tuples like `AGENTS_*`."""
    return {a["agent"]: tuple(a[k] for k in AGENT_KEYS) for a in report["agents"]
            if a["answered"] or a["login_seconds"] or a["wrapups_due"]}


async def store_story(store: Store) -> None:
    await store.save_calls(CALLS)
    await store.save_sessions(SESSIONS)
    async with store.engine.begin() as conn:
        await conn.execute(t.cases.insert(), CASES)
        await conn.execute(t.tasks.insert(), TASKS)
        ids = dict((await conn.execute(t.cases.select().with_only_columns(t.cases.c.caller_num, t.cases.c.id))).all())
        await conn.execute(t.case_calls.insert(), [
            {**{k: v for k, v in c.items() if k != "case"}, "case_id": ids[CASES[c["case"] - 1]["caller_num"]]}
            for c in CASE_CALLS])


@pytest.fixture
async def story(db_url):
    store = Store(db_url)
    await store.migrate()
    await store_story(store)
    try:
        yield store
    finally:
        await store.close()


def by_id(report, key="departments"):
    return {d["department"]: d for d in report[key]}


def test_period_bounds_are_monday_weeks_calendar_months_and_quarters():
    assert period.period_bounds("week", date(2026, 10, 11)) == (date(2026, 10, 5), date(2026, 10, 11))
    assert period.period_bounds("week", date(2026, 10, 5)) == (date(2026, 10, 5), date(2026, 10, 11))
    assert period.period_bounds("week", date(2026, 12, 31)) == (date(2026, 12, 28), date(2027, 1, 3))
    assert period.period_bounds("month", date(2026, 2, 14)) == (date(2026, 2, 1), date(2026, 2, 28))
    assert period.period_bounds("month", date(2026, 12, 31)) == (date(2026, 12, 1), date(2026, 12, 31))
    assert period.period_bounds("quarter", date(2026, 9, 30)) == (date(2026, 7, 1), date(2026, 9, 30))
    assert period.period_bounds("quarter", date(2026, 10, 1)) == (date(2026, 10, 1), date(2026, 12, 31))
    with pytest.raises(ValueError, match="week, month, quarter"):
        period.period_bounds("year", date(2026, 1, 1))


async def test_week_with_a_holiday_and_a_make_up_workday(story, settings):
    report = await period.period_report(story, settings, "week", date(2026, 10, 8), NOW)
    assert (report["start"], report["end"], report["days"]) == ("2026-10-05", "2026-10-11", 7)
    assert report["workdays"] == 3                                  # 8, 9 and the make-up 10 October
    assert report["holidays"] == ["2026-10-05", "2026-10-06", "2026-10-07"]
    assert report["makeup_workdays"] == ["2026-10-10"]
    assert report["in_progress"] is False and report["as_of"] is None
    assert report["title"] == "热线周报 2026年第41周（2026-10-05 至 2026-10-11）"
    m, e = by_id(report)["market"], by_id(report)["edu"]
    assert (m["offered"], m["answered"], m["abandoned"], m["short_abandoned"], m["after_hours"]) == (4, 3, 1, 1, 1)
    assert m["connect_rate"] == 0.75            # 3/4 from the summed counts; the days' rates average 0.8333
    assert [(s["seconds"], s["answered"], s["rate"]) for s in m["service_level"]] == [(15, 1, 0.25), (60, 3, 0.75)]
    assert m["average_wait_seconds"] == round((10 + 40 + 20) / 3, 1)
    assert (e["offered"], e["answered"], e["abandoned"], e["short_abandoned"], e["after_hours"]) == (3, 2, 1, 0, 1)
    assert e["connect_rate"] == round(2 / 3, 4)
    assert (m["tasks_created"], m["tasks_contacted_in_time"], m["tasks_overdue"]) == (1, 1, 0)
    assert (e["tasks_created"], e["tasks_contacted_in_time"], e["tasks_overdue"]) == (1, 0, 1)
    # cases due this week: 1 (resolved on the call, 8 Oct) and 5 (escalated, 9 Oct)
    assert (m["cases_opened"], m["cases_due"], m["resolved_in_time"], m["resolution_rate"]) == (3, 2, 1, 0.5)
    assert (m["cases_closed"], m["escalated_12345"], m["escalation_rate"]) == (2, 1, 0.5)
    assert (e["cases_opened"], e["cases_due"], e["resolution_rate"]) == (1, 0, None)
    # coverage: the logins spanning the week's edges count only inside it (90 + 30 minutes)
    assert (m["business_minutes"], m["covered_minutes"]) == (3 * 330, 120)
    assert m["gap_count"] == 6 and m["coverage_pct"] == round(120 / 990 * 100, 1)
    assert [r["department"] for r in report["ranking"][:2]] == ["market", "edu"]
    assert [r["rank"] for r in report["ranking"][:2]] == [1, 2] and report["ranking"][0]["note"] is None
    assert all(r["rank"] is None and r["note"] == "本期无呼入，不参与排名" for r in report["ranking"][2:])
    totals = report["totals"]
    assert (totals["offered"], totals["answered"], totals["after_hours"]) == (7, 5, 2)
    assert (totals["cases_due"], totals["resolved_in_time"], totals["escalated_12345"]) == (2, 1, 1)
    assert totals["covered_minutes"] == 120
    # per agent, summed over the week: 1001's compliance is 2/3 of the sums, not the mean (0.75) of
    # its days' 1/2 (8 Oct) and 1/1 (10 Oct); its average talk 330/4, not the days' mean (80)
    assert agent_figures(report) == AGENTS_WEEK
    agents = {a["agent"]: a for a in report["agents"]}
    assert [a["agent"] for a in report["agents"]] == [a.id for a in settings.agents]     # as the daily report
    assert (agents["1001"]["name"], agents["1001"]["department"], agents["1005"]["department"]) == (
        "张伟", "market", "edu")
    assert sum(a["answered"] for a in report["agents"]) == 7 != totals["answered"]    # after-hours answers too


async def test_the_next_week_gets_the_rest_of_a_login_and_the_week_before_only_its_own_days(story, settings):
    before = await period.period_report(story, settings, "week", date(2026, 10, 1), NOW)
    after = await period.period_report(story, settings, "week", date(2026, 10, 12), NOW)
    assert by_id(before)["market"]["covered_minutes"] == 0          # 4 Oct is a Sunday
    assert by_id(before)["market"]["offered"] == 1                  # 30 Sep
    assert by_id(after)["market"]["covered_minutes"] == 60          # 12 Oct 9:00-10:00
    assert by_id(after)["edu"]["offered"] == 1
    # the logins over the weeks' edges: 1001's 20:00-24:00 on 4 Oct, 1002's 0:00-10:00 on 12 Oct
    assert agent_figures(before) == {"1001": (0, 0, None, 4 * 3600, 0, 0, 0, None)}
    assert agent_figures(after) == {"1002": (0, 0, None, 10 * 3600, 0, 0, 0, None),
                                    "1005": (1, 30, 30.0, 0, 0, 1, 1, 1.0)}


async def test_month_ranking_breaks_a_connect_rate_tie_by_resolution_rate(story, settings):
    report = await period.period_report(story, settings, "month", date(2026, 10, 31), NOW)
    m, e = by_id(report)["market"], by_id(report)["edu"]
    assert (m["offered"], m["answered"], m["connect_rate"]) == (4, 3, 0.75)
    assert (e["offered"], e["answered"], e["connect_rate"]) == (4, 3, 0.75)
    assert (m["cases_due"], m["resolved_in_time"]) == (3, 2)        # cases 1, 2, 5
    assert (e["cases_due"], e["resolved_in_time"], e["cases_overdue"]) == (1, 0, 1)
    first, second = report["ranking"][:2]
    assert (first["department"], first["rank"], second["department"], second["rank"]) == ("market", 1, "edu", 2)
    assert "接通率与区教育局相同，按解决率排序" == first["note"]
    assert "接通率与区市场监管局相同，按解决率排序" == second["note"]
    assert agent_figures(report) == AGENTS_MONTH


async def test_quarter_equal_on_both_rates_is_a_shared_rank(story, settings):
    report = await period.period_report(story, settings, "quarter", date(2026, 11, 15), NOW)
    assert (report["start"], report["end"]) == ("2026-10-01", "2026-12-31")
    assert report["in_progress"] is True and report["as_of"] == NOW.isoformat()
    m, e = by_id(report)["market"], by_id(report)["edu"]
    assert (m["offered"], m["answered"], m["connect_rate"]) == (5, 3, 0.6)
    assert (e["offered"], e["answered"], e["connect_rate"]) == (5, 3, 0.6)
    assert (m["cases_due"], m["resolved_in_time"], m["resolution_rate"]) == (5, 2, 0.4)
    assert (e["cases_due"], e["resolved_in_time"], e["resolution_rate"]) == (5, 2, 0.4)
    assert (e["cases_overdue"], m["escalated_12345"]) == (2, 1)
    ranks = [(r["department"], r["rank"], r["note"]) for r in report["ranking"][:2]]
    assert ranks == [("edu", 1, "与区市场监管局并列：接通率、解决率均相同"),
                     ("market", 1, "与区教育局并列：接通率、解决率均相同")]
    q3 = await period.period_report(story, settings, "quarter", date(2026, 9, 1), NOW)
    assert by_id(q3)["market"]["offered"] == 1 and q3["in_progress"] is False
    assert agent_figures(report) == AGENTS_MONTH                     # nothing after October
    assert agent_figures(q3) == {}                                   # 30 Sep: abandoned, no session
    table = period.render_table(report)
    assert "热线季报 2026年第4季度" in table and "统计中，截至 2026-12-15 12:00" in table and "部门排名" in table
    assert "调休上班 10-10" in table and "并列" in table
    assert "观测不足1成" not in table                                # no observation record: all observed
    agents = table[table.index("按坐席（时长单位：小时）"):].split("\n\n")[0].splitlines()
    assert agents[1].split() == ["坐席", "部门", "接通", "通话", "平均通话(秒)", "签入", "暂停", "小结及时率"]
    rows = {line.split()[0]: line.split()[1:] for line in agents[3:]}
    assert rows["张伟(1001)"] == ["区市场监管局", "4", "0.1", "82.5", "86.5", "0.8", "66.7%"]
    assert rows["王芳(1002)"] == ["区市场监管局", "0", "0.0", "—", "42.0", "0.0", "—"]
    assert rows["陈静(1005)"][:3] == ["区教育局", "3", "0.0"] and "李娜(1003)" not in rows
    thin = {"coverage_pct": 50.0, "business_minutes": 990, "unobserved_minutes": 900}
    assert period._coverage(thin) == "50.0%（观测不足1成）"
    assert period._coverage({**thin, "unobserved_minutes": 800}) == "50.0%"


async def test_period_counts_equal_the_sum_of_the_days(story, settings):
    """Every count of the week is the sum of its seven days' counts, each day counted the
    reference way (`daily_figures` over the day's call records; tasks and cases by day)."""
    from callcenter.domain.metrics import daily_figures
    from callcenter.storage.report_queries import case_counts, task_groups
    report = await period.period_report(story, settings, "week", date(2026, 10, 5), NOW)
    keys = ("offered", "answered", "abandoned", "short_abandoned", "after_hours")
    sums = dict.fromkeys(keys + ("tasks_created", "cases_opened", "cases_due"), 0)
    ms = daily.metric_settings(settings)
    for i in range(7):
        bounds = daily.day_bounds(date(2026, 10, 5) + timedelta(days=i), SHANGHAI)
        figures = daily_figures(await story.calls_between(*bounds), settings.directory(),
                                daily.opening_hours(settings), ms)
        counts = figures.queues.get(("pbx1", "q-market"))
        for k in keys:
            sums[k] += counts.counts[k] if counts else 0
        sums["tasks_created"] += sum(v.created for (_, _, d), v in (await task_groups(story, *bounds, NOW)).items()
                                     if d == "market")
        cases = (await case_counts(story, *bounds, NOW)).get("market", {})
        sums["cases_opened"] += cases.get("cases_opened", 0)
        sums["cases_due"] += cases.get("cases_due", 0)
    assert sums == {k: by_id(report)["market"][k] for k in sums}
    assert sums["offered"] == 4 and sums["cases_due"] == 2


async def test_agents_are_the_sum_of_the_daily_reports_agents(story, settings):
    """Each agent's counts and times over the week are the sums of its entries in the seven daily
    reports (reports/daily.py, as `callcenter report daily` builds them); the rates are worked
    out from those sums."""
    report = await period.period_report(story, settings, "week", date(2026, 10, 5), NOW)
    sums: dict[str, list] = {}
    for i in range(7):
        day = date(2026, 10, 5) + timedelta(days=i)
        for a in daily.build(day, [], settings, **await daily_report_inputs(story, settings, day, NOW))["agents"]:
            total = sums.setdefault(a["agent"], [0] * 6)
            for j, k in enumerate(("answered", "talk_seconds", "login_seconds", "pause_seconds", "wrapups_due",
                                   "wrapups_in_time")):
                total[j] += a[k]
    week = {a["agent"]: a for a in report["agents"]}
    assert set(sums) == set(week)
    for agent, (answered, talk, login, pause, due, done) in sums.items():
        a = week[agent]
        assert (a["answered"], a["login_seconds"], a["pause_seconds"], a["wrapups_due"], a["wrapups_in_time"]) == (
            answered, round(login, 1), round(pause, 1), due, done), agent
        assert a["talk_seconds"] == round(talk, 1)
        assert a["average_talk_seconds"] == (round(talk / answered, 1) if answered else None)
        assert a["wrapup_compliance"] == (round(done / due, 4) if due else None)
    assert sums["1001"] == [4, 330, (3 * 24 + 10.5) * 3600, 2700, 3, 2]


async def test_trend_is_thirty_days_matching_the_daily_totals(story, settings):
    trend = await trend_section(story, settings, date(2026, 10, 12), NOW)
    assert len(trend) == 30 and trend[0]["date"] == "2026-09-13" and trend[-1]["date"] == "2026-10-12"
    days = {e["date"]: e for e in trend}
    assert days["2026-10-08"] == {"date": "2026-10-08", "offered": 3, "answered": 2, "connect_rate": round(2 / 3, 4),
                                  "resolution_rate": 1.0}
    assert days["2026-10-09"]["resolution_rate"] == 0.0 and days["2026-10-09"]["offered"] == 0
    assert days["2026-10-05"] == {"date": "2026-10-05", "offered": 0, "answered": 0, "connect_rate": None,
                                  "resolution_rate": None}                    # the holiday's call is after-hours
    assert (days["2026-10-10"]["offered"], days["2026-10-10"]["answered"]) == (4, 3)
    assert days["2026-09-30"]["connect_rate"] == 0.0
    known = {}
    for d in ("2026-09-30", "2026-10-08", "2026-10-09", "2026-10-10", "2026-10-12"):
        day = date.fromisoformat(d)
        report = daily.build(day, [], settings, **await daily_report_inputs(story, settings, day, NOW))
        assert (days[d]["offered"], days[d]["answered"], days[d]["connect_rate"]) == (
            report["totals"]["offered"], report["totals"]["answered"], report["totals"]["connect_rate"])
        known[day] = trend_entry(report)                 # what an archived daily report gives
        assert known[day] == days[d]
    # days already known (archived reports) are not read again; the rest (gaps between them) are
    assert await trend_section(story, settings, date(2026, 10, 12), NOW, known=known) == trend
    only_today = {date.fromisoformat(e["date"]): e for e in trend[:-1]}
    assert await trend_section(story, settings, date(2026, 10, 12), NOW, known=only_today) == trend


# --- the REST API: a head sees only their departments ------------------------------------------------

@asynccontextmanager
async def story_app(settings, db_url):
    """The story stored (complete: no after-commit steps owed) and the service's app over it at
    NOW, with its HTTP API on a test server: (app, client)."""
    from callcenter.bootstrap import build
    from callcenter.clock import FixedClock
    from callcenter.web.app import init_app
    store = Store(db_url)
    await store.migrate()
    await store_story(store)
    async with store.engine.begin() as conn:          # the story is complete: no after-commit steps owed
        await conn.execute(t.calls.update().values({c.name: True for c in t.calls.c if c.name.endswith("_done")}))
    await store.close()
    app_obj = build(settings, db_url, FixedClock(NOW))
    app_obj.extras.remove(app_obj.coverage)
    await app_obj.start()
    client = TestClient(TestServer(await init_app(app_obj)))
    await client.start_server()
    try:
        yield app_obj, client
    finally:
        await client.close()
        await app_obj.stop()


async def test_period_api_is_scoped_to_the_heads_departments(settings, db_url):
    async with story_app(settings, db_url) as (app_obj, client):
        head_edu = bearer(await grant(app_obj, "head-edu", "head", ["edu"]))
        office = bearer(await grant(app_obj, "office", "office"))
        async with client.get("/api/reports/period", params={"kind": "month", "date": "2026-10-20"},
                              headers=head_edu) as r:
            assert r.status == 200, await r.text()
            body = await r.json()
        assert [d["department"] for d in body["departments"]] == ["edu"] and body["scope"] == ["edu"]
        assert [(x["department"], x["rank"]) for x in body["ranking"]] == [("edu", 2)]
        assert body["totals"]["offered"] == 8 and body["kind"] == "month"
        # only the agents of the head's departments (edu's post: 1005 and 1006), with their figures
        assert [a["agent"] for a in body["agents"]] == ["1005", "1006"]
        assert agent_figures(body) == {k: AGENTS_MONTH[k] for k in ("1005", "1006")}
        async with client.get("/api/reports/period", params={"kind": "month", "date": "2026-10-20",
                                                             "department": "market"}, headers=head_edu) as r:
            assert r.status == 403
        async with client.get("/api/reports/period", params={"kind": "year"}, headers=office) as r:
            assert r.status == 400
        async with client.get("/api/reports/period", params={"kind": "week", "date": "2026-10-05"},
                              headers=office) as r:
            body = await r.json()
        assert "scope" not in body and len(body["departments"]) == len(settings.departments)
        assert by_id(body)["market"]["connect_rate"] == 0.75
        assert agent_figures(body) == AGENTS_WEEK and len(body["agents"]) == len(settings.agents)
        async with client.get("/api/reports/period", params={"kind": "week"}) as r:
            assert r.status == 401
