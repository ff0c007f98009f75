"""The callers' IVR over FastAGI (ivr/agi_session.py): the real recorded conversation and whole flows
driven over TCP as Asterisk drives them, against a real app (configuration, database, cases)."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from callcenter.ami.framing import Framer
from callcenter.ami.translate import translate
from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.domain.cases import Presence
from callcenter.replay import replay
from ivr import server as ivr_server
from tests.conftest import MONDAY_10, TRACES, trace_path
from tests.test_fastagi import FakeAsterisk, parse_args

HOTLINE = "62000001"                   # 区市场监管局, queue q-market; menu: its items 1..5
CALLER = "13811113333"
DEAD = "511 Command Not Permitted on a dead channel or intercept routine"


async def _apps(settings, url):
    """Apps with their FastAGI server started (`make(at, url=, conf=)` overrides the database and
    the configuration), stopped at the end; tests/test_ivr_records.py uses it too."""
    apps = []

    async def make(at=MONDAY_10, url=url, conf=settings):
        app = build(conf, url, FixedClock(at))
        await app.store.migrate()
        server = ivr_server.attach(app, port=0)
        await server.start()
        apps.append(app)
        return app
    yield make
    for app in apps:
        await app.ivr.stop()
        await app.ivr_records.stop()
        await app.store.close()


@pytest.fixture
async def ivr_app(settings, sqlite_url):         # the flows: the database only answers "no open case"
    async for make in _apps(settings, sqlite_url):
        yield make


@pytest.fixture
async def ivr_app_db(settings, db_url):          # owner routing reads cases: SQLite and PostgreSQL
    async for make in _apps(settings, db_url):
        yield make


@pytest.fixture
async def lab_app(settings, sqlite_url):         # the real-Asterisk test: one database is enough
    short = settings.model_copy(update={"ivr": settings.ivr.model_copy(update={"record_seconds": 5})})
    async for make in _apps(short, sqlite_url):
        yield make


def asterisk(digits=(), record="200 result=35 (dtmf) endpos=16000"):
    """Answers as the lab Asterisk gives them; GET DATA answers come from `digits` in turn
    ("" = the caller pressed nothing; a list = several lines, e.g. HANGUP + result)."""
    keys = list(digits)
    dead = []

    def answer(command: str):
        verb = " ".join(command.split()[:2])
        if verb == "GET DATA":
            key = keys.pop(0)
            if isinstance(key, list):
                dead.append(True)
                return key
            return f"200 result={key}" if key else "200 result= (timeout)"
        if verb == "CHANNEL STATUS":       # 6: up; on a dead channel the HANGUP line, then 511
            return ["HANGUP", DEAD] if dead else "200 result=6"
        if verb == "STREAM FILE":
            return "200 result=0 endpos=8000"
        if verb == "RECORD FILE":
            return record
        if verb in ("SET VARIABLE", "VERBOSE", "HANGUP") or verb.startswith("HANGUP"):
            return "200 result=1"
        return "200 result=0"
    return answer


def variables(commands):
    return {a[2]: a[3] for a in map(parse_args, commands) if a[:2] == ["SET", "VARIABLE"]}


def events(commands):
    """The UserEvents the script raised, as the dialplan's UserEvent(Name,Key: value,...)."""
    out = []
    for a in map(parse_args, commands):
        if a[:2] == ["EXEC", "UserEvent"]:
            name, *fields = a[2].split(",")
            out.append((name, dict(x.split(": ", 1) for x in fields)))
    return out


async def call(app, answer, caller=CALLER, script=f"ivr?hotline={HOTLINE}", env=None):
    client = FakeAsterisk(app.ivr.port, answer, env=env or {"network": "yes", "network_script": script,
                                                             "uniqueid": "1795347732.321", "callerid": caller,
                                                             "channel": f"Local/{HOTLINE}@ivr-agi-000000a0;2"})
    commands = await client.run()
    assert client.closed_by_server
    return commands, app.ivr.ivr.finished[-1]


