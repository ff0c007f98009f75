"""The Asterisk side of one FastAGI conversation: the simulated PBX running `AGI(agi://...)`.

`AgiCall` connects to the service's FastAGI server over TCP, sends the agi_ environment the way
Asterisk does (see shared/ami-traces/fastagi-ivr-dtmf.jsonl: agi_network_script, agi_uniqueid of
the caller's channel, agi_callerid, ...), then answers every command as Asterisk answers it:

    ANSWER                      200 result=0
    STREAM FILE f ""            200 result=0 endpos=N           (after the prompt's length)
    GET DATA f ms n             200 result=<keys> | 200 result= (timeout)
    RECORD FILE ...             200 result=35 (dtmf) endpos=N   (the caller pressed #)
    SET VARIABLE k v            200 result=1                    (kept: the dialplan reads them)
    EXEC UserEvent Name,K: v    200 result=0                    (and the UserEvent on the AMI stream)
    HANGUP                      200 result=1                    (the channel hangs up)
    CHANNEL STATUS              200 result=6, or 511 on a dead channel

When the channel hangs up (the caller, or the end of the demo) the next answer is preceded by the
`HANGUP` line, waiting commands answer `result=-1`, and the commands Asterisk refuses on a dead
channel answer 511. What the caller does and how long things take is the simulator's
(`dialplan.GeneratedDialplan`): the conversation waits on the simulator's timers (`sim.agi_pause`),
so simulated time and the TCP conversation stay in step. `run()` returns Asterisk's AGISTATUS
(SUCCESS, HANGUP, FAILURE) and the variables the script set.
"""
from __future__ import annotations

import asyncio
import logging
import os

log = logging.getLogger(__name__)

READ_SECONDS = 30.0            # the FastAGI server's next command (Asterisk waits as long as the script runs)
CONNECT_SECONDS = 5.0
DEAD = "511 Command Not Permitted on a dead channel or intercept routine"
# what Asterisk still carries out on a hung-up channel (res_agi's commands marked "dead")
DEAD_OK = frozenset({"EXEC", "SET VARIABLE", "GET VARIABLE", "GET FULL VARIABLE", "VERBOSE", "NOOP", "HANGUP"})
SAMPLES = 8000                 # endpos: samples at 8 kHz


def parse_args(line: str) -> list[str]:
    """An AGI command split as res_agi.c's parse_args splits it (quotes, backslash escapes)."""
    argv: list[str] = []
    quoted = escaped = False
    whitespace = True
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and whitespace:
                argv.append("")
                whitespace = False
            continue
        if ch in " \t" and not quoted and not escaped:
            whitespace = True
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if whitespace:
            argv.append("")
            whitespace = False
        argv[-1] += ch
        escaped = False
    return argv


def user_event(options: str) -> tuple[str, dict[str, str]]:
    """`Name,Key: value,...` (UserEvent's arguments) -> (name, headers)."""
    name, *parts = options.split(",")
    fields = {}
    for part in parts:
        key, sep, value = part.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return name.strip(), fields


