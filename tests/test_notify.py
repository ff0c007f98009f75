"""Deadline warnings, escalations and caller acknowledgments through real channels.

The real twilio client talks to a local aiohttp server that plays Twilio's Messages endpoint,
e-mail goes through smtplib to a small local SMTP server, and every notification is checked to
arrive exactly once: across repeated checks, two service instances on one database (also
running at the same moment) and a restart.
"""
from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp import web
from sqlalchemy import select

from callcenter.clock import FixedClock
from callcenter.domain.records import CallRecord, Outcome, Stint, StintEnd
from callcenter.followup.service import FollowUp
from callcenter.notify.channels import PanelChannel, SmtpEmail, TwilioSms, build_channels
from callcenter.notify.deadlines import DeadlineWatch, Scheduler, mask, sms_number
from callcenter.notify.notifier import Notifier
from callcenter.settings import SmtpSettings, TwilioSettings
from callcenter.storage import tables as t
from callcenter.storage.store import Store
from callcenter.workdays import build_calendar
from tests.conftest import MONDAY_10, SHANGHAI

ACCOUNT = "AC" + "0123456789abcdef" * 2
TOKEN = "test-auth-token"
FROM = "+8610690000123"
CALLER = "13912345678"
DEADLINE = datetime(2026, 11, 24, 16, 30, tzinfo=SHANGHAI)      # 1 workday after Monday 10:00
EDU_HEAD_PHONE, EDU_HEAD_EMAIL = "+8613800000101", "edu-head@example.gov.cn"
AGENT_1005_PHONE = "+8613900001005"


# --- a local Twilio ---------------------------------------------------------------------------

