"""First-ask stories over real HTTP: dispositions, owner routing (JSON and the dialplan's text),
reassignment with its audit log, pending wrap-ups, callbacks, and `callcenter cases list`.

The database is the real traces basic, transfer and ivr-hangup replayed from Monday 23 Nov 10:00;
every answered call opened a case in 区市场监管局 (market) owned by the agent who answered:
  case 1  13800000000  1001   basic        case 4  13800000003  1002   basic
  case 2  13800000001  1002   basic        case 5  13800009999  1001   transfer (then 1005 in q-edu)
  case 3  13800000002  1001   basic        case 6  13600000010  1001   ivr-hangup
and 13600000009, who hung up in the IVR, has an open follow-up task. The service's clock stands at
Monday 10:30, so every answered call is past the 10-minute wrap-up time.
"""
from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer

from callcenter.ami.client import Endpoint
from callcenter.ami.server import AmiServer
from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.domain.cases import Presence, Route
from callcenter.replay import replay
from callcenter.settings import load_settings
from callcenter.web.app import init_app
from callcenter.web.cases_api import route_line
from callcenter.web.app import APP
from tests.auth_helpers import bearer, grant
from tests.conftest import MONDAY_10, ROOT, SHANGHAI, trace_path

NOW = MONDAY_10 + timedelta(minutes=30)
HOTLINE_MARKET = "62000001"
OWNERS = {"13800000000": "1001", "13800000001": "1002", "13800000002": "1001", "13800000003": "1002",
          "13800009999": "1001", "13600000010": "1001"}
IVR_HANGUP = "13600000009"


@pytest.fixture(scope="module")
def replayed_db(tmp_path_factory) -> Path:
    """The traces replayed once per module; each test gets its own copy (`db_url`)."""
    path = tmp_path_factory.mktemp("replayed") / "callcenter.db"
    traces = [str(trace_path(name)) for name in ("basic", "transfer", "ivr-hangup")]
    asyncio.run(replay(load_settings(ROOT / "config"), f"sqlite:///{path}", traces, MONDAY_10))
    return path


@pytest.fixture
def db_url(replayed_db, tmp_path) -> str:
    copy = tmp_path / "callcenter.db"
    with closing(sqlite3.connect(replayed_db)) as source, closing(sqlite3.connect(copy)) as target:
        source.backup(target)
    return f"sqlite:///{copy}"


def build_app(settings, db_url: str):
    """The service without its A/B coverage worker, which is not under test here: routing tests
    set the presence they need and assume covered posts (a gap has a test of its own)."""
    app_obj = build(settings, db_url, FixedClock(NOW))
    app_obj.extras.remove(app_obj.coverage)
    app_obj.cases.gap_fallback = lambda department, pbx: None
    return app_obj


@pytest.fixture
async def app_obj(settings, db_url):
    app_obj = build_app(settings, db_url)
    await app_obj.start()
    yield app_obj
    await app_obj.stop()


@pytest.fixture
async def client(app_obj):
    """Signed in as "head-market", head of every department; `as_agent` signs an agent in."""
    head = await grant(app_obj, "head-market", "head", [d.id for d in app_obj.settings.departments])
    client = TestClient(TestServer(await init_app(app_obj)), headers=bearer(head))
    await client.start_server()
    yield client
    await client.close()


async def call(client, method: str, path: str, **kwargs) -> tuple[int, dict]:
    async with client.request(method, path, **kwargs) as response:
        assert response.content_type == "application/json" and response.charset == "utf-8"
        return response.status, await response.json()


async def text(client, path: str, **kwargs) -> str:
    async with client.get(path, **kwargs) as response:
        assert response.status == 200
        assert response.content_type == "text/plain" and response.charset == "utf-8"
        return await response.text()


async def case_of(client, caller: str) -> dict:
    """The caller's case as GET /api/cases/{id} returns it (with calls and history)."""
    status, body = await call(client, "GET", "/api/cases", params={"caller": caller})
    [case] = body["cases"]
    return (await call(client, "GET", f"/api/cases/{case['id']}"))[1]


