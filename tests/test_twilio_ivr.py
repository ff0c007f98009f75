"""Twilio Voice as the second PBX (ivr/twilio/): whole calls through the webhooks on aiohttp's test
server, each request signed with twilio's RequestValidator as Twilio signs it; the TwiML parsed;
the call record the CallTracker built and the service stored (real SQLite, PostgreSQL for owner
routing) compared with the record the same call gives over AMI."""
from __future__ import annotations

import logging
import shutil
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from twilio.request_validator import RequestValidator

from callcenter.ami.translate import translate
from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.domain.calls import CallTracker
from callcenter.domain.cases import Presence
from callcenter.replay import replay
from callcenter.settings import ConfigError, load_settings
from ivr import twilio as ivr_twilio
from ivr.twilio.web import web_app
from tests.conftest import MONDAY_10, ROOT, TRACES

PUBLIC = "https://hotline.example.gov.cn"
TOKEN = "twilio-test-auth-token-0123456789"
HOTLINE = "+862162000001"                        # 区市场监管局 over Twilio
CALLER = "+8613811113333"
CALLER_STORED = "13811113333"                # the canonical (domestic) form: callcenter/domain/numbers.py
SID = "CA" + "0123456789abcdef" * 2
SID2 = "CA" + "fedcba9876543210" * 2
RECORDING = "RE" + "ab" * 16
TWILIO = {"enabled": True, "public_url": PUBLIC, "auth_token": "${TWILIO_AUTH_TOKEN}", "pbx": "twilio",
          "agents": [{"agent": "1001", "client": "zhang"}, {"agent": "1002", "number": "+8613900001002",
                                                            "queue": "q-market"}]}


def write_config(tmp_path: Path, twilio: dict | None = None, hotline: bool = True) -> Path:
    conf = tmp_path / "config"
    shutil.copytree(ROOT / "config", conf)
    path = conf / "departments.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    market = next(d for d in data["departments"] if d["id"] == "market")
    if hotline:
        market["hotlines"].append({"number": HOTLINE, "pbx": "twilio"})
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    (conf / "twilio.yaml").write_text(yaml.safe_dump({"ivr": {"twilio": twilio or TWILIO}}), encoding="utf-8")
    return conf


@pytest.fixture
def tw_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    return load_settings(write_config(tmp_path))


class Phone:
    """Twilio's side: signed form posts to the URLs the TwiML names."""

    def __init__(self, client: TestClient, app):
        self.client, self.app = client, app
        self.validator = RequestValidator(TOKEN)

    async def post(self, url: str, params: dict, signature: str | None = "sign", status: int = 200):
        path = url.removeprefix(PUBLIC)
        headers = {}
        if signature == "sign":
            headers["X-Twilio-Signature"] = self.validator.compute_signature(PUBLIC + path, params)
        elif signature is not None:
            headers["X-Twilio-Signature"] = signature
        resp = await self.client.post(path, data=params, headers=headers)
        body = await resp.text()
        assert resp.status == status, body
        return ET.fromstring(body) if status == 200 else body

    def call(self, sid=SID, caller=CALLER, **extra) -> dict:
        return {"CallSid": sid, "AccountSid": "AC" + "0" * 32, "From": caller, "To": HOTLINE,
                "CallStatus": "in-progress", "Direction": "inbound", **extra}

    def later(self, seconds: float) -> None:
        self.app.clock.advance(seconds)


@pytest.fixture
async def make_phone(tw_settings, sqlite_url):
    apps = []

    async def make(at=MONDAY_10, settings=None, url=None, stored=False):
        app = build(settings or tw_settings, url or sqlite_url, FixedClock(at))
        await app.service.start()                  # migrates; the consumer stores the calls
        records = []
        # stored: the default, app.ivr_records (ivr/records.py) stores the sessions
        client = TestClient(TestServer(web_app(app, on_finished=None if stored else records.append)))
        await client.start_server()
        apps.append((app, client))
        phone = Phone(client, app)
        phone.records = records
        return phone
    yield make
    for app, client in apps:
        await client.close()
        await app.ivr_records.stop()
        await app.service.stop()
        await app.store.close()