@dataclass
class FakeTwilio:
    """POST /2010-04-01/Accounts/{sid}/Messages.json, as Twilio answers it."""
    url: str = ""
    failing: bool = False
    received: list[dict] = field(default_factory=list)      # every request, delivered or not
    runner: web.AppRunner | None = None

    @property
    def delivered(self) -> list[dict]:
        return [r for r in self.received if r["status"] == 201]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self.messages)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        await self.runner.cleanup()

    async def messages(self, request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        form = dict(await request.post())
        entry = {"account": sid, "auth": request.headers.get("Authorization"), "form": form}
        self.received.append(entry)
        expected = "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
        if entry["auth"] != expected or sid != ACCOUNT:
            entry["status"] = 401
            return web.json_response({"code": 20003, "message": "Authenticate", "status": 401,
                                      "more_info": "https://www.twilio.com/docs/errors/20003"}, status=401)
        if self.failing:
            entry["status"] = 500
            return web.json_response({"code": 20500, "message": "Internal Server Error", "status": 500,
                                      "more_info": "https://www.twilio.com/docs/errors/20500"}, status=500)
        entry["status"] = 201
        message_sid = "SM" + uuid.uuid4().hex
        now = format_datetime(datetime.now().astimezone(), usegmt=False)
        return web.json_response({
            "account_sid": sid, "api_version": "2010-04-01", "body": form["Body"],
            "date_created": now, "date_sent": None, "date_updated": now, "direction": "outbound-api",
            "error_code": None, "error_message": None, "from": form["From"], "messaging_service_sid": None,
            "num_media": "0", "num_segments": "1", "price": None, "price_unit": "USD", "sid": message_sid,
            "status": "queued", "to": form["To"],
            "subresource_uris": {"media": f"/2010-04-01/Accounts/{sid}/Messages/{message_sid}/Media.json"},
            "uri": f"/2010-04-01/Accounts/{sid}/Messages/{message_sid}.json",
        }, status=201)

    def sms(self) -> list[tuple[str, str, str]]:
        return [(r["form"]["To"], r["form"]["From"], r["form"]["Body"]) for r in self.delivered]


# --- a local SMTP server ----------------------------------------------------------------------

@dataclass
class FakeSmtp:
    """Just enough ESMTP for smtplib: EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""
    port: int = 0
    mails: list[dict] = field(default_factory=list)
    server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.session, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def reply(text: str) -> None:
            writer.write(text.encode() + b"\r\n")
        reply("220 localhost ESMTP test")
        sender, recipients = None, []
        try:
            while line := await reader.readline():
                command = line.decode("ascii", "replace").rstrip("\r\n")
                verb = command.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    reply("250-localhost\r\n250-8BITMIME\r\n250 SIZE 1000000")
                elif verb == "HELO":
                    reply("250 localhost")
                elif verb == "MAIL":
                    sender, recipients = re.search(r"<(.*?)>", command).group(1), []
                    reply("250 OK")
                elif verb == "RCPT":
                    recipients.append(re.search(r"<(.*?)>", command).group(1))
                    reply("250 OK")
                elif verb == "DATA":
                    reply("354 end with <CRLF>.<CRLF>")
                    await writer.drain()
                    lines = []
                    while (data := await reader.readline()) != b".\r\n":
                        lines.append(data[1:] if data.startswith(b"..") else data)
                    self.mails.append({"from": sender, "to": recipients, "data": b"".join(lines)})
                    reply("250 OK queued")
                elif verb in ("RSET", "NOOP"):
                    reply("250 OK")
                elif verb == "QUIT":
                    reply("221 bye")
                    await writer.drain()
                    break
                else:
                    reply("502 not implemented")
                await writer.drain()
        finally:
            writer.close()

    def parsed(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(m["data"], policy=email.policy.default) for m in self.mails]


# --- fixtures and helpers ---------------------------------------------------------------------

@pytest.fixture
async def twilio_server():
    server = FakeTwilio()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def smtp_server():
    server = FakeSmtp()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def notify_settings(settings, cleanup, twilio_server, smtp_server):
    settings.notify.sms = TwilioSettings(account_sid=ACCOUNT, auth_token=TOKEN, from_number=FROM,
                                         base_url=twilio_server.url)
    settings.notify.email = SmtpSettings(host="127.0.0.1", port=smtp_server.port, sender="hotline@example.gov.cn")
    return settings


@dataclass
class Instance:
    """One running service's worth of objects on a shared database."""
    store: Store
    notifier: Notifier
    watch: DeadlineWatch
    panel: PanelChannel
    inbox: asyncio.Queue

    async def close(self) -> None:
        await self.store.close()


_stores: list[Store] = []


@pytest.fixture
async def cleanup():
    """Every store a test opened is closed, also when the test fails. (Async fixtures come
    after ``db_url`` in a test's arguments: its PostgreSQL reset runs its own event loop.)"""
    yield
    while _stores:
        await _stores.pop().close()


async def instance(settings, db_url: str, clock) -> Instance:
    store = Store(db_url, clock)
    _stores.append(store)
    await store.migrate()
    panel = PanelChannel()
    inbox = panel.subscribe()
    notifier = Notifier(store, build_channels(settings.notify, panel), clock)
    return Instance(store, notifier, DeadlineWatch(store, settings, notifier, clock), panel, inbox)


def abandoned_call(call_id: str, number: str, at: datetime) -> CallRecord:
    left = at + timedelta(seconds=30)
    stint = Stint("q-edu", "edu", at, left_at=left, end=StintEnd.ABANDONED)
    return CallRecord("pbx1", call_id, call_id, number, "", "62000002", "edu", at,
                      left + timedelta(seconds=1), Outcome.ABANDONED, stints=[stint])


async def open_task(settings, store: Store, clock, number: str = CALLER, call_id: str = "c1",
                    available=lambda agent: True) -> dict:
    """A missed call at Monday 10:00, committed and turned into a task by the follow-up."""
    await store.save_calls([abandoned_call(call_id, number, MONDAY_10)])
    followup = FollowUp(store, settings, build_calendar(settings), clock, available)
    await followup.process_pending()
    [task] = await followup.list(caller=number)
    assert datetime.fromisoformat(task["deadline"]) == DEADLINE
    return task


def drain(queue: asyncio.Queue) -> list[dict]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


async def notification_rows(store: Store) -> dict[str, dict]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(t.notifications))).mappings().all()
    return {r["key"]: dict(r) for r in rows}


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI)


# --- channels ---------------------------------------------------------------------------------

async def test_real_twilio_client_sends_to_the_messages_endpoint(twilio_server):
    sms = TwilioSms(ACCOUNT, TOKEN, FROM, base_url=twilio_server.url)
    await sms.send("+8613912345678", "ignored for SMS", "【区教育局】测试短信")
    [request] = twilio_server.received
    assert request["account"] == ACCOUNT and request["status"] == 201
    assert request["auth"] == "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
    assert request["form"] == {"To": "+8613912345678", "From": FROM, "Body": "【区教育局】测试短信"}


