"""The FastAGI server (ivr/fastagi.py) over real TCP: the wire format, hang-ups, timeouts, and the
things panoramisk 1.4 gets wrong (a half header, a stalled client, plain function handlers)."""
from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from callcenter.demo.agi_client import parse_args  # noqa: F401  (Asterisk's res_agi.c splitting; used here and by tests/test_ivr_agi.py)
from ivr import agi_protocol as p
from ivr.fastagi import FastAgiServer, Hangup
from tests.conftest import trace_path

HEADER = {"network": "yes", "network_script": "ivr?hotline=62000001", "channel": "Local/62000001@ivr-agi-1;2",
          "uniqueid": "1795347732.321", "callerid": "13811113333", "context": "ivr-agi", "extension": "62000001"}


def header(env: dict | None = None, script: str | None = None) -> bytes:
    env = dict(HEADER if env is None else env)
    if script is not None:
        env["network_script"] = script
    return "".join(f"agi_{k}: {v}\n" for k, v in env.items()).encode() + b"\n"


class FakeAsterisk:
    """A client that talks to the server as Asterisk does: the agi_ header, then one answer per
    command line. `answer(command) -> str | list[str] | None` (None: stall, never answer)."""

    def __init__(self, port: int, answer=None, env: dict | None = None, script: str | None = None):
        self.port, self.env, self.script = port, env, script
        self.answer = answer or (lambda command: "200 result=0")
        self.commands: list[str] = []
        self.closed_by_server = False

    async def run(self, limit: float = 10.0) -> list[str]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(header(self.env, self.script))
        try:
            await asyncio.wait_for(self._loop(reader, writer), limit)
        finally:
            writer.close()
        return self.commands

    async def _loop(self, reader, writer):
        while True:
            raw = await reader.readline()
            if not raw:
                self.closed_by_server = True
                return
            command = raw.decode().rstrip("\n")
            self.commands.append(command)
            reply = self.answer(command)
            if reply is None:
                await asyncio.sleep(3600)
            for line in [reply] if isinstance(reply, str) else reply:
                writer.write(line.encode() + b"\n")
            await writer.drain()


@pytest.fixture
async def server_factory():
    servers = []

    async def make(routes, **kw):
        kw.setdefault("header_timeout", 1.0)
        kw.setdefault("command_timeout", 1.0)
        server = FastAgiServer(routes, port=0, **kw)
        await server.start()
        servers.append(server)
        return server
    yield make
    for server in servers:
        await server.stop()


# --- the wire format --------------------------------------------------------------------------

@pytest.mark.parametrize("value", ['say "hi"', "back\\slash\\", "two words", "", "张三", "end\\", '\\"'])
def test_arguments_survive_asterisks_parser(value):
    line = p.encode("SET VARIABLE", "X", value).decode().rstrip("\n")
    assert parse_args(line) == ["SET", "VARIABLE", "X", value]


@pytest.mark.parametrize("value", ["a\nHANGUP", "a\rb", "nul\x00", "bell\x07", "ls\u2028", "\ud800"])
def test_unsafe_arguments_are_refused(value):
    with pytest.raises(p.UnsafeArgument):
        p.encode("SET VARIABLE", "X", value)


def test_unsafe_names_and_lengths_are_refused():
    for bad in ("SET VARIABLE\nHANGUP", "set variable", "X"):
        with pytest.raises(p.UnsafeArgument):
            p.encode(bad)
    with pytest.raises(p.UnsafeArgument):
        p.encode("VERBOSE", "x" * 3000, 1)
    for bad in ("../etc/passwd", "a b", 'a"', ""):
        with pytest.raises(p.UnsafeArgument):
            p.sound(bad)
    for bad in ("a,b", "${SHELL(rm)}", "x|y", "a\nb"):
        with pytest.raises(p.UnsafeArgument):
            p.app_options("IvrChoice", f"Queue: {bad}")
    assert p.app_options("IvrChoice", "Queue: q-market", "Choice: 2") == "IvrChoice,Queue: q-market,Choice: 2"


def test_answers_are_parsed():
    a = p.parse_answer("200 result=1 (13811113333)\n")
    assert (a.code, a.result, a.data) == (200, "1", "13811113333")
    a = p.parse_answer("200 result=0 endpos=8000")
    assert (a.result, a.data, a.extra) == ("0", "", {"endpos": "8000"})
    a = p.parse_answer("200 result= (timeout)")
    assert (a.result, a.data) == ("", "timeout")
    a = p.parse_answer("200 result=0 (timeout) endpos=1234")
    assert (a.result, a.data, a.extra) == ("0", "timeout", {"endpos": "1234"})
    a = p.parse_answer("200 result=1 (a (nested) value)")
    assert a.data == "a (nested) value"
    a = p.parse_answer("511 Command Not Permitted on a dead channel or intercept routine")
    assert (a.code, a.ok) == (511, False)
    assert p.parse_answer("HANGUP") is None


