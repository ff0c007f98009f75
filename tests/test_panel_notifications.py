"""Panel notifications are delivered when a panel showed them (issue 11): the whole life cycle over
real HTTP on the replayed traces (tests/test_cases_api.py `replayed_db`: 13600000009 hung up in
the IVR and has an open follow-up task in 区市场监管局, due Tuesday 24 Nov 16:30).

queued (claimed, handed to the channel, pushed live to the hub) -> shown (sent, shown_at) ->
acknowledged (acked_at, acked_by); only the recipient marks it; a restart keeps every state; the
retry of failed sends never resends a queued one; a session's /api/me gives its CSRF token back.
"""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import pytest
from aiohttp.test_utils import TestClient, TestServer
from alembic import command
from alembic.config import Config
from sqlalchemy import func, insert, select

from callcenter.auth import UserAdmin
from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.domain.access import Identity, Role
from callcenter.notify.deadlines import DeadlineWatch
from callcenter.notify.notifier import Notifier
from callcenter.notify.panel import PanelChannel, PanelInbox, kind_of, topic_of
from callcenter.storage import tables as t
from callcenter.storage.store import MIGRATIONS, Store
from callcenter.web.app import init_app
from tests.auth_helpers import bearer, grant
from tests.conftest import DB_PARAMS, PG_URL, SHANGHAI, _create_database, _drop_database, _in_thread
from tests import test_cases_api
from tests.test_cases_api import IVR_HANGUP, NOW

replayed_db, db_url = test_cases_api.replayed_db, test_cases_api.db_url     # the fixtures: replayed traces

WARN_AT = datetime(2026, 11, 24, 15, 0, tzinfo=SHANGHAI).astimezone(timezone.utc)   # 90 minutes before 16:30
LATE_AT = datetime(2026, 11, 24, 17, 0, tzinfo=SHANGHAI).astimezone(timezone.utc)   # past the deadline


class Panels:
    """Panels listening on the service's real hub (agents/live/hub.py), one per topic:
    `collect` gathers the notifications each topic received, in order."""
    TOPICS = ("agent:1001", "agent:1002", "dept:market", "dept:edu")

    def __init__(self, hub):
        self.subscribers = {topic: hub.subscribe([topic]) for topic in self.TOPICS}
        self.published: list[tuple[str, dict]] = []

    async def collect(self) -> list[tuple[str, dict]]:
        for topic, subscriber in self.subscribers.items():
            if subscriber.pending:
                for data in await subscriber.next():
                    message = json.loads(data)
                    if message["type"] == "notification":
                        self.published.append((topic, message))
        return self.published


class BrokenHub:
    def publish(self, topic, message):
        raise ConnectionError("hub stopped")


class Rig:
    def __init__(self, settings, url: str):
        self.settings, self.url = settings, url
        self.clock = FixedClock(NOW)

    async def start(self):
        self.app = build(self.settings, self.url, self.clock)
        self.app.extras.remove(self.app.coverage)             # A/B coverage alerts: not under test here
        await self.app.start()
        self.hub = Panels(self.app.hub)
        async with self.app.store.engine.connect() as conn:   # the replay's own (A/B coverage alerts)
            self.before = (await conn.execute(select(func.max(t.notifications.c.id)))).scalar() or 0
        self.watch = DeadlineWatch(self.app.store, self.settings, self.app.notifier, self.clock)
        self.client = TestClient(TestServer(await init_app(self.app)))
        await self.client.start_server()
        self.users = {}
        for user, role, departments, agent in (("1001", "agent", [], "1001"), ("1002", "agent", [], "1002"),
                                               ("head-market", "head", ["market"], None),
                                               ("head-edu", "head", ["edu"], None), ("office", "office", [], None)):
            self.users[user] = bearer(await grant(self.app, user, role, departments, agent))
        return self

    async def stop(self):
        await self.client.close()
        await self.app.stop()

    async def call(self, method: str, path: str, user: str, **kwargs) -> tuple[int, dict]:
        if method == "POST":
            kwargs.setdefault("json", {})
        async with self.client.request(method, path, headers=self.users[user], **kwargs) as r:
            return r.status, await r.json()

    async def listed(self, user: str, **params) -> list[dict]:
        """The user's notifications from GET /api/notifications, those of the replay left out."""
        status, body = await self.call("GET", "/api/notifications", user, params=params)
        assert status == 200, body
        return [n for n in body["notifications"] if n["id"] > self.before]

    async def row(self, notification_id: int) -> dict:
        async with self.app.store.engine.connect() as conn:
            return dict((await conn.execute(select(t.notifications).where(
                t.notifications.c.id == notification_id))).mappings().one())