async def test_twilio_error_is_raised(twilio_server):
    twilio_server.failing = True
    sms = TwilioSms(ACCOUNT, TOKEN, FROM, base_url=twilio_server.url)
    with pytest.raises(Exception, match="500"):
        await sms.send("+8613912345678", "", "x")


async def test_smtp_email_is_utf8_plain_text(smtp_server):
    mail = SmtpEmail("127.0.0.1", smtp_server.port, "hotline@example.gov.cn")
    await mail.send("edu-head@example.gov.cn", "回访任务超期", "正文：请督办。")
    [raw] = smtp_server.mails
    assert raw["from"] == "hotline@example.gov.cn" and raw["to"] == ["edu-head@example.gov.cn"]
    [msg] = smtp_server.parsed()
    assert msg["Subject"] == "回访任务超期" and msg["To"] == "edu-head@example.gov.cn"
    assert msg.get_content().strip() == "正文：请督办。"


async def test_panel_broadcasts_to_every_subscriber_and_drops_the_oldest_for_slow_ones():
    panel = PanelChannel(queue_size=2)
    fast, slow = panel.subscribe(), panel.subscribe()
    await panel.send("1005", "s1", "b1")
    assert drain(fast) == [{"recipient": "1005", "subject": "s1", "body": "b1"}]
    await panel.send("1005", "s2", "b2")
    await panel.send("1005", "s3", "b3")
    assert [m["subject"] for m in drain(slow)] == ["s2", "s3"]
    assert [m["subject"] for m in drain(fast)] == ["s2", "s3"]
    panel.unsubscribe(fast)
    await panel.send("1005", "s4", "b4")
    assert fast.empty() and [m["subject"] for m in panel.recent] == ["s1", "s2", "s3", "s4"]


def test_numbers_for_sms_and_masking():
    assert sms_number("13912345678") == "+8613912345678"
    assert sms_number("013912345678") == "+8613912345678"           # outside-line prefix
    assert sms_number("+86 139-1234-5678") == "+8613912345678"
    assert sms_number("02162000001") is None                        # a landline gets no SMS
    assert sms_number("+862162000001") is None
    assert sms_number("") is None and sms_number("anonymous") is None
    assert sms_number("+14155550100") == "+14155550100"
    assert mask("13912345678") == "139****5678"


# --- warnings and escalations -----------------------------------------------------------------

async def test_warning_to_assignee_then_escalation_to_head_each_once(db_url, notify_settings, twilio_server,
                                                                     smtp_server):
    clock = FixedClock(MONDAY_10 + timedelta(minutes=5))
    one = await instance(notify_settings, db_url, clock)
    task = await open_task(notify_settings, one.store, clock)
    assert task["assignee"] == "1005"                               # post A, available

    assert await one.watch.check() == {"warned": 0, "escalated": 0, "acknowledged": 0, "retried": 0}
    clock.at = at(24, 14, 0)           # 150 min before: not yet
    await one.watch.check()
    assert twilio_server.received == [] and drain(one.inbox) == []

    clock.at = at(24, 14, 45)                                       # within 120 min
    assert (await one.watch.check())["warned"] == 2                 # panel + SMS to the assignee
    assert (await one.watch.check())["warned"] == 0
    text = (f"【热线回访提醒】来电 139****5678 的回访任务（区教育局，任务 #{task['id']}）"
            "将于 11月24日 16:30 到期，请尽快联系。")
    assert twilio_server.sms() == [(AGENT_1005_PHONE, FROM, text)]
    [panel] = drain(one.inbox)
    assert panel["recipient"] == "1005" and "来电 13912345678 " in panel["body"]

    clock.at = at(24, 16, 31)                                       # overdue
    assert (await one.watch.check())["escalated"] == 3              # panel, SMS, e-mail to the head
    for _ in range(2):
        assert (await one.watch.check())["escalated"] == 0
    escalation = (f"【热线回访超期】区教育局：来电 139****5678 的回访任务（任务 #{task['id']}）"
                  "已于 11月24日 16:30 到期，仍未办结。责任人：陈静（1005）。请督办。")
    assert twilio_server.sms()[1:] == [(EDU_HEAD_PHONE, FROM, escalation)]
    [mail] = smtp_server.parsed()
    assert smtp_server.mails[0]["to"] == [EDU_HEAD_EMAIL]
    assert mail["Subject"] == f"回访任务超期：区教育局 #{task['id']}"
    assert mail.get_content().strip() == escalation
    assert [m["recipient"] for m in drain(one.inbox)] == ["head:edu"]

    rows = await notification_rows(one.store)
    # a panel message waits for a panel to show it (queued); SMS and e-mail were handed over
    assert {(r["channel"], r["status"]) for r in rows.values()} == {("panel", "queued"), ("sms", "sent"),
                                                                   ("email", "sent")} and len(rows) == 5
    assert f"task:{task['id']}:escalate:sms:head:edu" in rows
    await one.close()