def test_the_recorded_environment_is_parsed():
    lines = [json.loads(x)["line"] for x in trace_path("fastagi-ivr-dtmf").read_text().splitlines()]
    pbx = [x for x in lines[:lines.index("\n") + 1]]
    request = p.parse_env(pbx[:-1])
    assert request.script == "ivr" and request.params == {"hotline": "62000001"}
    assert request.caller == "13811113333" and request.uniqueid == "1795347732.321"
    assert request.env["accountcode"] == "" and request.env["channel"] == "Local/62000001@ivr-agi-000000a0;2"
    assert p.parse_env(["agi_request: agi://127.0.0.1:4573/survey?hotline=1"]).script == "survey"


# --- the server -------------------------------------------------------------------------------

async def _menu(agi):
    await agi.answer()
    await agi.stream_file("hotline-welcome")
    digits, _ = await agi.get_data("hotline-menu", 2000, 1)
    await agi.set_variable("CHOICE", digits)


def _asterisk(command: str) -> str:
    return "200 result=2" if command.startswith("GET DATA") else "200 result=0"


async def test_half_headers_and_stalled_clients_do_not_hold_other_sessions(server_factory):
    server = await server_factory({"ivr": _menu}, header_timeout=2.0)
    half = []
    for _ in range(3):                 # half a header, then close
        r, w = await asyncio.open_connection("127.0.0.1", server.port)
        w.write(b"agi_network: yes\nagi_network_scr")
        await w.drain()
        w.close()
        half.append(r)
    stalled = []
    for _ in range(3):                 # half a header, then silence (connection kept open)
        r, w = await asyncio.open_connection("127.0.0.1", server.port)
        w.write(b"agi_network: yes\n")
        await w.drain()
        stalled.append((r, w))
    started = time.monotonic()
    clients = [FakeAsterisk(server.port, _asterisk) for _ in range(50)]
    results = await asyncio.gather(*(c.run() for c in clients))
    elapsed = time.monotonic() - started
    assert elapsed < 1.5, f"50 sessions took {elapsed:.2f} s beside stalled clients"
    for commands in results:
        assert commands == ['ANSWER', 'STREAM FILE "hotline-welcome" ""', 'GET DATA "hotline-menu" 2000 1',
                            'SET VARIABLE "CHOICE" "2"']
    assert all(c.closed_by_server for c in clients)
    await asyncio.sleep(2.3)           # the stalled ones reach the header deadline
    assert server.counts["completed"] == 50 and server.counts["bad_header"] == 6
    for r, w in stalled:               # the server closed them
        assert await asyncio.wait_for(r.read(), 1) == b""
        w.close()
    assert not server.sessions


async def test_an_endless_header_line_is_refused(server_factory):
    server = await server_factory({"ivr": _menu})
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"agi_network_script: " + b"x" * 100_000)
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 2) == b""        # closed, nothing answered
    writer.close()
    assert len(await FakeAsterisk(server.port, _asterisk).run()) == 4
    assert server.counts["bad_header"] == 1


async def test_a_client_that_never_answers_times_out_alone(server_factory, caplog):
    server = await server_factory({"ivr": _menu}, command_timeout=0.5)
    silent = FakeAsterisk(server.port, lambda c: None if c.startswith("STREAM") else "200 result=0")
    task = asyncio.ensure_future(silent.run(limit=5))
    others = await asyncio.gather(*(FakeAsterisk(server.port, _asterisk).run() for _ in range(20)))
    assert all(len(c) == 4 for c in others)
    with caplog.at_level(logging.WARNING, "ivr.fastagi"):
        await asyncio.sleep(0.8)
    assert silent.closed_by_server is False and server.counts["failed"] == 1
    task.cancel()
    line = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()][0]
    assert "138****3333" in line and "13811113333" not in line and "\n" not in line


async def test_the_whole_session_has_a_deadline(server_factory):
    async def slow(agi):
        while True:
            await agi.command("NOOP")
            await asyncio.sleep(0.05)
    server = await server_factory({"ivr": slow}, session_timeout=0.5)
    started = time.monotonic()
    client = FakeAsterisk(server.port)
    await client.run(limit=5)
    assert client.closed_by_server and time.monotonic() - started < 1.5
    assert server.counts["failed"] == 1


async def test_plain_function_handlers_work(server_factory):
    def plain(agi):                     # no async: runs in a thread with blocking commands
        agi.answer()
        digit = agi.stream_file("hotline-welcome", "0123456789")
        agi.set_variable("PRESSED", digit)
        return agi.request.params["hotline"]
    server = await server_factory({"/ivr": plain})
    commands = await FakeAsterisk(server.port, lambda c: "200 result=50 endpos=100" if "STREAM" in c
                                  else "200 result=0").run()
    assert commands == ["ANSWER", 'STREAM FILE "hotline-welcome" "0123456789"', 'SET VARIABLE "PRESSED" "2"']
    assert server.counts["completed"] == 1


@pytest.mark.parametrize("dead", [["511 Command Not Permitted on a dead channel or intercept routine"],
                                  ["HANGUP", "200 result=-1"], ["200 result=-1"], ["HANGUP", "511 Command Not Permitted"]])
