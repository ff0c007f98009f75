"""A small FastAGI server on asyncio streams: one task per connection, every wait bounded.

What panoramisk 1.4 gets wrong, and how this server avoids it:
- a client that sends half a header and closes (or stalls) must not hold anything: the header is
  read with `readline` under a deadline (`header_timeout`), an EOF before the blank line ends that
  session alone, and nothing blocks the event loop;
- plain (non-async) handlers work: they run in a worker thread with a blocking view of the channel
  (`channel.sync`); async handlers are awaited;
- every command's answer has a deadline (`command_timeout`), the whole session too
  (`session_timeout`); a hung-up channel (`HANGUP`, 511, `200 result=-1`, EOF) raises `Hangup`,
  which ends the handler cleanly; 520 usage texts are read to their end.

Routing: the request path (`agi://host/ivr?hotline=...` -> `ivr`) picks the handler; an unknown
path gets a VERBOSE and a HANGUP. One failing session is logged in one line (numbers masked) and
never touches the others.
"""
from __future__ import annotations

import asyncio
import inspect
import logging

from callcenter.domain.validation import mask_numbers
from . import agi_protocol as p

log = logging.getLogger(__name__)


# what Asterisk still carries out on a hung-up channel (the rest gets 511): facts after a hang-up
# (a UserEvent, a variable the dialplan's h extension reads) can still be sent
DEAD_OK = frozenset({"EXEC", "SET VARIABLE", "GET VARIABLE", "GET FULL VARIABLE", "VERBOSE", "NOOP"})


class AgiFailure(Exception):
    """The conversation cannot go on (timeout, broken framing, refused command)."""


class Hangup(Exception):
    """The caller hung up (HANGUP, 511, result=-1 or the connection closed)."""