def says(node) -> list[str]:
    return [s.text for s in node.iter("Say")]


def verbs(node) -> list[str]:
    return [child.tag for child in node]


async def stored_call(app, sid: str):
    await app.service.settled(5)
    records = await app.store.calls_between(MONDAY_10 - timedelta(days=1), MONDAY_10 + timedelta(days=1))
    return next(r for r in records if r.id == sid)


def over_ami(settings, messages: list[dict]):
    """The record the same call gives over AMI (pbx1's translator and the same tracker)."""
    tracker = CallTracker(settings.directory(), settings.hotline_contexts())
    done = []
    for m in messages:
        event = translate("pbx1", {**m, "Timestamp": f"{m['Timestamp'].timestamp():.6f}"}, m["Timestamp"])
        done += tracker.feed(event)
    [record] = done
    return record


def same_figures(a, b) -> None:
    """What the reports read: outcome, department, IVR, and per stint queue, end, waits, talk, agent."""
    assert (a.outcome, a.department, a.ivr_choice, a.ivr_queue, a.after_hours, a.started_at, a.ended_at) == \
        (b.outcome, b.department, b.ivr_choice, b.ivr_queue, b.after_hours, b.started_at, b.ended_at)
    assert [(s.queue, s.department, s.end, s.entered_at, s.answered_at, s.left_at, s.wait_seconds, s.talk_seconds,
             s.agent, s.rings, s.completed_by) for s in a.stints] == \
        [(s.queue, s.department, s.end, s.entered_at, s.answered_at, s.left_at, s.wait_seconds, s.talk_seconds,
          s.agent, s.rings, s.completed_by) for s in b.stints]


def ami(at, event, **fields) -> dict:
    return {"Event": event, "Timestamp": at, "Uniqueid": "1795347732.1", "Linkedid": "1795347732.1", **fields}


# --- whole calls --------------------------------------------------------------------------------

