"""The HTTP API and `callcenter tasks list`, over real HTTP, on tasks made by replaying real traces.

The database holds four open tasks, all in their department's pool:
  abandon.jsonl on Monday 23 Nov 10:00     13900000001, 13900000002  edu     abandoned   due Tue 16:30
  nobody.jsonl on Tuesday 24 Nov 10:00     13500000001               edu     timed_out   due Wed 16:30
  afterhours.jsonl right after it          13600000001               market  after_hours due Wed 16:30
and the service's clock stands at Wednesday 25 Nov 10:00, so the first two are overdue.
"""
from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from callcenter.ami.client import Endpoint
from callcenter.ami.server import AmiServer, load_trace
from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.replay import replay
from callcenter.settings import WebSettings, load_settings
from callcenter.web.app import WebServer, init_app
from tests.auth_helpers import bearer, grant, head_of_all
from tests.conftest import MONDAY_10, ROOT, trace_path

TUESDAY_10 = MONDAY_10 + timedelta(days=1)
WEDNESDAY_10 = MONDAY_10 + timedelta(days=2)
ABANDONED = ["13900000001", "13900000002"]
TIMED_OUT, AFTER_HOURS = "13500000001", "13600000001"
ALL = ABANDONED + [TIMED_OUT, AFTER_HOURS]


async def _replay_all(settings, db_url: str) -> None:
    await replay(settings, db_url, [str(trace_path("abandon"))], MONDAY_10)
    await replay(settings, db_url, [str(trace_path("nobody")), str(trace_path("afterhours"))], TUESDAY_10)


@pytest.fixture(scope="module")
def replayed_db(tmp_path_factory) -> Path:
    """The traces replayed once per module; each test gets its own copy (`db_url`)."""
    path = tmp_path_factory.mktemp("replayed") / "callcenter.db"
    asyncio.run(_replay_all(load_settings(ROOT / "config"), f"sqlite:///{path}"))
    return path


@pytest.fixture
def db_url(replayed_db, tmp_path) -> str:
    copy = tmp_path / "callcenter.db"
    with closing(sqlite3.connect(replayed_db)) as source, closing(sqlite3.connect(copy)) as target:
        source.backup(target)                   # consistent whatever the WAL holds
    return f"sqlite:///{copy}"


@pytest.fixture
async def app_obj(settings, db_url):
    app_obj = build(settings, db_url, FixedClock(WEDNESDAY_10))
    await app_obj.start()
    yield app_obj
    await app_obj.stop()


@pytest.fixture
async def client(app_obj):
    """Signed in as "head", the head of every department (tests/test_access_routes.py covers the roles)."""
    client = TestClient(TestServer(await init_app(app_obj)), headers=await head_of_all(app_obj))
    await client.start_server()
    yield client
    await client.close()


async def call(client, method: str, path: str, **kwargs) -> tuple[int, dict]:
    async with client.request(method, path, **kwargs) as response:
        assert response.content_type == "application/json" and response.charset == "utf-8"
        return response.status, await response.json()


async def task_of(client, caller: str) -> dict:
    _, body = await call(client, "GET", "/api/tasks", params={"caller": caller})
    [task] = body["tasks"]
    return task


# --- GET /api/tasks -------------------------------------------------------------------------

async def test_list_returns_the_replayed_tasks(client):
    status, body = await call(client, "GET", "/api/tasks")
    assert status == 200
    tasks = body["tasks"]
    assert [t["caller_num"] for t in tasks] == ALL                   # by deadline, then id
    assert [(t["department"], t["department_name"], t["reason"]) for t in tasks] == [
        ("edu", "区教育局", "abandoned"), ("edu", "区教育局", "abandoned"),
        ("edu", "区教育局", "timed_out"), ("market", "区市场监管局", "after_hours")]
    assert all(t["status"] == "open" and t["assignee"] is None and t["assigned_via"] == "pool" for t in tasks)
    assert "history" not in tasks[0]