async def as_agent(client, agent: str) -> dict:
    """The headers of agent `agent`'s user (id = agent id)."""
    return bearer(await grant(client.app[APP], agent, "agent", agent=agent))


async def dispose(client, caller: str, agent: str, **fields) -> tuple[int, dict]:
    """`agent` wraps up the caller's call, signed in as themself."""
    case = await case_of(client, caller)
    [call_id] = {c["call_id"] for c in case["calls"]}
    return await call(client, "POST", f"/api/calls/pbx1/{call_id}/disposition", json=fields,
                      headers=await as_agent(client, agent))


def present(*available, away=()):
    picture = {a: Presence(a, True, (f"PJSIP/{a}",)) for a in available}
    picture.update({a: Presence(a, False, (f"PJSIP/{a}",)) for a in away})
    return lambda: picture


# --- GET /api/cases -------------------------------------------------------------------------

async def test_each_answered_caller_has_a_case_owned_by_the_first_agent(client):
    status, body = await call(client, "GET", "/api/cases")
    assert status == 200
    cases = body["cases"]
    assert {c["caller_num"]: c["owner"] for c in cases} == OWNERS
    assert all((c["department"], c["department_name"], c["status"], c["disposition"]) ==
               ("market", "区市场监管局", "open", None) for c in cases)
    assert "calls" not in cases[0] and "history" not in cases[0]


@pytest.mark.parametrize("query, callers", [
    ({"status": "open"}, list(OWNERS)),
    ({"status": "resolved"}, []),
    ({"owner": "1002"}, ["13800000001", "13800000003"]),
    ({"department": "edu"}, []),
    ({"caller": "13800009999", "department": "market"}, ["13800009999"]),
    ({"date": "2026-11-23"}, list(OWNERS)),                   # opened on Monday in Shanghai
    ({"date": "2026-11-22"}, []),
    ({"limit": "2"}, ["13800000000", "13800000001"]),
])
async def test_list_filters(client, query, callers):
    status, body = await call(client, "GET", "/api/cases", params=query)
    assert status == 200
    assert sorted(c["caller_num"] for c in body["cases"]) == sorted(callers)


@pytest.mark.parametrize("query, code, parameter", [
    ("status=closed", "invalid_parameter", "status"),
    ("date=2026-02-30", "invalid_parameter", "date"),
    ("limit=0", "invalid_parameter", "limit"),
    ("owner=", "invalid_parameter", "owner"),
    ("owner=1001&owner=1002", "invalid_parameter", "owner"),
])
async def test_list_refuses_bad_parameters(client, query, code, parameter):
    status, body = await call(client, "GET", f"/api/cases?{query}")
    assert (status, body["error"], body["parameter"]) == (400, code, parameter)


async def test_list_names_unknown_parameters(client):
    status, body = await call(client, "GET", "/api/cases?assignee=1001&overdue=true")
    assert (status, body["error"], body["parameters"]) == (400, "unknown_parameters", ["assignee", "overdue"])


@pytest.mark.parametrize("path", ["/api/cases/999", "/api/cases/abc", "/api/cases/" + "9" * 30])
async def test_unknown_case_is_a_json_404(client, path):
    status, body = await call(client, "GET", path)
    assert (status, body["error"]) == (404, "not_found")


# --- POST /api/calls/{pbx}/{call_id}/disposition --------------------------------------------

async def test_resolved_on_the_call(client):
    status, case = await dispose(client, "13800000000", "1001", disposition="resolved", item="食品经营许可",
                                 note="已当场解答")
    assert status == 200
    assert (case["status"], case["disposition"], case["item"], case["resolved_first_contact"]) == \
        ("resolved", "resolved", "食品经营许可", True)
    assert datetime.fromisoformat(case["closed_at"]) == NOW
    assert case["calls"][0]["disposition"] == "resolved"
    last = case["history"][-1]
    assert (last["kind"], last["actor"], last["note"], last["by_owner"]) == ("disposition", "1001", "已当场解答", True)
    _, body = await call(client, "GET", "/api/cases", params={"status": "resolved"})
    assert [c["id"] for c in body["cases"]] == [case["id"]]