async def test_menu_choice_queue_agent_and_survey(make_phone, tw_settings):
    phone = await make_phone()
    t0 = phone.app.clock.now()
    r = await phone.post(f"{PUBLIC}/twilio/voice", phone.call())
    assert verbs(r) == ["Say", "Gather"] and says(r)[0] == "您好，欢迎致电区市场监管局。"
    gather = r.find("Gather")
    assert (gather.get("input"), gather.get("numDigits"), gather.get("timeout"), gather.get("actionOnEmptyResult")) \
        == ("dtmf", "1", "5", "true")
    assert r.find("Say").get("language") == "zh-CN" and "食品经营许可请按2" in gather.find("Say").text
    phone.later(8)
    r = await phone.post(gather.get("action"), phone.call(Digits="2"))
    [enqueue] = r.findall("Enqueue")
    assert enqueue.text == "q-market" and enqueue.get("waitUrl") == f"{PUBLIC}/twilio/wait"
    phone.later(1)
    wait = await phone.post(enqueue.get("waitUrl"), phone.call(QueuePosition="1", QueueTime="1"))
    assert verbs(wait) == ["Say", "Pause"] and wait.find("Say").get("language") == "zh-CN"
    # the agent's leg (Twilio Client "zhang") takes the caller; the Queue url runs on the caller's side
    phone.later(22)
    leg = await phone.post(f"{PUBLIC}/twilio/agent?queue=q-market",
                           phone.call("CA" + "1" * 32, caller="client:zhang", To=""))
    queue = leg.find("Dial/Queue")
    assert queue.text == "q-market" and "agent=1001" in queue.get("url")
    await phone.post(queue.get("url"), phone.call(QueueTime="23", DequeingCallSid="CA" + "1" * 32))
    phone.later(120)                               # the agent hangs up: the Enqueue action, then the survey
    r = await phone.post(enqueue.get("action"), phone.call(QueueResult="bridged", QueueTime="23"))
    survey = r.find("Gather")
    assert "满意请按1" in survey.find("Say").text
    phone.later(5)
    r = await phone.post(survey.get("action"), phone.call(Digits="1"))
    assert verbs(r) == ["Say", "Hangup"] and says(r) == ["感谢您的评价，再见。"]
    phone.later(2)
    await phone.post(f"{PUBLIC}/twilio/status", phone.call(CallStatus="completed", CallDuration="158"))
    ivr, rated = phone.records
    assert (ivr["script"], ivr["outcome"], ivr["route"]["queue"], ivr["route"]["item"]) == \
        ("ivr", "queue", "q-market", "食品经营许可")
    assert ivr["path"] == [{"at_step": "menu", "choice": "2", "level": 1, "item": "食品经营许可"}]
    assert (rated["script"], rated["rating"], rated["agent"], rated["queue"], rated["interface"], rated["pbx"]) == \
        ("survey", "satisfied", "1001", "q-market", "client:zhang", "twilio")
    assert set(ivr) == {"script", "uniqueid", "channel", "hotline", "caller", "pbx", "department", "started_at",
                        "recordings", "path", "outcome", "route", "rating", "ended_at"}
    record = await stored_call(phone.app, SID)
    assert (record.pbx, record.outcome.value, record.hotline, record.caller_num) == ("twilio", "answered", HOTLINE, CALLER_STORED)
    [stint] = record.stints
    assert (stint.queue, stint.agent, stint.wait_seconds, stint.talk_seconds) == ("q-market", "1001", 23.0, 120.0)
    s = lambda n: t0 + timedelta(seconds=n)    # noqa: E731
    same_figures(record, over_ami(tw_settings, [
        ami(s(0), "Newchannel", Channel="PJSIP/trunk-00000001", Context="hotline", Exten="62000001",
            CallerIDNum="13811113333", CallerIDName=""),
        ami(s(0), "Newexten", Context="hotline", Extension="62000001", Application="Answer"),
        ami(s(8), "UserEvent", UserEvent="IvrChoice", Queue="q-market", Choice="2"),
        ami(s(8), "QueueCallerJoin", Queue="q-market", Position="1"),
        ami(s(31), "AgentCalled", Queue="q-market", Interface="PJSIP/1001", MemberName="张伟"),
        ami(s(31), "AgentConnect", Queue="q-market", Interface="PJSIP/1001", MemberName="张伟", HoldTime="23"),
        ami(s(151), "AgentComplete", Queue="q-market", Interface="PJSIP/1001", MemberName="张伟", HoldTime="23",
            TalkTime="120", Reason="agent"),
        ami(s(158), "Hangup", Cause="16")]))


async def test_after_hours_the_caller_records_a_callback_request(make_phone, tw_settings):
    phone = await make_phone(MONDAY_10 + timedelta(hours=10))           # 20:00: closed
    t0 = phone.app.clock.now()
    r = await phone.post(f"{PUBLIC}/twilio/voice", phone.call())
    assert "我们的工作时间是工作日 9:00-11:30、13:30-16:30" in r.find("Gather/Say").text
    phone.later(4)
    r = await phone.post(r.find("Gather").get("action"), phone.call(Digits="1"))
    record_verb = r.find("Record")
    assert verbs(r) == ["Say", "Record"] and (record_verb.get("maxLength"), record_verb.get("finishOnKey")) == ("60", "#")
    phone.later(20)
    r = await phone.post(record_verb.get("action"), phone.call(RecordingSid=RECORDING, RecordingDuration="12",
                                                               RecordingUrl="https://api.twilio.com/x"))
    assert verbs(r) == ["Say", "Hangup"] and "一个工作日内回电" in says(r)[0]
    phone.later(1)
    await phone.post(f"{PUBLIC}/twilio/status", phone.call(CallStatus="completed"))
    [done] = phone.records
    assert (done["outcome"], done["recordings"], done["callback_request_sent"], done["route"]["kind"]) == \
        ("callback_request", [RECORDING], True, "callback_task")
    record = await stored_call(phone.app, SID)
    assert record.outcome.value == "after_hours" and record.after_hours
    same_figures(record, over_ami(tw_settings, [
        ami(t0, "Newchannel", Channel="PJSIP/trunk-00000001", Context="hotline", Exten="62000001",
            CallerIDNum="13811113333", CallerIDName=""),
        ami(t0, "Newexten", Context="hotline", Extension="62000001", Application="Answer"),
        ami(t0, "UserEvent", UserEvent="AfterHours", Hotline="62000001"),
        ami(t0 + timedelta(seconds=25), "Hangup", Cause="16")]))