async def test_a_notification_is_queued_pushed_shown_and_acknowledged_by_its_recipient_only(settings, db_url):
    rig = await Rig(settings, db_url).start()
    try:
        app = rig.app
        [task] = await app.followup.list(caller=IVR_HANGUP)
        await app.followup.assign_to(task["id"], "1001", "head-market")
        rig.clock.at = WARN_AT
        assert (await rig.watch.check())["warned"] == 1

        # queued, not sent: the channel took it and pushed it to the agent's topic
        [(topic, pushed)] = await rig.hub.collect()
        key = f"task:{task['id']}:warn:panel:1001"
        row = (await app.notifier.status(key))
        assert (row["status"], row["sent_at"], row["shown_at"], row["acked_at"]) == ("queued", None, None, None)
        assert topic == "agent:1001"
        assert pushed.pop("sent_at") >= WARN_AT.isoformat()           # stamped by the hub
        assert pushed.pop("event_at") is None                          # it answers no PBX event
        assert pushed == {"type": "notification", "id": row["id"], "recipient": "1001", "kind": "task.warn",
                          "subject": row["subject"], "body": row["body"],
                          "created_at": WARN_AT.astimezone(timezone.utc).isoformat()}
        assert f"来电 {IVR_HANGUP} " in pushed["body"] and "回访任务即将到期" in pushed["subject"]

        # a panel connecting later lists it; nobody else does
        assert [(n["id"], n["status"]) for n in await rig.listed("1001")] == [(row["id"], "queued")]
        for other in ("1002", "head-market", "office"):
            assert await rig.listed(other) == []

        # someone else cannot mark it, whatever their role
        for other in ("1002", "head-market"):
            for action in ("shown", "ack"):
                status, body = await rig.call("POST", f"/api/notifications/{row['id']}/{action}", other)
                assert (status, body["error"]) == (403, "forbidden"), (other, action)
        assert (await rig.row(row["id"]))["status"] == "queued"
        status, body = await rig.call("POST", "/api/notifications/999999/ack", "1001")
        assert (status, body["error"]) == (404, "not_found")

        # shown: delivered now; a second report keeps the first time
        rig.clock.advance(30)
        shown_at = rig.clock.now()
        status, body = await rig.call("POST", f"/api/notifications/{row['id']}/shown", "1001")
        assert status == 200 and body["status"] == "sent" and datetime.fromisoformat(body["shown_at"]) == shown_at
        rig.clock.advance(60)
        await rig.call("POST", f"/api/notifications/{row['id']}/shown", "1001")
        stored = await rig.row(row["id"])
        assert (stored["status"], stored["shown_at"], stored["sent_at"]) == ("sent", shown_at, shown_at)

        # the escalation goes to the head's department topic, listed for that head only
        rig.clock.at = LATE_AT
        assert (await rig.watch.check())["escalated"] == 1
        topic, escalation = (await rig.hub.collect())[-1]
        assert (topic, escalation["recipient"], escalation["kind"]) == ("dept:market", "head:market", "task.escalate")
        assert [n["id"] for n in await rig.listed("head-market")] == [escalation["id"]]
        assert await rig.listed("head-edu") == []
        assert [n["id"] for n in await rig.listed("1001")] == [row["id"]]
        status, body = await rig.call("POST", f"/api/notifications/{escalation['id']}/ack", "head-edu")
        assert status == 403

        # acknowledging implies shown; the WebSocket's path (a user id) does the same as the API
        acked = await app.panel.ack(escalation["id"], "head-market")
        assert (acked["status"], acked["acked_by"], acked["shown_at"]) == ("sent", "head-market", acked["acked_at"])
        status, body = await rig.call("POST", f"/api/notifications/{row['id']}/ack", "1001")
        assert (status, body["acked_by"]) == (200, "1001")
        assert await rig.listed("1001") == []
        assert [(n["id"], n["acked_by"]) for n in await rig.listed("1001", status="all")] == [(row["id"], "1001")]
        status, body = await rig.call("GET", "/api/notifications", "1001", params={"status": "later"})
        assert (status, body["parameter"]) == (400, "status")
    finally:
        await rig.stop()


