"""`callcenter replay`: play recorded AMI traces through the real service over TCP.

A local AmiServer speaks the protocol (banner, Login, then the recorded messages stamped with
`Timestamp` = at + t); the very same Service that `serve` runs connects to it as to any PBX.
Files are played one after another, each starting one second after the previous one ended.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from .ami.client import Endpoint
from .ami.server import AmiServer, load_trace
from .bootstrap import build
from .clock import StreamClock
from .service import Service
from .settings import Settings

log = logging.getLogger(__name__)


@dataclass
class ReplaySummary:
    files: int
    events: int
    calls: int
    open_calls: int
    seconds: float


async def wait_for_stream(service: Service, server: AmiServer, client, timeout: float = 600) -> None:
    """Until the server has sent its whole stream and the service has committed all of it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    await asyncio.wait_for(server.done.wait(), timeout)
    while client.events_received < server.sent + server.logins:
        if loop.time() > deadline:
            raise TimeoutError("the service did not receive the whole stream")
        await asyncio.sleep(0.005)
    await service.settled(timeout=max(1.0, deadline - loop.time()))


async def replay(settings: Settings, db_url: str, files: list[str], at: datetime,
                 speed: float | None = None, pbx: str | None = None) -> ReplaySummary:
    app = build(settings, db_url, StreamClock(at))
    app.service.checkpointer.resume = False         # a trace is complete in itself: nothing to resume
    service = app.service
    pbx_id = pbx or (settings.pbxes[0].id if settings.pbxes else "pbx1")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await app.start()
    events = 0
    try:
        for path in files:
            trace = load_trace(path)
            server = AmiServer.from_trace(trace, at, speed=speed)
            port = await server.start()
            client = service.add_pbx(Endpoint(pbx_id, "127.0.0.1", port, "replay", "replay",
                                              connect_timeout=5, action_timeout=10, ping_interval=30,
                                              reconnect_min=0.05, reconnect_max=1))
            client.start()
            await wait_for_stream(service, server, client)
            await client.stop()
            del service.clients[pbx_id]
            await server.close()
            events += server.sent
            last = trace.messages[-1][0] if trace.messages else 0.0
            at = at + timedelta(seconds=last + 1)
        await app.after_commit.catch_up()      # every call's case and task before the summary
        open_calls = service.calls.open_calls
        if open_calls:
            log.warning("%d calls were still open when the stream ended", open_calls)
    finally:
        await app.stop()
    return ReplaySummary(len(files), events, service.calls_committed, open_calls, loop.time() - started)
