"""The browser tests' rig: the whole service on a free port, a live AMI server, and Debian's
headless Chromium driven by Playwright (never a downloaded browser build).

Set-up (`rig`): the real traces basic, transfer and ivr-hangup replayed into SQLite from Monday
23 Nov 10:00 (tests/test_cases_api.py: six market cases, the IVR hang-up's task, here given to
1001); the service built on it with a clock that runs from 10:30 that day; an AMI server on which
agents 1001 (A of market-1) and 1002 (B) are logged in to q-market, that carries out queue actions
like Asterisk (tests/test_coverage_api.py) and answers a callback's Originate with a failed
OriginateResponse (the agent's phone did not answer); the web server (`WebServer`, port 0).
`replay_call(...)` then plays the first call of the real basic trace again, live, after the page is
open (new channel ids; the same caller 13800000000, whose case 1 is owned by 1001).

The tests skip only when /usr/bin/chromium is missing (.ci/run installs it).
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from callcenter.ami.client import Endpoint
from callcenter.ami.server import AmiServer
from callcenter.auth import UserAdmin
from callcenter.bootstrap import build
from callcenter.web.app import WebServer
from tests.conftest import ROOT, trace_path
from callcenter.replay import replay
from callcenter.settings import load_settings
from tests.conftest import MONDAY_10
from tests import test_cases_api
from tests.test_cases_api import IVR_HANGUP, NOW
from tests.test_coverage import A, B, member
from tests.test_coverage_api import carry_out

CHROMIUM = Path("/usr/bin/chromium")
IMAGES = ROOT / "docs" / "images"
PASSWORD = "correct horse battery"
VIEWPORT = {"width": 1280, "height": 800}
FIRST_CALL = b"1795347500.170"                   # the basic trace's first call (13800000000 -> 1001)


def pytest_collection_modifyitems(config, items):
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing (Debian's chromium; .ci/run installs it)")
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)


db_url = test_cases_api.db_url                  # the fixture: each test's own copy of `replayed_db`


@pytest.fixture(scope="session")
def replayed_db(tmp_path_factory) -> Path:
    """The traces replayed once for all the browser tests; each test gets its own copy (`db_url`)."""
    path = tmp_path_factory.mktemp("browser") / "callcenter.db"
    traces = [str(trace_path(name)) for name in ("basic", "transfer", "ivr-hangup")]
    asyncio.run(replay(load_settings(ROOT / "config"), f"sqlite:///{path}", traces, MONDAY_10))
    return path


class RunningClock:
    """Wall-clock speed from a fixed start: the pages' timers move, the day stays Monday 10:30."""

    def __init__(self, start: datetime):
        self.start, self.t0 = start, time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.t0)


class Rig:
    def __init__(self, app, server: AmiServer, web: WebServer):
        self.app, self.server, self.web = app, server, web
        host, port = web.addresses[0][:2]
        self.base = f"http://{host}:{port}"

    async def user(self, user: str, role: str, departments=(), agent: str | None = None) -> str:
        admin = UserAdmin(self.app.store, self.app.settings, self.app.clock)
        await admin.add(user, role, list(departments), agent)
        await admin.passwd(user, PASSWORD)
        return user

    def actions(self, name: str) -> list[dict]:
        return [a for a in self.server.actions if a.get("Action") == name]

    async def replay_call(self, caller_name: bytes | None = None, speed: float = 1.0,
                          stop_after: str | None = None) -> list[bytes]:
        """Play the basic trace's first call live (new ids); `stop_after`: stop after the first
        message of that event (e.g. AgentConnect) and answer the rest (to play with `play`)."""
        messages = first_call(caller_name)
        played = 0
        t_prev = messages[0][0]
        for t, raw in messages:
            await asyncio.sleep(max(0.0, (t - t_prev) / speed))
            t_prev = t
            self.server.emit(raw)
            played += 1
            if stop_after and raw.startswith(f"Event: {stop_after}\r\n".encode()):
                break
        return [raw for _, raw in messages[played:]]

    async def play(self, rest: list[bytes], gap: float = 0.01) -> None:
        for raw in rest:
            self.server.emit(raw)
            await asyncio.sleep(gap)


