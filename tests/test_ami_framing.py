"""Framing on bytes, and bad input, over real TCP.

A multi-byte caller name (张三) cut by TCP anywhere survives into the call record; plain
panoramisk 1.4, fed the very same chunks, garbles it. Lines without a colon, binary garbage and
a 1 MB line are logged and skipped without touching the link or the other calls in the stream.
"""
from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from callcenter.ami import client as client_module
from callcenter.ami.framing import Framer
from callcenter.ami.server import AmiServer, format_message, load_trace, stamp
from callcenter.domain import events as ev
from tests.conftest import MONDAY_10, trace_path
from tests.scenario import run as run_in_memory
from tests.test_ami_client import outcome_summary, running_service, stored_calls, stream_processed, wait_until

NAME = "张三"
NAME_BYTES = NAME.encode("utf-8")                     # 6 bytes: e5 bc a0 | e4 b8 89


def newchannel(uniqueid: str, name: str = NAME) -> bytes:
    """A hotline Newchannel as the lab Asterisk writes it, with a caller name."""
    return format_message({
        "Event": "Newchannel", "Privilege": "call,all", "Channel": f"PJSIP/trunk-{uniqueid}",
        "ChannelState": "4", "ChannelStateDesc": "Ring", "CallerIDNum": "13800000000", "CallerIDName": name,
        "ConnectedLineNum": "<unknown>", "ConnectedLineName": "<unknown>", "Language": "zh",
        "AccountCode": "", "Context": "hotline", "Exten": "62000001", "Priority": "1",
        "Uniqueid": uniqueid, "Linkedid": uniqueid})


def hangup(uniqueid: str) -> bytes:
    return format_message({"Event": "Hangup", "Privilege": "call,all", "Channel": f"PJSIP/trunk-{uniqueid}",
                           "Uniqueid": uniqueid, "Linkedid": uniqueid, "Cause": "16",
                           "Cause-txt": "Normal Clearing"})


# --- 1. the framer alone ----------------------------------------------------------------------

def test_every_split_of_a_message_keeps_the_name():
    raw = newchannel("1.1")
    for cut in range(len(raw) + 1):
        framer = Framer(expect_banner=False)
        messages = framer.feed(raw[:cut]) + framer.feed(raw[cut:])
        assert [m["CallerIDName"] for m in messages] == [NAME], cut
        assert framer.problems == 0


def test_every_pair_of_splits_inside_the_name_keeps_it():
    raw = newchannel("1.1")
    at = raw.index(NAME_BYTES)
    for a in range(at, at + len(NAME_BYTES) + 1):
        for b in range(a, at + len(NAME_BYTES) + 1):
            framer = Framer(expect_banner=False)
            messages = framer.feed(raw[:a]) + framer.feed(raw[a:b]) + framer.feed(raw[b:])
            assert [m["CallerIDName"] for m in messages] == [NAME], (a, b)


def test_one_byte_at_a_time_including_the_banner():
    stream = b"Asterisk Call Manager/13.0.0\r\n" + newchannel("1.1") + hangup("1.1")
    framer = Framer()
    messages = [m for i in range(len(stream)) for m in framer.feed(stream[i:i + 1])]
    assert framer.banner == "Asterisk Call Manager/13.0.0"
    assert [m["Event"] for m in messages] == ["Newchannel", "Hangup"]
    assert messages[0]["CallerIDName"] == NAME


# --- 1. over TCP, every offset, one chunk per read -----------------------------------------------

