"""The dialplan and queues.conf that `callcenter asterisk-config` writes, on the real Asterisk in
../shared/asterisk (skipped when it cannot start here; CALLCENTER_ASTERISK points elsewhere).

The lab's own `[hotline]` context is replaced by the generated one (the overlay's extensions.conf
keeps the lab's simulated agents and callers and includes extensions_callcenter.conf; queues.conf
is the generated file), and the prompts of the configured flows are put where Asterisk finds
them (silence: the TTS step of docs/operations.md makes the real ones).

- It loads: `dialplan show` over AMI lists every hotline number, `queue show` every queue, and
  messages.log has no warning or error about them. With no FastAGI server listening, a caller
  still reaches the department's queue (the dialplan's fallback, with its IvrChoice); when
  nobody answers there, QueueExit (TIMEOUT) and no survey.
- With the service (built in-process, connected over AMI) and its FastAGI server (ivr/): a caller
  presses 2 in the menu and reaches q-market (ENTERQUEUE in queue_log, the IvrChoice user event
  over AMI), is answered, and after the agent hangs up rates the call in the survey; the case the
  service opened makes the same caller's next call go straight to its owner (Dial, no queue), and
  that call ends in the survey too. After hours a caller leaves a callback request (AfterHours and
  CallbackRequest events) and is never queued. Key presses are sent the way a phone sends them: DTMF on the
  caller's side of the Local channel (AMI PlayDTMF), when the IVR asks (AGIExecStart GET DATA).
- The IVR's records (ivr/records.py): each call's IVR and survey sessions are stored and linked to
  the tracked call (the same key and linkedid: one call), the rating with the case and the agent;
  the after-hours caller's follow-up task shows the callback request and the message's name.
"""
from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from callcenter.ami.client import Endpoint
from callcenter.asterisk_config import generate, options_from
from callcenter.settings_ivr import all_prompts
from tests.asterisk import BUNDLE, require_bundle, start_asterisk, stop_asterisk
from tests.fakepbx import free_port

# start-up noise of the stripped lab build (files it does not ship), not about our configuration
KNOWN_NOISE = re.compile(r"acl\.conf|udptl\.conf|ccss\.conf|indications|music on hold|eventmemberstatus|"
                         r"eventwhencalled|res_musiconhold|Unable to load config file")
SILENCE = b"\x00\x00" * 1600          # 0.2 s of 8 kHz signed linear
QUEUE_WAIT = 5                        # seconds in a queue before it gives up (--queue-wait)


def _overlay(directory: Path, settings, agi_port: int) -> Path:
    directory.mkdir()
    for name, text in generate(settings, options=options_from(settings, agi_port=agi_port, queue_wait=QUEUE_WAIT)).items():
        (directory / name).write_text(text, encoding="utf-8")
    lab = (BUNDLE / "conf" / "extensions.conf").read_text()
    kept = [part for part in re.split(r"(?m)^(?=\[)", lab) if not part.startswith("[hotline]")]
    (directory / "extensions.conf").write_text("".join(kept) + "\n#include extensions_callcenter.conf\n")
    (directory / "queues.conf").write_text("#include queues_callcenter.conf\n")
    return directory


@pytest.fixture
def pbx(tmp_path, settings):
    """Asterisk started with the generated configuration: (AMI port, AGI port, instance directory)."""
    require_bundle()
    agi_port = free_port()
    overlay = _overlay(tmp_path / "overlay", settings, agi_port)
    directory = tmp_path / "pbx"
    # a start that fails on the generated dialplan fails the test; anything else skips it
    ami_port, _ = start_asterisk(directory, agi_port, overlay,
                                 refused=lambda output: "log/messages.log" in output and "extensions" in output)
    # the prompts, where Asterisk looks for them; and RECORD FILE's beep (the lab ships no core sounds)
    for name in [*all_prompts(settings), "beep"]:
        path = directory / "lib" / "sounds" / "en" / f"{name}.sln"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(SILENCE)
    try:
        yield ami_port, agi_port, directory
    finally:
        stop_asterisk(directory)


