"""Callbacks over Twilio (ivr/twilio/dialout.py): a caller who hangs up in the IVR over Twilio
becomes a task; the agent starts the callback through the REST API; the service's real twilio
client places it (`calls.create`) against a local aiohttp server that plays Twilio's REST API
(ivr.twilio.api_url); the test then posts what Twilio would post back (the Dial action, the
status callback), signed with twilio's RequestValidator as tests/test_twilio_ivr.py does, and
reads the task: answered closes it, a caller who does not answer counts an attempt and sets the
next one, an agent who does not answer counts nothing. REST failures, forged callbacks and values
that cannot be dialled are refused without a stuck attempt."""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import socket
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from twilio.rest import Client

from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.domain.tasks import Reason
from callcenter.settings import ConfigError, load_settings
from callcenter.storage import tables as t
from callcenter.followup.callbacks import DialRefused
from callcenter.web.app import init_app
from ivr.twilio.dialout import ApiHttpClient, TwilioDialer
from ivr.twilio.web import web_app
from tests.auth_helpers import bearer, grant
from tests.conftest import MONDAY_10
from tests.test_twilio_ivr import CALLER, CALLER_STORED, HOTLINE, PUBLIC, SID, TOKEN, TWILIO, Phone, stored_call, \
    write_config

ACCOUNT = "AC" + "5a" * 16
CALLS_PATH = f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json"


class FakeTwilioApi:
    """Twilio's REST API as `calls.create` uses it: POST .../Accounts/{sid}/Calls.json with Basic
    auth; answers 201 and the call's JSON, or `fail` = (status, JSON body or text)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.fail: tuple | None = None

    def web(self) -> web.Application:
        wapp = web.Application()
        wapp.router.add_post("/2010-04-01/Accounts/{account}/Calls.json", self.create)
        return wapp

    async def create(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.requests.append({"account": request.match_info["account"], "auth": request.headers.get("Authorization"),
                              "form": {k: form.getall(k) if len(form.getall(k)) > 1 else form[k] for k in form}})
        if self.fail is not None:
            status, body = self.fail
            if isinstance(body, dict):
                return web.json_response(body, status=status)
            return web.Response(status=status, text=body)
        sid = "CA" + f"{len(self.requests):032x}"
        return web.json_response({"sid": sid, "account_sid": request.match_info["account"], "to": form["To"],
                                  "from": form["From"], "status": "queued", "direction": "outbound-api",
                                  "date_created": "Mon, 23 Nov 2026 02:00:00 +0000",
                                  "uri": f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}.json"}, status=201)

    @property
    def last(self) -> dict:
        return self.requests[-1]["form"]


class Rig:
    def __init__(self, app, phone: Phone, api: FakeTwilioApi, panel: TestClient):
        self.app, self.phone, self.api, self.panel = app, phone, api, panel

    async def miss(self, sid: str = SID, caller: str = CALLER) -> dict:
        """The caller hangs up in the Twilio IVR's menu: a task for 区市场监管局 on PBX twilio."""
        r = await self.phone.post(f"{PUBLIC}/twilio/voice", self.phone.call(sid, caller=caller))
        assert r.find("Gather") is not None
        self.phone.later(6)
        await self.phone.post(f"{PUBLIC}/twilio/status", self.phone.call(sid, caller=caller, CallStatus="completed"))
        await stored_call(self.app, sid)
        await self.app.after_commit.catch_up()
        [task] = await self.app.followup.list(caller=CALLER_STORED, status="open")
        assert (task["department"], task["pbx"]) == ("market", "twilio")
        return task

    async def start(self, task_id: int, status: int = 202) -> dict:
        r = await self.panel.post(f"/api/tasks/{task_id}/callbacks", json={})
        body = await r.json()
        assert r.status == status, body
        return body

    def placed(self) -> tuple[dict, ET.Element]:
        """The last calls.create: its form, and the Dial of its TwiML."""
        form = self.api.last
        return form, ET.fromstring(form["Twiml"]).find("Dial")

    def leg(self, **extra) -> dict:
        """The agent's call as Twilio posts it (CallSid: the call calls.create made)."""
        sid = "CA" + f"{len(self.api.requests):032x}"
        return {"CallSid": sid, "AccountSid": ACCOUNT, "From": HOTLINE, "To": "client:zhang",
                "Direction": "outbound-api", "CallStatus": "in-progress", **extra}

    async def settle(self) -> dict:
        await self.app.after_commit.catch_up()           # the after-commit pass records the results
        [task] = [t_ for t_ in await self.app.followup.list(caller=CALLER_STORED)]
        return await self.app.followup.get(task["id"])


