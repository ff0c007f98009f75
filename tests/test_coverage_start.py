"""No action before knowledge (issue 9, item 4): at start-up coverage sends nothing to a PBX until
that PBX's first resync has told it who is logged in, and a QueueAdd names the member's
MemberName and StateInterface. Asserted on the actions the local AMI server received."""
from __future__ import annotations

import asyncio

from callcenter.ami.client import Endpoint
from callcenter.ami.server import AmiServer
from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.domain.presence import Member
from callcenter.domain.tracker_state import presence_to_state
from callcenter.domain.presence import PresenceTracker
from callcenter.storage import checkpoints as cp
from tests.conftest import MONDAY_10
from tests.test_coverage import A, B, actions, eventually, member

RESYNC_DELAY = 0.6


class SlowResyncServer(AmiServer):
    """Answers QueueStatus and CoreShowChannels (in order) only after RESYNC_DELAY seconds (a busy
    PBX): the service is logged in, its clock says business hours, and it does not know yet who
    is at work."""

    def _respond(self, conn, action) -> bool:
        if action.get("Action", "").lower() in ("queuestatus", "coreshowchannels"):
            asyncio.get_running_loop().call_later(RESYNC_DELAY, AmiServer._respond, self, conn, action)
            return False
        return super()._respond(conn, action)


def pbx_that_adds_members() -> SlowResyncServer:
    server = SlowResyncServer()

    def on_action(action):                       # the PBX carries out QueueAdd like Asterisk does
        if action.get("Action") == "QueueAdd":
            server.emit(member("QueueMemberAdded", action["Interface"], action.get("MemberName", ""),
                               int(action.get("Penalty", 0))))
        return None
    server.on_action = on_action
    return server


async def start(settings, db_url, port):
    app = build(settings, db_url, FixedClock(MONDAY_10))
    client = app.service.add_pbx(Endpoint("pbx1", "127.0.0.1", port, "cc", "x", connect_timeout=2, action_timeout=2,
                                          ping_interval=30, reconnect_min=0.05, reconnect_max=0.2))
    await app.start()
    return app, client


async def test_nothing_is_sent_before_the_first_resync(settings, sqlite_url):
    """A is logged in on the PBX at 10:00. Judged before the resync, post market-1 would look
    empty and B would be added; judged after it, A is there and nothing needs doing. A stale
    checkpoint (A paused, B absent) is not acted on either."""
    settings.posts = [p for p in settings.posts if p.id == "market-1"]
    stale = PresenceTracker(settings.directory())
    stale.members[("pbx1", "q-market", A)] = Member("pbx1", "q-market", A, "Agent A 1001", "1001", "Custom:1001", 0,
                                                    MONDAY_10, paused=True, paused_reason="午休", paused_since=MONDAY_10)
    prepare = build(settings, sqlite_url, FixedClock(MONDAY_10))
    await prepare.store.migrate()
    await cp.save_state(prepare.store, cp.PRESENCE, presence_to_state(stale), MONDAY_10, "earlier")
    await prepare.store.close()

    server = pbx_that_adds_members()
    server.emit(member("QueueMemberAdded", A, "Agent A 1001", 0))
    port = await server.start()
    app, client = await start(settings, sqlite_url, port)
    try:
        assert app.service.presence.members[("pbx1", "q-market", A)].paused          # the checkpoint's picture
        await asyncio.sleep(RESYNC_DELAY / 2)
        assert server.logins == 1 and "pbx1" not in app.coverage.known
        assert app.coverage.board.state == {}                     # not judged: nothing known yet
        await eventually(lambda: app.coverage.board.state.get("market-1") == "a_on")
        await app.coverage.settled()
        sent = [a["Action"] for a in server.actions if a["Action"] not in ("Login", "QueueStatus", "CoreShowChannels")]
        assert sent == []
    finally:
        await app.stop()
        await server.close()


async def test_queue_add_names_the_member_and_its_state_interface(settings, sqlite_url):
    settings.posts = [p for p in settings.posts if p.id == "market-1"]
    server = pbx_that_adds_members()
    server.emit(member("QueueMemberAdded", A, "Agent A 1001", 0))
    port = await server.start()
    app, client = await start(settings, sqlite_url, port)
    try:
        await eventually(lambda: app.coverage.board.state.get("market-1") == "a_on")
        server.emit(member("QueueMemberPause", A, "Agent A 1001", 0, paused=True, reason="午休"))
        await eventually(lambda: app.coverage.board.state.get("market-1") == "b_covers")
        [add] = actions(server, "QueueAdd")
        assert {k: add[k] for k in ("Queue", "Interface", "Penalty", "Paused", "MemberName", "StateInterface")} == {
            "Queue": "q-market", "Interface": B, "Penalty": "1", "Paused": "false", "MemberName": "王芳",
            "StateInterface": "Custom:1002"}                     # config/agents.yaml: state_interface
    finally:
        await app.stop()
        await server.close()


def test_state_interface_without_configuration(settings, sqlite_url):
    """Not configured: what the PBX last reported for the interface, else the interface itself."""
    app = build(settings, sqlite_url, FixedClock(MONDAY_10))
    for agent in settings.agents:
        agent.state_interface = None
    assert app.coverage.state_interface("1002", "PJSIP/1002") == "PJSIP/1002"
    app.service.presence.members[("pbx1", "q-edu", B)] = Member("pbx1", "q-edu", B, "Agent B 1002", "1002",
                                                               "Custom:1002", 1, MONDAY_10)
    assert app.coverage.state_interface("1002", B) == "Custom:1002"