async def test_a_hang_up_in_the_menu_is_recorded_where_it_happened(make_phone, tw_settings):
    phone = await make_phone()
    r = await phone.post(f"{PUBLIC}/twilio/voice", phone.call())
    phone.later(5)
    r = await phone.post(r.find("Gather").get("action"), phone.call(Digits=""))       # no input: asked again
    assert verbs(r) == ["Gather"]
    phone.later(3)
    await phone.post(f"{PUBLIC}/twilio/status", phone.call(CallStatus="completed"))
    [done] = phone.records
    assert done["outcome"] == "hangup" and done["path"] == [
        {"at_step": "menu", "timeout": True, "level": 1}, {"hangup_at": "menu", "level": 1}]
    record = await stored_call(phone.app, SID)
    assert record.outcome.value == "abandoned_ivr" and record.stints == []
    # another caller, answered over the queue, hangs up during the survey question
    r = await phone.post(f"{PUBLIC}/twilio/voice", phone.call(SID2))
    r = await phone.post(r.find("Gather").get("action"), phone.call(SID2, Digits="0"))
    enqueue = r.find("Enqueue")
    phone.later(12)
    await phone.post(f"{PUBLIC}/twilio/bridge?agent=1002&queue=q-market", phone.call(SID2, QueueTime="12"))
    phone.later(40)
    r = await phone.post(enqueue.get("action"), phone.call(SID2, QueueResult="bridged", QueueTime="12"))
    phone.later(2)
    await phone.post(f"{PUBLIC}/twilio/status", phone.call(SID2, CallStatus="completed"))
    ivr, survey = phone.records[-2:]
    assert (ivr["outcome"], ivr["route"]["queue"], ivr["path"]) == ("queue", "q-market", [
        {"at_step": "menu", "choice": "0", "level": 1}])
    assert (survey["outcome"], survey["path"], survey["agent"], survey["interface"]) == \
        ("hangup", [{"hangup_at": "survey"}], "1002", "+8613900001002")
    record = await stored_call(phone.app, SID2)
    [stint] = record.stints
    assert (record.outcome.value, stint.agent, stint.wait_seconds, stint.talk_seconds, record.ivr_choice) == \
        ("answered", "1002", 12.0, 40.0, "0")


async def owner_case(make_phone, tw_settings, db_url) -> tuple:
    """Over Asterisk (the `basic` trace replayed at 10:00) 13800000002 is answered by 1001, who
    owns the open case (follow-up disposition) and is available; a Twilio phone at 10:05 on the
    same database: (phone, case)."""
    await replay(tw_settings, db_url, [str(TRACES / "basic.jsonl")], MONDAY_10)
    phone = await make_phone(MONDAY_10 + timedelta(minutes=5), url=db_url)
    app = phone.app
    await app.cases.process_pending()
    [case] = await app.cases.list(caller="13800000002", department="market")
    call_id = (await app.cases.get(case["id"]))["calls"][0]["call_id"]
    await app.cases.dispose("pbx1", call_id, "1001", "follow_up_simple")       # the case stays open
    app.cases.presence = lambda: {"1001": Presence("1001", True, ("PJSIP/1001",))}
    return phone, case


