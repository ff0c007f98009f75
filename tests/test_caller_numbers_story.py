"""One citizen over two PBXes: Twilio reports the caller as +86... (E.164), Asterisk as the domestic
number. Whole calls, no mocks: the Twilio webhooks on aiohttp's test server (signed as Twilio
signs them, tests/test_twilio_ivr.py), the real AMI traces replayed over TCP into the same
database (callcenter/replay.py), the after-commit pipeline, the REST API and a callback through
an AMI server. The second call is recognised as the same caller: routed to the owner of the
open case, joining the same open task or case, one caller history."""
from __future__ import annotations

import asyncio
from datetime import timedelta

from aiohttp.test_utils import TestClient, TestServer

from callcenter.ami.client import Endpoint
from callcenter.ami.server import AmiServer
from callcenter.replay import replay
from callcenter.web.app import init_app
from tests.auth_helpers import bearer, grant
from tests.conftest import MONDAY_10, TRACES
from tests import test_twilio_ivr
from tests.test_twilio_ivr import PUBLIC, owner_case, stored_call, verbs

make_phone, tw_settings = test_twilio_ivr.make_phone, test_twilio_ivr.tw_settings    # the fixtures

SID3 = "CA" + "3" * 32


async def _history(phone, number: str, user: str = "head-market") -> dict:
    client = TestClient(TestServer(await init_app(phone.app)))
    await client.start_server()
    try:
        headers = bearer(await grant(phone.app, user, "head", ["market"]))
        async with client.get(f"/api/callers/{number}/history", headers=headers) as r:
            assert r.status == 200, await r.text()
            return await r.json()
    finally:
        await client.close()


async def test_asterisk_caller_calling_again_over_twilio_reaches_the_case_owner(db_url, make_phone, tw_settings):
    # over Asterisk: 13800000002 is answered by 1001 (the `basic` trace) -> 1001 owns the case
    phone, case = await owner_case(make_phone, tw_settings, db_url)
    app = phone.app
    # over Twilio, in E.164: the same caller, put straight through to the owner
    caller = "+8613800000002"
    r = await phone.post(f"{PUBLIC}/twilio/voice", phone.call(caller=caller))
    assert verbs(r) == ["Say", "Say", "Dial"] and r.find("Dial/Client").text == "zhang"
    phone.later(40)
    r = await phone.post(r.find("Dial").get("action"), phone.call(caller=caller, DialCallStatus="completed",
                                                                  DialCallDuration="30"))
    phone.later(2)
    await phone.post(f"{PUBLIC}/twilio/status", phone.call(caller=caller, CallStatus="completed"))
    record = await stored_call(app, phone.call()["CallSid"])
    assert (record.pbx, record.caller_num, record.outcome.value) == ("twilio", "13800000002", "answered")
    await app.after_commit.catch_up()
    [same] = await app.cases.list(caller="13800000002", department="market")     # one case, both calls
    calls = (await app.cases.get(same["id"]))["calls"]
    assert same["id"] == case["id"] and same["owner"] == "1001"
    assert sorted(c["pbx"] for c in calls) == ["pbx1", "twilio"]
    assert {s["caller"] for s in phone.records} == {"13800000002"}                # the IVR and survey sessions