async def test_the_recorded_conversation_routes_digit_2(ivr_app_db):
    """tests/traces/fastagi-ivr-dtmf.jsonl: the header as Asterisk sent it; each command answered
    with what Asterisk answered to that command in the recording (the caller pressed 2)."""
    app = await ivr_app_db()
    rows = [json.loads(x) for x in trace_path("fastagi-ivr-dtmf").read_text().splitlines()]
    end = next(i for i, r in enumerate(rows) if r["line"] == "\n")
    env = dict(r["line"].rstrip("\n").split(": ", 1) if ": " in r["line"] else (r["line"].rstrip(":\n"), "")
               for r in rows[:end])
    recorded = {}
    for mine, theirs in zip(rows[end + 1:], rows[end + 2:]):
        if mine["dir"] == "app" and theirs["dir"] == "pbx":
            recorded.setdefault(" ".join(mine["line"].split()[:2]), theirs["line"].rstrip("\n"))
    assert recorded["GET DATA"] == "200 result=2"

    def answer(command):
        verb = " ".join(command.split()[:2])
        return recorded.get(verb) or recorded.get(verb.split()[0]) or "200 result=0"
    client = FakeAsterisk(app.ivr.port, answer, env={k.removeprefix("agi_"): v for k, v in env.items()})
    commands = await client.run()
    assert commands[:3] == ["ANSWER", 'STREAM FILE "callcenter/market-welcome" ""',
                            'GET DATA "callcenter/market-menu" 5000 1']
    assert events(commands) == [("IvrChoice", {"Queue": "q-market", "Choice": "2"})]
    assert variables(commands) == {"QNAME": "q-market", "CHOICE": "2", "LEVEL": "1", "IVRROUTE": "queue"}
    done = app.ivr.ivr.finished[-1]
    assert done["route"]["item"] == "食品经营许可"
    assert (done["outcome"], done["hotline"], done["uniqueid"], done["route"]["queue"]) == \
        ("queue", HOTLINE, "1795347732.321", "q-market")
    assert done["path"] == [{"at_step": "menu", "choice": "2", "level": 1, "item": "食品经营许可"}]


def test_the_user_event_reads_as_the_dialplans():
    """What Asterisk's UserEvent application makes of the EXEC arguments (one header per
    comma-separated part) is what the tracker reads from the dialplan's UserEvent."""
    from ivr.agi_protocol import app_options
    body = app_options("IvrChoice", "Queue: q-market", "Choice: 2").split(",")
    raw = ("Event: UserEvent\r\nChannel: Local/62000001@ivr-agi-000000a0;2\r\nUniqueid: 1795347732.321\r\n"
           "Linkedid: 1795347732.320\r\nUserEvent: " + body[0] + "\r\n" + "\r\n".join(body[1:]) + "\r\n\r\n")
    [message] = Framer(expect_banner=False).feed(raw.encode())
    event = translate("pbx1", message, MONDAY_10)
    assert (type(event).__name__, event.queue, event.choice, event.uniqueid) == \
        ("IvrChoiceMade", "q-market", "2", "1795347732.321")


async def test_no_input_reaches_the_queue_after_the_repeats(ivr_app):
    app = await ivr_app()
    commands, done = await call(app, asterisk(["", "", ""]))
    assert sum(c.startswith("GET DATA") for c in commands) == 3
    assert variables(commands)["QNAME"] == "q-market" and variables(commands)["CHOICE"] == ""
    assert events(commands) == [("IvrChoice", {"Queue": "q-market", "Choice": ""})]
    assert done["outcome"] == "queue"
    assert done["path"] == [{"at_step": "menu", "timeout": True, "level": 1}] * 3


async def test_an_invalid_key_is_told_and_the_menu_repeats(ivr_app):
    app = await ivr_app()
    commands, done = await call(app, asterisk(["9", "3"]))
    gets = [i for i, c in enumerate(commands) if c.startswith("GET DATA")]
    assert len(gets) == 2 and commands[gets[0] + 1] == 'STREAM FILE "callcenter/invalid" ""'
    assert variables(commands)["CHOICE"] == "3" and done["route"]["item"] == "企业登记档案查阅"
    assert done["path"][0] == {"at_step": "menu", "invalid": "9", "level": 1}
    assert done["outcome"] == "queue"


async def test_zero_reaches_the_queue(ivr_app):
    app = await ivr_app()
    commands, done = await call(app, asterisk(["0"]))
    assert variables(commands)["QNAME"] == "q-market" and done["route"]["item"] is None
    assert events(commands) == [("IvrChoice", {"Queue": "q-market", "Choice": "0"})]