async def test_follow_up_keeps_the_case_open_and_routes_the_caller_to_the_owner(client, app_obj):
    status, case = await dispose(client, "13800000002", "1001", disposition="follow_up_simple")
    assert (status, case["status"], case["disposition"]) == (200, "open", "follow_up_simple")
    # "1515": 5 workdays from Monday 10:00 is next Monday at the close of business
    assert datetime.fromisoformat(case["deadline"]).astimezone(SHANGHAI) == datetime(2026, 11, 30, 16, 30,
                                                                                        tzinfo=SHANGHAI)
    query = {"caller": "13800000002", "hotline": HOTLINE_MARKET}

    app_obj.cases.presence = present("1001", "1002")
    status, route = await call(client, "GET", "/api/route", params=query)
    assert (status, route) == (200, {"department": "market", "queue": "q-market", "case_id": case["id"],
                                     "owner": "1001", "preferred_agent": "1001",
                                     "preferred_interfaces": ["PJSIP/1001"], "reason": "owner_available",
                                     "fallback": None})
    assert await text(client, "/api/route.txt", params=query) == \
        f"PREFERRED=PJSIP/1001&QUEUE=q-market&CASE={case['id']}&OWNER=1001&REASON=owner_available&FALLBACK="

    # the owner is away: the post's B answers for now, the case stays the owner's
    app_obj.cases.presence = present("1002", away=["1001"])
    _, route = await call(client, "GET", "/api/route", params=query)
    assert (route["owner"], route["preferred_agent"], route["reason"]) == ("1001", "1002", "owner_away_post")
    assert await text(client, "/api/route.txt", params=query) == \
        f"PREFERRED=PJSIP/1002&QUEUE=q-market&CASE={case['id']}&OWNER=1001&REASON=owner_away_post&FALLBACK="

    app_obj.cases.presence = present(away=["1001", "1002"])
    assert await text(client, "/api/route.txt", params=query) == \
        f"PREFERRED=&QUEUE=q-market&CASE={case['id']}&OWNER=1001&REASON=owner_away_queue&FALLBACK="


async def test_the_owner_closes_a_follow_up_case(client, app_obj):
    _, case = await dispose(client, "13800000003", "1002", disposition="follow_up_complex")
    path = f"/api/cases/{case['id']}"
    status, body = await call(client, "PATCH", path, json={"status": "resolved"},
                              headers=await as_agent(client, "1001"))
    assert (status, body["error"]) == (403, "forbidden") and "only the owner (1002)" in body["message"]

    status, closed = await call(client, "PATCH", path, json={"status": "resolved", "note": "已书面答复来电人"},
                                headers=await as_agent(client, "1002"))
    assert status == 200
    assert (closed["status"], closed["disposition"]) == ("resolved", "resolved")
    assert closed["history"][-1] | {"at": None, "version": None} == {
        "at": None, "version": None, "kind": "resolved", "actor": "1002", "note": "已书面答复来电人"}
    status, body = await call(client, "PATCH", path, json={"status": "resolved"},
                              headers=await as_agent(client, "1002"))
    assert (status, body["error"]) == (409, "already_closed")
    # no open case any more: the caller goes to the queue
    app_obj.cases.presence = present("1002")
    assert await text(client, "/api/route.txt", params={"caller": "13800000003", "hotline": HOTLINE_MARKET}) == \
        "PREFERRED=&QUEUE=q-market&CASE=&OWNER=&REASON=no_case&FALLBACK="


async def test_escalation_to_12345_needs_the_work_order(client):
    status, body = await dispose(client, "13800000001", "1002", disposition="escalated_12345")
    assert (status, body["error"], body["field"]) == (400, "missing_field", "work_order")
    assert (await case_of(client, "13800000001"))["status"] == "open"

    status, case = await dispose(client, "13800000001", "1002", disposition="escalated_12345",
                                 work_order="SH12345-20261123-0001")
    assert status == 200
    assert (case["status"], case["work_order"], case["resolved_first_contact"]) == \
        ("escalated", "SH12345-20261123-0001", False)