async def test_a_repeat_caller_is_dialled_to_the_case_owner(make_phone, tw_settings, db_url):
    phone, case = await owner_case(make_phone, tw_settings, db_url)
    app = phone.app
    t0 = app.clock.now()
    r = await phone.post(f"{PUBLIC}/twilio/voice", phone.call(caller="13800000002"))
    assert verbs(r) == ["Say", "Say", "Dial"] and says(r)[1].startswith("正在为您转接上次为您服务的工作人员")
    dial = r.find("Dial")
    assert (dial.find("Client").text, dial.get("timeout")) == ("zhang", "20")
    phone.later(70)                                # answered after 10 s, talked 60 s
    r = await phone.post(dial.get("action"), phone.call(caller="13800000002", DialCallStatus="completed",
                                                        DialCallDuration="60", DialCallSid="CA" + "2" * 32))
    phone.later(4)
    r = await phone.post(r.find("Gather").get("action"), phone.call(caller="13800000002", Digits="3"))
    phone.later(1)
    await phone.post(f"{PUBLIC}/twilio/status", phone.call(caller="13800000002", CallStatus="completed"))
    ivr, rated = phone.records[-2:]
    assert ivr["outcome"] == "owner" and ivr["path"] == [{"at_step": "owner", "agent": "1001", "kind": "owner"}]
    assert (rated["rating"], rated["agent"], rated["queue"]) == ("dissatisfied", "1001", "direct")
    record = await stored_call(app, SID)
    [stint] = record.stints
    assert (record.outcome.value, stint.queue, stint.agent, stint.wait_seconds) == ("answered", "direct", "1001", 10.0)
    s = lambda n: t0 + timedelta(seconds=n)    # noqa: E731
    same_figures(record, over_ami(tw_settings, [
        ami(s(0), "Newchannel", Channel="PJSIP/trunk-00000001", Context="hotline", Exten="62000001",
            CallerIDNum="13800000002", CallerIDName=""),
        ami(s(0), "Newexten", Context="hotline", Extension="62000001", Application="Answer"),
        ami(s(0), "DialBegin", DestUniqueid="1795347732.2", DestChannel="PJSIP/1001-00000002", DialString="1001"),
        ami(s(10), "DialEnd", DestUniqueid="1795347732.2", DestLinkedid="1795347732.1", DialStatus="ANSWER"),
        ami(s(75), "Hangup", Cause="16")]))
    # the owner does not answer: the queue takes the caller
    r = await phone.post(f"{PUBLIC}/twilio/voice", phone.call(SID2, caller="13800000002"))
    phone.later(20)
    r = await phone.post(r.find("Dial").get("action"), phone.call(SID2, caller="13800000002",
                                                                  DialCallStatus="no-answer"))
    assert r.find("Enqueue").text == "q-market"
    phone.later(30)
    await phone.post(r.find("Enqueue").get("action"), phone.call(SID2, caller="13800000002", QueueResult="hangup",
                                                                 QueueTime="30", CallStatus="completed"))
    await phone.post(f"{PUBLIC}/twilio/status", phone.call(SID2, caller="13800000002", CallStatus="completed"))
    record = await stored_call(app, SID2)
    assert record.outcome.value == "abandoned" and [(s.queue, s.end.value) for s in record.stints] == \
        [("direct", "no_agent"), ("q-market", "abandoned")]


# --- signatures, bad input, configuration ----------------------------------------------------------

async def test_a_bad_or_missing_signature_gets_403_and_a_log_line(make_phone, caplog):
    phone = await make_phone()
    caplog.set_level(logging.WARNING, logger="ivr.twilio.web")
    assert await phone.post(f"{PUBLIC}/twilio/voice", phone.call(), signature=None, status=403) == "forbidden\n"
    await phone.post(f"{PUBLIC}/twilio/voice", phone.call(), signature="bm90IGEgc2lnbmF0dXJl", status=403)
    # signed for other parameters (a forged digit), or for another URL (the state swapped)
    params = phone.call(Digits="1")
    good = phone.validator.compute_signature(f"{PUBLIC}/twilio/voice", params)
    await phone.post(f"{PUBLIC}/twilio/voice", {**params, "Digits": "2"}, signature=good, status=403)
    await phone.post(f"{PUBLIC}/twilio/gather?s=x", params, signature=good, status=403)
    lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(lines) == 4 and "missing X-Twilio-Signature" in lines[0] and "bad X-Twilio-Signature" in lines[1]
    assert all("+86***3333" not in line and "13811113333" not in line for line in lines)
    assert all(SID in line and "+86" in line and "3333" in line for line in lines)
    assert phone.records == [] and phone.app.service.calls.open_calls == 0