async def test_two_instances_and_a_restart_send_each_notification_once(db_url, notify_settings,
                                                                       twilio_server, smtp_server):
    clock = FixedClock(MONDAY_10)
    one = await instance(notify_settings, db_url, clock)
    two = await instance(notify_settings, db_url, clock)
    await open_task(notify_settings, one.store, clock, number="13900000001", call_id="c1")
    await open_task(notify_settings, one.store, clock, number="13900000002", call_id="c2")

    clock.at = at(24, 15, 0)
    await asyncio.gather(one.watch.check(), two.watch.check())      # both at the same moment
    await asyncio.gather(one.watch.check(), two.watch.check())
    assert sorted(to for to, _, _ in twilio_server.sms()) == [AGENT_1005_PHONE] * 2    # one per task
    assert len(drain(one.inbox)) + len(drain(two.inbox)) == 2

    clock.at = at(24, 17, 0)
    results = await asyncio.gather(one.watch.check(), two.watch.check())
    assert sum(r["escalated"] for r in results) == 6                # 2 tasks x 3 channels, in total
    await one.close()
    await two.close()

    restarted = await instance(notify_settings, db_url, clock)     # a restart: new objects, same db
    assert (await restarted.watch.check())["escalated"] == 0
    clock.at = at(25, 10, 0)
    assert await restarted.watch.check() == {"warned": 0, "escalated": 0, "acknowledged": 0, "retried": 0}
    await restarted.close()

    sms = twilio_server.sms()
    assert len(sms) == len({(to, body) for to, _, body in sms}) == 4
    assert [to for to, _, _ in sms].count(EDU_HEAD_PHONE) == 2
    assert len(smtp_server.mails) == 2


async def test_two_notifiers_racing_for_one_key_send_once(sqlite_url, notify_settings, twilio_server):
    clock = FixedClock(MONDAY_10)
    instances = [await instance(notify_settings, sqlite_url, clock) for _ in range(3)]
    sent = await asyncio.gather(*(i.notifier.notify("test:race", "sms", "+8613912345678", "", "一次")
                                  for i in instances for _ in range(3)))
    assert sent.count(True) == 1 and len(twilio_server.received) == 1
    for i in instances:
        await i.close()


async def test_downtime_catch_up_escalates_on_the_first_check(db_url, notify_settings, twilio_server,
                                                              smtp_server):
    clock = FixedClock(MONDAY_10)
    one = await instance(notify_settings, db_url, clock)
    task = await open_task(notify_settings, one.store, clock)
    await one.close()                                               # nothing runs until Wednesday

    clock.at = at(25, 9, 5)
    back = await instance(notify_settings, db_url, clock)
    counts = await back.watch.check()
    assert counts["escalated"] == 3 and counts["warned"] == 0       # too late to warn: escalate
    assert [to for to, _, _ in twilio_server.sms()] == [EDU_HEAD_PHONE]
    assert [m["to"] for m in smtp_server.mails] == [[EDU_HEAD_EMAIL]]
    rows = await notification_rows(back.store)
    assert not any(":warn:" in key for key in rows) and f"task:{task['id']}:escalate:email:head:edu" in rows
    await back.close()


async def test_pool_task_warns_every_agent_of_the_department_posts(sqlite_url, notify_settings,
                                                                   twilio_server):
    clock = FixedClock(MONDAY_10)
    one = await instance(notify_settings, sqlite_url, clock)
    task = await open_task(notify_settings, one.store, clock, available=lambda agent: False)
    assert task["assignee"] is None

    clock.at = at(24, 15, 0)
    await one.watch.check()
    assert sorted(m["recipient"] for m in drain(one.inbox)) == ["1005", "1006"]
    assert [to for to, _, _ in twilio_server.sms()] == [AGENT_1005_PHONE]    # 1006 has no phone

    clock.at = at(24, 16, 45)
    await one.watch.check()
    [head] = drain(one.inbox)
    assert "责任人：部门待办池（未分配）" in head["body"]
    await one.close()