async def test_out_of_scope_says_where_the_caller_was_directed(client):
    status, body = await dispose(client, "13600000010", "1001", disposition="out_of_scope")
    assert (status, body["error"], body["field"]) == (400, "missing_field", "directed_to")
    status, case = await dispose(client, "13600000010", "1001", disposition="out_of_scope", directed_to="区信访办")
    assert (status, case["status"], case["directed_to"]) == (200, "out_of_scope", "区信访办")


async def test_after_a_transfer_the_second_agent_wraps_up_in_the_first_agents_case(client):
    case = await case_of(client, "13800009999")
    assert [c["agent"] for c in case["calls"]] == ["1001", "1005"]
    call_id = case["calls"][0]["call_id"]
    status, case = await call(client, "POST", f"/api/calls/pbx1/{call_id}/disposition",
                              json={"disposition": "knowledge_gap"}, headers=await as_agent(client, "1005"))
    assert status == 200
    assert (case["owner"], case["status"], case["knowledge_gap"]) == ("1001", "open", True)
    assert [c["disposition"] for c in case["calls"]] == [None, "knowledge_gap"]
    assert case["history"][-1]["by_owner"] is False
    # an agent who was not on the call cannot wrap it up
    status, body = await call(client, "POST", f"/api/calls/pbx1/{call_id}/disposition",
                              json={"disposition": "resolved"}, headers=await as_agent(client, "1002"))
    assert (status, body["error"]) == (403, "forbidden") and "not answered by agent" in body["message"]


async def test_an_item_of_another_department_is_refused(client):
    status, body = await dispose(client, "13800000000", "1001", disposition="resolved", item="公共租赁住房申请审核")
    assert (status, body["error"]) == (400, "rejected") and "unknown service item" in body["message"]


@pytest.mark.parametrize("data", [b"{not json", b'{"agent": "1001", "disposition": "\xe6\x9d"}'])
async def test_malformed_json_is_a_400(client, data):
    for path in ("/api/calls/pbx1/1795347500.171/disposition", "/api/cases/1"):
        status, body = await call(client, "POST" if "disposition" in path else "PATCH", path, data=data,
                                  headers={"Content-Type": "application/json"})
        assert (status, body["error"]) == (400, "malformed_json")


@pytest.mark.parametrize("payload, code, extra", [
    ([{"disposition": "resolved"}], "invalid_body", {}),
    ({"disposition": "resolved", "outcome": "x", "by": "1001"}, "unknown_fields", {"fields": ["by", "outcome"]}),
    ({"agent": "1001", "disposition": "resolved"}, "unknown_fields", {"fields": ["agent"]}),   # who: the identity
    ({}, "missing_field", {"field": "disposition"}),
    ({"disposition": None}, "unknown_disposition", {"field": "disposition"}),
    ({"disposition": "fixed"}, "unknown_disposition", {}),
    ({"disposition": ["resolved"]}, "unknown_disposition", {"field": "disposition"}),
    ({"disposition": "resolved", "item": ""}, "invalid_field", {"field": "item"}),
    ({"disposition": "resolved", "item": "x\ny"}, "invalid_field", {"field": "item"}),
    ({"disposition": "resolved", "work_order": "W-1"}, "conflicting_fields", {"field": "work_order"}),
    ({"disposition": "escalated_12345", "work_order": "  "}, "invalid_field", {"field": "work_order"}),
    ({"disposition": "follow_up_simple", "directed_to": "区信访办"}, "conflicting_fields", {"field": "directed_to"}),
])
async def test_invalid_dispositions_are_refused_and_change_nothing(client, payload, code, extra):
    status, body = await call(client, "POST", "/api/calls/pbx1/1795347500.171/disposition", json=payload,
                              headers=await as_agent(client, "1001"))
    assert (status, body["error"]) == (400, code)
    assert body.items() >= extra.items()
    case = await case_of(client, "13800000000")
    assert (case["status"], case["calls"][0]["disposition"]) == ("open", None)


async def test_unknown_disposition_names_the_allowed_ones(client):
    status, body = await dispose(client, "13800000000", "1001", disposition="fixed")
    assert (status, body["error"]) == (400, "unknown_disposition")
    assert "resolved, follow_up_simple, follow_up_complex, escalated_12345, out_of_scope, knowledge_gap" \
        in body["message"]