@pytest.fixture
async def make_rig(tmp_path, monkeypatch):
    opened = []

    async def make(url: str, twilio: dict | None = None, at: datetime = MONDAY_10) -> Rig:
        api = FakeTwilioApi()
        server = TestServer(api.web())
        await server.start_server()
        monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
        conf = {**TWILIO, "account_sid": ACCOUNT, "api_url": f"http://127.0.0.1:{server.port}", **(twilio or {})}
        settings = load_settings(write_config(tmp_path, conf))
        app = build(settings, url, FixedClock(at))
        await app.service.start()
        app.callbacks.active = lambda: True           # no leader election in this test
        phone_client = TestClient(TestServer(web_app(app, on_finished=lambda record: None)))
        await phone_client.start_server()
        token = await grant(app, "head-market", "head", ["market"], agent="1001")     # 1001: Twilio Client zhang
        panel = TestClient(TestServer(await init_app(app)), headers=bearer(token))
        await panel.start_server()
        opened.append((app, phone_client, panel, server))
        return Rig(app, Phone(phone_client, app), api, panel)
    yield make
    for app, phone_client, panel, server in opened:
        await panel.close()
        await phone_client.close()
        await server.close()
        await app.ivr_records.stop()
        await app.service.stop()
        await app.store.close()


async def attempts(app) -> list[tuple]:
    async with app.store.engine.connect() as conn:
        rows = (await conn.execute(select(t.callback_attempts).order_by(t.callback_attempts.c.id))).mappings().all()
    return [(r["key"], r["pbx"], r["agent"], r["number"], r["result"]) for r in rows]


# --- the whole story -----------------------------------------------------------------------------

async def test_a_twilio_miss_is_called_back_over_twilio(db_url, make_rig):     # db_url first: dropped last
    rig = await make_rig(db_url)
    app, phone = rig.app, rig.phone
    task = await rig.miss()
    key1 = f"cb-{task['id']}-1"
    # 1. the agent starts the callback: one calls.create to the agent's Twilio Client
    attempt = await rig.start(task["id"])
    assert (attempt["key"], attempt["result"], attempt["pbx"], attempt["agent"]) == (key1, "pending", "twilio", "1001")
    [request] = rig.api.requests
    assert request["account"] == ACCOUNT
    assert request["auth"] == "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
    form, dial = rig.placed()
    assert (form["To"], form["From"], form["Timeout"]) == ("client:zhang", HOTLINE, "30")
    assert (form["StatusCallback"], form["StatusCallbackMethod"]) == (f"{PUBLIC}/twilio/callback/status?key={key1}",
                                                                      "POST")
    assert ET.fromstring(form["Twiml"]).find("Say").get("language") == "zh-CN"
    assert (dial.find("Number").text, dial.get("callerId"), dial.get("timeout")) == (CALLER, HOTLINE, "30")
    assert dial.get("action") == f"{PUBLIC}/twilio/callback/dial?key={key1}"
    # a second start while it rings: refused, nothing sent
    again = await rig.start(task["id"], 409)
    assert again["error"] == "callback_pending" and len(rig.api.requests) == 1
    # the agent answers, Twilio dials the caller, who does not pick up: the Dial action
    phone.later(40)
    r = await phone.post(dial.get("action"), rig.leg(DialCallStatus="no-answer", DialCallDuration="0",
                                                    DialCallSid="CA" + "7" * 32))
    assert [s.text for s in r.iter("Say")] == ["对方未接通，本次回拨已记录。"]
    ended = app.clock.now()
    phone.later(2)
    await phone.post(form["StatusCallback"], rig.leg(CallStatus="completed", CallDuration="42"))
    task = await rig.settle()
    assert task["status"] == "open" and task["attempts"] == 1
    assert [(c["key"], c["result"]) for c in task["callbacks"]] == [(key1, "no_answer")]
    assert [h["failed_leg"] for h in task["history"] if h["kind"] == "attempt"] == ["caller"]
    due = datetime.fromisoformat(task["next_attempt_at"])
    assert due == ended + timedelta(minutes=30)       # 30 business minutes after the caller's leg ended
    early = await rig.start(task["id"], 409)
    assert early["error"] == "retry_not_due" and len(rig.api.requests) == 1
    # 2. half an hour later: the agent does not answer (the caller is never dialled)
    phone.later(31 * 60)
    key2 = (await rig.start(task["id"]))["key"]
    form, dial = rig.placed()
    assert key2 == f"cb-{task['id']}-2" and form["StatusCallback"].endswith(f"?key={key2}")
    phone.later(35)
    await phone.post(form["StatusCallback"], rig.leg(CallStatus="no-answer", CallDuration="0"))
    task = await rig.settle()
    assert task["status"] == "open" and task["attempts"] == 1            # the agent's miss counts nothing
    assert [h["failed_leg"] for h in task["history"] if h["kind"] == "attempt"] == ["caller", "agent"]
    # 3. the agent answers, and so does the caller: the task is closed
    key3 = (await rig.start(task["id"]))["key"]
    form, dial = rig.placed()
    phone.later(50)                                  # 5 s to answer, 45 s of talk
    await phone.post(dial.get("action"), rig.leg(DialCallStatus="completed", DialCallDuration="45",
                                                 DialCallSid="CA" + "8" * 32))
    phone.later(1)
    await phone.post(form["StatusCallback"], rig.leg(CallStatus="completed", CallDuration="51"))
    task = await rig.settle()
    assert (task["status"], task["closure"], task["attempts"]) == ("closed", "callback_completed", 2)
    assert await attempts(app) == [(key1, "twilio", "1001", CALLER_STORED, "no_answer"),
                                   (key2, "twilio", "1001", CALLER_STORED, "no_answer"),
                                   (key3, "twilio", "1001", CALLER_STORED, "answered")]
    async with app.store.engine.connect() as conn:
        talk = (await conn.execute(select(t.callback_attempts.c.talk_seconds)
                                   .where(t.callback_attempts.c.key == key3))).scalar()
    assert talk == 45.0 and len(rig.api.requests) == 3