def first_call(caller_name: bytes | None) -> list[tuple[float, bytes]]:
    """The basic trace's first call and what the PBX said meanwhile about its members, with the
    call's ids moved (1795347500.170 -> 1795349900.170) so it is a new call of the same caller."""
    out = []
    for line in trace_path("basic").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        if "raw" not in item or item["t"] > 4.2:
            continue
        raw = item["raw"].encode("utf-8")
        if raw.startswith((b"Event: FullyBooted", b"Event: SuccessfulAuth", b"Event: QueueMemberAdded")):
            continue
        if b"Linkedid: " in raw and b"Linkedid: " + FIRST_CALL not in raw:
            continue                              # the other callers of the trace
        if b"Agent B 1002" in raw or b"1002@" in raw:
            continue
        raw = raw.replace(b"179534750", b"179534990")
        if caller_name is not None:
            raw = re.sub(rb"\r\nCallerIDName: [^\r]*", lambda m: b"\r\nCallerIDName: " + caller_name, raw)
        out.append((item["t"], raw))
    return out


def answer(server: AmiServer, action: dict):
    """Asterisk's part: queue actions change the members; a callback's Originate is accepted,
    then fails (the agent's phone did not answer), as in the real callback trace."""
    if action.get("Action") == "Originate":
        async def later():
            await asyncio.sleep(0.8)
            server.emit({"Event": "OriginateResponse", "Privilege": "call,all", "ActionID": action["ActionID"],
                         "Response": "Failure", "Channel": action.get("Channel", ""), "Context": "callback",
                         "Exten": action.get("Exten", ""), "Reason": 3, "Uniqueid": "<unknown>",
                         "CallerIDNum": "62000001", "CallerIDName": "Hotline q-market"})
        asyncio.get_running_loop().create_task(later())
        return [{"Response": "Success", "Message": "Originate successfully queued"}]
    return carry_out(server, action)


@pytest.fixture
async def rig(settings, db_url):
    server = AmiServer()
    server.on_action = lambda action: answer(server, action)
    server.emit(member("QueueMemberAdded", A, "Agent A 1001", 0))
    server.emit(member("QueueMemberAdded", B, "Agent B 1002", 1))
    port = await server.start()
    app = build(settings, db_url, RunningClock(NOW))
    client = app.service.add_pbx(Endpoint("pbx1", "127.0.0.1", port, "cc", "x", connect_timeout=2,
                                          action_timeout=2, ping_interval=30, reconnect_min=0.05, reconnect_max=0.2))
    await app.start()
    web = WebServer(app, "127.0.0.1", 0)
    await web.start()
    try:
        await asyncio.wait_for(client.connected.wait(), 5)
        [task] = await app.followup.list(caller=IVR_HANGUP)
        await app.followup.assign_to(task["id"], "1001", "set-up")
        yield Rig(app, server, web)
    finally:
        await web.stop()
        await app.stop()
        await server.close()


@pytest.fixture
async def browser():
    from playwright.async_api import async_playwright
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                            args=["--no-sandbox", "--disable-gpu"])
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def page(browser):
    context = await browser.new_context(viewport=VIEWPORT, locale="zh-CN", timezone_id="Asia/Shanghai")
    context.set_default_timeout(8000)
    page = await context.new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.dialogs = []

    async def on_dialog(dialog):
        page.dialogs.append(dialog.message)
        await dialog.dismiss()
    page.on("dialog", on_dialog)
    try:
        yield page
    finally:
        await context.close()


async def sign_in(page, rig: Rig, user: str, lands_on: str) -> None:
    await page.goto(rig.base + "/")
    await page.wait_for_url("**/login**")
    await page.fill("#user", user)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"**{lands_on}")


async def axe_violations(page) -> list[dict]:
    """axe-core (vendored by axe-playwright-python) on the page: WCAG 2.0/2.1 A and AA rules."""
    from axe_playwright_python.async_playwright import Axe
    results = await Axe().run(page, options={"runOnly": {"type": "tag",
                                                          "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}})
    return [{"id": v["id"], "nodes": [n["target"] for n in v["nodes"]][:5], "help": v["help"]}
            for v in results.response["violations"]]


def screenshot_path(name: str, tmp_path: Path) -> Path:
    """docs/images/NAME when CALLCENTER_SCREENSHOTS=1 (to refresh the README's pictures), else tmp."""
    if os.environ.get("CALLCENTER_SCREENSHOTS") == "1":
        IMAGES.mkdir(parents=True, exist_ok=True)
        return IMAGES / name
    return tmp_path / name