@pytest.mark.parametrize("query, callers", [
    ({"status": "open"}, ALL),
    ({"status": "closed"}, []),
    ({"department": "edu"}, ABANDONED + [TIMED_OUT]),
    ({"department": "market"}, [AFTER_HOURS]),
    ({"assignee": "pool"}, ALL),
    ({"assignee": "1005"}, []),
    ({"caller": TIMED_OUT}, [TIMED_OUT]),
    ({"overdue": "true"}, ABANDONED),
    ({"overdue": "false"}, [TIMED_OUT, AFTER_HOURS]),
    ({"limit": "1"}, ABANDONED[:1]),
    ({"department": "edu", "overdue": "false", "status": "open"}, [TIMED_OUT]),
])
async def test_list_filters(client, query, callers):
    status, body = await call(client, "GET", "/api/tasks", params=query)
    assert status == 200
    assert [t["caller_num"] for t in body["tasks"]] == callers


async def test_list_by_creation_day_in_shanghai(client):
    # a replay's clock follows the trace: tasks are created on the day their calls were missed
    monday = MONDAY_10.date()
    for when, callers in ((monday, ABANDONED), (monday + timedelta(days=1), [TIMED_OUT, AFTER_HOURS]),
                          (monday - timedelta(days=1), [])):
        _, body = await call(client, "GET", "/api/tasks", params={"date": when.isoformat()})
        assert sorted(t["caller_num"] for t in body["tasks"]) == sorted(callers)


@pytest.mark.parametrize("query, code, parameter", [
    ("status=pending", "invalid_parameter", "status"),
    ("overdue=yes", "invalid_parameter", "overdue"),
    ("date=2026-13-01", "invalid_parameter", "date"),
    ("date=23/11/2026", "invalid_parameter", "date"),
    ("limit=0", "invalid_parameter", "limit"),
    ("limit=abc", "invalid_parameter", "limit"),
    ("limit=%C2%B2", "invalid_parameter", "limit"),             # "²" is a digit to str.isdigit
    ("limit=100000", "invalid_parameter", "limit"),
    ("department=", "invalid_parameter", "department"),
    ("status=open&status=closed", "invalid_parameter", "status"),
])
async def test_list_refuses_bad_parameters(client, query, code, parameter):
    status, body = await call(client, "GET", f"/api/tasks?{query}")
    assert (status, body["error"], body["parameter"]) == (400, code, parameter)
    assert parameter in body["message"]


async def test_list_names_unknown_parameters(client):
    status, body = await call(client, "GET", "/api/tasks?agent=1005&dept=edu&status=open")
    assert (status, body["error"], body["parameters"]) == (400, "unknown_parameters", ["agent", "dept"])


# --- GET /api/tasks/{id} --------------------------------------------------------------------

async def test_get_one_task_with_history_and_callbacks(client):
    task_id = (await task_of(client, TIMED_OUT))["id"]
    status, task = await call(client, "GET", f"/api/tasks/{task_id}")
    assert status == 200
    assert (task["id"], task["caller_num"], task["reason"]) == (task_id, TIMED_OUT, "timed_out")
    # history is ordered by time; replay stamps "assigned" with the wall clock, the miss with trace time
    [miss] = [h for h in task["history"] if h["kind"] == "miss"]
    [assigned] = [h for h in task["history"] if h["kind"] == "assigned"]
    assert len(task["history"]) == 2 and miss["call_id"] == "1795347549.201"
    assert (miss["reason"], miss["queue"], miss["short"]) == ("timed_out", "q-edu", False)
    assert (assigned["agent"], assigned["via"]) == (None, "pool")
    assert task["callbacks"] == []


@pytest.mark.parametrize("path", ["/api/tasks/999", "/api/tasks/abc", "/api/nothing", "/api/tasks/" + "9" * 30])
async def test_unknown_task_or_path_is_a_json_404(client, path):
    status, body = await call(client, "GET", path)
    assert (status, body["error"]) == (404, "not_found")


# --- PATCH /api/tasks/{id} ------------------------------------------------------------------