class Driver:
    """A plain AMI connection (every event kept, as Asterisk sends it) that presses keys for
    callers when the IVR asks."""

    def __init__(self, port: int):
        self.port = port
        self.events: list[dict] = []
        self.keys: dict[str, list[str]] = {}        # caller number -> keys to press, in order
        self.waiting: dict[str, asyncio.Future] = {}
        self.ids = 0

    async def start(self) -> "Driver":
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        await self.reader.readline()                # the banner
        self.task = asyncio.get_running_loop().create_task(self._read())
        reply = await self.action({"Action": "Login", "Username": "callcenter", "Secret": "ccsecret", "Events": "on"})
        assert reply.get("Response") == "Success", reply
        return self

    async def _read(self) -> None:
        buf = b""
        while chunk := await self.reader.read(65536):
            buf += chunk
            while b"\r\n\r\n" in buf:
                raw, buf = buf.split(b"\r\n\r\n", 1)
                msg: dict[str, str] = {}
                for line in raw.decode("utf-8", "replace").split("\r\n"):
                    key, _, value = line.partition(": ")
                    msg[key] = f"{msg[key]}\n{value}" if key in msg else value
                future = self.waiting.pop(msg.get("ActionID", ""), None)
                if future is not None and "Response" in msg and not future.done():
                    future.set_result(msg)
                if "Event" in msg:
                    self._event(msg)

    def _event(self, msg: dict) -> None:
        self.events.append(msg)
        if msg["Event"] == "AGIExecStart" and msg.get("Command", "").upper().startswith(("GET DATA", "RECORD FILE")):
            keys = self.keys.get(msg.get("CallerIDNum", ""))
            if keys:
                caller_side = re.sub(r";2$", ";1", msg["Channel"])        # the phone's end of the call
                asyncio.get_running_loop().create_task(self.press(caller_side, keys.pop(0)))

    async def press(self, channel: str, digit: str) -> None:
        await asyncio.sleep(0.2)
        await self.action({"Action": "PlayDTMF", "Channel": channel, "Digit": digit, "Duration": "120"})

    async def action(self, fields: dict) -> dict:
        self.ids += 1
        action_id = f"t{self.ids}"
        future = self.waiting[action_id] = asyncio.get_running_loop().create_future()
        lines = [f"ActionID: {action_id}"]
        for key, value in fields.items():
            lines += [f"{key}: {v}" for v in (value if isinstance(value, list) else [value])]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self.writer.drain()
        return await asyncio.wait_for(future, 10)

    async def command(self, command: str) -> str:
        return (await self.action({"Action": "Command", "Command": command})).get("Output", "")

    def user_events(self, name: str) -> list[dict]:
        return [e for e in self.events if e.get("Event") == "UserEvent" and e.get("UserEvent") == name]

    async def call(self, hotline: str, number: str, keys: list[str], patience: int = 40) -> None:
        self.keys[number] = list(keys)
        await self.action({"Action": "Originate", "Channel": f"Local/{hotline}@hotline", "Application": "Wait",
                           "Data": str(patience), "CallerID": f'"Caller" <{number}>', "Async": "true"})

    async def stop(self) -> None:
        self.writer.close()
        self.task.cancel()


async def until(check, timeout: float, step: float = 0.1):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result or loop.time() > deadline:
            return result
        await asyncio.sleep(step)


def queue_log(directory: Path) -> list[list[str]]:
    path = directory / "log" / "queue_log"
    return [line.split("|") for line in path.read_text().splitlines()] if path.exists() else []


def complaints(directory: Path) -> list[str]:
    text = (directory / "log" / "messages.log").read_text(errors="replace")
    return [line for line in text.splitlines() if re.search(r"\b(WARNING|ERROR)\[", line) and not KNOWN_NOISE.search(line)]