@dataclass
class ChunkedPbx:
    """A hand-made AMI server that controls TCP chunking byte by byte.

    It answers Login, QueueStatus, CoreShowChannels and Ping like Asterisk; once the client has
    resynced it writes ``chunks`` one at a time, each only after the client has read everything
    before it, so every chunk boundary is a boundary of the client's ``data_received``."""
    chunks: list[bytes]
    client_bytes: object = None                  # () -> bytes the client has read so far
    written: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    logins: int = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    def _write(self, writer, data: bytes) -> None:
        writer.write(data)
        self.written += len(data)

    async def _serve(self, reader, writer) -> None:
        framer = Framer(expect_banner=False, kinds=("Action",))
        self._write(writer, b"Asterisk Call Manager/13.0.0\r\n")
        try:
            while not reader.at_eof():
                data = await reader.read(65536)
                for action in framer.feed(data):
                    name, base = action["Action"].lower(), {"ActionID": action["ActionID"]}
                    if name == "login":
                        self.logins += 1
                        self._write(writer, format_message({"Response": "Success", **base,
                                                            "Message": "Authentication accepted"}))
                    elif name in ("queuestatus", "coreshowchannels"):
                        done = "QueueStatusComplete" if name == "queuestatus" else "CoreShowChannelsComplete"
                        self._write(writer, format_message({"Response": "Success", **base, "EventList": "start",
                                                            "Message": "List will follow"}))
                        self._write(writer, format_message({"Event": done, **base, "EventList": "Complete",
                                                            "ListItems": 0}))
                        if name == "coreshowchannels":
                            asyncio.get_running_loop().create_task(self._stream(writer))
                    else:
                        self._write(writer, format_message({"Response": "Success", **base}))
        finally:
            writer.close()

    async def _stream(self, writer) -> None:
        for chunk in self.chunks:
            await self._client_caught_up()      # so this chunk reaches the client alone
            self._write(writer, chunk)
        await self._client_caught_up()
        self.done.set()

    async def _client_caught_up(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while self.client_bytes() < self.written:
            assert loop.time() < deadline, "the client stopped reading"
            await asyncio.sleep(0)


@pytest.fixture
def reads(monkeypatch):
    """Every ``data_received`` of the client under test, as the bytes it got."""
    got: list[bytes] = []
    original = client_module._Protocol.data_received

    def recording(self, data: bytes) -> None:
        got.append(bytes(data))
        original(self, data)

    monkeypatch.setattr(client_module._Protocol, "data_received", recording)
    return got


def boundaries(chunks: list[bytes]) -> set[int]:
    out, total = set(), 0
    for chunk in chunks:
        total += len(chunk)
        out.add(total)
    return out


async def play_chunks(settings, db_url, chunks, reads, events: int):
    """Play ``chunks`` to the real service; returns the ChannelCreated events and stored records."""
    pbx = ChunkedPbx(chunks, client_bytes=lambda: sum(map(len, reads)))
    port = await pbx.start()
    try:
        async with running_service(settings, db_url, port) as (service, client, store):
            created: list[ev.ChannelCreated] = []
            service.subscribe(lambda e: created.append(e) if isinstance(e, ev.ChannelCreated) else None)
            await asyncio.wait_for(pbx.done.wait(), 10)
            await wait_until(lambda: client.events_received >= events, 5, "all events")
            await service.settled(5)
            records = await stored_calls(store)
            assert client.logins == 1
    finally:
        await pbx.close()
    stream = b"".join(chunks)
    assert b"".join(reads).endswith(stream)
    before = sum(map(len, reads)) - len(stream)                        # login and resync answers
    received = {b - before for b in boundaries(reads) if b > before}
    assert boundaries(chunks) <= received, "a chunk boundary did not reach the client's data_received"
    return created, records


def panoramisk_messages(chunks: list[bytes]) -> list[dict]:
    """Feed the same chunks to plain panoramisk 1.4's protocol; the messages it dispatched."""
    from panoramisk.ami_protocol import AMIProtocol

    class Factory:
        save_stream = None

        def __init__(self):
            self.messages = []

        def dispatch(self, message):
            self.messages.append(message)

    class Transport:
        def write(self, data):
            pass

        def close(self):
            pass

    protocol = AMIProtocol()
    protocol.connection_made(Transport())
    protocol.factory = factory = Factory()
    protocol.encoding = "utf-8"
    for chunk in chunks:
        protocol.data_received(chunk)
    return factory.messages


async def test_a_name_split_at_every_byte_offset_survives_tcp(settings, sqlite_url, reads):
    """Call k's Newchannel is cut at byte k: every offset of the message, all 6 inside 张三."""
    uid = "1795350000.{:04d}".format
    size = len(newchannel(uid(0)))
    chunks, previous = [], b""
    for k in range(1, size):
        raw = newchannel(uid(k))
        assert len(raw) == size
        chunks += [previous + raw[:k], raw[k:]]
        previous = hangup(uid(k))
    chunks.append(previous)
    calls = size - 1
    created, records = await play_chunks(settings, sqlite_url, chunks, reads, events=2 * calls)

    assert len(created) == calls and all(e.caller_name == NAME for e in created)
    assert len(records) == calls
    assert {r.caller_name for r in records} == {NAME}
    assert {r.caller_num for r in records} == {"13800000000"}
    # plain panoramisk, the same chunks: the name is lost wherever a chunk ends inside a character
    names = {m["Uniqueid"]: m["CallerIDName"] for m in panoramisk_messages(chunks) if m["Event"] == "Newchannel"}
    assert len(names) == calls
    at = newchannel(uid(0)).index(NAME_BYTES)
    inside = {uid(at + i) for i in (1, 2, 4, 5)}                    # cuts within 张 or within 三
    assert {u for u, name in names.items() if name != NAME} == inside
    assert all(len(names[u]) < len(NAME) for u in inside)        # a character silently dropped


async def test_a_real_trace_with_the_name_cut_inside_every_occurrence(settings, sqlite_url, reads):
    """basic.jsonl with the first caller renamed 张三: every occurrence of the name (Newchannel,
    NewCallerid, NewConnectedLine, Hangup...) is cut by a TCP chunk boundary inside a character."""
    trace = load_trace(trace_path("basic"))
    messages = [stamp(raw.replace(b"Caller 13800000000", NAME_BYTES), MONDAY_10 + timedelta(seconds=t))
                for t, raw in trace.messages]
    stream = b"".join(messages)
    cuts, start = [], 0
    while (found := stream.find(NAME_BYTES, start)) >= 0:
        cuts.append(found + (1, 2, 4, 5)[len(cuts) % 4])
        start = found + len(NAME_BYTES)
    assert len(cuts) > 50
    chunks = [stream[a:b] for a, b in zip([0] + cuts, cuts + [len(stream)])]
    created, records = await play_chunks(settings, sqlite_url, chunks, reads, events=len(messages))

    first = [r for r in records if r.caller_num == "13800000000"]
    assert len(records) == 4 and len(first) == 1 and first[0].caller_name == NAME
    assert {r.caller_name for r in records} - {NAME} == {"Caller 13800000001", "Caller 13800000002",
                                                         "Caller 13800000003"}
    # plain panoramisk with the same chunks: not one message carries the name intact
    dispatched = panoramisk_messages(chunks)
    assert len(dispatched) == len(messages)
    assert not any(NAME in str(value) for m in dispatched for value in m.values())


# --- 7. malformed input ---------------------------------------------------------------------------

def garbage(rng: random.Random, size: int) -> bytes:
    """Random bytes with NULs and invalid UTF-8, never a message terminator."""
    data = bytes(rng.randrange(256) for _ in range(size)) + b"\x00\xff\xfe\xc3\x28\x80"
    while b"\r\n\r\n" in data:
        data = data.replace(b"\r\n\r\n", b"\r\n.\r\n")
    return data


def with_colonless_line(raw: bytes) -> bytes:
    head, _, rest = raw.partition(b"\r\n")
    return head + b"\r\nthis line has no colon at all\r\n" + rest


def test_framer_skips_and_counts_bad_input(caplog):
    caplog.set_level(logging.WARNING, "callcenter.ami.framing")
    rng = random.Random(7)
    framer = Framer(expect_banner=False)
    stream = (with_colonless_line(newchannel("1.1")) + b"no colon here\r\n\r\n" + garbage(rng, 500) + b"\r\n\r\n"
              + b"y" * (1 << 20) + b"\r\n\r\n" + hangup("1.1"))
    messages = []
    for i in range(0, len(stream), 4096):
        messages += framer.feed(stream[i:i + 4096])
    assert [m["Event"] for m in messages] == ["Newchannel", "Hangup"]
    assert messages[0]["CallerIDName"] == NAME and messages[0]["Uniqueid"] == "1.1"
    assert "without a colon" in caplog.text and "discarded" in caplog.text
    assert len([r for r in caplog.records if "discarded" in r.getMessage()]) == 1   # once per oversized message
    assert len(framer.buffer) < 100
    # the same stream in one read: the size limit holds all the same
    whole = Framer(expect_banner=False)
    big_event = b"Event: Junk\r\nData: " + b"z" * (1 << 17) + b"\r\n\r\n"
    assert [m["Event"] for m in whole.feed(stream.replace(b"y" * (1 << 20), b"") + big_event + hangup("1.2"))] == [
        "Newchannel", "Hangup", "Hangup"]
    assert whole.problems == 6 and whole.messages == 3


async def test_bad_input_between_real_messages_is_logged_and_skipped(settings, sqlite_url, caplog):
    """Into the basic trace: a colonless line inside real events, colonless and binary messages,
    binary garbage glued in front of real events, and 1 MB lines, every 25 messages."""
    caplog.set_level(logging.WARNING, "callcenter.ami.framing")
    trace = load_trace(trace_path("basic"))
    clean = [stamp(raw, MONDAY_10 + timedelta(seconds=t)) for t, raw in trace.messages]
    rng = random.Random(20261123)
    dirty, injected = [], 0
    for i, raw in enumerate(clean):
        if i % 25 == 5:
            kind = (i // 25) % 6
            if kind == 0:
                raw = with_colonless_line(raw)
            elif kind == 1:
                dirty.append(b"Asterisk said something odd\r\n\r\n")
            elif kind == 2:
                dirty.append(garbage(rng, 2000) + b"\r\n\r\n")
            elif kind == 3:
                raw = garbage(rng, 300).replace(b"\r", b"").replace(b"\n", b"") + b"\r\n" + raw
            elif kind == 4:
                dirty.append(b"x" * (1 << 20) + b"\r\n\r\n")
            else:
                dirty.append(b"Event: Junk\r\nData: " + b"z" * (1 << 20) + b"\r\n\r\n")
            injected += 1
        dirty.append(raw)
    assert injected >= 12
    server = AmiServer(messages=dirty)
    port = await server.start()
    try:
        async with running_service(settings, sqlite_url, port) as (service, client, store):
            await stream_processed(service, server, client, events=len(clean) + 1)
            await asyncio.sleep(0.02)
            records = await stored_calls(store)
            assert client.logins == 1 and server.logins == 1
            assert client.events_received == len(clean) + 1                # nothing extra, nothing lost
            assert client.protocol.framer.problems >= injected
    finally:
        await server.close()
    expected, *_ = run_in_memory("basic", settings, MONDAY_10)
    assert outcome_summary(records) == outcome_summary(expected)
    assert len(records) == 4
    logged = caplog.text
    assert "AMI line without a colon skipped: 'this line has no colon at all'" in logged
    assert "AMI line without a colon skipped: 'Asterisk said something odd'" in logged
    assert "message over 65536 bytes discarded" in logged
    assert "AMI message without Event/Response skipped" in logged