@pytest.mark.parametrize("path, params", [
    ("voice", {"CallSid": "CA-not-a-sid", "To": HOTLINE, "From": CALLER}),
    ("voice", {"CallSid": SID, "To": "6200\r\n0001", "From": CALLER}),
    ("voice", {"CallSid": SID, "To": "<script>", "From": CALLER}),
    ("gather?s=garbage", {"CallSid": SID, "To": HOTLINE, "From": CALLER, "Digits": "1"}),
    ("gather?s=eyJrIjoiaXZyIn0", {"CallSid": SID, "To": HOTLINE, "From": CALLER, "Digits": "1"}),   # {"k":"ivr"}
    ("gather", {"CallSid": SID, "To": HOTLINE, "From": CALLER, "Digits": "1"}),
    ("record?s=x", {"CallSid": SID, "To": HOTLINE, "From": CALLER, "RecordingDuration": "-1"}),
    ("record?s=x", {"CallSid": SID, "To": HOTLINE, "From": CALLER, "RecordingSid": "../etc"}),
    ("queue?s=x&queue=q-market&at=now", {"CallSid": SID, "To": HOTLINE, "QueueResult": "bridged"}),
    ("queue?s=x&queue=q-market&at=nan", {"CallSid": SID, "To": HOTLINE, "QueueResult": "bridged"}),
    ("queue?s=x&queue=q-market&at=1", {"CallSid": SID, "To": HOTLINE, "QueueResult": "exploded"}),
    ("dial?s=x", {"CallSid": SID, "To": HOTLINE, "DialCallStatus": "maybe"}),
    ("bridge?agent=1001&queue=q%0Amarket", {"CallSid": SID, "QueueTime": "3"}),
    ("bridge?agent=9999&queue=q-market", {"CallSid": SID, "QueueTime": "3"}),
    ("bridge?agent=1001&queue=q-market", {"CallSid": SID, "QueueTime": "1e9"}),
    ("status", {"CallSid": SID, "CallStatus": "vanished"}),
    ("agent", {"CallSid": SID, "From": "client:zhang\x00"}),
])
async def test_garbage_gets_400_not_a_traceback(make_phone, caplog, path, params):
    phone = await make_phone()
    caplog.set_level(logging.WARNING)
    body = await phone.post(f"{PUBLIC}/twilio/{path}", params, status=400)
    assert body.startswith("bad request: ") and "Traceback" not in body and "13811113333" not in body
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # digits that are not DTMF keys, in a real call's gather
    r = await phone.post(f"{PUBLIC}/twilio/voice", phone.call(SID2))
    body = await phone.post(r.find("Gather").get("action"), phone.call(SID2, Digits="1; DROP TABLE"), status=400)
    assert "Digits" in body
    # a number no department has on this PBX: a polite hang-up (a configuration matter), logged
    r = await phone.post(f"{PUBLIC}/twilio/voice", {"CallSid": SID, "To": "99999999", "From": CALLER})
    assert verbs(r) == ["Hangup"] and any("no flow for hotline 99999999" in m.getMessage() for m in caplog.records)
    # an agent leg from an identity that is no agent's: hung up, logged
    r = await phone.post(f"{PUBLIC}/twilio/agent?queue=q-market", {"CallSid": SID2, "From": "client:stranger"})
    assert verbs(r) == ["Hangup"] and any("agent leg" in m.getMessage() for m in caplog.records)


async def test_behind_a_proxy_the_public_url_is_signed(tmp_path, monkeypatch, sqlite_url):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    settings = load_settings(write_config(tmp_path, {**TWILIO, "public_url": "https://gw.example.gov.cn:8443/cc",
                                                     "path_prefix": "/voice-hooks"}))
    app = build(settings, sqlite_url, FixedClock(MONDAY_10))
    await app.service.start()
    client = TestClient(TestServer(web_app(app, on_finished=lambda record: None)))
    await client.start_server()
    try:
        params = {"CallSid": SID, "From": CALLER, "To": HOTLINE}
        validator = RequestValidator(TOKEN)
        signed = validator.compute_signature("https://gw.example.gov.cn:8443/cc/voice-hooks/voice", params)
        resp = await client.post("/voice-hooks/voice", data=params, headers={"X-Twilio-Signature": signed})
        action = ET.fromstring(await resp.text()).find("Gather").get("action")
        assert resp.status == 200 and action.startswith("https://gw.example.gov.cn:8443/cc/voice-hooks/gather?s=")
        # signed for the address behind the proxy: refused
        inner = validator.compute_signature(f"{client.make_url('/voice-hooks/voice')}", params)
        resp = await client.post("/voice-hooks/voice", data=params, headers={"X-Twilio-Signature": inner})
        assert resp.status == 403
    finally:
        await client.close()
        await app.service.stop()
        await app.store.close()