async def test_close_with_an_outcome_then_refuse_to_close_again(client):
    task_id = (await task_of(client, ABANDONED[1]))["id"]
    status, task = await call(client, "PATCH", f"/api/tasks/{task_id}",
                              json={"closure": "reached_resolved", "note": "已电话答复，政策已解释"})
    assert status == 200
    assert (task["status"], task["closure"], task["closed_by"], task["note"]) == \
        ("closed", "reached_resolved", "head", "已电话答复，政策已解释")
    assert datetime.fromisoformat(task["closed_at"]) == datetime.fromisoformat(task["contacted_at"]) == WEDNESDAY_10
    assert task["history"][-1]["kind"] == "closed" and task["history"][-1]["by"] == "head"
    _, body = await call(client, "GET", "/api/tasks", params={"status": "closed"})
    assert [t["id"] for t in body["tasks"]] == [task_id]

    status, body = await call(client, "PATCH", f"/api/tasks/{task_id}",
                              json={"closure": "wrong_number"})
    assert (status, body["error"]) == (409, "already_closed")
    assert "already closed" in body["message"]


async def test_wrong_number_needs_no_callback_attempts(client):
    task_id = (await task_of(client, AFTER_HOURS))["id"]
    status, task = await call(client, "PATCH", f"/api/tasks/{task_id}", json={"closure": "wrong_number"})
    assert status == 200
    assert (task["status"], task["closure"], task["contacted_at"]) == ("closed", "wrong_number", None)


@pytest.mark.parametrize("closure, status_, code, message", [
    ("done", 400, "unknown_outcome", "unknown outcome"),
    ("caller_called_again", 400, "system_outcome", "set by the system"),
    ("callback_completed", 400, "system_outcome", "set by the system"),
    ("unreachable", 409, "too_few_attempts", "unreachable needs 3 callback attempts"),
])
async def test_close_refusals_leave_the_task_open(client, closure, status_, code, message):
    task_id = (await task_of(client, TIMED_OUT))["id"]
    status, body = await call(client, "PATCH", f"/api/tasks/{task_id}", json={"closure": closure})
    assert (status, body["error"]) == (status_, code)
    assert message in body["message"]
    assert (await task_of(client, TIMED_OUT))["status"] == "open"


async def test_reassign_to_an_agent_and_back_to_the_pool(client):
    task_id = (await task_of(client, TIMED_OUT))["id"]
    status, task = await call(client, "PATCH", f"/api/tasks/{task_id}", json={"assignee": "1006"})
    assert status == 200
    assert (task["assignee"], task["assignee_name"], task["assigned_via"]) == ("1006", "杨磊", "manual")
    assert task["history"][-1] | {"at": None, "version": None} == {
        "at": None, "version": None, "kind": "assigned", "pbx": None, "call_id": None, "agent": "1006", "by": "head"}
    _, body = await call(client, "GET", "/api/tasks", params={"assignee": "1006"})
    assert [t["id"] for t in body["tasks"]] == [task_id]
    _, body = await call(client, "GET", "/api/tasks", params={"assignee": "pool"})
    assert len(body["tasks"]) == 3

    status, task = await call(client, "PATCH", f"/api/tasks/{task_id}", json={"assignee": None})
    assert status == 200 and (task["assignee"], task["assigned_via"]) == (None, "pool")


async def test_reassign_to_an_unknown_agent_is_refused(client):
    task_id = (await task_of(client, TIMED_OUT))["id"]
    status, body = await call(client, "PATCH", f"/api/tasks/{task_id}", json={"assignee": "9999"})
    assert (status, body["error"]) == (400, "unknown_agent") and "unknown agent" in body["message"]


async def test_add_a_note(client):
    task_id = (await task_of(client, AFTER_HOURS))["id"]
    status, task = await call(client, "PATCH", f"/api/tasks/{task_id}",
                              json={"note": "来电人要求明天上午回电"})
    assert status == 200 and task["status"] == "open"
    assert task["history"][-1]["kind"] == "note"
    assert (task["history"][-1]["note"], task["history"][-1]["by"]) == ("来电人要求明天上午回电", "head")