async def test_closed_task_is_neither_warned_nor_escalated(sqlite_url, notify_settings, twilio_server):
    clock = FixedClock(MONDAY_10)
    one = await instance(notify_settings, sqlite_url, clock)
    task = await open_task(notify_settings, one.store, clock)
    followup = FollowUp(one.store, notify_settings, build_calendar(notify_settings), clock)
    await followup.close(task["id"], "reached_resolved", by="1005")
    for moment in (at(24, 15, 0), at(25, 10, 0)):
        clock.at = moment
        assert await one.watch.check() == {"warned": 0, "escalated": 0, "acknowledged": 0, "retried": 0}
    assert twilio_server.received == [] and drain(one.inbox) == []
    await one.close()


# --- caller acknowledgment --------------------------------------------------------------------

async def test_caller_acknowledgment_sms_when_enabled(db_url, notify_settings, twilio_server):
    notify_settings.followup.acknowledge_callers_by_sms = True
    clock = FixedClock(MONDAY_10 + timedelta(minutes=1))
    one = await instance(notify_settings, db_url, clock)
    task = await open_task(notify_settings, one.store, clock)
    await open_task(notify_settings, one.store, clock, number="02162000001", call_id="c2")   # a landline

    assert (await one.watch.check())["acknowledged"] == 1
    assert (await one.watch.check())["acknowledged"] == 0
    text = ("【区教育局】您好，您于11月23日 10:00的来电未能接通，我们已登记，"
            "将于 11月24日 16:30 前回电，请保持电话畅通。")
    assert twilio_server.sms() == [("+8613912345678", FROM, text)]
    assert (await one.notifier.status(f"task:{task['id']}:ack"))["status"] == "sent"
    await one.close()


async def test_no_caller_acknowledgment_by_default(sqlite_url, notify_settings, twilio_server):
    clock = FixedClock(MONDAY_10 + timedelta(minutes=1))
    one = await instance(notify_settings, sqlite_url, clock)
    await open_task(notify_settings, one.store, clock)
    assert (await one.watch.check())["acknowledged"] == 0 and twilio_server.received == []
    await one.close()


# --- failures ---------------------------------------------------------------------------------

async def test_failed_send_is_recorded_and_retried_once_the_server_works(db_url, notify_settings,
                                                                         twilio_server):
    clock = FixedClock(MONDAY_10)
    one = await instance(notify_settings, db_url, clock)
    task = await open_task(notify_settings, one.store, clock)
    key = f"task:{task['id']}:warn:sms:1005"

    twilio_server.failing = True
    clock.at = at(24, 15, 0)
    assert (await one.watch.check())["warned"] == 1                 # the panel; the SMS failed
    failed = await one.notifier.status(key)
    assert failed["status"] == "failed" and failed["attempts"] == 1 and "500" in failed["error"]
    assert failed["sent_at"] is None
    await one.watch.check()                                         # still failing: attempt 2
    assert (await one.notifier.status(key))["attempts"] == 2

    twilio_server.failing = False
    await one.close()
    restarted = await instance(notify_settings, db_url, clock)     # retried after a restart too
    assert (await restarted.watch.check())["retried"] == 1
    assert (await restarted.watch.check())["retried"] == 0
    sent = await restarted.notifier.status(key)
    assert sent["status"] == "sent" and sent["attempts"] == 3 and sent["sent_at"] == clock.now()
    assert [r["status"] for r in twilio_server.received] == [500, 500, 201]
    assert len(twilio_server.sms()) == 1
    await restarted.close()


async def test_failed_notification_is_retried_by_one_instance_only(sqlite_url, notify_settings,
                                                                   twilio_server):
    clock = FixedClock(MONDAY_10)
    one = await instance(notify_settings, sqlite_url, clock)
    two = await instance(notify_settings, sqlite_url, clock)
    twilio_server.failing = True
    assert not await one.notifier.notify("test:retry", "sms", "+8613912345678", "", "重试")
    twilio_server.failing = False
    retried = await asyncio.gather(one.notifier.retry_failed(), two.notifier.retry_failed())
    assert sorted(retried) == [0, 1] and len(twilio_server.sms()) == 1
    await one.close()
    await two.close()