async def test_after_hours_the_caller_leaves_a_callback_request(ivr_app):
    app = await ivr_app(MONDAY_10 + timedelta(hours=10))          # 20:00: closed
    commands, done = await call(app, asterisk(["1"]))
    assert commands[:4] == ["ANSWER", 'STREAM FILE "callcenter/market-welcome" ""',
                            'EXEC "UserEvent" "AfterHours,Hotline: 62000001"', 'GET DATA "callcenter/market-closed" 5000 1']
    record = [c for c in commands if c.startswith("RECORD FILE")]
    assert record == ['RECORD FILE "ivr-callback-1795347732-321" "wav" "#" 60000 "BEEP" "s=3"']
    assert events(commands)[1] == ("CallbackRequest", {"Hotline": HOTLINE, "Reason": "closed"})
    assert variables(commands) == {"QNAME": "q-market", "CALLBACK": "1", "IVRROUTE": "callback_task"}
    assert done["outcome"] == "callback_request" and done["recordings"] == ["ivr-callback-1795347732-321"]
    # another caller declines: goodbye and a polite hang-up
    commands, done = await call(app, asterisk([""]))
    assert commands[-2:] == ['STREAM FILE "callcenter/goodbye" ""', "HANGUP"] and done["outcome"] == "closed"


async def test_a_message_cut_by_a_hang_up_is_still_a_callback_request(ivr_app):
    app = await ivr_app(MONDAY_10 + timedelta(hours=10))
    commands, done = await call(app, asterisk(["1"], record="200 result=-1 (hangup) endpos=40000"))
    assert commands[-1] == 'EXEC "UserEvent" "CallbackRequest,Hotline: 62000001,Reason: closed"'  # sent on the dead channel
    assert done["outcome"] == "callback_request" and done["recordings"] == ["ivr-callback-1795347732-321"]
    assert done["hung_up_after"] == "callback_request"
    # hung up before saying anything: a hang-up, no request
    commands, done = await call(app, asterisk(["1"], record="200 result=-1 (hangup) endpos=0"))
    assert commands[-1].startswith("RECORD FILE") and done["recordings"] == []
    assert done["outcome"] == "hangup" and done["path"][-1] == {"hangup_at": "callback_record"}


async def test_a_repeat_caller_reaches_the_case_owner(ivr_app_db, settings, db_url):
    await replay(settings, db_url, [str(TRACES / "basic.jsonl")], MONDAY_10)
    app = await ivr_app_db(MONDAY_10 + timedelta(minutes=5))
    await app.cases.process_pending()
    [case] = await app.cases.list(caller="13800000002", department="market")
    call_id = (await app.cases.get(case["id"]))["calls"][0]["call_id"]
    await app.cases.dispose("pbx1", call_id, "1001", "follow_up_simple")       # the case stays open
    app.cases.presence = lambda: {"1001": Presence("1001", True, ("PJSIP/1001",)),
                                  "1002": Presence("1002", True, ("PJSIP/1002",))}
    commands, done = await call(app, asterisk([]), caller="13800000002")
    assert commands == ["ANSWER", 'STREAM FILE "callcenter/market-welcome" ""', 'STREAM FILE "callcenter/owner" ""',
                        *[c for c in commands if c.startswith("SET VARIABLE")]]
    assert variables(commands).items() >= {"QNAME": "q-market", "TARGET": "PJSIP/1001", "AGENT": "1001", "ROUTE": "owner",
                                           "CASE": str(case["id"]), "IVRROUTE": "owner"}.items()
    assert done["outcome"] == "owner" and done["path"] == [{"at_step": "owner", "agent": "1001", "kind": "owner"}]
    # the owner is away: the post's other agent, with the case shown
    app.cases.presence = lambda: {"1001": Presence("1001", False, ("PJSIP/1001",)),
                                  "1002": Presence("1002", True, ("PJSIP/1002",))}
    commands, done = await call(app, asterisk([]), caller="13800000002")
    assert variables(commands)["TARGET"] == "PJSIP/1002" and done["outcome"] == "agent"


@pytest.mark.parametrize("dead", [["200 result=-1"], ["HANGUP", "200 result=-1"], [DEAD]])
async def test_a_hang_up_mid_menu_is_recorded_where_it_happened(ivr_app, dead):
    app = await ivr_app()
    commands, done = await call(app, asterisk(["9", dead]))
    assert [c for c in commands if c != "CHANNEL STATUS"][-1].startswith("GET DATA") and not variables(commands)
    assert done["path"] == [{"at_step": "menu", "invalid": "9", "level": 1}, {"hangup_at": "menu", "level": 1}]
    assert done["outcome"] == "hangup" and done["route"] is None
    assert app.ivr.agi.counts["failed"] == 0