class Channel:
    """One AGI session: the request, and commands that return an `Answer`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: p.Request,
                 command_timeout: float):
        self.reader, self.writer, self.request = reader, writer, request
        self.command_timeout = command_timeout
        self.hung_up = False
        self.sync = SyncChannel(self, asyncio.get_running_loop())

    async def command(self, name: str, *args, timeout: float | None = None, hangup_on_minus1: bool = True) -> p.Answer:
        """Send one command and read its answer. Raises Hangup once the channel is gone,
        UnsafeArgument (nothing sent) for a bad argument, AgiFailure on timeout or bad framing.
        `timeout`: for commands that wait for the caller (GET DATA), added to command_timeout."""
        data = p.encode(name, *args)
        if self.hung_up and name not in DEAD_OK:
            raise Hangup(f"{name} after hang-up")
        self.writer.write(data)
        limit = self.command_timeout + (timeout or 0.0)
        try:
            await asyncio.wait_for(self.writer.drain(), limit)
            answer = await asyncio.wait_for(self._answer(), limit)
        except asyncio.TimeoutError:
            if self.hung_up:
                raise Hangup(f"{name}: no answer after HANGUP") from None
            raise AgiFailure(f"{name}: no answer within {limit:.1f} s") from None
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            self.hung_up = True
            raise Hangup(f"{name}: connection closed ({type(exc).__name__})") from None
        if answer.code == 511:
            self.hung_up = True
            raise Hangup(f"{name}: 511 {answer.data}")
        if answer.code == 200 and answer.result == "-1" and hangup_on_minus1 and answer.data != "writefile":
            # -1 is a hang-up, or a failure on a live channel (a missing sound file gives
            # `200 result=-1 endpos=0`); Asterisk sends HANGUP only after the answer: ask it
            if self.hung_up or await self._dead():
                self.hung_up = True
                raise Hangup(f"{name}: result=-1")
            log.warning("AGI %s failed on a live channel (result=-1): %s", name, mask_numbers(" ".join(map(str, args)))[:120])
        return answer

    async def _dead(self) -> bool:
        """True when the channel is gone: CHANNEL STATUS answers 511 on a dead channel (or a HANGUP
        line or the end of the connection comes first)."""
        try:
            self.writer.write(p.encode("CHANNEL STATUS"))
            answer = await asyncio.wait_for(self._answer(), self.command_timeout)
        except (asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            return True
        return self.hung_up or answer.code == 511 or answer.result == "-1"

    async def _answer(self) -> p.Answer:
        while True:
            line = await self._line()
            if line.strip() == "HANGUP":            # the channel hung up; the answer still follows
                self.hung_up = True
                continue
            answer = p.parse_answer(line)
            if answer is None:
                raise AgiFailure(f"unexpected AGI line {mask_numbers(line[:80])!r}")
            if answer.code == 520 and line[3:4] == "-":
                usage = []
                while True:
                    more = await self._line()
                    if p.usage_ends(more) or len(usage) > p.MAX_HEADER_LINES:
                        break
                    usage.append(more.rstrip("\r\n"))
                return p.Answer(520, data=answer.data, lines=tuple(usage))
            return answer

    async def _line(self) -> str:
        raw = await self.reader.readline()
        if not raw.endswith(b"\n"):
            raise asyncio.IncompleteReadError(raw, None)
        return raw.decode("utf-8", "replace")

    # --- the commands the IVR uses ------------------------------------------------------------

    async def answer(self) -> p.Answer:
        return await self.command("ANSWER")

    async def stream_file(self, name: str, escape: str = "") -> str:
        """Play a prompt; the digit that interrupted it, or ""."""
        answer = await self.command("STREAM FILE", p.sound(name), escape)
        return _digit(answer.number())             # -1 on a live channel: not played (logged)

    async def get_data(self, name: str, timeout_ms: int, max_digits: int) -> tuple[str, bool]:
        """Play a prompt and collect digits: (digits, timed_out). `200 result=2`; on timeout
        `200 result= (timeout)` or the digits typed before it."""
        answer = await self.command("GET DATA", p.sound(name), int(timeout_ms), int(max_digits),
                                    timeout=timeout_ms / 1000.0 * (max_digits + 1) + 60.0)
        if answer.result == "-1":                   # the prompt could not be played (logged): no input
            return "", True
        return answer.result, answer.data == "timeout"

    async def record_file(self, name: str, fmt: str, escape: str, max_ms: int, silence_s: int = 3) -> p.Answer:
        """Record after a beep; without it when the beep cannot be played (no `beep` sound:
        `200 result=-1 (randomerror)` on a live channel). `result=-1 (writefile)`: not written.
        A hang-up while recording (`200 result=-1 (hangup) endpos=N`) keeps what was recorded:
        the answer is returned (the channel marked hung up) so the caller sees `endpos`."""
        args = (p.sound(name), p.sound(fmt), escape, int(max_ms))
        answer = await self._record(*args, "BEEP", f"s={int(silence_s)}", timeout=max_ms / 1000.0 + 10.0)
        if answer.result == "-1" and answer.data == "randomerror":
            answer = await self._record(*args, f"s={int(silence_s)}", timeout=max_ms / 1000.0 + 10.0)
        return answer

    async def _record(self, *args, timeout: float) -> p.Answer:
        answer = await self.command("RECORD FILE", *args, timeout=timeout, hangup_on_minus1=False)
        if answer.result == "-1" and answer.data == "randomerror" and await self._dead():
            self.hung_up = True
            raise Hangup("RECORD FILE: result=-1 (randomerror) on a dead channel")
        if answer.result == "-1" and answer.data not in ("writefile", "randomerror"):
            self.hung_up = True
            if answer.data != "hangup":
                raise Hangup(f"RECORD FILE: result=-1 ({answer.data})")
        return answer

    async def set_variable(self, name: str, value: str) -> None:
        await self.command("SET VARIABLE", name, value)

    async def get_variable(self, name: str) -> str | None:
        answer = await self.command("GET VARIABLE", name)
        return answer.data if answer.result == "1" else None

    async def exec(self, app: str, *options: str) -> p.Answer:
        return await self.command("EXEC", app, p.app_options(*options))

    async def verbose(self, text: str, level: int = 1) -> None:
        await self.command("VERBOSE", text, level)

    async def hangup(self) -> None:
        """Hang the caller up; an already gone channel is fine."""
        try:
            await self.command("HANGUP")
        except Hangup:
            pass
        self.hung_up = True


def _digit(result: int | None) -> str:
    return chr(result) if result and 32 < result < 127 else ""


class SyncChannel:
    """The channel for plain (non-async) handlers, which run in a worker thread: each method
    waits for the coroutine it runs on the server's loop."""

    def __init__(self, channel: Channel, loop: asyncio.AbstractEventLoop):
        self._channel, self._loop = channel, loop
        self.request = channel.request

    def __getattr__(self, name):
        target = getattr(self._channel, name)
        if not inspect.iscoroutinefunction(target):
            return target

        def call(*args, **kwargs):
            return asyncio.run_coroutine_threadsafe(target(*args, **kwargs), self._loop).result()
        return call