async def test_disposing_an_unknown_call_is_a_404(client):
    for path in ("/api/calls/pbx1/1795340000.1/disposition", "/api/calls/pbx2/1795347500.171/disposition"):
        status, body = await call(client, "POST", path, json={"disposition": "resolved"},
                                  headers=await as_agent(client, "1001"))
        assert (status, body["error"]) == (404, "not_found")


# --- PATCH /api/cases/{id}: reassignment ----------------------------------------------------

async def test_only_the_head_reassigns_with_a_reason_and_the_audit_log_keeps_it(client):
    case = await case_of(client, "13800000003")
    path = f"/api/cases/{case['id']}"
    status, body = await call(client, "PATCH", path, json={"owner": "1001", "reason": "换人"},
                              headers=await as_agent(client, "1002"))
    assert (status, body["error"]) == (403, "forbidden") and "only the head of market" in body["message"]
    status, body = await call(client, "PATCH", path, json={"owner": "1001"})
    assert (status, body["error"], body["field"]) == (400, "missing_field", "reason")
    status, body = await call(client, "PATCH", path, json={"owner": "1001", "reason": " "})
    assert (status, body["error"], body["field"]) == (400, "missing_field", "reason")
    assert (await case_of(client, "13800000003"))["owner"] == "1002"

    status, moved = await call(client, "PATCH", path, json={"owner": "1001", "reason": "王芳休假，转张伟跟进"})
    assert status == 200
    assert (moved["owner"], moved["owner_name"], moved["status"]) == ("1001", "张伟", "open")
    _, again = await call(client, "GET", path)
    assert [h["kind"] for h in again["history"]] == ["opened", "reassigned"]
    assert again["history"][-1] | {"at": None, "version": None} == {
        "at": None, "version": None, "kind": "reassigned", "actor": "head-market", "from": "1002", "to": "1001",
        "reason": "王芳休假，转张伟跟进"}
    _, body = await call(client, "GET", "/api/cases", params={"owner": "1002"})
    assert [c["caller_num"] for c in body["cases"]] == ["13800000001"]


@pytest.mark.parametrize("payload, code, extra", [
    ("resolved", "invalid_body", {}),
    ({"owner": "1001", "reason": "x", "by": "head-market"}, "unknown_fields", {"fields": ["by"]}),
    ({}, "missing_field", {"field": "owner"}),
    ({"owner": "1001", "status": "resolved"}, "conflicting_fields", {"field": "status"}),
    ({"owner": "1001", "note": "x", "reason": "x"}, "conflicting_fields", {"field": "note"}),
    ({"status": "resolved", "reason": "x"}, "conflicting_fields", {"field": "reason"}),
    ({"status": "closed"}, "invalid_field", {"field": "status"}),
    ({"owner": "9999", "reason": "x"}, "unknown_agent", {"field": "owner"}),
    ({"owner": "", "reason": "x"}, "invalid_field", {"field": "owner"}),
    ({"owner": ["1001"], "reason": "x"}, "invalid_field", {"field": "owner"}),
    ({"owner": "1001", "reason": "x", "assignee": "1001"}, "unknown_fields", {"fields": ["assignee"]}),
])
async def test_invalid_patches_are_refused_and_change_nothing(client, payload, code, extra):
    case = await case_of(client, "13800000003")
    status, body = await call(client, "PATCH", f"/api/cases/{case['id']}", json=payload)
    assert (status, body["error"]) == (400, code)
    assert body.items() >= extra.items()
    after = await case_of(client, "13800000003")
    assert (after["owner"], after["status"], len(after["history"])) == ("1002", "open", 1)


async def test_patching_a_missing_case_is_a_404(client):
    for payload in ({"owner": "1001", "reason": "x"}, {"status": "resolved"}):
        status, body = await call(client, "PATCH", "/api/cases/999", json=payload)
        assert (status, body["error"]) == (404, "not_found")


async def test_wrong_method_is_a_json_405(client):
    async with client.delete("/api/cases/1") as response:
        assert response.status == 405 and "PATCH" in response.headers["Allow"]
        assert (await response.json())["error"] == "method_not_allowed"


