"""A small AMI server: plays a recorded or simulated PBX over real TCP.

It sends the banner, accepts Login, answers Ping, QueueStatus (members, and callers waiting as
QueueEntry with their Wait) and CoreShowChannels (with Duration and BridgeId), from state
the owner supplies or the stream so far implies, records every action it receives (tests assert
on them) and streams messages: a recorded list (``replay``: shared cursor, so a reconnecting client continues where the stream
was cut) and live messages pushed with ``emit`` (the demo simulator).
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

from .framing import Framer

log = logging.getLogger(__name__)
BANNER = "Asterisk Call Manager/13.0.0"


@dataclass
class Trace:
    banner: str
    messages: list[tuple[float, bytes]]           # (seconds since login, raw message bytes)


def load_trace(path: str | Path) -> Trace:
    """Read a ``NAME.jsonl`` AMI trace (line 1: banner, then {"t", "raw"} per message)."""
    banner, messages = BANNER, []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not JSON: {exc}") from None
            if "banner" in item:
                banner = item["banner"]
            elif "raw" in item:
                messages.append((float(item.get("t", 0)), item["raw"].encode("utf-8")))
    return Trace(banner, messages)


def stamp(raw: bytes, at: datetime) -> bytes:
    """Set the message's Timestamp header (as Asterisk does with timestampevents = yes)."""
    lines = [line for line in raw.split(b"\r\n") if not line.startswith(b"Timestamp: ")]
    lines.insert(min(2, len(lines)), b"Timestamp: %.6f" % at.timestamp())
    return b"\r\n".join(lines)


def format_message(fields: dict[str, object]) -> bytes:
    out = []
    for key, value in fields.items():
        for item in (value if isinstance(value, (list, tuple)) else [value]):
            out.append(f"{key}: {item}")
    return ("\r\n".join(out) + "\r\n\r\n").encode("utf-8")


_TRACKED = (b"Event: Newchannel", b"Event: Hangup", b"Event: QueueMember", b"Event: QueueCaller",
            b"Event: Newexten", b"Event: BridgeEnter", b"Event: BridgeLeave")