async def test_a_hung_up_channel_ends_the_script_cleanly(server_factory, dead):
    seen = {}

    async def handler(agi):
        try:
            await _menu(agi)
        except Hangup:
            seen["hung_up"] = agi.hung_up
            raise
    server = await server_factory({"ivr": handler})

    def answer(command):             # as the real Asterisk: the HANGUP line comes after the -1
        if command.startswith("GET DATA"):
            return dead
        return ["HANGUP", DEAD] if command == "CHANNEL STATUS" else "200 result=0"
    client = FakeAsterisk(server.port, answer)
    commands = await client.run()
    assert [c for c in commands if c != "CHANNEL STATUS"][-1].startswith("GET DATA") and seen == {"hung_up": True}
    assert server.counts["hangups"] == 1 and server.counts["failed"] == 0 and client.closed_by_server


DEAD = "511 Command Not Permitted on a dead channel or intercept routine"


async def test_a_missing_prompt_on_a_live_channel_is_not_a_hangup(server_factory):
    """The real Asterisk answers `200 result=-1 endpos=0` to STREAM FILE (`200 result=-1` to GET
    DATA) of a missing file; CHANNEL STATUS (6: up) tells it from a hang-up."""
    server = await server_factory({"ivr": _menu})

    def answer(command):
        if command.startswith("STREAM FILE"):
            return "200 result=-1 endpos=0"
        if command.startswith("GET DATA"):
            return "200 result=-1"
        return "200 result=6" if command == "CHANNEL STATUS" else "200 result=0"
    commands = await FakeAsterisk(server.port, answer).run()
    assert commands == ["ANSWER", 'STREAM FILE "hotline-welcome" ""', "CHANNEL STATUS", 'GET DATA "hotline-menu" 2000 1',
                        "CHANNEL STATUS", 'SET VARIABLE "CHOICE" ""']
    assert server.counts["completed"] == 1 and server.counts["hangups"] == 0


async def test_connection_closed_by_asterisk_is_a_hangup(server_factory):
    server = await server_factory({"ivr": _menu})
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(header())
    assert await reader.readline() == b"ANSWER\n"
    writer.close()
    for _ in range(50):
        if server.counts["hangups"]:
            break
        await asyncio.sleep(0.02)
    assert server.counts["hangups"] == 1


async def test_520_usage_is_read_to_its_end(server_factory):
    got = {}

    async def handler(agi):
        got["usage"] = await agi.command("GET DATA")
        got["next"] = await agi.command("NOOP")
    server = await server_factory({"ivr": handler})
    usage = ["520-Invalid command syntax.  Proper usage follows:",
             " Usage: GET DATA <file to be streamed> [timeout] [maxdigits]", "520 End of proper usage."]
    await FakeAsterisk(server.port, lambda c: usage if c == "GET DATA" else "200 result=7").run()
    assert got["usage"].code == 520 and got["usage"].lines == (usage[1],)
    assert got["next"].result == "7"


async def test_unknown_script_is_told_politely(server_factory):
    server = await server_factory({"ivr": _menu})
    commands = await FakeAsterisk(server.port, script="nope?x=1").run()
    assert commands == ['VERBOSE "unknown AGI script" 1', "HANGUP"]
    assert server.counts["unknown_script"] == 1


async def test_an_unsafe_value_is_never_written(server_factory):
    async def handler(agi):
        await agi.set_variable("QNAME", "q-market\nEXEC System rm")
    server = await server_factory({"ivr": handler})
    client = FakeAsterisk(server.port)
    assert await client.run() == []
    assert server.counts["failed"] == 1


async def test_a_failing_handler_touches_no_other_session(server_factory):
    async def handler(agi):
        if agi.request.params.get("boom"):
            raise RuntimeError("caller 13811113333 broke it")
        await _menu(agi)
    server = await server_factory({"ivr": handler})
    results = await asyncio.gather(FakeAsterisk(server.port, _asterisk, script="ivr?boom=1").run(),
                                   *(FakeAsterisk(server.port, _asterisk).run() for _ in range(10)))
    assert results[0] == [] and all(len(r) == 4 for r in results[1:])
    assert server.counts == {**server.counts, "failed": 1, "completed": 10}


async def test_recording_goes_on_without_a_beep_sound(server_factory):
    """The lab Asterisk has no `beep` sound: RECORD FILE ... BEEP answers `-1 (randomerror)` on a
    live channel; the recording is asked again without the beep."""
    got = {}

    async def handler(agi):
        got["answer"] = await agi.record_file("ivr-callback-1", "wav", "#", 5000)
    server = await server_factory({"ivr": handler})

    def answer(command):
        if command.startswith("RECORD FILE"):
            return "200 result=-1 (randomerror) endpos=0" if "BEEP" in command else "200 result=35 (dtmf) endpos=8000"
        return "200 result=6"
    commands = await FakeAsterisk(server.port, answer).run()
    assert commands == ['RECORD FILE "ivr-callback-1" "wav" "#" 5000 "BEEP" "s=3"', "CHANNEL STATUS",
                        'RECORD FILE "ivr-callback-1" "wav" "#" 5000 "s=3"']
    assert (got["answer"].result, got["answer"].data, got["answer"].extra) == ("35", "dtmf", {"endpos": "8000"})