# --- GET /api/route(.txt) -------------------------------------------------------------------

NO_CASE = "PREFERRED=&QUEUE=q-market&CASE=&OWNER=&REASON=no_case&FALLBACK="


@pytest.mark.parametrize("query, line", [
    ({"caller": "13900000000", "hotline": HOTLINE_MARKET}, NO_CASE),
    ({"caller": "", "hotline": HOTLINE_MARKET}, NO_CASE),                # a withheld number
    ({"hotline": HOTLINE_MARKET}, NO_CASE),
    ({"caller": "13800000002", "hotline": "69999999"},
     "PREFERRED=&QUEUE=&CASE=&OWNER=&REASON=unknown_department&FALLBACK="),
    ({"caller": "13800000002", "department": "edu", "pbx": "pbx1"},
     "PREFERRED=&QUEUE=q-edu&CASE=&OWNER=&REASON=no_case&FALLBACK="),
    ({"caller": "13800000002", "department": "market", "pbx": "pbx1"},
     "PREFERRED=Local/1001@agents/n&QUEUE=q-market&CASE=3&OWNER=1001&REASON=owner_available&FALLBACK="),
])
async def test_route_txt_for_the_dialplan(client, app_obj, query, line):
    # as the service's presence reports a Local-channel member: its interface first, unencoded
    app_obj.cases.presence = lambda: {"1001": Presence("1001", True, ("Local/1001@agents/n", "PJSIP/1001"))}
    assert await text(client, "/api/route.txt", params=query) == line
    status, route = await call(client, "GET", "/api/route", params=query)
    fields = dict(v.split("=", 1) for v in line.split("&"))
    assert status == 200 and route["reason"] == fields["REASON"] and (route["queue"] or "") == fields["QUEUE"]


async def test_route_during_a_coverage_gap_names_the_fallback(client, app_obj):
    app_obj.cases.presence = present(away=["1001", "1002"])
    app_obj.cases.gap_fallback = lambda department, pbx: ("callback", None) if department == "market" else None
    query = {"caller": "13800000002", "hotline": HOTLINE_MARKET}
    _, route = await call(client, "GET", "/api/route", params=query)
    assert (route["reason"], route["fallback"], route["queue"], route["owner"]) == \
        ("coverage_gap", "callback", "q-market", "1001")
    assert await text(client, "/api/route.txt", params=query) == \
        "PREFERRED=&QUEUE=q-market&CASE=3&OWNER=1001&REASON=coverage_gap&FALLBACK=callback"


def test_route_line_encodes_only_what_would_break_the_format():
    route = Route("x", "q&1=2", 7, "1001", "1001", ("PJSIP/1001", "PJSIP/1002"), "owner_available")
    line = route_line(route)
    assert line == "PREFERRED=PJSIP/1001&QUEUE=q%261%3D2&CASE=7&OWNER=1001&REASON=owner_available&FALLBACK="
    assert parse_qs(line)["QUEUE"] == ["q&1=2"]          # what HASH via CURLOPT(hashcompat) decodes


@pytest.mark.parametrize("query, code, detail", [
    ("caller=138", "missing_parameter", {"parameter": "hotline"}),
    ("caller=138&hotline=62000001&department=market", "conflicting_parameters", {"parameter": "department"}),
    ("caller=138%0D%0AAction:%20Originate&hotline=62000001", "invalid_parameter", {"parameter": "caller"}),
    ("caller=138&hotline=62000001&pbx=a%00b", "invalid_parameter", {"parameter": "pbx"}),
    ("caller=138&department=market&department=edu", "invalid_parameter", {"parameter": "department"}),
    ("caller=138&department=nowhere", "invalid_parameter", {"parameter": "department"}),
    ("caller=138&hotline=", "invalid_parameter", {"parameter": "hotline"}),
    ("caller=138&hotline=62000001&queue=q-market", "unknown_parameters", {"parameters": ["queue"]}),
])
async def test_route_refusals(client, query, code, detail):
    for path in ("/api/route", "/api/route.txt"):                    # the text form refuses in JSON too
        status, body = await call(client, "GET", f"{path}?{query}")
        assert (status, body["error"]) == (400, code)
        assert body.items() >= detail.items()


