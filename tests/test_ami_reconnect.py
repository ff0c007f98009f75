"""Keeping the link: connect and login timeouts, backoff, the Ping watchdog, resync after every
login, and the acceptance test: a real trace cut mid-call by the PBX loses and duplicates nothing."""
from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from callcenter.ami.client import AmiClient
from callcenter.ami.server import AmiServer, PbxState, format_message
from callcenter.domain import events as ev
from tests import queue_log
from tests.conftest import MONDAY_10, TRACES
from tests.scenario import run as run_in_memory
from tests.test_ami_client import (action_names, endpoint, outcome_summary, running_service, stamped_server,
                                   stored_calls, stream_processed, wait_until)

CLIENT_LOG = "callcenter.ami.client"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reconnect_waits(caplog) -> list[float]:
    return [r.args[1] for r in caplog.records if r.name == CLIENT_LOG and r.msg.startswith("AMI %s: reconnecting in")]


def client_for(port: int, sink=None, **overrides) -> AmiClient:
    client = AmiClient(endpoint(port, **overrides), sink or (lambda pbx, items, at: None))
    client.start()
    return client


# --- 3. connect, login, backoff ---------------------------------------------------------------

async def test_a_server_that_never_answers_login_times_out_and_is_retried(caplog):
    caplog.set_level(logging.INFO, CLIENT_LOG)
    accepted: list[asyncio.StreamWriter] = []
    received: list[bytes] = []

    async def mute(reader, writer):          # accepts, reads, never says a word
        accepted.append(writer)
        received.append(await reader.read(4096))

    mute_server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = mute_server.sockets[0].getsockname()[1]
    client = client_for(port, connect_timeout=0.05)
    try:
        await wait_until(lambda: len(accepted) >= 3, 3, "three login attempts")
        assert client.logins == 0 and not client.connected.is_set()
        assert received[0].startswith(b"Action: Login\r\n")
        assert "Login: no response within 0.05 s" in caplog.text
        mute_server.close()
        await mute_server.wait_closed()
        for writer in accepted:
            writer.transport.abort()
        server = AmiServer()                                   # a real PBX on the same port now
        await server.start(port=port)
        try:
            await asyncio.wait_for(client.connected.wait(), 3)
            assert client.logins == 1 and server.logins == 1
        finally:
            await client.stop()
            await server.close()
    finally:
        await client.stop()


async def test_nothing_listening_is_retried_with_backoff_until_a_server_appears(caplog):
    caplog.set_level(logging.INFO, CLIENT_LOG)
    port = free_port()
    client = client_for(port, reconnect_min=0.005, reconnect_max=0.04)
    try:
        await wait_until(lambda: len(reconnect_waits(caplog)) >= 6, 3, "six failed attempts")
        assert client.logins == 0
        assert "cannot connect to 127.0.0.1:%d" % port in caplog.text
        waits = reconnect_waits(caplog)[:6]
        for attempt, wait in enumerate(waits):
            nominal = min(0.005 * 2 ** attempt, 0.04)          # doubling, then capped
            assert 0.8 * nominal <= wait <= 1.2 * nominal, (attempt, waits)
        server = AmiServer()
        await server.start(port=port)
        try:
            await asyncio.wait_for(client.connected.wait(), 3)
            assert client.logins == 1
        finally:
            await client.stop()
            await server.close()
    finally:
        await client.stop()


async def test_a_session_that_logged_in_resets_the_backoff(caplog):
    """A link that drops after a good session reconnects quickly, however often it happens."""
    caplog.set_level(logging.INFO, CLIENT_LOG)
    server = AmiServer()
    await server.start()
    port = server._server.sockets[0].getsockname()[1]
    client = client_for(port, reconnect_min=0.005, reconnect_max=5)
    try:
        for login in range(1, 6):
            await wait_until(lambda: client.logins == login and client.connected.is_set(), 3, f"login {login}")
            await server.drop_clients()
        await wait_until(lambda: client.logins == 6, 3, "login 6")
    finally:
        await client.stop()
        await server.close()
    waits = reconnect_waits(caplog)
    assert len(waits) == 5 and all(w <= 1.2 * 0.005 for w in waits), waits


class PingDeaf(AmiServer):
    """Stops answering Ping while ``deaf`` (a half-dead PBX: the socket is up, nothing answers)."""
    deaf = False

    def _respond(self, conn, action):
        if action.get("Action", "").lower() == "ping" and self.deaf:
            return False
        if action.get("Action", "").lower() == "login":
            self.deaf = False
        return super()._respond(conn, action)