async def test_queued_notifications_survive_a_restart_and_are_never_resent(settings, db_url):
    rig = await Rig(settings, db_url).start()
    try:
        app = rig.app
        assert await app.panel.watch.check() == 0               # the replay's alerts: under 30 minutes old
        for n in range(4):
            assert await app.notifier.notify(f"test:restart:{n}", "panel", "1001", f"通知 {n}", "正文")
        ids = [(await app.notifier.status(f"test:restart:{n}"))["id"] for n in range(4)]
        await rig.call("POST", f"/api/notifications/{ids[0]}/shown", "1001")
        await rig.call("POST", f"/api/notifications/{ids[1]}/ack", "1001")
        assert await app.notifier.retry_failed() == 0            # queued rows are not failed ones
        assert [(topic, m["id"]) for topic, m in await rig.hub.collect()] == [("agent:1001", i) for i in ids]
        assert await app.notifier.notify("test:restart:0", "panel", "1001", "again", "x") is False  # the key: once
        rig.clock.advance(45 * 60)                               # nobody watched: counted for health
        unseen = await app.panel.watch.check()                  # ids[2] and the replay's alerts
        await rig.call("POST", f"/api/notifications/{ids[2]}/shown", "1001")
        assert await app.panel.watch.check() == unseen - 1
        async with rig.client.get("/api/health") as r:
            assert (r.status, (await r.json())["panel_unseen"]) == (200, unseen - 1)
    finally:
        await rig.stop()

    again = await Rig(settings, db_url).start()
    try:
        again.clock.at, again.before = rig.clock.now(), rig.before
        assert [(n["id"], n["status"], n["acked_at"] is None) for n in await again.listed("1001", status="all")] == [
            (ids[3], "queued", True), (ids[2], "sent", True), (ids[1], "sent", False), (ids[0], "sent", True)]
        assert [n["id"] for n in await again.listed("1001")] == [ids[3], ids[2], ids[0]]
        assert await again.app.notifier.retry_failed() == 0 and await again.hub.collect() == []
        assert await again.app.notifier.already(["test:restart:3"]) == {"test:restart:3"}
        shown = await again.app.panel.shown(ids[3], "1001")          # the WebSocket's path, after the restart
        assert (shown["status"], shown["shown_at"] is not None) == ("sent", True)
    finally:
        await again.stop()


async def test_a_failed_panel_push_is_retried_and_then_queued(settings, db_url):
    rig = await Rig(settings, db_url).start()
    try:
        hub, rig.app.hub = rig.app.hub, BrokenHub()
        assert not await rig.app.notifier.notify("test:retry", "panel", "head:market", "超期", "请督办")
        assert (await rig.app.notifier.status("test:retry"))["status"] == "failed"
        rig.app.hub = hub
        assert await rig.app.notifier.retry_failed() == 1
        row = await rig.app.notifier.status("test:retry")
        assert (row["status"], row["attempts"]) == ("queued", 2)
        assert [topic for topic, _ in await rig.hub.collect()] == ["dept:market"]
    finally:
        await rig.stop()


