"""A caller's history for the ringing panel: previous calls, open cases with their owners (首问负责),
open tasks; scoped by department, numbers masked for the office, the number validated.

Set-up: the real traces basic, transfer and ivr-hangup replayed (tests/test_cases_api.py): every
answered caller has an open case in 区市场监管局 (13800009999's owned by 1001, who answered first
before the transfer to 1005 in q-edu), and 13600000009, who hung up in the IVR, an open task.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from callcenter.domain.records import CallRecord, Outcome, Stint, StintEnd
from callcenter.web.app import init_app
from tests.auth_helpers import bearer, grant
from tests import test_cases_api
from tests.test_cases_api import IVR_HANGUP, MONDAY_10, build_app

replayed_db, db_url = test_cases_api.replayed_db, test_cases_api.db_url     # the fixtures: replayed traces

TRANSFERRED = "13800009999"
USERS = {"1001": ("agent", [], "1001"), "1005": ("agent", [], "1005"), "head-market": ("head", ["market"], None),
         "head-edu": ("head", ["edu"], None), "office": ("office", [], None)}


@pytest.fixture
async def rig(settings, db_url):
    app_obj = build_app(settings, db_url)
    await app_obj.start()
    client = TestClient(TestServer(await init_app(app_obj)))
    await client.start_server()
    headers = {user: bearer(await grant(app_obj, user, *spec)) for user, spec in USERS.items()}
    try:
        yield app_obj, client, headers
    finally:
        await client.close()
        await app_obj.stop()


async def history(client, headers, number: str, **params) -> tuple[int, dict]:
    async with client.get(f"/api/callers/{number}/history", params=params, headers=headers) as r:
        return r.status, await r.json()


async def test_a_repeat_caller_shows_calls_newest_first_and_who_owns_the_case(rig):
    app_obj, client, headers = rig
    at = MONDAY_10 + timedelta(minutes=25)                   # the caller rang again and gave up
    stint = Stint("q-market", "market", at, left_at=at + timedelta(seconds=20), end=StintEnd.ABANDONED)
    await app_obj.store.save_calls([CallRecord("pbx1", "again.1", "again.1", TRANSFERRED, "", "62000001", "market",
                                               at, at + timedelta(seconds=21), Outcome.ABANDONED, stints=[stint])])
    await app_obj.after_commit.catch_up()

    status, body = await history(client, headers["1001"], TRANSFERRED)
    assert status == 200 and body["number"] == TRANSFERRED and body["repeat_caller"] is True
    assert [(c["call_id"], c["outcome"], c["outcome_name"]) for c in body["calls"]] == [
        ("again.1", "abandoned", "排队放弃"), (body["calls"][1]["call_id"], "transferred", "已转接")]
    answered = body["calls"][1]
    assert (answered["department_name"], answered["agent"], answered["agent_name"], answered["queue"]) == \
        ("区市场监管局", "1005", "陈静", "q-edu")                 # the last agent who answered, in q-edu
    assert answered["started_at"].startswith("2026-11-23T10:00") and answered["started_at"].endswith("+08:00")
    [case] = body["cases"]
    assert (case["owner"], case["owner_name"], case["status"]) == ("1001", "张伟", "open")
    assert body["owners"] == {"market": {"case_id": case["id"], "owner": "1001", "owner_name": "张伟"}}
    [task] = body["tasks"]                                    # the abandoned call opened a task
    assert (task["department"], task["status"], task["caller_num"]) == ("market", "open", TRANSFERRED)

    status, body = await history(client, headers["1001"], TRANSFERRED, limit="1")
    assert [c["call_id"] for c in body["calls"]] == ["again.1"]


async def test_history_is_scoped_by_department_and_masked_for_the_office(rig):
    app_obj, client, headers = rig
    status, body = await history(client, headers["head-market"], IVR_HANGUP)
    assert status == 200 and [c["outcome"] for c in body["calls"]] == ["abandoned_ivr"]
    assert [t["caller_num"] for t in body["tasks"]] == [IVR_HANGUP] and body["cases"] == []

    status, body = await history(client, headers["head-edu"], IVR_HANGUP)   # a market caller: nothing of edu
    assert (status, body["calls"], body["cases"], body["tasks"], body["repeat_caller"]) == (200, [], [], [], False)

    status, body = await history(client, headers["office"], TRANSFERRED)
    assert body["number"] == "138****9999" and body["calls"] and body["cases"]
    assert all(item["caller_num"] == "138****9999" for key in ("calls", "cases") for item in body[key])

    status, body = await history(client, headers["1005"], TRANSFERRED)      # 1005 sits on edu's post
    assert body["calls"] == [] and body["cases"] == []
    status, body = await history(client, headers["1001"], "13999999999")    # never called
    assert (status, body["calls"], body["repeat_caller"]) == (200, [], False)


async def test_a_malformed_number_is_refused(rig):
    app_obj, client, headers = rig
    for number in ("12ab", "1", "+", "138%200000", "%3Cscript%3E", "1" * 21, "%E2%80%A8123456"):
        status, body = await history(client, headers["1001"], number)
        assert (status, body["error"], body["parameter"]) == (400, "invalid_parameter", "number"), (number, body)


async def test_the_pbx_and_anonymous_get_nothing(rig):
    app_obj, client, headers = rig
    async with client.get(f"/api/callers/{TRANSFERRED}/history") as r:
        assert r.status == 401
    pbx = bearer(await grant(app_obj, "pbx", "pbx"))
    async with client.get(f"/api/callers/{TRANSFERRED}/history", headers=pbx) as r:
        assert r.status == 403