@pytest.mark.parametrize("data", [b"{not json", b'{"note": "x", "by": ', b'{"note": "\xe6\x9d", "by": "1"}',
                                  b"[" * 100_000])
async def test_malformed_json_is_a_400(client, data):
    status, body = await call(client, "PATCH", "/api/tasks/1", data=data,
                              headers={"Content-Type": "application/json"})
    assert (status, body["error"]) == (400, "malformed_json")


@pytest.mark.parametrize("payload, code, extra", [
    ([{"note": "x"}], "invalid_body", {}),
    ("close", "invalid_body", {}),
    ({"closure": "reached_resolved", "outcome": "x", "agent": "1005"},
     "unknown_fields", {"fields": ["agent", "outcome"]}),
    ({"closure": "reached_resolved", "by": "1005"}, "unknown_fields", {"fields": ["by"]}),   # who acts: the identity
    ({"assignee": "1006", "by": None}, "unknown_fields", {"fields": ["by"]}),
    ({}, "missing_field", {"field": "closure"}),
    ({"closure": 3}, "invalid_field", {"field": "closure"}),
    ({"closure": ["reached_resolved"]}, "invalid_field", {"field": "closure"}),
    ({"note": "   "}, "invalid_field", {"field": "note"}),
    ({"note": "a\x00b"}, "invalid_field", {"field": "note"}),
    ({"note": "x" * 2001}, "invalid_field", {"field": "note"}),
    ({"assignee": ""}, "invalid_field", {"field": "assignee"}),
    ({"assignee": "1006\r\nAction: Originate"}, "invalid_field", {"field": "assignee"}),
    ({"assignee": "1006", "note": "x"}, "conflicting_fields", {"field": "assignee"}),
    ({"assignee": "1006", "closure": "wrong_number"}, "conflicting_fields", {"field": "assignee"}),
    ({"closure": "wrong_number", "version": "1"}, "invalid_field", {"field": "version"}),
])
async def test_invalid_patches_are_refused_and_change_nothing(client, payload, code, extra):
    task = await task_of(client, TIMED_OUT)
    status, body = await call(client, "PATCH", f"/api/tasks/{task['id']}", json=payload)
    assert (status, body["error"]) == (400, code)
    assert body.items() >= extra.items()
    after = await call(client, "GET", f"/api/tasks/{task['id']}")
    assert sorted(h["kind"] for h in after[1]["history"]) == ["assigned", "miss"]


async def test_patching_a_missing_task_is_a_404(client):
    for payload in ({"note": "x"}, {"assignee": "1006"}, {"closure": "reached_resolved"}):
        status, body = await call(client, "PATCH", "/api/tasks/999", json=payload)
        assert (status, body["error"]) == (404, "not_found")


async def test_wrong_method_is_a_json_405(client):
    async with client.delete("/api/tasks/1") as response:
        assert response.status == 405 and "PATCH" in response.headers["Allow"]
        assert (await response.json())["error"] == "method_not_allowed"


async def test_an_oversized_body_is_a_413(client):
    status, body = await call(client, "PATCH", "/api/tasks/1", data=b"x" * (2 << 20),
                              headers={"Content-Type": "application/json"})
    assert (status, body["error"]) == (413, "body_too_large")


async def test_an_unexpected_failure_is_a_500_and_the_server_goes_on(client, app_obj, monkeypatch):
    async def broken(**filters):
        raise RuntimeError("database on fire")
    monkeypatch.setattr(app_obj.followup, "list", broken)
    status, body = await call(client, "GET", "/api/tasks")
    assert (status, body["error"]) == (500, "internal_error") and "fire" not in body["message"]
    status, task = await call(client, "GET", "/api/tasks/1")
    assert status == 200 and task["id"] == 1


# --- GET /api/health and the server ---------------------------------------------------------