async def test_the_generated_configuration_loads_and_queues_callers_without_the_ivr(pbx, settings):
    ami_port, _, directory = pbx
    driver = await Driver(ami_port).start()
    try:
        shown = await driver.command("dialplan show hotline")
        numbers = [str(h) for d in settings.departments for h in d.hotlines]
        assert all(f"'{n}' =>" in shown for n in numbers), shown[:2000]
        assert f"-= {len(numbers)} extensions" in shown
        queues = await driver.command("queue show")
        for d in settings.departments:
            for q in d.queues:
                assert re.search(rf"(?m)^{re.escape(q.name)} has 0 calls .*'linear' strategy", queues), queues[:1500]
        assert "No Members" in queues and "(dynamic)" not in queues     # no static members
        assert complaints(directory) == []
        # nobody listens on the AGI port: the caller still reaches the department's queue, where
        # nobody answers; after QUEUE_WAIT the queue gives up: QueueExit TIMEOUT, no survey
        await driver.call("62000002", "13800000009", [], patience=QUEUE_WAIT + 5)
        assert await until(lambda: any(f[4:5] == ["ENTERQUEUE"] and f[2] == "q-edu" for f in queue_log(directory)), 10)
        assert await until(lambda: driver.user_events("IvrChoice"), 5)       # AMI may trail the file
        [choice] = driver.user_events("IvrChoice")
        assert (choice["Queue"], choice["Choice"], choice["Exten"]) == ("q-edu", "", "62000002")
        assert await until(lambda: driver.user_events("QueueExit"), QUEUE_WAIT + 5)
        [gave_up] = driver.user_events("QueueExit")
        assert (gave_up["Queue"], gave_up["Status"], gave_up["Uniqueid"]) == ("q-edu", "TIMEOUT", choice["Uniqueid"])
        assert any(f[4:5] == ["EXITWITHTIMEOUT"] and f[1] == choice["Uniqueid"] for f in queue_log(directory))
        assert await until(lambda: any(e.get("Event") == "Hangup" and e.get("Uniqueid") == choice["Uniqueid"]
                                       for e in driver.events), 5)
        assert not any(e.get("Event") == "AGIExecStart" for e in driver.events)    # the survey was not tried
        assert complaints(directory) and all("res_agi.c" in line for line in complaints(directory))
    finally:
        await driver.stop()