async def test_without_a_hub_the_channel_still_queues_and_a_panel_lists_it(settings, db_url):
    clock = FixedClock(NOW)
    store = Store(db_url, clock)
    await store.migrate()
    try:
        panel = PanelChannel().attach(store, clock)              # no hub: a unit of its own
        inbox = panel.subscribe()
        assert await Notifier(store, {"panel": panel}, clock).notify("test:nohub", "panel", "1001", "提醒", "正文")
        message = inbox.get_nowait()
        assert message["id"] and message["kind"] == "test" and message["recipient"] == "1001"
        await UserAdmin(store, settings, clock).add("1001", "agent", [], "1001")
        listed = [n for n in await panel.list("1001") if n["id"] == message["id"]]
        assert [(n["status"], n["subject"]) for n in listed] == [("queued", "提醒")]
    finally:
        await store.close()


async def test_a_session_gets_its_csrf_token_from_me_and_acknowledges_with_it(settings, db_url):
    rig = await Rig(settings, db_url).start()
    try:
        await UserAdmin(rig.app.store, settings, rig.clock).passwd("1001", "correct horse")
        await rig.app.notifier.notify("test:csrf", "panel", "1001", "提醒", "正文")
        note = (await rig.app.notifier.status("test:csrf"))["id"]
        async with rig.client.post("/api/login", json={"user": "1001", "password": "correct horse"}) as r:
            login = await r.json()
        async with rig.client.get("/api/me") as r:                  # a page loaded later: the cookie only
            me = await r.json()
        assert me["user"] == "1001" and me["csrf_token"] == login["csrf_token"]
        async with rig.client.post(f"/api/notifications/{note}/ack", json={}) as r:
            assert (r.status, (await r.json())["error"]) == (403, "csrf")
        async with rig.client.post(f"/api/notifications/{note}/ack", json={},
                                   headers={"X-CSRF-Token": me["csrf_token"]}) as r:
            assert (r.status, (await r.json())["acked_by"]) == (200, "1001")
        async with rig.client.get("/api/me", headers=rig.users["1001"]) as r:   # a bearer token: no CSRF
            assert "csrf_token" not in await r.json()
    finally:
        await rig.stop()


def test_topics_and_kinds():
    assert topic_of("1001") == "agent:1001" and topic_of("head:edu") == "dept:edu"
    assert kind_of("task:12:escalate:panel:head:edu") == "task.escalate"
    assert kind_of("case:3:warn:panel:1001") == "case.warn"
    assert kind_of("coverage:incident:4:head:panel") == "coverage"


async def test_reassigning_a_task_keeps_the_reason_in_its_history(settings, db_url):
    rig = await Rig(settings, db_url).start()
    try:
        [task] = await rig.app.followup.list(caller=IVR_HANGUP)
        status, body = await rig.call("PATCH", f"/api/tasks/{task['id']}", "head-market",
                                      json={"assignee": "1002", "reason": "张伟休假，转李娜"})
        assert status == 200 and body["assignee"] == "1002"
        assert body["history"][-1] == {**body["history"][-1], "kind": "assigned", "agent": "1002",
                                       "by": "head-market", "reason": "张伟休假，转李娜"}
        status, body = await rig.call("PATCH", f"/api/tasks/{task['id']}", "head-market",
                                      json={"note": "x", "reason": "y"})
        assert (status, body["error"], body["field"]) == (400, "conflicting_fields", "reason")
    finally:
        await rig.stop()



# --- migration 0010 on SQLite and PostgreSQL --------------------------------------------------