# --- failures, forgeries, bad values -------------------------------------------------------------

@pytest.mark.parametrize("status, body, shown", [
    (400, {"code": 21210, "message": "The source phone number provided is not yet verified for your account.",
           "more_info": "https://www.twilio.com/docs/errors/21210", "status": 400}, "Twilio answered 400 (error 21210"),
    (503, "Service Unavailable", "Twilio answered 503"),
])
async def test_a_refused_calls_create_is_a_502_and_leaves_nothing_pending(make_rig, sqlite_url, caplog, status, body,
                                                                          shown):
    rig = await make_rig(sqlite_url)
    task = await rig.miss()
    rig.api.fail = (status, body)
    caplog.set_level(logging.WARNING)
    refused = await rig.start(task["id"], 502)
    assert refused["error"] == "callback_not_placed" and shown in refused["message"]
    assert "Traceback" not in str(refused) and CALLER_STORED not in str(refused)
    assert [a[-1] for a in await attempts(rig.app)] == ["failed"]
    task = await rig.app.followup.get(task["id"])
    assert task["status"] == "open" and task["attempts"] == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # the next start goes out (the failed one blocks nothing)
    rig.api.fail = None
    attempt = await rig.start(task["id"])
    assert attempt["key"] == f"cb-{task['id']}-2" and len(rig.api.requests) == 2
    assert [a[-1] for a in await attempts(rig.app)] == ["failed", "pending"]


async def test_an_unreachable_api_is_a_502_and_a_lost_answer_stays_pending_until_it_expires(make_rig, sqlite_url):
    with socket.socket() as s:                       # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    rig = await make_rig(sqlite_url, {"api_url": f"http://127.0.0.1:{closed}"})
    task = await rig.miss()
    refused = await rig.start(task["id"], 502)
    assert "was not reached" in refused["message"] and [a[-1] for a in await attempts(rig.app)] == ["failed"]
    # a request sent whose answer never comes (read timeout): it may ring, so it stays pending ...
    slow = web.Application()

    async def hang(request):
        await request.post()
        await asyncio.sleep(2)
        return web.json_response({}, status=201)
    slow.router.add_post(CALLS_PATH, hang)
    server = TestServer(slow)
    await server.start_server()
    try:
        slow_api = ApiHttpClient(f"http://127.0.0.1:{server.port}", timeout=0.5)
        rig.app.callbacks.dialers["twilio"] = TwilioDialer(rig.app.settings,
                                                           Client(ACCOUNT, TOKEN, http_client=slow_api))
        attempt = await rig.start(task["id"])
        assert attempt["result"] == "pending"
        # ... until ring_timeout + the margin: expired, and a new callback may start
        rig.phone.later(61)
        assert await rig.app.callbacks.expire_pending() == 1
        assert [a[-1] for a in await attempts(rig.app)] == ["failed", "expired"]
    finally:
        await server.close()