async def test_a_miss_over_twilio_and_one_over_asterisk_are_one_task_one_history_one_callback(
        db_url, make_phone, tw_settings):
    caller = "+8613600000009"                      # the `ivr-hangup` trace's caller, as Twilio gives it
    # 09:50 over Twilio: hangs up in the menu -> a callback task for 区市场监管局
    phone = await make_phone(MONDAY_10 - timedelta(minutes=10), url=db_url)
    app = phone.app
    r = await phone.post(f"{PUBLIC}/twilio/voice", phone.call(caller=caller))
    assert verbs(r) == ["Say", "Gather"]
    phone.later(6)
    await phone.post(f"{PUBLIC}/twilio/status", phone.call(caller=caller, CallStatus="completed"))
    record = await stored_call(app, phone.call()["CallSid"])
    assert (record.caller_num, record.outcome.value, record.department) == ("13600000009", "abandoned_ivr", "market")
    await app.after_commit.catch_up()
    [task] = await app.followup.list(caller="13600000009", status="open")
    assert (task["department"], task["misses"], task["pbx"]) == ("market", 1, "twilio")
    # 10:00 over Asterisk, domestic: hangs up in the IVR again -> the same open task
    await replay(tw_settings, db_url, [str(TRACES / "ivr-hangup.jsonl")], MONDAY_10)
    await app.after_commit.catch_up()
    [joined] = await app.followup.list(caller="13600000009", status="open")
    assert (joined["id"], joined["misses"]) == (task["id"], 2)
    misses = [e for e in (await app.followup.get(task["id"]))["history"] if e["pbx"]]
    assert {e["pbx"] for e in misses} >= {"twilio", "pbx1"}
    # one caller history, asked with either form of the number
    for number in (caller, "13600000009", "008613600000009"):
        body = await _history(phone, number)
        assert body["number"] == "13600000009" and body["repeat_caller"] is True
        assert sorted(c["pbx"] for c in body["calls"]) == ["pbx1", "twilio"]
        assert [t["id"] for t in body["tasks"]] == [task["id"]]
    # the callback goes out over Asterisk with the domestic number, as before
    server = AmiServer()
    port = await server.start()
    client = app.service.add_pbx(Endpoint("pbx1", "127.0.0.1", port, "cc", "cc", reconnect_min=0.05))
    client.start()
    app.callbacks.active = lambda: True            # this test's app runs no leader election
    try:
        await asyncio.wait_for(client.connected.wait(), 5)
        attempt = await app.callbacks.start(task["id"], "1001")
        assert (attempt["number"], attempt["pbx"]) == ("13600000009", "pbx1")
        [originate] = [a for a in server.actions if a["Action"] == "Originate"]
        assert originate["Exten"] == tw_settings.followup.callback.dial_prefix + "13600000009"
    finally:
        await client.stop()
        await server.close()


async def test_first_asked_over_twilio_keeps_the_case_when_the_caller_comes_in_over_asterisk(
        db_url, make_phone, tw_settings):
    caller = "+8613800000001"
    # 09:45 over Twilio: the caller presses 0, 1001 (Twilio Client zhang) answers -> 1001 owns the case
    phone = await make_phone(MONDAY_10 - timedelta(minutes=15), url=db_url)
    app = phone.app
    r = await phone.post(f"{PUBLIC}/twilio/voice", phone.call(SID3, caller=caller))
    phone.later(3)
    r = await phone.post(r.find("Gather").get("action"), phone.call(SID3, caller=caller, Digits="0"))
    enqueue = r.find("Enqueue")
    phone.later(10)
    await phone.post(f"{PUBLIC}/twilio/bridge?agent=1001&queue=q-market", phone.call(SID3, QueueTime="10"))
    phone.later(60)
    await phone.post(enqueue.get("action"), phone.call(SID3, caller=caller, QueueResult="bridged", QueueTime="10",
                                                       CallStatus="completed"))
    await phone.post(f"{PUBLIC}/twilio/status", phone.call(SID3, caller=caller, CallStatus="completed"))
    record = await stored_call(app, SID3)
    assert (record.caller_num, record.outcome.value, record.stints[0].agent) == ("13800000001", "answered", "1001")
    await app.after_commit.catch_up()
    [case] = await app.cases.list(caller="13800000001", department="market")
    assert (case["owner"], case["status"]) == ("1001", "open")
    # 10:00 over Asterisk (`basic`): 13800000001 is answered by 1002 -> the call joins 1001's case
    await replay(tw_settings, db_url, [str(TRACES / "basic.jsonl")], MONDAY_10)
    await app.after_commit.catch_up()
    [same] = await app.cases.list(caller="13800000001", department="market")
    calls = (await app.cases.get(same["id"]))["calls"]
    assert (same["id"], same["owner"]) == (case["id"], "1001")                  # first-ask: still 1001's
    assert sorted((c["pbx"], c["agent"]) for c in calls) == [("pbx1", "1002"), ("twilio", "1001")]