@pytest.mark.parametrize("change, hotline, message", [
    ({"public_url": "hotline.example.gov.cn"}, True, "ivr.twilio.public_url:"),
    ({"public_url": PUBLIC + "/"}, True, "ivr.twilio.public_url:"),
    ({"auth_token": ""}, True, "ivr.twilio.auth_token: empty"),
    ({"pbx": "pbx1"}, False, "ivr.twilio.pbx: 'pbx1' is also an Asterisk PBX"),
    ({"path_prefix": "twilio/"}, True, "ivr.twilio.path_prefix:"),
    ({"agents": [{"agent": "9999", "client": "x"}]}, True, "ivr.twilio.agents[0].agent: unknown agent '9999'"),
    ({"agents": [{"agent": "1001", "client": "x", "number": "+861"}]}, True, "ivr.twilio.agents[0]: give exactly one"),
    ({"agents": [{"agent": "1001", "number": "12"}]}, True, "ivr.twilio.agents[0].number:"),
    ({"agents": [{"agent": "1001", "client": "z", "queue": "q-nowhere"}]}, True, "ivr.twilio.agents[0].queue:"),
    ({"queues": {"q-nowhere": "x"}}, True, "ivr.twilio.queues.q-nowhere:"),
    ({"port": 70000}, True, "ivr.twilio.port:"),
    ({}, False, "ivr.twilio.enabled: no hotline is on PBX 'twilio'"),
])
def test_configuration_errors_name_the_key(tmp_path, monkeypatch, change, hotline, message):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    with pytest.raises(ConfigError) as exc:
        load_settings(write_config(tmp_path, {**TWILIO, **change}, hotline=hotline))
    assert f"twilio.yaml: {message}" in str(exc.value), str(exc.value)      # the file, the key, the problem


def test_the_token_comes_from_the_environment_and_serve_attaches(tmp_path, monkeypatch, sqlite_url):
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="environment variable TWILIO_AUTH_TOKEN is not set"):
        load_settings(write_config(tmp_path))
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    settings = load_settings(tmp_path / "config")
    assert settings.ivr.twilio.auth_token.get_secret_value() == TOKEN and TOKEN not in repr(settings.ivr.twilio)
    directory = settings.directory()
    assert directory.department_of_hotline(HOTLINE, "twilio") == "market"
    assert directory.agent_of("client:zhang", "", "twilio") == "1001" and directory.agent_of("client:zhang", "", "pbx1") is None
    assert settings.hotline_contexts()["twilio"] == frozenset({"twilio"})
    app = build(settings, sqlite_url, live=True)
    assert app.twilio_server in app.extras and app.twilio_server.port == 8081
    assert not ivr_twilio.configured(load_settings(ROOT / "config"))
    assert getattr(build(settings, sqlite_url), "twilio_server", None) is None      # replay / tests: not started


async def test_finished_sessions_are_stored_by_the_ivr_records(make_phone):
    from sqlalchemy import select
    from callcenter.storage import tables as t
    phone = await make_phone(stored=True)
    r = await phone.post(f"{PUBLIC}/twilio/voice", phone.call())
    phone.later(3)
    await phone.post(r.find("Gather").get("action"), phone.call(Digits="5"))
    await phone.app.ivr_records.flush()
    async with phone.app.store.engine.connect() as conn:
        rows = (await conn.execute(select(t.ivr_sessions))).mappings().all()
    assert [(row["pbx"], row["uniqueid"], row["script"], row["outcome"], row["route_queue"], row["caller_num"])
            for row in rows] == [("twilio", SID, "ivr", "queue", "q-market", CALLER_STORED)]