async def test_the_ping_watchdog_detects_a_dead_link_and_reconnects(caplog):
    server = PingDeaf()
    port = await server.start()
    client = client_for(port, ping_interval=0.02, action_timeout=0.2)
    try:
        await wait_until(lambda: action_names(server).count("Ping") >= 3, 3, "three answered pings")
        assert client.logins == 1                               # an answering link is left alone
        server.deaf = True
        await wait_until(lambda: client.logins == 2 and client.connected.is_set(), 3, "the reconnect")
        await wait_until(lambda: action_names(server).count("Ping") >= 6, 3, "pings on the new link")
        assert client.logins == 2
    finally:
        await client.stop()
        await server.close()
    assert "ping failed (Ping: no response within 0.2 s); dropping the link" in caplog.text
    names = action_names(server)
    assert names.count("QueueStatus") == 2 and names.count("CoreShowChannels") == 2


# --- 3. resync after every login -----------------------------------------------------------------

def call_start(uid: str, num: str) -> list[bytes]:
    return [format_message({"Event": "Newchannel", "Channel": f"PJSIP/trunk-{uid}", "CallerIDNum": num,
                            "CallerIDName": "张三", "Context": "hotline", "Exten": "62000001",
                            "Uniqueid": uid, "Linkedid": uid}),
            format_message({"Event": "Newexten", "Channel": f"PJSIP/trunk-{uid}", "Context": "hotline",
                            "Extension": "62000001", "Application": "Answer", "Uniqueid": uid, "Linkedid": uid})]


def call_end(uid: str) -> bytes:
    return format_message({"Event": "Hangup", "Channel": f"PJSIP/trunk-{uid}", "Uniqueid": uid, "Linkedid": uid,
                           "Cause": "16"})


async def test_every_login_resyncs_and_calls_gone_meanwhile_are_reconciled(settings, sqlite_url):
    server = AmiServer()
    port = await server.start()
    member = format_message({"Event": "QueueMemberAdded", "Queue": "q-market", "MemberName": "Agent A 1001",
                             "Interface": "Local/1001@agents/n", "StateInterface": "Custom:1001",
                             "Status": "1", "Paused": "0"})
    try:
        async with running_service(settings, sqlite_url, port) as (service, client, store):
            resyncs: list[ev.Resynced] = []
            service.subscribe(lambda e: resyncs.append(e) if isinstance(e, ev.Resynced) else None)
            await asyncio.wait_for(client.connected.wait(), 2)
            for raw in [member, *call_start("9.1", "13800000001"), *call_start("9.2", "13800000002")]:
                server.emit(raw)
            await wait_until(lambda: service.calls.open_calls == 2, 2, "two live calls")
            await server.drop_clients()
            server.emit(call_end("9.1"))                     # the PBX goes on while we are away
            await wait_until(lambda: client.logins == 2 and len(resyncs) == 2, 2, "the second resync")
            await service.settled(2)
            assert resyncs[1].live_channels == {"9.2"}
            assert [m.interface for m in resyncs[1].members] == ["Local/1001@agents/n"]
            [gone] = await stored_calls(store)
            assert gone.id == "9.1" and gone.reconciled and gone.caller_name == "张三"
            assert service.calls.open_calls == 1
            server.emit(call_end("9.2"))
            await wait_until(lambda: service.calls_committed == 2, 2, "the second call")
            records = await stored_calls(store)
    finally:
        await server.close()
    assert [(r.id, r.reconciled) for r in sorted(records, key=lambda r: r.id)] == [("9.1", True), ("9.2", False)]
    assert service.calls_committed == 2
    assert action_names(server) == ["Login", "QueueStatus", "CoreShowChannels"] * 2


class BusyPbx(AmiServer):
    """Writes more events right behind its CoreShowChannels answer, as a busy Asterisk does: a
    call that starts just after the snapshot is not in it."""
    behind_snapshot: list[bytes] = []

    def _respond(self, conn, action):
        logged_in = super()._respond(conn, action)
        if action.get("Action", "").lower() == "coreshowchannels":
            for raw in self.behind_snapshot:
                self.emit(raw)
            self.behind_snapshot = []
        return logged_in


async def test_the_resync_applies_at_its_place_in_the_stream(settings, sqlite_url):
    server = BusyPbx()
    server.behind_snapshot = call_start("7.1", "13800000007")
    port = await server.start()
    try:
        async with running_service(settings, sqlite_url, port) as (service, client, store):
            await wait_until(lambda: service.calls.open_calls == 1, 2, "the call")
            await service.settled(2)
            assert service.calls_committed == 0                  # not taken for a call that vanished
            server.emit(call_end("7.1"))
            await wait_until(lambda: service.calls_committed >= 1, 2, "the record")
            await asyncio.sleep(0.02)
            records = await stored_calls(store)
    finally:
        await server.close()
    [call] = records
    assert call.id == "7.1" and not call.reconciled and call.caller_num == "13800000007"
    assert service.calls_committed == 1


# --- 4. the cut: acceptance ------------------------------------------------------------------------