class FastAgiServer:
    """`routes`: script path -> handler(channel) (async, or plain: runs in a thread with
    `channel.sync`). Start with `await start()`; `port` is the bound port (0 picks one)."""

    def __init__(self, routes: dict, host: str = "127.0.0.1", port: int = 4573, header_timeout: float = 5.0,
                 command_timeout: float = 10.0, session_timeout: float = 600.0, max_sessions: int = 1000):
        self.routes = {k.strip("/"): v for k, v in routes.items()}
        self.host, self.port = host, port
        self.header_timeout, self.command_timeout = header_timeout, command_timeout
        self.session_timeout, self.max_sessions = session_timeout, max_sessions
        self.server: asyncio.base_events.Server | None = None
        self.sessions: set[asyncio.Task] = set()
        self.counts = {"sessions": 0, "completed": 0, "hangups": 0, "failed": 0, "bad_header": 0,
                       "unknown_script": 0, "refused": 0}

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, self.host, self.port, limit=p.MAX_LINE * 4)
        self.port = self.server.sockets[0].getsockname()[1]
        log.info("FastAGI server listening on %s:%d (%s)", self.host, self.port, ", ".join(sorted(self.routes)))

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.sessions):
            task.cancel()
        if self.sessions:
            await asyncio.wait(list(self.sessions), timeout=1.0)
        if self.server is not None:
            await asyncio.wait_for(self.server.wait_closed(), 1.0)
            self.server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self.sessions.add(task)
        try:
            if len(self.sessions) > self.max_sessions:
                self.counts["refused"] += 1
                log.warning("FastAGI: over %d sessions; connection refused", self.max_sessions)
                return
            await self._session(reader, writer)
        except asyncio.CancelledError:                 # stop(): ends quietly (3.11 logs a cancelled
            pass                                       # connection task as an error otherwise)
        finally:
            self.sessions.discard(task)
            writer.close()

    async def _session(self, reader, writer) -> None:
        self.counts["sessions"] += 1
        peer = writer.get_extra_info("peername")
        try:
            lines = await asyncio.wait_for(_header(reader), self.header_timeout)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, ConnectionError) as exc:
            self.counts["bad_header"] += 1
            log.warning("FastAGI from %s: no complete header (%s); closed", peer, type(exc).__name__)
            return
        channel = Channel(reader, writer, p.parse_env(lines), self.command_timeout)
        where = f"{channel.request.script} call {channel.request.uniqueid} from {channel.request.caller}"
        try:
            await asyncio.wait_for(self._run(channel), self.session_timeout)
            self.counts["completed"] += 1
        except Hangup as exc:
            self.counts["hangups"] += 1
            log.info("FastAGI %s: caller hung up (%s)", mask_numbers(where), mask_numbers(str(exc)))
        except asyncio.TimeoutError:
            self.counts["failed"] += 1
            log.warning("FastAGI %s: session over %.0f s; closed", mask_numbers(where), self.session_timeout)
        except Exception as exc:                       # one failing session never touches another
            self.counts["failed"] += 1
            log.warning("FastAGI %s failed: %s: %s", mask_numbers(where), type(exc).__name__,
                        mask_numbers(" ".join(str(exc).split()))[:300])

    async def _run(self, channel: Channel) -> None:
        handler = self.routes.get(channel.request.script)
        if handler is None:
            self.counts["unknown_script"] += 1
            log.warning("FastAGI: unknown script %r", channel.request.script[:60])
            await channel.verbose("unknown AGI script", 1)
            await channel.hangup()
            return
        if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(getattr(handler, "__call__", None)):
            result = handler(channel)
        else:                                          # a plain function: a thread, blocking calls
            result = await asyncio.to_thread(handler, channel.sync)
        if inspect.isawaitable(result):
            await result


async def _header(reader: asyncio.StreamReader) -> list[str]:
    """The agi_ lines up to the blank line; IncompleteReadError at EOF before it."""
    lines: list[str] = []
    while True:
        raw = await reader.readline()
        if not raw.endswith(b"\n"):
            raise asyncio.IncompleteReadError(raw, None)
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            return lines
        if len(lines) >= p.MAX_HEADER_LINES:
            raise ValueError("header too long")
        lines.append(line)
