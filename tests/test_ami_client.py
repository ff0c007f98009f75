"""The AMI client over real TCP: handler failures, actions, idempotent Originate, event times.

Every test talks the real protocol to ``AmiServer`` (or to a hand-made asyncio server) on
127.0.0.1; the contrasting tests drive plain panoramisk 1.4 over the same sockets to show what
the adapter exists to fix. The helpers at the top are shared with the other ``test_ami_*`` files.
"""
from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta, timezone

import pytest

from callcenter.ami.client import ActionFailed, ActionTimeout, AmiClient, Endpoint, LinkDown
from callcenter.ami.server import AmiServer, load_trace
from callcenter.clock import FixedClock
from callcenter.domain import events as ev
from callcenter.service import Service
from callcenter.storage.store import Store
from tests import queue_log
from tests.conftest import MONDAY_10, TRACES, trace_path

PBX = "pbx1"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
FOREVER = datetime(2200, 1, 1, tzinfo=timezone.utc)


# --- shared helpers ---------------------------------------------------------------------------

def endpoint(port: int, **overrides) -> Endpoint:
    """Small timeouts and intervals so that every failure path runs in milliseconds."""
    values = dict(connect_timeout=1.0, action_timeout=1.0, ping_interval=30.0, reconnect_min=0.01,
                  reconnect_max=0.05)
    values.update(overrides)
    return Endpoint(PBX, "127.0.0.1", port, "callcenter", "secret", **values)


async def wait_until(predicate, timeout: float = 5.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


@contextlib.asynccontextmanager
async def running_service(settings, db_url: str, port: int, clock=None, **endpoint_overrides):
    """A real Service with a real Store, connected to ``port``; stopped and closed afterwards."""
    store = Store(db_url)
    service = Service(settings, store, clock)
    client = service.add_pbx(endpoint(port, **endpoint_overrides))
    await service.start()
    try:
        yield service, client, store
    finally:
        await service.stop()
        await store.close()


async def stream_processed(service: Service, server: AmiServer, client: AmiClient,
                           events: int | None = None, timeout: float = 10.0) -> None:
    """Until the server sent its whole stream and the service committed what it led to.
    ``events``: how many events the client must have received (default: every message the
    server sent plus one FullyBooted per login)."""
    await asyncio.wait_for(server.done.wait(), timeout)
    await wait_until(lambda: client.events_received >= (server.sent + server.logins if events is None
                                                        else events), timeout, "the whole stream")
    await service.settled(timeout)


async def stored_calls(store: Store):
    return await store.calls_between(EPOCH, FOREVER)


def action_names(server: AmiServer) -> list[str]:
    return [a.get("Action") for a in server.actions]


def stamped_server(name: str, **kwargs) -> AmiServer:
    return AmiServer.from_trace(load_trace(trace_path(name)), MONDAY_10, **kwargs)


def outcome_summary(records) -> list[tuple]:
    """What a call record says, independent of storage round trips."""
    return sorted((r.id, r.linkedid, r.outcome.value, r.caller_num, r.caller_name, r.hotline, r.reconciled,
                   tuple((s.queue, s.end.value if s.end else None, s.agent, s.rings, s.talk_seconds)
                         for s in r.stints)) for r in records)


def check_against_queue_log(name: str, records) -> None:
    """Every call Asterisk queued is stored exactly once and answered by the agent it logged."""
    _, agents, queued = queue_log.parse(TRACES / f"{name}.queue_log")
    ids = [r.id for r in records]
    assert len(ids) == len(set(ids)), "a call was stored twice"
    assert queued <= set(ids), f"calls lost: {sorted(queued - set(ids))}"
    by_id = {r.id: r for r in records}
    for key, agent in agents.items():
        call_id, queue = key.split("|")
        answered = [s for s in by_id[call_id].stints if s.queue == queue and s.end.value == "answered"]
        assert answered and answered[-1].member_name == agent, call_id


class PanoramiskRecorder:
    """A plain panoramisk 1.4 Manager connected to ``port``; ``lost`` resolves when it drops."""

    def __init__(self, port: int, **config):
        from panoramisk import Manager
        self.lost = asyncio.get_running_loop().create_future()
        self.manager = Manager(loop=asyncio.get_running_loop(), host="127.0.0.1", port=port,
                               username="callcenter", secret="secret", ping_delay=60, ping_interval=60,
                               on_disconnect=self._disconnected, **config)

    def _disconnected(self, manager, exc) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)

    async def connect(self) -> None:
        await self.manager.connect()
        await wait_until(lambda: self.manager.authenticated, 2, "panoramisk login")

    def close(self) -> None:
        self.manager.connect = lambda *a, **k: None          # no reconnect scheduled after the test
        self.manager.close()