async def test_a_hang_up_while_the_route_is_set_is_recorded(ivr_app):
    """The caller pressed 2 and hung up at once: Asterisk still carries out EXEC and SET VARIABLE
    on the dead channel (the IvrChoice event is raised), and the path says where they left."""
    app = await ivr_app()
    base = asterisk(["2"])
    commands, done = await call(app, lambda c: ["HANGUP", "200 result=0"] if c.startswith("EXEC") else base(c))
    assert events(commands) == [("IvrChoice", {"Queue": "q-market", "Choice": "2"})]
    assert done["outcome"] == "hangup" and done["path"][-1]["hangup_at"] == "route"


async def test_the_survey_rating(ivr_app):
    app = await ivr_app()
    commands, done = await call(app, asterisk(["3"]), script=f"survey?hotline={HOTLINE}&pbx=pbx1&agent=1001"
                                                          "&queue=q-market&interface=Local/1001@agents/n")
    assert commands[0] == 'GET DATA "callcenter/survey" 5000 1'
    assert events(commands) == [("SurveyRating", {"Rating": "dissatisfied", "Digit": "3", "Hotline": HOTLINE})]
    assert commands[-1] == "HANGUP" and (done["outcome"], done["rating"]) == ("rated", "dissatisfied")
    assert (done["agent"], done["queue"], done["interface"], done["pbx"]) == ("1001", "q-market", "Local/1001@agents/n", "pbx1")
    commands, done = await call(app, asterisk(["", ""]), script=f"survey?hotline={HOTLINE}&agent=%0Ax")
    assert (done["outcome"], done["rating"], done["agent"]) == ("no_rating", None, None)


def test_serve_runs_the_ivr_only_when_configured(settings, sqlite_url):
    from callcenter.settings_ivr import IvrSettings
    assert build(settings, sqlite_url, live=True).ivr is None          # no `ivr.fastagi` section
    configured = settings.model_copy(update={"ivr": IvrSettings(fastagi={"port": 4599})})
    app = build(configured, sqlite_url, live=True)
    assert app.ivr in app.extras and app.ivr.agi.port == 4599
    assert build(configured, sqlite_url).ivr is None                   # replay / tests: not started


async def test_bad_requests_are_refused_politely(ivr_app):
    app = await ivr_app()
    for script in ("ivr?hotline=99999999", "ivr?hotline=6200%0A0001", "ivr", "ivr?hotline=62000001&pbx=../x"):
        commands = await FakeAsterisk(app.ivr.port, asterisk([]), script=script).run()
        assert commands[0].startswith("VERBOSE ") and commands[-1] == "HANGUP", script
    assert app.ivr.agi.counts["failed"] == 0
    # an anonymous caller: no owner lookup, the menu as usual
    commands, done = await call(app, asterisk(["1"]), caller="anonymous")
    assert done["outcome"] == "queue" and done["caller"] == ""


# --- the real Asterisk (../shared/asterisk; skipped when it cannot start here) ----------------

@pytest.fixture
def lab_asterisk(tmp_path):
    import shutil
    from tests.asterisk import require_bundle, start_asterisk, stop_asterisk

    require_bundle()
    started = []

    def start(agi_port: int) -> int:
        pbx_dir = tmp_path / "pbx"
        ami_port, _ = start_asterisk(pbx_dir, agi_port)
        started.append(pbx_dir)
        sounds = pbx_dir / "lib" / "sounds" / "en"
        (sounds / "callcenter").mkdir(parents=True, exist_ok=True)
        for name in ("market-welcome", "market-menu", "owner", "invalid", "market-closed", "callback-record",
                     "callback-thanks", "goodbye"):                                # 1 s of silence each
            shutil.copy(sounds / "hotline-welcome.sln", sounds / "callcenter" / f"{name}.sln")
        return ami_port
    yield start
    for pbx_dir in started:
        stop_asterisk(pbx_dir)