# --- pending wrap-ups -----------------------------------------------------------------------

async def test_pending_wrapups_of_an_agent_and_of_a_department(client):
    status, body = await call(client, "GET", "/api/agents/1002/pending")
    assert status == 200
    assert sorted(w["caller_num"] for w in body["wrapups"]) == ["13800000001", "13800000003"]
    assert body["wrapups"][0].keys() == {"pbx", "call_id", "case_id", "agent", "department", "caller_num",
                                         "answered_at"}
    await dispose(client, "13800000001", "1002", disposition="resolved")
    _, body = await call(client, "GET", "/api/agents/1002/pending")
    assert [w["caller_num"] for w in body["wrapups"]] == ["13800000003"]

    _, body = await call(client, "GET", "/api/wrapups/pending", params={"department": "market"})
    assert len(body["wrapups"]) == 6                         # 7 answered stints, one wrapped up
    assert {w["agent"] for w in body["wrapups"]} == {"1001", "1002", "1005"}
    _, body = await call(client, "GET", "/api/wrapups/pending")
    assert len(body["wrapups"]) == 6
    assert await call(client, "GET", "/api/wrapups/pending", params={"department": "edu"}) == \
        (200, {"wrapups": []})


async def test_pending_wrapup_refusals(client):
    status, body = await call(client, "GET", "/api/agents/9999/pending")
    assert (status, body["error"]) == (404, "not_found")
    status, body = await call(client, "GET", "/api/wrapups/pending?agent=1001")
    assert (status, body["error"], body["parameters"]) == (400, "unknown_parameters", ["agent"])


# --- POST /api/tasks/{id}/callbacks ---------------------------------------------------------

async def _ivr_hangup_task(client) -> dict:
    _, body = await call(client, "GET", "/api/tasks", params={"caller": IVR_HANGUP})
    [task] = body["tasks"]
    return task


async def test_a_callback_is_one_originate_to_the_pbx(settings, db_url):
    callback = settings.followup.callback.model_copy(update={"dial_prefix": "0"})
    followup = settings.followup.model_copy(update={"callback": callback})
    settings = settings.model_copy(update={"followup": followup})
    server = AmiServer()
    port = await server.start()
    app_obj = build_app(settings, db_url)
    pbx = app_obj.service.add_pbx(Endpoint("pbx1", "127.0.0.1", port, "cc", "cc", reconnect_min=0.05))
    await app_obj.start()
    lead = await grant(app_obj, "lead", "head", ["market"], agent="1005")     # a head who takes calls too
    client = TestClient(TestServer(await init_app(app_obj)), headers=bearer(lead))
    await client.start_server()
    try:
        await asyncio.wait_for(pbx.connected.wait(), 5)
        task = await _ivr_hangup_task(client)
        path = f"/api/tasks/{task['id']}/callbacks"
        status, attempt = await call(client, "POST", path, json={})
        assert status == 202
        assert (attempt["agent"], attempt["number"], attempt["pbx"], attempt["result"]) == \
            ("1005", IVR_HANGUP, "pbx1", "pending")

        [originate] = [a for a in server.actions if a["Action"] == "Originate"]
        assert originate["Channel"] == "Local/1005@agents/n"            # the agent's first interface
        assert (originate["Context"], originate["Exten"]) == ("callback", "0" + IVR_HANGUP)
        assert originate["Async"] == "true"
        assert originate["ActionID"] == attempt["key"]      # the PBX's OriginateResponse names the attempt

        # a second request while the first is pending: refused with the task as it is, nothing dialled
        status, again = await call(client, "POST", path, json={})
        assert (status, again["error"]) == (409, "callback_pending")
        assert [c["key"] for c in again["current"]["callbacks"]] == [attempt["key"]]
        assert [a["Action"] for a in server.actions].count("Originate") == 1
        _, task = await call(client, "GET", f"/api/tasks/{task['id']}")
        assert [c["key"] for c in task["callbacks"]] == [attempt["key"]]
    finally:
        await client.close()
        await app_obj.stop()
        await server.close()