async def test_forged_or_unsigned_callbacks_are_refused(make_rig, sqlite_url, caplog):
    rig = await make_rig(sqlite_url)
    task = await rig.miss()
    await rig.start(task["id"])
    form, dial = rig.placed()
    caplog.set_level(logging.WARNING, logger="ivr.twilio.web")
    answered = rig.leg(DialCallStatus="completed", DialCallDuration="60")
    await rig.phone.post(dial.get("action"), answered, signature=None, status=403)
    await rig.phone.post(dial.get("action"), answered, signature="bm90IGEgc2lnbmF0dXJl", status=403)
    # signed for another attempt's key, or for other values
    good = rig.phone.validator.compute_signature(f"{PUBLIC}/twilio/callback/dial?key=cb-999-1", answered)
    await rig.phone.post(dial.get("action"), answered, signature=good, status=403)
    good = rig.phone.validator.compute_signature(form["StatusCallback"], rig.leg(CallStatus="busy"))
    await rig.phone.post(form["StatusCallback"], rig.leg(CallStatus="completed"), signature=good, status=403)
    # signed, but not a key this service writes, or not a status Twilio sends: 400
    body = await rig.phone.post(f"{PUBLIC}/twilio/callback/dial?key=cb-1%0A-1", answered, status=400)
    assert body.startswith("bad request: key:")
    await rig.phone.post(dial.get("action"), rig.leg(DialCallStatus="maybe"), status=400)
    await rig.phone.post(form["StatusCallback"], rig.leg(CallStatus="completed", CallSid="CA-x"), status=400)
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 7
    task = await rig.settle()
    assert [c["result"] for c in task["callbacks"]] == ["pending"] and task["status"] == "open"


async def test_values_that_cannot_be_dialled_are_refused_before_anything_is_sent(make_rig, sqlite_url, tmp_path):
    rig = await make_rig(sqlite_url)
    app = rig.app
    # a short service number has no E.164 form
    short = await app.followup.request("95566", "market", Reason.CALLBACK_REQUEST, MONDAY_10, "twilio", "CA-short")
    refused = await rig.start(short["id"], 409)
    assert refused["error"] == "invalid_number" and "E.164" in refused["message"]
    # an agent with no Twilio identity
    task = await rig.miss()
    token = await grant(app, "head-market-2", "head", ["market"], agent="1003")
    r = await rig.panel.post(f"/api/tasks/{task['id']}/callbacks", json={}, headers=bearer(token))
    body = await r.json()
    assert r.status == 400 and "no Twilio identity" in body["message"]
    assert rig.api.requests == [] and await attempts(app) == []
    # checked once more where the REST request is built
    dialer = app.callbacks.dialers["twilio"]
    order = dialer.prepare("cb-1-1", "1001", CALLER_STORED, "market")
    assert (order.to, order.from_, order.caller) == ("client:zhang", HOTLINE, CALLER)
    for bad in ({"key": "cb-1-1\r\nX: y"}, {"to": "client:zh ang"}, {"caller": "13811113333"},
                {"status_callback": "https://evil.example/x"},
                {"twiml": order.twiml.replace(CALLER, "+8613900000000")}):
        with pytest.raises(DialRefused):
            await dialer.dial(dataclasses.replace(order, **bad))
    assert rig.api.requests == []


async def test_without_an_account_sid_a_twilio_callback_is_a_clear_503(make_rig, sqlite_url):
    rig = await make_rig(sqlite_url, {"account_sid": ""})
    task = await rig.miss()
    refused = await rig.start(task["id"], 503)
    assert refused["error"] == "pbx_not_ready" and "ivr.twilio.account_sid" in refused["message"]
    assert await attempts(rig.app) == [] and rig.api.requests == []


@pytest.mark.parametrize("change, message", [
    ({"account_sid": "AC123"}, "ivr.twilio.account_sid: expected AC followed by 32 hex digits"),
    ({"api_url": "http://127.0.0.1:9/"}, "ivr.twilio.api_url:"),
    ({"api_url": "api.twilio.com"}, "ivr.twilio.api_url:"),
    ({"api_timeout": 0}, "ivr.twilio.api_timeout"),
])
def test_callback_settings_errors_name_the_key(tmp_path, monkeypatch, change, message):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    with pytest.raises(ConfigError) as exc:
        load_settings(write_config(tmp_path, {**TWILIO, **change}))
    assert message in str(exc.value), str(exc.value)