@pytest.fixture(params=DB_PARAMS)
def fresh_url(request, tmp_path):
    """An empty database: SQLite, and PostgreSQL when CALLCENTER_TEST_POSTGRES_URL is set."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/fresh.db"
        return
    created = _in_thread(_create_database(PG_URL))
    try:
        yield created
    finally:
        _in_thread(_drop_database(PG_URL, created))


async def test_migration_0010_keeps_old_rows_and_counts_old_panel_alerts_as_seen(fresh_url):
    store = Store(fresh_url)

    def to_0009(connection) -> None:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0009")
    try:
        async with store.begin() as conn:
            await conn.run_sync(to_0009)
        old = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)
        async with store.begin() as conn:
            for key, channel, status in (("old:panel", "panel", "sent"), ("old:sms", "sms", "sent"),
                                         ("old:failed", "panel", "failed")):
                await conn.execute(insert(t.notifications).values(
                    key=key, channel=channel, recipient="1001", subject="s", body="b", status=status,
                    attempts=1, error="", created_at=old, sent_at=old if status == "sent" else None))
        await store.migrate()
        async with store.engine.connect() as conn:
            rows = {r["key"]: r for r in (await conn.execute(select(t.notifications))).mappings()}
        assert (rows["old:panel"]["shown_at"], rows["old:panel"]["acked_at"], rows["old:panel"]["acked_by"]) == \
            (old, old, "")
        assert (rows["old:sms"]["shown_at"], rows["old:sms"]["acked_at"]) == (None, None)
        assert rows["old:failed"]["acked_at"] is None
        inbox = PanelInbox(store, FixedClock(NOW))
        who = Identity("1001", Role.AGENT, agent="1001")
        assert [n["id"] for n in await inbox.list(who)] == [rows["old:failed"]["id"]]
        assert (await inbox.ack(rows["old:failed"]["id"], who))["acked_by"] == "1001"
    finally:
        await store.close()


async def test_over_the_real_websocket_a_panel_gets_it_live_and_reports_it_shown_and_acknowledged(settings, db_url):
    rig = await Rig(settings, db_url).start()
    try:
        app = rig.app
        await app.notifier.notify("test:ws:old", "panel", "1001", "较早的提醒", "连接前已排队")
        old = (await app.notifier.status("test:ws:old"))["id"]
        await app.notifier.notify("test:ws:other", "panel", "1002", "别人的", "x")
        other = (await app.notifier.status("test:ws:other"))["id"]
        async with rig.client.ws_connect("/api/live", headers=rig.users["1001"]) as ws:
            hello = await ws.receive_json(timeout=5)
            assert hello["type"] == "hello" and old in [n["id"] for n in hello["notifications"]]
            assert other not in [n["id"] for n in hello["notifications"]]
            await app.notifier.notify("test:ws:new", "panel", "1001", "新提醒", "请处理")

            async def next_of(kind: str) -> dict:
                while True:
                    message = await ws.receive_json(timeout=5)
                    if message["type"] == kind:
                        return message
            pushed = await next_of("notification")
            assert (pushed["subject"], pushed["recipient"], pushed["kind"]) == ("新提醒", "1001", "test")
            await ws.send_json({"type": "shown", "id": pushed["id"]})
            await ws.send_json({"type": "ack", "id": other})                # not addressed to 1001
            refusal = await next_of("error")
            assert (refusal["error"], refusal["id"]) == ("forbidden", other)
            await ws.send_json({"type": "ack", "id": old})
            for _ in range(100):                                           # the socket's writes land
                if (await rig.row(old))["acked_at"] is not None:
                    break
                await asyncio.sleep(0.02)
        shown, acked = await rig.row(pushed["id"]), await rig.row(old)
        assert (shown["status"], shown["shown_at"] is not None, shown["acked_at"]) == ("sent", True, None)
        assert (acked["status"], acked["acked_by"]) == ("sent", "1001")
        assert (await rig.row(other))["status"] == "queued"
    finally:
        await rig.stop()