def live_after(messages: list[bytes], n: int) -> PbxState:
    state = PbxState()
    for raw in messages[:n]:
        state.observe(raw)
    return state


# 42 s and 12 s of trace in about half a second each; slow enough that the first session has
# resynced (a few ms) well before the cut, which comes at least 140 ms in
SPEED = {"load": 80, "basic": 25}


def headers(raw: bytes) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in raw.decode().split("\r\n") if ": " in line)


@pytest.mark.parametrize("name,cut", [("load", 1400), ("load", 2400), ("basic", 200)])
async def test_a_trace_cut_mid_call_loses_and_duplicates_nothing(settings, sqlite_url, name, cut):
    """The PBX drops the link after ``cut`` messages, in the middle of calls; the client reconnects,
    resyncs (the PBX answers CoreShowChannels with the channels live at that point) and the rest of
    the stream goes on. Checked against Asterisk's queue_log and against the uncut trace."""
    server = stamped_server(name, cut_after=cut, speed=SPEED[name])
    assert live_after(server.messages, cut).channels, "the cut must fall in the middle of calls"
    port = await server.start()
    try:
        async with running_service(settings, sqlite_url, port) as (service, client, store):
            link: list[ev.Event] = []
            service.subscribe(lambda e: link.append(e) if isinstance(e, (ev.LinkLost, ev.Resynced)) else None)
            await stream_processed(service, server, client)
            records = await stored_calls(store)
            assert service.calls.open_calls == 0
            assert client.logins == 2 and server.logins == 2
            committed, link_events = service.calls_committed, list(link)
    finally:
        await server.close()
    assert [type(e).__name__ for e in link_events] == ["Resynced", "LinkLost", "Resynced"]
    # the second snapshot is the PBX's state at the reconnect: the channels live at the cut, as
    # changed by the few messages due right after it
    state, snapshots = live_after(server.messages, cut), []
    for raw in server.messages[cut:cut + 200]:
        snapshots.append(set(state.channels))
        state.observe(raw)
    assert link_events[2].live_channels in snapshots and link_events[2].live_channels
    _, _, queued = queue_log.parse(TRACES / f"{name}.queue_log")
    ids = [r.id for r in records]
    assert set(ids) == queued                                    # no completed call lost...
    assert len(ids) == len(set(ids)) == committed                # ...none produced twice
    names = action_names(server)
    assert names == ["Login", "QueueStatus", "CoreShowChannels"] * 2 + names[6:]
    assert names.count("QueueStatus") == 2 and names.count("CoreShowChannels") == 2
    # nothing was missed, so nothing is reconciled: every call reads exactly as without the cut
    expected, *_ = run_in_memory(name, settings, MONDAY_10)
    assert outcome_summary(records) == outcome_summary(expected)
    assert not any(r.reconciled for r in records)


@pytest.mark.parametrize("cut", [1400, 2400])
async def test_calls_that_end_during_the_outage_are_reconciled_and_stored_once(settings, sqlite_url, cut):
    """The PBX drops the link and the next 120 messages (about a second of the load test, Hangups
    among them) happen while the client is away: the PBX's state has them, the client never gets
    them. The resync finds those channels gone; their calls come out reconciled, once each."""
    window = 120
    server = stamped_server("load", cut_after=cut, missed_after_cut=window, speed=SPEED["load"])
    missed = [headers(raw) for raw in server.messages[cut:cut + window]]
    touched = {h["Linkedid"] for h in missed if "Linkedid" in h}
    at_cut, after = live_after(server.messages, cut).channels, live_after(server.messages, cut + window).channels
    vanished = {channel["Linkedid"] for uid, channel in at_cut.items() if uid not in after}
    assert sum(h.get("Event") == "Hangup" for h in missed) >= 4 and vanished
    port = await server.start()
    try:
        async with running_service(settings, sqlite_url, port) as (service, client, store):
            await stream_processed(service, server, client)
            records = await stored_calls(store)
            assert service.calls.open_calls == 0
            assert client.logins == 2
            committed = service.calls_committed
    finally:
        await server.close()
    assert server.missed_count == window
    _, _, queued = queue_log.parse(TRACES / "load.queue_log")
    ids = [r.id for r in records]
    assert set(ids) == queued and len(ids) == len(set(ids)) == committed
    recorded = {r.linkedid for r in records}
    reconciled = {r.linkedid for r in records if r.reconciled}
    assert vanished & recorded, "some recorded call must have ended during the outage"
    assert vanished & recorded <= reconciled <= touched
    # every call the outage did not touch reads exactly as without it
    expected, *_ = run_in_memory("load", settings, MONDAY_10)
    assert outcome_summary([r for r in records if r.linkedid not in touched]) == outcome_summary(
        [r for r in expected if r.linkedid not in touched])
    names = action_names(server)
    assert names.count("QueueStatus") == 2 and names.count("CoreShowChannels") == 2
