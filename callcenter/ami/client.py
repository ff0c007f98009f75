"""One AMI connection, kept alive.

- Bytes are framed by ``Framer`` (multi-byte characters survive any TCP chunking).
- Every event goes to one sink in arrival order; nothing user-supplied runs in the protocol, so a
  failing handler downstream cannot drop the connection or the rest of the stream.
- Connect has a timeout; reconnects back off exponentially; a Ping watchdog detects a dead link.
- Every action is checked before a byte is written (``framing.encode_action``): a control
  character, an odd field name or an over-long value raises ``UnsafeAction``, the link untouched.
- Every action has a timeout. Actions in flight when the link drops fail with ``LinkDown`` and
  are never re-sent: ``originate`` additionally remembers its idempotency key, so a callback is
  dialled at most once whatever happens to the link.
- After every login the live state is read back (QueueStatus: members and the callers waiting
  with their wait; CoreShowChannels: channels with their durations) and handed to
  the sink as a ``Resynced`` event, so the domain can reconcile calls that vanished meanwhile. The
  event takes its place in the stream where the snapshot was taken: events received before the
  CoreShowChannels list ended come before it, later ones after it (callcenter/ami/resync.py).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from ..aio import cancel_and_wait
from ..clock import SystemClock
from ..domain import events as ev
from .framing import Framer, UnsafeField, encode_action
from .resync import resync
from .translate import TRANSLATORS, event_time

log = logging.getLogger(__name__)
Message = dict[str, str]
Sink = Callable[[str, list, datetime], None]


class AmiError(Exception):
    pass


class LinkDown(AmiError):
    pass


class NotSent(LinkDown):
    """The link was down before the action was written: the PBX never saw it."""


class ActionTimeout(AmiError):
    pass


class UnsafeAction(AmiError):
    """An action field that could not be written as one AMI header line (a CR, LF, NUL or other
    control character, an odd field name, an over-long value): refused before a byte is written,
    the link untouched. Defence in depth behind the services' own validation."""

    def __init__(self, key: object, problem: str):
        super().__init__(f"AMI action field {str(key)[:64]!r}: {problem}; not sent")
        self.key = key
        self.problem = problem


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
    # for list actions: called in stream order with the list and its receive time when the list
    # completes; what it returns (unless None) goes to the sink right there in the stream
    on_complete: Callable[[list[Message], datetime], Any] | None = None


class _Protocol(asyncio.Protocol):
    def __init__(self, client: "AmiClient"):
        self.client = client
        # events no translator reads are cut out unparsed (counted as received, never handed on)
        self.framer = Framer(events=frozenset(TRANSLATORS) | {"FullyBooted"})
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        client = self.client
        received = client.clock.now()
        batch: list = []
        skipped = self.framer.skipped
        messages = self.framer.feed(data)
        events = self.framer.skipped - skipped
        for msg in messages:
            action_id = msg.get("ActionID")
            if action_id is not None and action_id in client.pending:
                batch.extend(client._answer(action_id, msg, received))
            elif "Event" in msg:             # incl. late events of answered actions (OriginateResponse)
                batch.append(msg)
                events += 1
        client.events_received += events
        if batch:
            client._deliver(batch, received)

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
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        delay = self.endpoint.reconnect_min
        while not self._stopping:
            logins = self.logins
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("AMI %s: %s", self.endpoint.id, exc)
            if self.logins > logins:
                delay = self.endpoint.reconnect_min       # a session that logged in resets backoff
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
        logged_in = False
        try:
            response = await self.action({"Action": "Login", "Username": ep.username, "Secret": ep.secret,
                                          "Events": "on"}, timeout=ep.connect_timeout)
            log.info("AMI %s: logged in to %s:%s (%s)", ep.id, ep.host, ep.port, protocol.framer.banner)
            del response
            self.logins += 1
            logged_in = True
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
            if logged_in:
                self._deliver([ev.LinkLost(ep.id, self.clock.now(), "disconnected")], self.clock.now())

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
        """Read back the live state after a login (callcenter/ami/resync.py)."""
        await resync(self)

    # --- actions ------------------------------------------------------------------------------

    async def action(self, fields: dict[str, Any], timeout: float | None = None,
                     on_complete: Callable[[list[Message], datetime], Any] | None = None) -> Any:
        """Send an action; return its response, or the list of its events for list actions.
        Raises ActionFailed on an Error response, ActionTimeout, LinkDown (NotSent when
        the link was down before anything was written), or UnsafeAction (nothing written)."""
        action_id = str(fields.get("ActionID") or f"cc-{next(self._ids)}")
        try:
            data = encode_action(fields, action_id)    # refused before anything else happens
        except UnsafeField as exc:
            raise UnsafeAction(exc.key, exc.problem) from None
        protocol = self.protocol
        if protocol is None or protocol.transport is None or protocol.transport.is_closing():
            raise NotSent("not connected")
        if action_id in self.pending:
            raise AmiError(f"action id {action_id!r} is already in flight")
        pending = self.pending[action_id] = _Pending(asyncio.get_running_loop().create_future(),
                                                     on_complete=on_complete)
        protocol.transport.write(data)
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
            # the key is the ActionID: the PBX's OriginateResponse names the attempt
            result = await self.action({**fields, "Action": "Originate", "ActionID": key}, timeout)
        except (NotSent, UnsafeAction) as exc:
            del self.originated[key]        # the PBX never saw it: a later try may send it
            future.set_exception(exc)
            future.exception()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()          # mark retrieved
            raise
        future.set_result(result)
        return result

    def _answer(self, action_id: str, msg: Message, received: datetime) -> list:
        """Feed one message of a pending action; returns what goes to the sink at this point."""
        pending = self.pending[action_id]
        out = []
        if "Response" in msg:
            if msg["Response"] in ("Error", "Fail", "Failure"):
                pending.future.set_exception(ActionFailed(msg))
            elif msg.get("EventList", "").lower() == "start" or "will follow" in msg.get("Message", "").lower():
                pending.listing = True
            else:
                pending.future.set_result(msg)
        elif msg.get("EventList", "").lower() == "complete" or msg.get("Event", "").endswith("Complete"):
            pending.future.set_result(pending.events)
            if pending.on_complete is not None:
                try:
                    # the PBX's clock when it has one (timestampevents): the snapshot's moment
                    item = pending.on_complete(pending.events, event_time(msg, received))
                except Exception:
                    log.exception("AMI %s: handling the %s list failed", self.endpoint.id, action_id)
                    item = None
                if item is not None:
                    out.append(item)
        else:
            pending.events.append(msg)
        if pending.future.done():
            # answered: later messages with this ActionID (an async Originate's OriginateResponse)
            # are ordinary events
            del self.pending[action_id]
        return out

    def _deliver(self, items: list, received: datetime) -> None:
        try:
            self.sink(self.endpoint.id, items, received)
        except Exception:               # the sink is not ours: never let it break the protocol
            log.exception("AMI %s: the sink failed on %d items", self.endpoint.id, len(items))

    def _fail_pending(self) -> None:
        for pending in self.pending.values():
            if not pending.future.done():
                pending.future.set_exception(LinkDown("link lost before the response; not re-sent"))
                pending.future.exception()
        self.pending.clear()