async def test_callback_refusals(client, app_obj):
    task = await _ivr_hangup_task(client)
    path = f"/api/tasks/{task['id']}/callbacks"
    lead = bearer(await grant(app_obj, "lead", "head", ["market"], agent="1005"))
    # no PBX is connected in this set-up
    status, body = await call(client, "POST", path, json={}, headers=lead)
    assert (status, body["error"]) == (503, "pbx_not_connected") and "pbx1" in body["message"]
    for payload, code in (({"agent": "1005"}, "unknown_fields"), ({"number": "1"}, "unknown_fields"),
                          (["1005"], "invalid_body")):
        status, body = await call(client, "POST", path, json=payload, headers=lead)
        assert (status, body["error"]) == (400, code)
    status, body = await call(client, "POST", path, json={})          # "head-market" is bound to no agent
    assert (status, body["error"]) == (403, "forbidden") and "bound to an agent" in body["message"]
    status, body = await call(client, "POST", "/api/tasks/999/callbacks", json={}, headers=lead)
    assert (status, body["error"]) == (404, "not_found")

    await call(client, "PATCH", f"/api/tasks/{task['id']}", json={"closure": "wrong_number"})
    status, body = await call(client, "POST", path, json={}, headers=lead)
    assert (status, body["error"]) == (409, "already_closed")
    _, task = await call(client, "GET", f"/api/tasks/{task['id']}")
    assert task["callbacks"] == []


# --- callcenter cases list ------------------------------------------------------------------

def _cli(db_url: str, *args: str) -> str:
    # --full-numbers: these compare numbers with the API's (tests/test_cli_safety.py: masked by default)
    done = subprocess.run([sys.executable, "-m", "callcenter.cli", "cases", "list", "--db", db_url,
                           "--config", str(ROOT / "config"), "--full-numbers", *args],
                          cwd=ROOT, capture_output=True, text=True, encoding="utf-8", timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_cli_lists_cases_as_json_and_as_a_zh_cn_table(client, db_url):
    await dispose(client, "13800000000", "1001", disposition="resolved", item="食品经营许可")
    await dispose(client, "13800000001", "1002", disposition="escalated_12345", work_order="SH12345-0001")
    await dispose(client, "13800000002", "1001", disposition="follow_up_simple")

    cases = json.loads(await asyncio.to_thread(_cli, db_url, "--format", "json", "--owner", "1001",
                                               "--status", "open"))
    assert [c["caller_num"] for c in cases] == ["13800000002", "13800009999", "13600000010"]
    assert cases[0]["disposition"] == "follow_up_simple" and "history" not in cases[0]

    lines = (await asyncio.to_thread(_cli, db_url, "--date", "2026-11-23")).splitlines()
    assert lines[0].split() == ["编号", "来电号码", "部门", "承办人", "状态", "处置", "受理时间", "办结时限",
                                "工单/去向", "事项"]
    rows = {line.split()[1]: line.split() for line in lines[2:8]}
    assert rows["13800000000"][2:] == ["区市场监管局", "张伟(1001)", "已办结", "已解决", "11-23", "10:00",
                                       "—", "—", "食品经营许可"]
    assert rows["13800000001"][4:6] == ["已转12345", "转12345"] and rows["13800000001"][9] == "SH12345-0001"
    # the command judges "overdue" on the real clock (a subprocess): the fixture's 11-23 call is due
    # 11-30 16:30 (5 workdays), which is past once this test runs after that moment
    overdue = datetime.now(timezone.utc) > datetime(2026, 11, 30, 16, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert rows["13800000002"][4:10] == ["办理中·超时" if overdue else "办理中", "跟进·简单", "11-23", "10:00",
                                         "11-30", "16:30"]
    assert rows["13800000003"][4:5] + rows["13800000003"][-3:] == ["办理中", "—", "—", "—"]
    assert rows["13800000003"][5] == "待小结"
    assert lines[8] == f"共 6 件：办理中 4（已超时 {int(overdue)}），已办结 1，转12345 1，已引导 0（时间为 Asia/Shanghai）"
    assert "共 0 件" in await asyncio.to_thread(_cli, db_url, "--date", "2026-11-22")