# --- 2. a failing handler loses nothing -------------------------------------------------------

async def test_a_raising_listener_neither_drops_the_link_nor_loses_the_stream(settings, sqlite_url, caplog):
    server = stamped_server("load")
    port = await server.start()
    seen: list[ev.Event] = []

    def fragile(event: ev.Event) -> None:
        seen.append(event)
        if isinstance(event, (ev.AgentConnected, ev.ChannelHungup, ev.QueueJoined)):
            raise RuntimeError(f"listener bug on {type(event).__name__}")

    try:
        async with running_service(settings, sqlite_url, port) as (service, client, store):
            service.subscribe(fragile)
            await stream_processed(service, server, client)
            records = await stored_calls(store)
            assert client.logins == 1 and server.logins == 1          # the link never dropped
            assert service.handler_errors > 100                        # it really raised, many times
            assert service.calls.open_calls == 0
            # the listener still saw every event after each failure, in stream order
            hangups = [e for e in seen if isinstance(e, ev.ChannelHungup)]
            assert len(hangups) == sum(raw.startswith(b"Event: Hangup\r\n") for raw in server.messages)
            stamped = [e.at for e in seen if not isinstance(e, (ev.Resynced, ev.LinkLost))]
            assert stamped == sorted(stamped)
    finally:
        await server.close()
    check_against_queue_log("load", records)
    assert len(records) == 36 and service.calls_committed == 36
    assert "event listener" in caplog.text and "listener bug on AgentConnected" in caplog.text


async def test_panoramisk_a_raising_sync_callback_kills_the_connection_and_the_rest_of_the_stream():
    """panoramisk 1.4 calls callbacks inside ``data_received``: one exception escapes into asyncio's
    transport, which closes the connection; the messages after it in that chunk are gone."""
    server = stamped_server("basic")
    port = await server.start()
    pano = PanoramiskRecorder(port, reconnect_timeout=60)
    names: list[str] = []

    def fragile(manager, message) -> None:
        names.append(message.event)
        if message.event == "Newchannel":
            raise RuntimeError("listener bug")

    pano.manager.register_event("*", fragile)
    try:
        await pano.connect()
        await asyncio.wait_for(pano.lost, 2)                           # the connection was dropped
        await asyncio.wait_for(server.done.wait(), 2)
        await asyncio.sleep(0.05)
    finally:
        pano.close()
        await server.close()
    assert names[-1] == "Newchannel"            # nothing dispatched after the failing callback...
    assert len(names) < server.sent             # ...nor ever again: the rest of the stream is lost


async def test_panoramisk_runs_coroutine_callbacks_as_unordered_fire_and_forget_tasks():
    """panoramisk 1.4 wraps each coroutine callback in its own task (``ensure_future``) that nobody
    awaits: they finish in any order, so a slow handler sees a call's Newchannel after its Hangup."""
    server = stamped_server("basic")
    port = await server.start()
    pano = PanoramiskRecorder(port)
    arrived: list[str] = []
    handled: list[str] = []

    def arrival(manager, message) -> None:
        arrived.append(f"{message.event} {message.uniqueid}")

    async def handler(manager, message) -> None:
        if message.event == "Newchannel":
            await asyncio.sleep(0.02)           # e.g. a database write, slower for some events
        handled.append(f"{message.event} {message.uniqueid}")

    pano.manager.register_event("*", arrival)
    pano.manager.register_event("*", handler)
    try:
        await pano.connect()
        await asyncio.wait_for(server.done.wait(), 2)
        await wait_until(lambda: len(handled) == len(arrived) >= server.sent, 3, "panoramisk handlers")
    finally:
        pano.close()
        await server.close()
    assert sorted(handled) == sorted(arrived) and handled != arrived
    uniqueid = next(name.split()[1] for name in arrived if name.startswith("Newchannel"))
    assert arrived.index(f"Newchannel {uniqueid}") < arrived.index(f"Hangup {uniqueid}")
    assert handled.index(f"Newchannel {uniqueid}") > handled.index(f"Hangup {uniqueid}")


# --- 5. actions ---------------------------------------------------------------------------------

