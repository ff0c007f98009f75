"""One AMI connection, kept alive.

- Bytes are framed by ``Framer`` (multi-byte characters survive any TCP chunking).
- Every event goes to one sink in arrival order; nothing user-supplied runs in the protocol, so a
  failing handler downstream cannot drop the connection or the rest of the stream.
- Connect has a timeout; reconnects back off exponentially; a Ping watchdog detects a dead link.
- Every action has a timeout. Actions in flight when the link drops fail with ``LinkDown`` and
  are never re-sent: ``originate`` additionally remembers its idempotency key, so a callback is
  dialled at most once whatever happens to the link.
- After every login the live state is read back (QueueStatus, CoreShowChannels) and handed to
  the sink as a ``Resynced`` event, so the domain can reconcile calls that vanished meanwhile.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from ..clock import SystemClock
from ..domain import events as ev
from .framing import Framer
from .translate import member_state

log = logging.getLogger(__name__)
Message = dict[str, str]
Sink = Callable[[str, list, datetime], None]


class AmiError(Exception):
    pass


class LinkDown(AmiError):
    pass


class ActionTimeout(AmiError):
    pass


class ActionFailed(AmiError):
    def __init__(self, response: Message):
        super().__init__(response.get("Message", "action failed"))
        self.response = response


@dataclass
class Endpoint:
    id: str
    host: str
    port: int
    username: str
    secret: str = field(repr=False)
    connect_timeout: float = 5
    action_timeout: float = 10
    ping_interval: float = 20
    reconnect_min: float = 0.5
    reconnect_max: float = 30


@dataclass
class _Pending:
    future: asyncio.Future
    events: list[Message] = field(default_factory=list)
    listing: bool = False


class _Protocol(asyncio.Protocol):
    def __init__(self, client: "AmiClient"):
        self.client = client
        self.framer = Framer()
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        received = self.client.clock.now()
        batch = []
        pending = self.client.pending
        for msg in self.framer.feed(data):
            action_id = msg.get("ActionID")
            if action_id is not None and action_id in pending:
                self.client._answer(action_id, msg)
            elif "Event" in msg:
                batch.append(msg)
        if batch:
            self.client.events_received += len(batch)
            self.client.sink(self.client.endpoint.id, batch, received)

    def connection_lost(self, exc) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


class AmiClient:
    def __init__(self, endpoint: Endpoint, sink: Sink, clock=None):
        self.endpoint = endpoint
        self.sink = sink
        self.clock = clock or SystemClock()
        self.pending: dict[str, _Pending] = {}
        self.protocol: _Protocol | None = None
        self.connected = asyncio.Event()
        self.events_received = 0
        self.logins = 0
        self.originated: dict[str, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._task: asyncio.Task | None = None
        self._stopping = False

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> asyncio.Task:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"ami-{self.endpoint.id}")
        return self._task

    async def stop(self) -> None:
        self._stopping = True
        if self.protocol and self.protocol.transport:
            self.protocol.transport.close()
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    async def _run(self) -> None:
        delay = self.endpoint.reconnect_min
        while not self._stopping:
            try:
                await self._session()
                delay = self.endpoint.reconnect_min       # a session that logged in resets backoff
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("AMI %s: %s", self.endpoint.id, exc)
            if self._stopping:
                break
            wait = delay * (0.8 + 0.4 * random.random())
            log.info("AMI %s: reconnecting in %.1f s", self.endpoint.id, wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, self.endpoint.reconnect_max)

    async def _session(self) -> None:
        ep = self.endpoint
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(lambda: _Protocol(self), ep.host, ep.port), ep.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise AmiError(f"cannot connect to {ep.host}:{ep.port}: {exc or 'timeout'}") from None
        self.protocol = protocol
        watchdog = None
        try:
            response = await self.action({"Action": "Login", "Username": ep.username, "Secret": ep.secret,
                                          "Events": "on"}, timeout=ep.connect_timeout)
            log.info("AMI %s: logged in to %s:%s (%s)", ep.id, ep.host, ep.port, protocol.framer.banner)
            del response
            self.logins += 1
            await self._resync()
            self.connected.set()
            watchdog = loop.create_task(self._watchdog())
            exc = await protocol.lost
            raise LinkDown(f"connection lost ({exc or 'closed by peer'})")
        finally:
            self.connected.clear()
            if watchdog:
                watchdog.cancel()
            if protocol.transport:
                protocol.transport.abort()
            self._fail_pending()
            if self.logins:
                self.sink(ep.id, [ev.LinkLost(ep.id, self.clock.now(), "disconnected")], self.clock.now())

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(self.endpoint.ping_interval)
            try:
                await self.action({"Action": "Ping"})
            except AmiError as exc:
                log.warning("AMI %s: ping failed (%s); dropping the link", self.endpoint.id, exc)
                if self.protocol and self.protocol.transport:
                    self.protocol.transport.abort()
                return

    async def _resync(self) -> None:
        """Read back live queue members and channels; hand them to the sink as one event."""
        at = self.clock.now()
        queue_status = await self.action({"Action": "QueueStatus"})
        channels = await self.action({"Action": "CoreShowChannels"})
        pbx = self.endpoint.id
        members = tuple(member_state(ev.MemberAdded, pbx, at, m) for m in queue_status
                        if m.get("Event") == "QueueMember")
        live = frozenset(m.get("Uniqueid", "") for m in channels if m.get("Event") == "CoreShowChannel")
        self.sink(pbx, [ev.Resynced(pbx, at, live, members)], at)

    # --- actions ------------------------------------------------------------------------------

    async def action(self, fields: dict[str, Any], timeout: float | None = None) -> Any:
        """Send an action; return its response, or the list of its events for list actions.
        Raises ActionFailed on an Error response, ActionTimeout, or LinkDown."""
        protocol = self.protocol
        if protocol is None or protocol.transport is None or protocol.transport.is_closing():
            raise LinkDown("not connected")
        action_id = f"cc-{next(self._ids)}"
        pending = self.pending[action_id] = _Pending(asyncio.get_running_loop().create_future())
        lines = [f"Action: {fields['Action']}", f"ActionID: {action_id}"]
        for key, value in fields.items():
            if key == "Action":
                continue
            for item in (value if isinstance(value, (list, tuple)) else [value]):
                lines.append(f"{key}: {item}")
        protocol.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
        try:
            return await asyncio.wait_for(pending.future, timeout or self.endpoint.action_timeout)
        except asyncio.TimeoutError:
            raise ActionTimeout(f"{fields['Action']}: no response within "
                                f"{timeout or self.endpoint.action_timeout} s") from None
        finally:
            self.pending.pop(action_id, None)

    async def originate(self, key: str, fields: dict[str, Any], timeout: float | None = None) -> Any:
        """Originate at most once per idempotency key, whatever happens to the link."""
        if key in self.originated:
            return await asyncio.shield(self.originated[key])
        future = self.originated[key] = asyncio.get_running_loop().create_future()
        try:
            result = await self.action({**fields, "Action": "Originate"}, timeout)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()          # mark retrieved
            raise
        future.set_result(result)
        return result

    def _answer(self, action_id: str, msg: Message) -> None:
        pending = self.pending[action_id]
        if pending.future.done():
            return
        if "Response" in msg:
            if msg["Response"] in ("Error", "Fail", "Failure"):
                pending.future.set_exception(ActionFailed(msg))
            elif msg.get("EventList", "").lower() == "start" or "will follow" in msg.get("Message", "").lower():
                pending.listing = True
            else:
                pending.future.set_result(msg)
            return
        if msg.get("EventList", "").lower() == "complete" or msg.get("Event", "").endswith("Complete"):
            pending.future.set_result(pending.events)
        else:
            pending.events.append(msg)

    def _fail_pending(self) -> None:
        for pending in self.pending.values():
            if not pending.future.done():
                pending.future.set_exception(LinkDown("link lost before the response; not re-sent"))
                pending.future.exception()
        self.pending.clear()
