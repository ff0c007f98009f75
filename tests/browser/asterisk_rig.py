"""The real Asterisk of ../shared/asterisk ($CALLCENTER_ASTERISK) under the browser tests: started
in its own directory on a free AMI port (the test skips when the bundle is absent or cannot start),
the whole service built in-process on it (SQLite, the example configuration with its one PBX at that
port, the web server on a free port), and a second AMI client, the "driver", that plays the citizen
and the agent's phone (Originate, DBPut) and reads the PBX's own queue state back (QueueStatus).

The service's clock runs from a Sunday evening: coverage hours are closed, so the A/B guard refuses
nothing and the coverage worker sends no actions of its own; every queue action the PBX sees comes
from the panel."""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path


from callcenter.ami.client import AmiClient, Endpoint
from callcenter.bootstrap import build
from callcenter.settings import load_settings
from callcenter.web.app import WebServer
from tests.browser.conftest import Rig, RunningClock
from tests.asterisk import start_asterisk, stop_asterisk  # noqa: F401  (re-exported for the test)
from tests.conftest import ROOT, SHANGHAI
from tests.fakepbx import free_port, write_config

SUNDAY_EVENING = datetime(2026, 11, 29, 20, 0, tzinfo=SHANGHAI)   # closed: no guard, no coverage actions


class PbxRig(Rig):
    """`Rig` (user, base) on the real Asterisk, with the driver's actions."""

    def __init__(self, app, web: WebServer, driver: AmiClient):
        super().__init__(app, None, web)
        self.driver = driver

    async def members(self, queue: str) -> dict[str, dict]:
        """The PBX's own members of `queue` (QueueStatus QueueMember events), by interface."""
        messages = await self.driver.action({"Action": "QueueStatus", "Queue": queue})
        return {m.get("Location") or m.get("Interface"): dict(m) for m in messages
                if isinstance(m, dict) and m.get("Event") == "QueueMember"}

    async def member_until(self, queue: str, interface: str, check, timeout: float = 5.0) -> dict | None:
        """Polls QueueStatus until `check(member or None)` holds; answers the last member seen
        (None: not a member); the caller asserts on it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            member = (await self.members(queue)).get(interface)
            if check(member) or loop.time() > deadline:
                return member
            await asyncio.sleep(0.1)

    async def agent_phone(self, agent: str, ring: int, talk: int) -> None:
        """The lab dialplan's simulated phone ([agents]): rings `ring` s, answers, talks `talk` s."""
        for key, value in (("ring", ring), ("talk", talk)):
            await self.driver.action({"Action": "DBPut", "Family": "agent", "Key": f"{agent}/{key}", "Val": str(value)})

    async def call(self, hotline: str, queue: str, number: str, patience: int = 30) -> None:
        """A citizen calls the hotline (README "Driving it") and waits up to `patience` s."""
        await self.driver.action({"Action": "Originate", "Channel": f"Local/{hotline}@hotline",
                                  "Application": "Wait", "Data": str(patience),
                                  "CallerID": f'"Caller {number}" <{number}>', "Async": "true",
                                  "Variable": [f"__QNAME={queue}", "__QTIMEOUT=60", "__CHOICE=1", "__IVRWAIT=0"]})


@asynccontextmanager
async def service_on_asterisk(tmp_path: Path, db_url: str):
    """A real Asterisk, the service on it (in-process) and the driver: a `PbxRig`."""
    pbx_dir = tmp_path / "pbx"
    port, queue_log = start_asterisk(pbx_dir)
    app = web = driver = None
    try:
        config = write_config(ROOT / "config", tmp_path / "config", port, queue_log, free_port())
        settings = load_settings(config)
        app = build(settings, db_url, RunningClock(SUNDAY_EVENING))
        [endpoint] = settings.pbxes
        client = app.service.add_pbx(endpoint)
        driver = AmiClient(Endpoint("driver", "127.0.0.1", port, "callcenter", "ccsecret", reconnect_min=0.1),
                           lambda *_: None)
        await app.start()
        web = WebServer(app, "127.0.0.1", 0)
        await web.start()
        driver.start()
        await asyncio.wait_for(asyncio.gather(client.connected.wait(), driver.connected.wait()), 10)
        yield PbxRig(app, web, driver)
    finally:
        if driver is not None:
            await driver.stop()
        if web is not None:
            await web.stop()
        if app is not None:
            await app.stop()
        stop_asterisk(pbx_dir)