class SilentFor:
    """``on_action`` hook: answers nothing to the named actions (the PBX never replies)."""

    def __init__(self, *names: str):
        self.names = {n.lower() for n in names}

    def __call__(self, action: dict):
        if action.get("Action", "").lower() in self.names:
            return []
        return None


async def connected_client(server: AmiServer, sink=None, **overrides) -> AmiClient:
    port = await server.start()
    client = AmiClient(endpoint(port, **overrides), sink or (lambda pbx, items, at: None))
    client.start()
    await asyncio.wait_for(client.connected.wait(), 2)
    return client


async def test_every_action_times_out_and_the_link_stays_up():
    server = AmiServer(on_action=SilentFor("QueuePause"))
    client = await connected_client(server, action_timeout=0.1)
    try:
        with pytest.raises(ActionTimeout):
            await client.action({"Action": "QueuePause", "Interface": "PJSIP/1001", "Paused": "true"})
        with pytest.raises(ActionTimeout):
            await client.action({"Action": "QueuePause", "Interface": "PJSIP/1001"}, timeout=0.05)
        assert (await client.action({"Action": "Ping"}))["Ping"] == "Pong"
        assert client.logins == 1 and client.pending == {}
    finally:
        await client.stop()
        await server.close()


async def test_an_action_in_flight_when_the_link_drops_fails_and_is_never_resent():
    server = AmiServer(on_action=SilentFor("QueueAdd", "Originate"))
    client = await connected_client(server, action_timeout=2)
    try:
        queue_add = asyncio.ensure_future(client.action({"Action": "QueueAdd", "Queue": "q-market",
                                                         "Interface": "PJSIP/1001"}))
        originate = asyncio.ensure_future(client.originate("callback-42", {"Channel": "Local/100@callback"}))
        await wait_until(lambda: action_names(server).count("Originate") == 1, 2, "the actions to arrive")
        await server.drop_clients()
        with pytest.raises(LinkDown):
            await queue_add
        with pytest.raises(LinkDown):
            await originate
        await wait_until(lambda: client.logins == 2 and client.connected.is_set(), 2, "the reconnect")
        # the same idempotency key after the reconnect: refused, not dialled again
        with pytest.raises(LinkDown):
            await client.originate("callback-42", {"Channel": "Local/100@callback"})
        assert (await client.action({"Action": "Ping"}))["Ping"] == "Pong"
    finally:
        await client.stop()
        await server.close()
    names = action_names(server)
    assert names.count("QueueAdd") == 1 and names.count("Originate") == 1
    assert names.count("Login") == 2


async def test_panoramisk_resends_an_action_that_was_in_flight_when_the_link_dropped():
    """The contrast: panoramisk 1.4 queues unanswered actions and sends them again after the
    reconnect, so a callback in flight is dialled twice."""
    server = AmiServer(on_action=SilentFor("Originate"))
    port = await server.start()
    pano = PanoramiskRecorder(port, reconnect_timeout=0)
    try:
        await pano.connect()
        pano.manager.send_action({"Action": "Originate", "Channel": "Local/100@callback"})
        await wait_until(lambda: "Originate" in action_names(server), 2, "the Originate")
        await server.drop_clients()
        await wait_until(lambda: action_names(server).count("Originate") == 2, 2, "the re-sent Originate")
    finally:
        pano.close()
        await server.close()
    assert server.logins == 2


async def test_originate_with_the_same_key_is_sent_once_even_across_a_reconnect():
    answers = iter(range(1, 100))
    server = AmiServer(on_action=lambda a: [{"Response": "Success", "Message": "Originate successfully queued",
                                             "Seq": str(next(answers))}] if a["Action"] == "Originate" else None)
    client = await connected_client(server)
    fields = {"Channel": "Local/13800000000@callback", "Context": "callback", "Exten": "13800000000",
              "Priority": 1, "Async": "true", "CallerID": "张三 <62000001>"}
    try:
        first, second = await asyncio.gather(client.originate("task-7/1", fields),
                                             client.originate("task-7/1", fields))
        again = await client.originate("task-7/1", fields)
        assert first is second is again and first["Seq"] == "1"
        await server.drop_clients()
        await wait_until(lambda: client.logins == 2 and client.connected.is_set(), 2, "the reconnect")
        after = await client.originate("task-7/1", fields)
        assert after is first
        other = await client.originate("task-7/2", fields)          # a new attempt is a new key
        assert other["Seq"] == "2"
    finally:
        await client.stop()
        await server.close()
    originates = [a for a in server.actions if a["Action"] == "Originate"]
    assert len(originates) == 2
    assert originates[0]["CallerID"] == "张三 <62000001>"               # sent as UTF-8, intact