class AgiCall:
    """One AGI() run on a call's caller channel (`call.two`)."""

    def __init__(self, sim, call, host: str, port: int, script: str, priority: int):
        self.sim, self.call, self.host, self.port = sim, call, host, port
        self.script, self.priority = script, priority
        self.dead = False
        self.hangup_told = False
        self.variables: dict[str, str] = {}
        self.commands = 0
        self._waiting: asyncio.Future | None = None

    # --- the channel, as the simulator sees it --------------------------------------------------

    def gone(self) -> None:
        """The channel hung up: whatever the conversation waits for ends now."""
        self.dead = True
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_result(False)

    async def pause(self, seconds: float) -> bool:
        """Let `seconds` of simulated time pass; False when the channel hung up meanwhile."""
        if self.dead:
            return False
        future = asyncio.get_running_loop().create_future()
        self._waiting = future
        self.sim.agi_pause(seconds, future)
        try:
            return await future
        finally:
            self._waiting = None

    # --- the conversation -----------------------------------------------------------------------

    def header(self) -> bytes:
        leg, call = self.call.two, self.call
        number, name = leg.cid
        env = [("network", "yes"), ("network_script", self.script),
               ("request", f"agi://{self.host}:{self.port}/{self.script}"), ("channel", leg.channel),
               ("language", "en"), ("type", "Local"), ("uniqueid", leg.uniqueid), ("version", "20.5.0"),
               ("callerid", number if number != "<unknown>" else "unknown"),
               ("calleridname", name if name != "<unknown>" else "unknown"),
               ("callingpres", "33" if number == "anonymous" else "0"), ("callingani2", "0"),
               ("callington", "0"), ("callingtns", "0"), ("dnid", "unknown"), ("rdnis", "unknown"),
               ("context", leg.context), ("extension", call.two.exten), ("priority", str(self.priority)),
               ("enhanced", "0.0"), ("accountcode", ""), ("threadid", str(os.getpid()))]
        return "".join(f"agi_{k}: {v}\n" for k, v in env).encode("utf-8") + b"\n"

    async def run(self) -> tuple[str, dict[str, str]]:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), CONNECT_SECONDS)
        except (OSError, asyncio.TimeoutError) as exc:
            log.warning("AGI %s: cannot reach the FastAGI server (%s)", self.script.split("?")[0], type(exc).__name__)
            return "FAILURE", {}
        status = "SUCCESS"
        try:
            writer.write(self.header())
            await writer.drain()
            while True:
                raw = await asyncio.wait_for(reader.readline(), READ_SECONDS)
                if not raw.endswith(b"\n"):
                    break                              # the script ended: the server closed the connection
                self.commands += 1
                lines = await self.answer(raw.decode("utf-8", "replace").rstrip("\r\n"))
                writer.write("".join(line + "\n" for line in lines).encode("utf-8"))
                await writer.drain()
        except (ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
            log.warning("AGI %s on %s ended: %s", self.script.split("?")[0], self.call.two.uniqueid,
                        type(exc).__name__)
            status = "FAILURE"
        finally:
            writer.close()
        return ("HANGUP" if self.dead else status), self.variables

    async def answer(self, command: str) -> list[str]:
        args = parse_args(command)
        verb = " ".join(args[:2]).upper() if len(args) > 1 and args[0].upper() in (
            "STREAM", "GET", "RECORD", "SET", "CHANNEL") else (args[0].upper() if args else "")
        if verb == "GET FULL":
            verb = "GET FULL VARIABLE"
        if self.dead and verb not in DEAD_OK:
            return self._told([DEAD])
        sim, call = self.sim, self.call
        if verb == "ANSWER":
            return ["200 result=0"]
        if verb == "STREAM FILE":
            seconds = sim.agi_prompt_seconds()
            if not await self.pause(seconds):
                return self._told(["200 result=-1 endpos=0"])
            return [f"200 result=0 endpos={int(seconds * SAMPLES)}"]
        if verb == "GET DATA":
            prompt = args[2] if len(args) > 2 else ""
            delay, keys = sim.agi_caller_keys(call, prompt)
            if not await self.pause(delay):
                return self._told(["200 result=-1"])
            if keys is None:                            # the caller hangs up instead
                sim.agi_caller_hangs_up(call)
                return self._told(["200 result=-1"])
            return [f"200 result={keys}" if keys else "200 result= (timeout)"]
        if verb == "RECORD FILE":
            seconds = sim.agi_message_seconds()
            if not await self.pause(seconds):
                return self._told([f"200 result=-1 (hangup) endpos={int(seconds * SAMPLES / 2)}"])
            return [f"200 result=35 (dtmf) endpos={int(seconds * SAMPLES)}"]
        if verb == "SET VARIABLE" and len(args) > 3:
            self.variables[args[2]] = args[3]
            return ["200 result=1"]
        if verb in ("GET VARIABLE", "GET FULL VARIABLE"):
            name = args[-1] if len(args) > 2 else ""
            value = self.variables.get(name) or (call.two.cid[0] if name == "CALLERID(num)" else None)
            return self._told([f"200 result=1 ({value})" if value is not None else "200 result=0"])
        if verb == "EXEC":
            if len(args) > 1 and args[1].lower() == "userevent":
                name, fields = user_event(args[2] if len(args) > 2 else "")
                sim.agi_user_event(call, name, fields)
            return self._told(["200 result=0"])
        if verb == "HANGUP":
            if not self.dead:
                sim.agi_hangs_up(call)
            return ["200 result=1"]
        if verb == "CHANNEL STATUS":
            return ["200 result=6"]
        if verb == "VERBOSE":
            return self._told(["200 result=1"])
        if verb == "NOOP":
            return self._told(["200 result=0"])
        return ["510 Invalid or unknown command"]

    def _told(self, lines: list[str]) -> list[str]:
        """On a hung-up channel Asterisk sends `HANGUP` once, before the next answer."""
        if self.dead and not self.hangup_told:
            self.hangup_told = True
            return ["HANGUP"] + lines
        return lines