async def test_the_real_asterisk_walks_the_ivr_to_the_queue(lab_app, lab_asterisk):
    """[ivr-agi] of the lab dialplan calls this server: one caller presses 2 (DTMF during GET
    DATA), one hangs up in the menu. The UserEvent the script raises reaches AMI as the
    dialplan's own, and the tracker reads it."""
    import asyncio
    from callcenter.ami.client import AmiClient, Endpoint

    app = await lab_app()
    ami_port = lab_asterisk(app.ivr.port)
    seen = []

    def sink(pbx, items, received):
        seen.extend(m for m in items if isinstance(m, dict) and m.get("Event") == "UserEvent")
    driver = AmiClient(Endpoint("drv", "127.0.0.1", ami_port, "callcenter", "ccsecret", reconnect_min=0.1), sink)
    driver.start()
    try:
        await asyncio.wait_for(driver.connected.wait(), 10)
        await driver.action({"Action": "Originate", "Channel": f"Local/{HOTLINE}@ivr-agi", "Context": "caller-dtmf",
                             "Exten": "s", "Priority": "1", "CallerID": f'"Caller" <{CALLER}>', "Async": "true",
                             "Variable": ["DIGITS=2", "DTMF_DELAY=2.5", "PATIENCE=3"]})
        await driver.action({"Action": "Originate", "Channel": f"Local/{HOTLINE}@ivr-agi", "Application": "Wait",
                             "Data": "2", "CallerID": '"Caller" <13822224444>', "Async": "true"})
        for _ in range(100):
            if len(app.ivr.ivr.finished) == 2:
                break
            await asyncio.sleep(0.1)
    finally:
        await driver.stop()
    done = {r["caller"]: r for r in app.ivr.ivr.finished}
    assert done[CALLER]["outcome"] == "queue" and done[CALLER]["route"]["queue"] == "q-market"
    assert done[CALLER]["path"] == [{"at_step": "menu", "choice": "2", "level": 1, "item": "食品经营许可"}]
    assert done["13822224444"]["outcome"] == "hangup"
    assert done["13822224444"]["path"][-1] == {"hangup_at": "menu", "level": 1}
    [choice] = [m for m in seen if m.get("UserEvent") == "IvrChoice"]
    assert choice["Uniqueid"] == done[CALLER]["uniqueid"]
    event = translate("pbx1", choice, MONDAY_10)
    assert (type(event).__name__, event.queue, event.choice) == ("IvrChoiceMade", "q-market", "2")
    assert app.ivr.agi.counts["failed"] == 0


async def test_the_real_asterisk_after_hours_takes_a_callback_request(lab_app, lab_asterisk):
    """At 20:00 the caller presses 1 and stays on the line: the lab has no `beep` sound, so the
    recording is asked again without it, ends after record_seconds (5 s), and the request stands."""
    import asyncio
    from callcenter.ami.client import AmiClient, Endpoint

    app = await lab_app(MONDAY_10 + timedelta(hours=10))
    ami_port = lab_asterisk(app.ivr.port)
    seen = []
    driver = AmiClient(Endpoint("drv", "127.0.0.1", ami_port, "callcenter", "ccsecret", reconnect_min=0.1),
                       lambda pbx, items, at: seen.extend(m for m in items if isinstance(m, dict)
                                                          and m.get("Event") == "UserEvent"))
    driver.start()
    try:
        await asyncio.wait_for(driver.connected.wait(), 10)
        await driver.action({"Action": "Originate", "Channel": f"Local/{HOTLINE}@ivr-agi", "Context": "caller-dtmf",
                             "Exten": "s", "Priority": "1", "CallerID": f'"Caller" <{CALLER}>', "Async": "true",
                             "Variable": ["DIGITS=1", "DTMF_DELAY=2.5", "PATIENCE=15"]})
        for _ in range(200):
            if app.ivr.ivr.finished:
                break
            await asyncio.sleep(0.1)
    finally:
        await driver.stop()
    [done] = app.ivr.ivr.finished
    assert done["outcome"] == "callback_request" and done["recordings"] == [f"ivr-callback-{done['uniqueid'].replace('.', '-')}"]
    assert done["path"] == [{"at_step": "closed", "choice": "1"}, {"at_step": "callback_record", "recorded": True}]
    assert [m["UserEvent"] for m in seen] == ["AfterHours", "CallbackRequest"]
    assert translate("pbx1", seen[0], MONDAY_10).hotline == HOTLINE