async def test_an_originate_refused_before_sending_may_be_tried_again_with_its_key():
    """Nothing reached the PBX while the link was down, so the key is not used up."""
    server = AmiServer()
    client = await connected_client(server)
    try:
        await server.close()                                  # the PBX goes away
        await wait_until(lambda: not client.connected.is_set(), 2, "the link loss")
        with pytest.raises(LinkDown):
            await client.originate("task-9/1", {"Channel": "Local/1@callback"})
        assert "task-9/1" not in client.originated
    finally:
        await client.stop()


async def test_an_error_response_raises_action_failed():
    server = AmiServer(on_action=lambda a: [{"Response": "Error", "Message": "Interface not found"}])
    client = await connected_client(server)
    try:
        with pytest.raises(ActionFailed) as failed:
            await client.action({"Action": "QueueRemove", "Queue": "q-market", "Interface": "PJSIP/9"})
        assert failed.value.response["Message"] == "Interface not found"
    finally:
        await client.stop()
        await server.close()


ADDED = [{"Response": "Success", "Message": "Added interface to queue"}]


def queue_add_answer(action: dict):
    return ADDED if action["Action"] == "QueueAdd" else None


async def test_queue_add_returns_its_response():
    server = AmiServer(on_action=queue_add_answer)
    client = await connected_client(server, action_timeout=0.5)
    try:
        response = await client.action({"Action": "QueueAdd", "Queue": "q-market", "Interface": "PJSIP/1001",
                                         "MemberName": "张伟", "Penalty": 0})
    finally:
        await client.stop()
        await server.close()
    assert response["Response"] == "Success" and response["Message"] == "Added interface to queue"
    [sent] = [a for a in server.actions if a["Action"] == "QueueAdd"]
    assert sent["MemberName"] == "张伟"


async def test_panoramisk_hangs_on_the_queue_add_response():
    """panoramisk 1.4 takes "Added interface to queue" for the start of a list that never ends."""
    server = AmiServer(on_action=queue_add_answer)
    port = await server.start()
    pano = PanoramiskRecorder(port)
    try:
        await pano.connect()
        future = pano.manager.send_action({"Action": "QueueAdd", "Queue": "q-market", "Interface": "PJSIP/1001"})
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(future), 0.3)
        assert "QueueAdd" in action_names(server)                 # it was answered, and ignored
    finally:
        pano.close()
        await server.close()


async def test_late_messages_for_an_answered_action_are_events_not_swallowed():
    """An async Originate answers at once and reports later in an OriginateResponse event carrying
    the same ActionID: that event reaches the sink."""
    got: list = []

    def on_action(action):
        if action["Action"] != "Originate":
            return None
        return [{"Response": "Success", "Message": "Originate successfully queued"},
                {"Event": "OriginateResponse", "ActionID": action["ActionID"], "Response": "Failure",
                 "Channel": "Local/1@callback", "Reason": "3", "Uniqueid": "<null>"}]

    server = AmiServer(on_action=on_action)
    client = await connected_client(server, sink=lambda pbx, items, at: got.extend(items))
    try:
        await client.originate("task-1/1", {"Channel": "Local/1@callback", "Async": "true"})
        await wait_until(lambda: any(isinstance(m, dict) and m.get("Event") == "OriginateResponse" for m in got),
                         2, "the OriginateResponse event")
    finally:
        await client.stop()
        await server.close()


# --- 6. event times -----------------------------------------------------------------------------

def collecting(service: Service) -> list[ev.Event]:
    seen: list[ev.Event] = []
    service.subscribe(seen.append)
    return seen


def is_utc(moment: datetime) -> bool:
    return moment.tzinfo is not None and moment.utcoffset() == timedelta(0)