async def test_health_reports_each_pbx_link(client, app_obj):
    status, body = await call(client, "GET", "/api/health")
    assert status == 200 and body["status"] == "ok" and body["pbx"] == {} and body["open_calls"] == 0
    database = body["database"]            # tests/test_database_faults.py: degraded while it is away
    assert database["status"] == "ok" and database["since"] is None and not any(database["backlog"].values())

    server = AmiServer.from_trace(load_trace(trace_path("presence")), WEDNESDAY_10)
    port = await server.start()
    up = app_obj.service.add_pbx(Endpoint("pbx1", "127.0.0.1", port, "replay", "replay", reconnect_min=0.05))
    down = app_obj.service.add_pbx(Endpoint("pbx2", "127.0.0.1", 9, "cc", "cc", connect_timeout=0.2,
                                            reconnect_min=0.05, reconnect_max=0.1))
    up.start()
    down.start()
    try:
        await asyncio.wait_for(up.connected.wait(), 5)
        status, body = await call(client, "GET", "/api/health")
        assert status == 200
        assert body["pbx"] == {"pbx1": True, "pbx2": False} and isinstance(body["open_calls"], int)
    finally:
        for client_ in (up, down):
            await client_.stop()
            del app_obj.service.clients[client_.endpoint.id]
        await server.close()


async def test_web_server_runs_as_an_app_extra_on_the_configured_address(settings, db_url):
    settings = settings.model_copy(update={"web": WebSettings(host="127.0.0.1", port=0)})
    app_obj = build(settings, db_url, FixedClock(WEDNESDAY_10))
    web_server = WebServer(app_obj)
    app_obj.extras.append(web_server)
    await app_obj.start()
    try:
        host, port = web_server.addresses[0][:2]
        token = await grant(app_obj, "head-market", "head", ["market"])
        async with aiohttp.ClientSession(f"http://{host}:{port}", headers=bearer(token)) as http:
            async with http.get("/api/health") as response:
                assert response.status == 200 and (await response.json())["status"] == "ok"
            async with http.get("/api/tasks", params={"department": "market"}) as response:
                assert [t["caller_num"] for t in (await response.json())["tasks"]] == [AFTER_HOURS]
    finally:
        await app_obj.stop()
    assert web_server.addresses == []
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as http:
            await http.get(f"http://{host}:{port}/api/health")


# --- callcenter tasks list ------------------------------------------------------------------

def _cli(db_url: str, *args: str) -> str:
    # --full-numbers: these compare numbers with the API's (tests/test_cli_safety.py: masked by default)
    done = subprocess.run([sys.executable, "-m", "callcenter.cli", "tasks", "list", "--db", db_url,
                           "--config", str(ROOT / "config"), "--full-numbers", *args],
                          cwd=ROOT, capture_output=True, text=True, encoding="utf-8", timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_cli_lists_tasks_as_json_and_as_a_zh_cn_table(db_url):
    tasks = json.loads(await asyncio.to_thread(_cli, db_url, "--format", "json", "--department", "edu",
                                               "--status", "open", "--assignee", "pool"))
    assert [t["caller_num"] for t in tasks] == ABANDONED + [TIMED_OUT]
    assert tasks[0]["department_name"] == "区教育局" and "history" not in tasks[0]

    table = await asyncio.to_thread(_cli, db_url)
    lines = table.splitlines()
    assert lines[0].split() == ["编号", "来电号码", "部门", "状态", "原因", "未接", "首次未接", "办结时限",
                                "承办人", "回拨", "结果"]
    rows = [line.split() for line in lines[2:6]]
    assert [r[1] for r in rows] == ALL
    assert rows[0][2] == "区教育局" and rows[0][3].startswith("待处理") and rows[0][4:6] == ["排队放弃（短）", "1"]
    assert rows[3][2] == "区市场监管局" and rows[3][4] == "非工作时间"      # overdue or not: the CLI's clock is real
    assert rows[2][6:] == ["11-24", "10:00", "11-25", "16:30", "部门池", "0", "—"]
    assert lines[6].startswith("共 4 条：待处理 4")
    # created on the day of the missed call (the replay's clock follows the trace)
    tuesday = await asyncio.to_thread(_cli, db_url, "--date", TUESDAY_10.date().isoformat())
    assert [line.split()[1] for line in tuesday.splitlines()[2:4]] == [TIMED_OUT, AFTER_HOURS]
