"""A fake PBX for restart and link-loss tests: a recorded trace played over real TCP on the
PBX's own clock, whether or not anyone is connected, writing the matching queue_log as it goes.

- The trace starts at the first login (or `begin()`), then goes on at `speed` times real time.
  Its messages are stamped `Timestamp = at + t`; a client that is connected receives them, one
  that is not misses them (the PBX state still has them: QueueStatus and CoreShowChannels answer
  from it, with QueueEntry waits and channel durations as Asterisk does).
- The trace's `.queue_log` lines are appended to `queue_log` when their moment passes, shifted
  to the same clock (`at`), as Asterisk writes its queue_log.
- `drop()` cuts every client's TCP connection from the PBX side.

Also the service as a real process (`serve`) and what it stored (`stored`: calls, tasks, cases).
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sys
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from callcenter.ami.server import AmiServer, load_trace, stamp
from callcenter.domain.records import CallRecord
from callcenter.storage import tables as t
from callcenter.storage.store import Store

CALLCENTER = str(Path(sys.executable).parent / "callcenter")
_UNIQUEID = re.compile(rb"\r\nUniqueid: ([^\r]+)\r\n")


def trace_base(trace, lines: list[str]) -> float:
    """The epoch of the trace's t = 0, from the callers' QueueCallerJoin and ENTERQUEUE lines:
    a queue_log time is the event's epoch cut to the second, so t0 >= E - t for every call."""
    joined = {}
    for t, raw in trace.messages:
        if raw.startswith(b"Event: QueueCallerJoin"):
            m = _UNIQUEID.search(raw)
            if m:
                joined.setdefault(m.group(1).decode(), t)
    bounds = [int(f[0]) - joined[f[1]] for f in (line.split("|") for line in lines)
              if len(f) > 4 and f[4] == "ENTERQUEUE" and f[1] in joined]
    if not bounds:
        stamps = [int(f.split("|")[0]) for f in lines if f.strip()]
        return float(min(stamps)) if stamps else 0.0
    return max(bounds) + 0.5


class FakePbx:
    def __init__(self, trace_path: Path, queue_log: Path, at: datetime, speed: float = 5.0):
        self.trace = load_trace(trace_path)
        src = trace_path.with_suffix(".queue_log")
        lines = [line for line in src.read_text().splitlines() if line.strip()] if src.exists() else []
        base = trace_base(self.trace, lines)
        self.at = at.timestamp()
        shift = round(self.at - base)
        self.lines = []                                   # (trace time, shifted line)
        for line in lines:
            f = line.split("|")
            self.lines.append((max(0.0, int(f[0]) - base + 0.5), "|".join([str(int(f[0]) + shift)] + f[1:])))
        self.lines.sort(key=lambda item: item[0])
        self.messages = [(t, stamp(raw, datetime.fromtimestamp(self.at + t, at.tzinfo)))
                         for t, raw in self.trace.messages]
        self.queue_log = queue_log
        self.speed = speed
        self.server = AmiServer(messages=[], banner=self.trace.banner, now=self.now)
        self.started = asyncio.Event()
        self.done = asyncio.Event()
        self.port = 0
        self._t0: float | None = None
        self._task: asyncio.Task | None = None
        self.end = max([t for t, _ in self.messages] + [t for t, _ in self.lines] + [0.0])

    @property
    def trace_time(self) -> float:
        if self._t0 is None:
            return 0.0
        return (asyncio.get_running_loop().time() - self._t0) * self.speed

    def now(self) -> float:
        return self.at + self.trace_time

    async def start(self) -> int:
        self.queue_log.touch()
        self.port = await self.server.start()
        self._task = asyncio.get_running_loop().create_task(self._play())
        return self.port

    def begin(self) -> None:
        if self._t0 is None:
            self._t0 = asyncio.get_running_loop().time()
            self.started.set()

    async def wait_until(self, trace_time: float) -> None:
        await self.started.wait()
        while self.trace_time < trace_time:
            await asyncio.sleep(0.01)

    async def drop(self) -> None:
        await self.server.drop_clients()

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.server.close()

    async def _play(self) -> None:
        while self._t0 is None:
            if self.server.logins:
                self.begin()
            await asyncio.sleep(0.005)
        loop = asyncio.get_running_loop()
        i = j = 0
        with open(self.queue_log, "a", encoding="utf-8") as out:
            while i < len(self.messages) or j < len(self.lines):
                next_t = min(self.messages[i][0] if i < len(self.messages) else float("inf"),
                             self.lines[j][0] if j < len(self.lines) else float("inf"))
                delay = self._t0 + next_t / self.speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                while j < len(self.lines) and self.lines[j][0] <= next_t:
                    out.write(self.lines[j][1] + "\n")
                    out.flush()
                    j += 1
                while i < len(self.messages) and self.messages[i][0] <= next_t:
                    self.server.emit(self.messages[i][1])
                    i += 1
        self.done.set()


def write_config(src: Path, dst: Path, port: int, queue_log: Path, web_port: int, **pbx) -> Path:
    """A configuration directory: the example's files, with one PBX at `port` reading `queue_log`."""
    import yaml
    dst.mkdir(parents=True, exist_ok=True)
    for path in src.glob("*.yaml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if path.name == "callcenter.yaml":
            data["pbxes"] = [{"id": "pbx1", "host": "127.0.0.1", "port": port, "username": "callcenter",
                              "secret": "ccsecret", "hotline_contexts": ["hotline"], "connect_timeout": 2,
                              "action_timeout": 2, "ping_interval": 1, "reconnect_min": 0.05,
                              "reconnect_max": 0.2, "queue_log": str(queue_log), "queue_log_poll": 0.1,
                              "queue_log_settle": 1.0, **pbx}]
            data.setdefault("web", {})["port"] = web_port
        (dst / path.name).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return dst


# --- the service as a real process, and what it stored ------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def stored(db_url: str) -> tuple[dict[str, CallRecord], set, set]:
    store = Store(db_url)
    try:
        calls = await store.calls_where(t.calls.c.pbx == "pbx1")
        async with store.engine.connect() as conn:
            tasks = {(r.department, r.caller_num, r.status) for r in
                     await conn.execute(select(t.tasks.c.department, t.tasks.c.caller_num, t.tasks.c.status))}
            cases = {(r.department, r.caller_num, r.owner) for r in
                     await conn.execute(select(t.cases.c.department, t.cases.c.caller_num, t.cases.c.owner))}
    finally:
        await store.close()
    return {c.id: c for c in calls}, tasks, cases


async def serve(config: Path, db_url: str, log: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return await asyncio.create_subprocess_exec(
        CALLCENTER, "serve", "--db", db_url, "--config", str(config), env=env, cwd=str(log.parent),
        stdout=asyncio.subprocess.DEVNULL, stderr=open(log, "ab"))


async def until(check, timeout: float, step: float = 0.2):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result or loop.time() > deadline:
            return result
        await asyncio.sleep(step)