async def test_failed_warning_of_a_task_closed_meanwhile_expires(sqlite_url, notify_settings, twilio_server):
    clock = FixedClock(MONDAY_10)
    one = await instance(notify_settings, sqlite_url, clock)
    task = await open_task(notify_settings, one.store, clock)
    twilio_server.failing = True
    clock.at = at(24, 15, 0)
    await one.watch.check()
    twilio_server.failing = False
    followup = FollowUp(one.store, notify_settings, build_calendar(notify_settings), clock)
    await followup.close(task["id"], "reached_resolved", by="1005")
    assert (await one.watch.check())["retried"] == 0
    assert (await one.notifier.status(f"task:{task['id']}:warn:sms:1005"))["status"] == "expired"
    assert twilio_server.sms() == []


async def test_gives_up_after_max_attempts(sqlite_url, notify_settings, twilio_server):
    clock = FixedClock(MONDAY_10)
    one = await instance(notify_settings, sqlite_url, clock)
    one.notifier.max_attempts = 2
    twilio_server.failing = True
    await one.notifier.notify("test:give-up", "sms", "+8613912345678", "", "x")
    await one.notifier.retry_failed()
    await one.notifier.retry_failed()
    assert len(twilio_server.received) == 2
    assert (await one.notifier.status("test:give-up"))["status"] == "failed"
    await one.close()


async def test_unconfigured_channel_is_not_claimed(sqlite_url, settings, cleanup):
    clock = FixedClock(MONDAY_10)
    store = Store(sqlite_url, clock)
    _stores.append(store)
    await store.migrate()
    notifier = Notifier(store, build_channels(settings.notify), clock)      # no SMS, no e-mail set up
    assert set(notifier.channels) == {"panel"}
    assert not await notifier.notify("test:sms", "sms", "+8613912345678", "", "x")
    assert await notifier.status("test:sms") is None
    await store.close()


# --- the scheduler ----------------------------------------------------------------------------

async def test_scheduler_checks_at_start_and_on_its_interval(sqlite_url, notify_settings, twilio_server):
    notify_settings.followup.check_interval_seconds = 0.2
    clock = FixedClock(MONDAY_10)
    one = await instance(notify_settings, sqlite_url, clock)
    await open_task(notify_settings, one.store, clock)
    clock.at = at(25, 10, 0)                                        # overdue before the start
    scheduler = Scheduler(one.watch, build_calendar(notify_settings), notify_settings, clock)
    await scheduler.start()
    try:
        head = await asyncio.wait_for(one.inbox.get(), 5)           # caught up by the first check
        assert head["recipient"] == "head:edu"
        while scheduler.checks < 3:                                 # and it keeps checking
            await asyncio.sleep(0.05)
    finally:
        await scheduler.stop()
    checks = scheduler.checks
    await asyncio.sleep(0.4)
    assert scheduler.checks == checks                               # stopped means stopped
    assert [to for to, _, _ in twilio_server.sms()] == [EDU_HEAD_PHONE]
    warning = await scheduler.calendar_warning()                    # 23 Nov 2026: 2027 not published
    assert warning and "2027" in warning
    await one.close()


class SlowChannel:
    """A channel that takes its time: shows that stopping waits for a send under way."""

    def __init__(self):
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.sent: list[str] = []

    async def send(self, recipient: str, subject: str, body: str) -> None:
        self.started.set()
        await self.release.wait()
        self.sent.append(recipient)


async def test_stopping_lets_a_send_under_way_finish(sqlite_url, settings, cleanup):
    clock = FixedClock(MONDAY_10)
    one = await instance(settings, sqlite_url, clock)
    slow = SlowChannel()
    one.notifier.channels["panel"] = slow
    await open_task(settings, one.store, clock)
    clock.at = at(25, 10, 0)
    scheduler = Scheduler(one.watch, build_calendar(settings), settings, clock)
    await scheduler.start()
    await asyncio.wait_for(slow.started.wait(), 5)
    stopping = asyncio.ensure_future(scheduler.stop())
    await asyncio.sleep(0.1)
    assert not stopping.done()                                      # waits for the send
    slow.release.set()
    await asyncio.wait_for(stopping, 5)
    assert slow.sent == ["head:edu"]
    assert {r["status"] for r in (await notification_rows(one.store)).values()} == {"sent"}