async def test_callers_walk_the_fastagi_ivr_to_the_queue_the_owner_and_the_survey(pbx, settings, sqlite_url):
    from callcenter.bootstrap import build
    from callcenter.clock import FixedClock
    from callcenter.storage import tables as t
    from ivr.server import IvrServer
    from tests.conftest import MONDAY_10
    ami_port, agi_port, directory = pbx
    settings.pbxes[0].port = ami_port
    settings.panel.wrapup.seconds = 0            # the owner is free again as soon as the call ends
    owner = next(a for a in settings.agents if a.id == "1001")
    owner.interfaces.append("PJSIP/zhang-wei")   # a "-" in TARGET must survive the dialplan's FILTER
    driver = await Driver(ami_port).start()
    app = server = None
    try:
        for key, value in (("ring", 1), ("talk", 2)):
            await driver.action({"Action": "DBPut", "Family": "agent", "Key": f"1001/{key}", "Val": str(value)})
        await driver.action({"Action": "QueueAdd", "Queue": "q-market", "Interface": "Local/1001@agents/n",
                             "MemberName": "张伟", "Penalty": "0", "StateInterface": "Custom:1001"})
        app = build(settings, sqlite_url, FixedClock(MONDAY_10))       # a workday, in business hours
        app.service.add_pbx(Endpoint("pbx1", "127.0.0.1", ami_port, "callcenter", "ccsecret", connect_timeout=5,
                                     action_timeout=5, ping_interval=5, reconnect_min=0.1, reconnect_max=0.5))
        await app.start()
        server = IvrServer(app, port=agi_port)
        await server.start()
        assert await until(lambda: ("pbx1", "q-market", "1001") in app.service.presence.seats, 10)

        # 1. a new caller presses 2 (食品经营许可), is answered in q-market, then rates the call 1 (满意)
        caller = "13800000001"
        await driver.call("62000001", caller, ["2", "1"])
        sessions = server.ivr.finished
        assert await until(lambda: [s["script"] for s in sessions] == ["ivr", "survey"], 20), \
            (list(sessions), queue_log(directory)[-5:], complaints(directory))
        ivr, survey = sessions
        assert ivr["outcome"] == "queue" and ivr["route"]["queue"] == "q-market"
        [step] = ivr["path"]
        assert (step["at_step"], step["choice"], step["level"], step["item"]) == ("menu", "2", 1, "食品经营许可")
        assert (survey["outcome"], survey["rating"], survey["uniqueid"]) == ("rated", "satisfied", ivr["uniqueid"])
        entered = [f for f in queue_log(directory) if f[4:5] == ["ENTERQUEUE"]]
        assert [(f[1], f[2]) for f in entered] == [(ivr["uniqueid"], "q-market")]
        assert any(f[1] == ivr["uniqueid"] and f[4] == "CONNECT" for f in queue_log(directory))
        assert await until(lambda: driver.user_events("IvrChoice"), 5)
        [choice] = driver.user_events("IvrChoice")
        assert (choice["Queue"], choice["Choice"], choice["Uniqueid"]) == ("q-market", "2", ivr["uniqueid"])
        assert not driver.user_events("QueueExit")              # answered: no QueueExit

        # the service stored the call (one call: the IVR's choice and the queue stint) and opened
        # the case, owned by the agent who answered
        async def stored():
            return {c.id: c for c in await app.store.calls_where(t.calls.c.pbx == "pbx1")}
        assert await until(lambda: _has(stored, ivr["uniqueid"]), 20)
        record = (await stored())[ivr["uniqueid"]]
        assert (record.ivr_choice, record.ivr_queue, record.outcome.value) == ("2", "q-market", "answered")
        assert [(s.queue, s.agent) for s in record.stints] == [("q-market", "1001")]

        async def owned():
            return [c for c in await app.cases.list() if c["owner"] == "1001"]
        assert await until(owned, 20), await app.cases.list()
        [case] = await owned()

        # the IVR's own records of that call: stored and linked to the tracked call (one call,
        # its key and linkedid), the rating with the case and the agent who served
        rows = await until(lambda: _linked_sessions(app, ivr["uniqueid"], 2), 20)
        assert rows and set(rows) == {"ivr", "survey"}, await _ivr_rows(app, ivr["uniqueid"])
        for row in rows.values():
            assert (row["call_found"], row["linkedid"], row["case_id"]) == (True, record.linkedid, case["id"])
        assert (rows["ivr"]["choice"], rows["ivr"]["item"], rows["ivr"]["route_queue"]) == ("2", "食品经营许可", "q-market")
        assert (rows["survey"]["rating"], rows["survey"]["agent"], rows["survey"]["queue"]) == ("satisfied", "1001", "q-market")
        history = (await app.cases.get(case["id"]))["history"]
        assert [(h["rating"], h["call_id"]) for h in history if h["kind"] == "rating"] == [("satisfied", ivr["uniqueid"])]

        # 2. the same caller again: straight to the owner (Dial, no queue), then the survey (2: 基本满意)
        await driver.call("62000001", caller, ["2"])
        assert await until(lambda: len(sessions) == 4, 20), list(sessions)
        again, survey2 = list(sessions)[2:]
        assert (again["script"], again["outcome"]) == ("ivr", "owner")
        # the owner's interfaces as configured (the lab has no PJSIP: Dial rings the Local one)
        assert {"Local/1001@agents/n", "PJSIP/zhang-wei"} <= set(again["route"]["target"].split("&"))
        assert (survey2["script"], survey2["rating"], survey2["uniqueid"]) == ("survey", "basic", again["uniqueid"])
        dials = [e for e in driver.events if e.get("Event") == "DialBegin" and e.get("Uniqueid") == again["uniqueid"]]
        assert dials and dials[0]["DestChannel"].startswith("Local/1001@agents")
        assert not any(f[1] == again["uniqueid"] for f in queue_log(directory))      # never queued
        assert [line for line in complaints(directory) if "No channel type registered for 'PJSIP'" not in line] == []
        rows = await until(lambda: _linked_sessions(app, again["uniqueid"], 2), 20)
        assert rows, await _ivr_rows(app, again["uniqueid"])
        assert (rows["ivr"]["outcome"], rows["survey"]["rating"], rows["survey"]["agent"]) == ("owner", "basic", "1001")
        assert rows["survey"]["call_found"] and rows["survey"]["case_id"] == case["id"]
    finally:
        if server is not None:
            await server.stop()
        if app is not None:
            await app.stop()
        await driver.stop()