async def test_without_timestamp_headers_events_take_the_injected_receive_clock(settings, sqlite_url):
    trace = load_trace(trace_path("basic"))
    server = AmiServer(messages=[raw for _, raw in trace.messages])     # no Timestamp header at all
    assert not any(b"\r\nTimestamp: " in raw for raw in server.messages)
    port = await server.start()
    clock = FixedClock(datetime(2026, 11, 23, 10, 30, tzinfo=MONDAY_10.tzinfo))
    try:
        async with running_service(settings, sqlite_url, port, clock=clock) as (service, client, store):
            seen = collecting(service)
            await stream_processed(service, server, client)
            records = await stored_calls(store)
    finally:
        await server.close()
    assert seen and all(e.at == clock.now() and is_utc(e.at) for e in seen)
    assert clock.now() == datetime(2026, 11, 23, 2, 30, tzinfo=timezone.utc)
    assert len(records) == 4
    assert all(r.started_at == clock.now() and is_utc(r.started_at) and is_utc(r.ended_at) for r in records)


async def test_asterisk_timestamp_headers_win_over_the_receive_clock(settings, sqlite_url):
    trace = load_trace(trace_path("basic-timestamped"))
    server = AmiServer(messages=[raw for _, raw in trace.messages])     # Asterisk's own headers
    port = await server.start()
    clock = FixedClock(datetime(2030, 1, 1, tzinfo=timezone.utc))       # far from the trace: must not be used
    try:
        async with running_service(settings, sqlite_url, port, clock=clock) as (service, client, store):
            seen = collecting(service)
            await stream_processed(service, server, client)
            records = await stored_calls(store)
    finally:
        await server.close()
    stamps = []
    for raw in server.messages:
        headers = dict(line.split(": ", 1) for line in raw.decode().split("\r\n") if ": " in line)
        if "Timestamp" in headers and headers.get("Event") != "FullyBooted":
            stamps.append(datetime.fromtimestamp(float(headers["Timestamp"]), tz=timezone.utc))
    domain = [e for e in seen if not isinstance(e, (ev.Resynced, ev.LinkLost))]
    assert domain and all(is_utc(e.at) for e in domain)
    assert {e.at for e in domain} <= set(stamps)
    assert all(e.at.year == 2026 for e in domain)
    # Asterisk's own queue_log agrees with the times taken from its Timestamp headers
    entered = {}
    for line in (TRACES / "basic-timestamped.queue_log").read_text().splitlines():
        f = line.split("|")
        if f[4] == "ENTERQUEUE":
            entered[f[1]] = int(f[0])
    assert {r.id for r in records} == set(entered)
    for r in records:
        assert is_utc(r.started_at) and abs(r.stints[0].entered_at.timestamp() - entered[r.id]) < 1.01


async def test_a_bad_timestamp_header_falls_back_to_the_receive_time(caplog):
    got: list = []
    server = AmiServer(messages=[b"Event: Hangup\r\nTimestamp: yesterday\r\nUniqueid: 1.1\r\nLinkedid: 1.1\r\n\r\n",
                                 b"Event: Hangup\r\nTimestamp: 1795347500.250000\r\nUniqueid: 1.2\r\n\r\n"])
    clock = FixedClock(MONDAY_10)
    port = await server.start()
    client = AmiClient(endpoint(port), lambda pbx, items, at: got.extend((m, at) for m in items), clock)
    client.start()
    try:
        await wait_until(lambda: sum(isinstance(m, dict) and m.get("Event") == "Hangup" for m, _ in got) == 2)
    finally:
        await client.stop()
        await server.close()
    from callcenter.ami.translate import translate
    bad, good = [translate(PBX, m, at) for m, at in got if isinstance(m, dict) and m.get("Event") == "Hangup"]
    assert bad.at == MONDAY_10 and is_utc(bad.at)
    assert good.at == datetime(2026, 11, 22, 11, 38, 20, 250000, tzinfo=timezone.utc)
    assert "bad Timestamp header 'yesterday'" in caplog.text


async def test_the_receive_time_is_the_client_clock_when_the_bytes_arrive():
    """The receive time of a message is the client clock at the moment its bytes arrived."""
    got: list = []
    clock = FixedClock(MONDAY_10)
    server = AmiServer()
    client = await connected_client(server, sink=lambda pbx, items, at: got.append((items, at)))
    client.clock = clock
    try:
        clock.advance(90)
        server.emit({"Event": "DeviceStateChange", "Device": "Custom:1001", "State": "INUSE"})
        await wait_until(lambda: any(m.get("Device") == "Custom:1001" for items, _ in got for m in items
                                     if isinstance(m, dict)))
    finally:
        await client.stop()
        await server.close()
    [at] = [at for items, at in got for m in items if isinstance(m, dict) and m.get("Device") == "Custom:1001"]
    assert at == MONDAY_10 + timedelta(seconds=90) and is_utc(at)
