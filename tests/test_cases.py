"""First-ask stories, walked through replayed real traffic and the service's API."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.domain.cases import Presence
from callcenter.followup.service import TaskError
from callcenter.replay import replay
from reports import daily
from tests.conftest import MONDAY_10, SHANGHAI, TRACES
from tests.tracetools import derive, shift_ids, swap_agents

HOTLINE_MARKET = "62000001"


async def _app(settings, db_url, at, presence=None):
    app = build(settings, db_url, FixedClock(at))
    await app.store.migrate()
    await app.cases.process_pending()
    await app.followup.process_pending()
    if presence is not None:
        app.cases.presence = lambda: presence
    return app


def _present(*available, away=()):
    picture = {a: Presence(a, True, (f"PJSIP/{a}",)) for a in available}
    picture.update({a: Presence(a, False, (f"PJSIP/{a}",)) for a in away})
    return picture


async def _case_of(app, caller):
    [case] = await app.cases.list(caller=caller, department="market")
    return await app.cases.get(case["id"])


async def test_first_ask_stories(settings, db_url, tmp_path):
    # day 1: four callers to 区市场监管局, answered by A (1001) and B (1002)
    await replay(settings, db_url, [str(TRACES / "basic.jsonl")], MONDAY_10)
    app = await _app(settings, db_url, MONDAY_10 + timedelta(minutes=5))
    cases = await app.cases.list()
    assert sorted((c["caller_num"], c["owner"]) for c in cases) == [
        ("13800000000", "1001"), ("13800000001", "1002"), ("13800000002", "1001"), ("13800000003", "1002")]

    # story 1: the caller asks, the agent resolves on the call
    first = await _case_of(app, "13800000000")
    resolved = await app.cases.dispose("pbx1", first["calls"][0]["call_id"], "1001", "resolved",
                                       item="食品经营许可")
    assert (resolved["status"], resolved["resolved_first_contact"], resolved["item"]) == ("resolved", True, "食品经营许可")

    # story 2: the case stays open (follow-up, 5 workdays) and the caller is routed to the owner
    second = await _case_of(app, "13800000002")
    follow = await app.cases.dispose("pbx1", second["calls"][0]["call_id"], "1001", "follow_up_simple")
    assert follow["status"] == "open"
    assert datetime.fromisoformat(follow["deadline"]).astimezone(SHANGHAI) == datetime(2026, 11, 30, 16, 30, tzinfo=SHANGHAI)
    app.cases.presence = lambda: _present("1001", "1002")
    route = await app.cases.route("13800000002", hotline=HOTLINE_MARKET)
    assert (route.department, route.queue, route.case_id, route.preferred_agent, route.reason) == \
        ("market", "q-market", second["id"], "1001", "owner_available")
    assert route.preferred_interfaces == ("PJSIP/1001",)

    # story 3: the owner is on leave, B answers, and ownership stays
    app.cases.presence = lambda: _present("1002", away=["1001"])
    route = await app.cases.route("13800000002", hotline=HOTLINE_MARKET)
    assert (route.preferred_agent, route.owner, route.reason) == ("1002", "1001", "owner_away_post")
    await app.store.close()
    # day 1, later: the same callers call again; this time B takes what A took (agents swapped)
    again = derive(TRACES / "basic.jsonl", tmp_path / "again.jsonl",
                   shift_ids("17953475", "17953485") + swap_agents("1001", "1002"))
    await replay(settings, db_url, [str(again)], MONDAY_10 + timedelta(hours=1))
    app = await _app(settings, db_url, MONDAY_10 + timedelta(hours=1, minutes=5))
    case = await _case_of(app, "13800000002")
    assert case["owner"] == "1001" and case["status"] == "open"
    assert [c["agent"] for c in case["calls"]] == ["1001", "1002"]
    assert [h["kind"] for h in case["history"]][:3] == ["opened", "disposition", "joined"]
    # a new matter for the caller whose first case was resolved: a new case
    assert len(await app.cases.list(caller="13800000000")) == 2
    # the head sees the call 1002 has not wrapped up yet
    app.clock.advance(15 * 60)
    pending = await app.cases.pending_wrapups(agent="1002")
    assert case["calls"][1]["call_id"] in {p["call_id"] for p in pending}

    # story 4: a case escalated to 12345 with its work-order number
    third = await _case_of(app, "13800000001")
    with pytest.raises(TaskError, match="work-order number"):
        await app.cases.dispose("pbx1", third["calls"][0]["call_id"], "1002", "escalated_12345")
    escalated = await app.cases.dispose("pbx1", third["calls"][0]["call_id"], "1002", "escalated_12345",
                                        work_order="SH12345-20261123-0001")
    assert (escalated["status"], escalated["work_order"]) == ("escalated", "SH12345-20261123-0001")

    # story 5: only the head reassigns, with a reason; the audit log shows it
    fourth = await _case_of(app, "13800000003")
    with pytest.raises(TaskError, match="only the head"):
        await app.cases.reassign(fourth["id"], "1001", by="1002", reason="换人")
    with pytest.raises(TaskError, match="needs a reason"):
        await app.cases.reassign(fourth["id"], "1001", by="head-market", reason=" ")
    moved = await app.cases.reassign(fourth["id"], "1001", by="head-market", reason="王芳休假，转张伟跟进")
    assert moved["owner"] == "1001"
    audit = [h for h in moved["history"] if h["kind"] == "reassigned"]
    assert audit == [{**audit[0], "actor": "head-market", "from": "1002", "to": "1001", "reason": "王芳休假，转张伟跟进"}]
    await app.store.close()


async def test_transfer_keeps_the_first_agent_as_owner(settings, db_url):
    await replay(settings, db_url, [str(TRACES / "transfer.jsonl")], MONDAY_10)
    app = await _app(settings, db_url, MONDAY_10 + timedelta(minutes=5))
    [case] = await app.cases.list()
    case = await app.cases.get(case["id"])
    await app.store.close()
    assert (case["department"], case["owner"]) == ("market", "1001")
    assert [c["agent"] for c in case["calls"]] == ["1001", "1005"]       # the owner sees what followed
    assert case["history"][1]["transferred_in"] is True


async def test_unknown_disposition_and_wrong_agent(settings, db_url):
    await replay(settings, db_url, [str(TRACES / "ivr-hangup.jsonl")], MONDAY_10)
    app = await _app(settings, db_url, MONDAY_10 + timedelta(minutes=5))
    [case] = await app.cases.list()
    call_id = (await app.cases.get(case["id"]))["calls"][0]["call_id"]
    with pytest.raises(TaskError, match="unknown disposition"):
        await app.cases.dispose("pbx1", call_id, "1001", "fixed")
    with pytest.raises(TaskError, match="not answered by agent"):
        await app.cases.dispose("pbx1", call_id, "1002", "resolved")
    with pytest.raises(TaskError, match="needs where the caller was directed"):
        await app.cases.dispose("pbx1", call_id, "1001", "out_of_scope")
    out = await app.cases.dispose("pbx1", call_id, "1001", "out_of_scope", directed_to="区信访办")
    gap_deadline = None
    assert (out["status"], out["directed_to"]) == ("out_of_scope", "区信访办")
    await app.store.close()
    del gap_deadline


async def test_missed_call_task_goes_to_the_case_owner(settings, db_url, tmp_path):
    await replay(settings, db_url, [str(TRACES / "basic.jsonl")], MONDAY_10)
    # the caller 13800000002 (case owned by 1001) calls later, waits in q-market and hangs up
    abandon = derive(TRACES / "abandon.jsonl", tmp_path / "abandon-market.jsonl",
                     [("13900000001", "13800000002"), ("q-edu", "q-market"), ("62000002", "62000001")])
    await replay(settings, db_url, [str(abandon)], MONDAY_10 + timedelta(hours=2))
    app = await _app(settings, db_url, MONDAY_10 + timedelta(hours=2, minutes=5))
    [task] = await app.followup.list(caller="13800000002")
    await app.store.close()
    assert (task["department"], task["assignee"], task["assigned_via"]) == ("market", "1001", "case_owner")


async def test_report_gains_case_figures(settings, db_url):
    await replay(settings, db_url, [str(TRACES / "basic.jsonl")], MONDAY_10)
    app = await _app(settings, db_url, MONDAY_10 + timedelta(minutes=5))
    calls = {c["caller_num"]: (await app.cases.get(c["id"]))["calls"][0] for c in await app.cases.list()}
    await app.cases.dispose("pbx1", calls["13800000000"]["call_id"], "1001", "resolved")
    await app.cases.dispose("pbx1", calls["13800000001"]["call_id"], "1002", "escalated_12345", work_order="W-1")
    await app.cases.dispose("pbx1", calls["13800000002"]["call_id"], "1001", "knowledge_gap")
    # 13800000003's call is left without a wrap-up
    store = app.store
    bounds = daily.day_bounds(MONDAY_10.date(), SHANGHAI)
    later = MONDAY_10 + timedelta(hours=3)
    report = daily.build(MONDAY_10.date(), await store.calls_between(*bounds), settings, await store.task_facts(*bounds),
                         later, await store.case_facts(*bounds), await store.pending_wrapups(later - timedelta(minutes=10)))
    await store.close()
    [market] = [d for d in report["departments"] if d["department"] == "market"]
    assert (market["cases_opened"], market["resolved_first_contact"], market["cases_closed"]) == (4, 1, 2)
    assert (market["escalated_12345"], market["escalation_rate"], market["escalation_over_target"]) == (1, 0.5, True)
    assert (market["knowledge_gaps"], market["out_of_scope"], market["wrapup_pending"]) == (1, 0, 1)
    assert (market["cases_due"], market["resolved_in_time"], market["resolution_rate"]) == (2, 1, 0.5)
    assert market["first_contact_resolution_rate"] == 0.25


async def test_case_deadlines_warn_the_owner_and_escalate_to_the_head(settings, db_url):
    from callcenter.notify.channels import PanelChannel
    from callcenter.notify.deadlines import DeadlineWatch
    from callcenter.notify.notifier import Notifier
    await replay(settings, db_url, [str(TRACES / "ivr-hangup.jsonl")], MONDAY_10)
    app = await _app(settings, db_url, MONDAY_10 + timedelta(minutes=5))
    [case] = await app.cases.list()
    call_id = (await app.cases.get(case["id"]))["calls"][0]["call_id"]
    case = await app.cases.dispose("pbx1", call_id, "1001", "follow_up_simple")     # due Monday 30th 16:30
    panel = PanelChannel()
    watch = DeadlineWatch(app.store, settings, Notifier(app.store, {"panel": panel}, app.clock), app.clock)
    app.clock.at = datetime(2026, 11, 30, 15, 0, tzinfo=SHANGHAI)                  # 90 minutes before
    await watch.check()
    app.clock.at = datetime(2026, 12, 1, 9, 0, tzinfo=SHANGHAI)                    # past it
    await watch.check()
    assert (await watch.check()) == {"warned": 0, "escalated": 0, "acknowledged": 0, "retried": 0}
    await app.store.close()
    # (the other caller's missed-call task escalates on its own; here only the case's messages)
    warn, escalate = [m for m in panel.recent if "首问" in m["body"]]
    assert warn["recipient"] == "1001" and "首问负责提醒" in warn["body"] and "13600000010" in warn["body"]
    assert escalate["recipient"] == "head:market" and "首问负责超期" in escalate["body"] and "张伟" in escalate["body"]