async def _has(stored, call_id: str) -> bool:
    return call_id in await stored()


async def _ivr_rows(app, uniqueid: str) -> dict:
    """The stored IVR/survey sessions of a call, by script (ivr/records.py)."""
    from sqlalchemy import select
    from callcenter.storage import tables as t
    async with app.store.engine.connect() as conn:
        rows = (await conn.execute(select(t.ivr_sessions).where(t.ivr_sessions.c.uniqueid == uniqueid))).mappings().all()
    return {r["script"]: dict(r) for r in rows}


async def _linked_sessions(app, uniqueid: str, n: int) -> dict | None:
    rows = await _ivr_rows(app, uniqueid)
    return rows if len(rows) == n and all(r["linked_at"] is not None for r in rows.values()) else None


async def test_after_hours_a_caller_leaves_a_callback_request_and_is_never_queued(pbx, settings, sqlite_url):
    from callcenter.bootstrap import build
    from callcenter.clock import FixedClock
    from ivr.server import IvrServer
    from tests.conftest import SHANGHAI
    from datetime import datetime
    ami_port, agi_port, directory = pbx
    settings.pbxes[0].port = ami_port
    driver = await Driver(ami_port).start()
    app = server = None
    try:
        app = build(settings, sqlite_url, FixedClock(datetime(2026, 11, 29, 10, 0, tzinfo=SHANGHAI)))   # a Sunday
        app.service.add_pbx(Endpoint("pbx1", "127.0.0.1", ami_port, "callcenter", "ccsecret", connect_timeout=5,
                                     action_timeout=5, ping_interval=5, reconnect_min=0.1, reconnect_max=0.5))
        await app.start()
        server = IvrServer(app, port=agi_port)
        await server.start()
        # closed: the hours are announced, 1 leaves a message (# ends the recording)
        await driver.call("62000002", "13800000002", ["1", "#"])
        sessions = server.ivr.finished
        assert await until(lambda: len(sessions) == 1, 20), list(sessions)
        [ivr] = sessions
        assert (ivr["outcome"], ivr["route"]["kind"], ivr["route"]["queue"]) == ("callback_request", "callback_task", "q-edu")
        assert ivr["path"][0] == {"at_step": "closed", "choice": "1"} and ivr["recordings"]
        assert await until(lambda: driver.user_events("CallbackRequest"), 5)
        [closed] = driver.user_events("AfterHours")
        assert (closed["Hotline"], closed["Uniqueid"]) == ("62000002", ivr["uniqueid"])
        # the dialplan hung up after the request: never queued, no survey, no IvrChoice
        assert await until(lambda: any(e.get("Event") == "Hangup" and e.get("Uniqueid") == ivr["uniqueid"]
                                       for e in driver.events), 10)
        assert not any(f[4:5] == ["ENTERQUEUE"] for f in queue_log(directory))
        assert not driver.user_events("IvrChoice") and len(sessions) == 1
        assert complaints(directory) == []
        # the call is tracked (after hours), its follow-up task shows the caller's request and message
        rows = await until(lambda: _linked_sessions(app, ivr["uniqueid"], 1), 20)
        assert rows and rows["ivr"]["call_found"] and rows["ivr"]["task_id"], await _ivr_rows(app, ivr["uniqueid"])
        task = await app.followup.get(rows["ivr"]["task_id"])
        assert (task["caller_num"], task["reason"], task["recording"]) == ("13800000002", "callback_request", ivr["recordings"][0])
        assert task["misses"] == 1 and [h["call_id"] for h in task["history"] if h["kind"] == "miss"] == [ivr["uniqueid"]]
    finally:
        if server is not None:
            await server.stop()
        if app is not None:
            await app.stop()
        await driver.stop()