def _hms(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class PbxState:
    """What a real PBX would answer to CoreShowChannels and QueueStatus, derived from the
    messages sent so far: live channels (Duration, BridgeId; BridgedDuration if asked), queue members with
    their pause state, and callers waiting in queues (QueueEntry with Wait). "Now" is the latest
    event Timestamp seen, or what `now` returns (epoch seconds)."""

    def __init__(self, now: Callable[[], float] | None = None, bridged_duration: bool = False):
        self.channels: dict[str, dict] = {}
        self.members: dict[tuple[str, str], dict] = {}
        self.entries: dict[str, dict] = {}                  # caller uniqueid -> waiting caller
        self.created: dict[str, float] = {}                 # uniqueid -> epoch
        self.bridged: dict[str, float] = {}
        self.last = 0.0
        self._now = now
        self.bridged_duration = bridged_duration           # the lab's Asterisk sends BridgeId only
        self._framer = Framer(expect_banner=False)

    def now(self) -> float:
        return self._now() if self._now is not None else self.last

    def observe(self, raw: bytes) -> None:
        if not raw.startswith(_TRACKED):
            return
        m = self._framer.parse(raw.rstrip(b"\r\n"))
        if m is None:
            return
        name = m.get("Event")
        try:
            at = float(m.get("Timestamp") or 0) or self.now()
        except ValueError:
            at = self.now()
        self.last = max(self.last, at)
        uid = m.get("Uniqueid", "")
        if name == "Newchannel":
            self.created[uid] = at
            self.channels[uid] = {
                "Event": "CoreShowChannel", "Channel": m.get("Channel", ""), "Uniqueid": uid,
                "Linkedid": m.get("Linkedid", ""), "Context": m.get("Context", ""),
                "Extension": m.get("Exten", ""), "CallerIDNum": m.get("CallerIDNum", ""),
                "CallerIDName": m.get("CallerIDName", ""), "Application": "", "ApplicationData": "",
                "BridgeId": ""}
        elif name == "Hangup":
            self.channels.pop(uid, None)
            self.created.pop(uid, None)
            self.bridged.pop(uid, None)
            self.entries.pop(uid, None)
        elif name == "Newexten" and uid in self.channels:
            self.channels[uid].update({"Context": m.get("Context", ""), "Extension": m.get("Extension") or
                                       m.get("Exten", ""), "Application": m.get("Application", ""),
                                       "ApplicationData": m.get("AppData", "")})
        elif name == "BridgeEnter" and uid in self.channels:
            self.bridged[uid] = at
            self.channels[uid]["BridgeId"] = m.get("BridgeUniqueid", "")
        elif name == "BridgeLeave" and uid in self.channels:
            self.bridged.pop(uid, None)
            self.channels[uid]["BridgeId"] = ""
        elif name == "QueueCallerJoin":
            self.entries[uid] = {"Event": "QueueEntry", "Queue": m.get("Queue", ""), "Position": m.get("Position", "1"),
                                 "Channel": m.get("Channel", ""), "Uniqueid": uid,
                                 "CallerIDNum": m.get("CallerIDNum", ""), "CallerIDName": m.get("CallerIDName", ""),
                                 "ConnectedLineNum": m.get("ConnectedLineNum", ""),
                                 "ConnectedLineName": m.get("ConnectedLineName", ""), "joined": at}
        elif name in ("QueueCallerLeave", "QueueCallerAbandon"):
            self.entries.pop(uid, None)
        elif name == "QueueMemberRemoved":
            self.members.pop((m.get("Queue", ""), m.get("Interface", "")), None)
        elif name in ("QueueMemberAdded", "QueueMemberStatus", "QueueMemberPause", "QueueMemberPaused"):
            self.members[(m.get("Queue", ""), m.get("Interface", ""))] = {
                "Event": "QueueMember", "Queue": m.get("Queue", ""), "Name": m.get("MemberName", ""),
                "Location": m.get("Interface", ""), "StateInterface": m.get("StateInterface", ""),
                "Membership": m.get("Membership", "dynamic"), "Penalty": m.get("Penalty", "0"),
                "CallsTaken": m.get("CallsTaken", "0"), "Status": m.get("Status", "0"),
                "Paused": m.get("Paused", "0"), "PausedReason": m.get("PausedReason", ""),
                "InCall": m.get("InCall", "0")}

    def channel_list(self) -> list[dict]:
        now = self.now()
        out = []
        for uid, channel in self.channels.items():
            item = {**channel, "Duration": _hms(now - self.created.get(uid, now))}
            if uid in self.bridged and self.bridged_duration:
                item["BridgedDuration"] = _hms(now - self.bridged[uid])
            out.append(item)
        return out

    def member_list(self) -> list[dict]:
        return list(self.members.values())

    def entry_list(self) -> list[dict]:
        """Callers waiting, as Asterisk's QueueStatus lists them after the members (QueueEntry)."""
        now = self.now()
        positions: dict[str, int] = {}
        out = []
        for entry in sorted(self.entries.values(), key=lambda e: e["joined"]):
            positions[entry["Queue"]] = positions.get(entry["Queue"], 0) + 1
            item = {k: v for k, v in entry.items() if k != "joined"}
            item["Position"] = str(positions[entry["Queue"]])
            item.update({"Wait": str(max(0, int(now - entry["joined"]))), "Priority": "0"})
            out.append(item)
        return out


@dataclass(eq=False)
class _Conn:
    writer: asyncio.StreamWriter
    logged_in: bool = False


@dataclass
class AmiServer:
    messages: list[bytes] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    banner: str = BANNER
    speed: float | None = None                    # None: as fast as possible
    username: str | None = None                   # None: accept any login
    secret: str | None = None
    cut_after: int | None = None                  # drop the client once after N messages (tests)
    missed_after_cut: int = 0                     # the next N messages happen during that outage:
                                                  # the PBX state has them, no client ever gets them
    channels: Callable[[], list[dict]] | None = None   # default: derived from what was sent
    members: Callable[[], list[dict]] | None = None
    on_action: Callable[[dict], list[dict] | None] | None = None   # replies; None: default, []: silence
    now: Callable[[], float] | None = None        # epoch "now" for Wait/Duration; default: the stream's latest Timestamp

    def __post_init__(self):
        self.cursor = 0
        self.sent = 0
        self.missed_count = 0
        self.actions: list[dict] = []
        self.logins = 0
        self.done = asyncio.Event()
        self._conns: set[_Conn] = set()
        self._server: asyncio.AbstractServer | None = None
        self._streaming: asyncio.Lock = asyncio.Lock()
        self.state = PbxState(self.now)
        self.channels = self.channels or self.state.channel_list
        self.members = self.members or self.state.member_list
        if not self.messages:
            self.done.set()

    @classmethod
    def from_trace(cls, trace: Trace, at: datetime, **kwargs) -> "AmiServer":
        messages = [stamp(raw, at + timedelta(seconds=t)) for t, raw in trace.messages]
        return cls(messages=messages, times=[t for t, _ in trace.messages], banner=trace.banner, **kwargs)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        await self.drop_clients()
        if self._server:
            self._server.close()
            await self._server.wait_closed()

    async def drop_clients(self) -> None:
        for conn in list(self._conns):
            conn.writer.transport.abort()
        self._conns.clear()

    def emit(self, fields_or_raw: dict | bytes) -> None:
        """Send one live message to every logged-in client."""
        raw = fields_or_raw if isinstance(fields_or_raw, bytes) else format_message(fields_or_raw)
        self.state.observe(raw)
        for conn in list(self._conns):
            if conn.logged_in and not conn.writer.is_closing():
                conn.writer.write(raw)

    # --- one client ---------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(writer)
        self._conns.add(conn)
        framer = Framer(expect_banner=False, kinds=("Action",))
        writer.write(f"{self.banner}\r\n".encode())
        stream: asyncio.Task | None = None
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for action in framer.feed(data):
                    self.actions.append(action)
                    if self._respond(conn, action) and stream is None:
                        stream = asyncio.get_running_loop().create_task(self._stream(conn))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._conns.discard(conn)
            if stream:
                stream.cancel()
            writer.transport.abort()

    def _respond(self, conn: _Conn, action: dict) -> bool:
        """Answer one action; True when it was a successful Login."""
        name = action.get("Action", "").lower()
        base = {"ActionID": action["ActionID"]} if "ActionID" in action else {}
        w = conn.writer
        if name == "login":
            if self.username is not None and (action.get("Username") != self.username
                                              or action.get("Secret") != self.secret):
                w.write(format_message({"Response": "Error", **base, "Message": "Authentication failed"}))
                return False
            conn.logged_in = True
            self.logins += 1
            w.write(format_message({"Response": "Success", **base, "Message": "Authentication accepted"}))
            w.write(format_message({"Event": "FullyBooted", "Privilege": "system,all", "Status": "Fully Booted"}))
            return True
        if not conn.logged_in:
            w.write(format_message({"Response": "Error", **base, "Message": "Permission denied"}))
            return False
        if name == "ping":
            w.write(format_message({"Response": "Success", **base, "Ping": "Pong", "Timestamp": "0"}))
        elif name in ("queuestatus", "coreshowchannels"):
            items = self.members() + self.state.entry_list() if name == "queuestatus" else self.channels()
            done = "QueueStatusComplete" if name == "queuestatus" else "CoreShowChannelsComplete"
            w.write(format_message({"Response": "Success", **base, "EventList": "start",
                                    "Message": "List will follow"}))
            for item in items:
                w.write(format_message({**item, **base}))
            stamp_now = {"Timestamp": "%.6f" % self.state.now()} if self.state.now() else {}
            w.write(format_message({"Event": done, **base, "EventList": "Complete",
                                    "ListItems": len(items), **stamp_now}))
        elif name == "logoff":
            w.write(format_message({"Response": "Goodbye", **base, "Message": "Thanks for all the fish."}))
        else:
            replies = self.on_action(action) if self.on_action else None
            if replies is None:
                replies = [{"Response": "Success", "Message": f"{action.get('Action')} accepted"}]
            for reply in replies:
                w.write(format_message({**reply, **base} if "Response" in reply else reply))
        return False

    async def _stream(self, conn: _Conn) -> None:
        async with self._streaming:
            w = conn.writer
            start_t = self.times[self.cursor] if self.times and self.cursor < len(self.times) else 0.0
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            chunk: list[bytes] = []
            size = 0
            while self.cursor < len(self.messages):
                if self.cut_after is not None and self.sent >= self.cut_after:
                    # everything counted as sent reaches the client; then the link is cut
                    self.cut_after = None
                    if chunk:
                        w.write(b"".join(chunk))
                    await w.drain()
                    while w.transport.get_write_buffer_size() and not w.transport.is_closing():
                        await asyncio.sleep(0.001)
                    w.transport.abort()
                    for raw in self.messages[self.cursor:self.cursor + self.missed_after_cut]:
                        self.state.observe(raw)         # what happens while nobody listens
                        self.cursor += 1
                        self.missed_count += 1
                    return
                if self.speed:
                    due = (self.times[self.cursor] - start_t) / self.speed
                    delay = due - (loop.time() - t0)
                    if delay > 0:
                        if chunk:
                            w.write(b"".join(chunk))
                            chunk, size = [], 0
                        await asyncio.sleep(delay)
                raw = self.messages[self.cursor]
                self.state.observe(raw)
                chunk.append(raw)
                size += len(raw)
                self.cursor += 1
                self.sent += 1
                if size > 256 * 1024:
                    w.write(b"".join(chunk))
                    chunk, size = [], 0
                    await w.drain()
            if chunk:
                w.write(b"".join(chunk))
            await w.drain()
            self.done.set()
