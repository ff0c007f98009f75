"""Daily reports generated, archived and delivered (issue 13, "Formats and delivery").

On the replayed traces (basic, transfer, ivr-hangup: Monday 23 Nov 2026, in 区市场监管局 and other
departments), on SQLite and PostgreSQL, with a fixed clock: the schedule (reports/schedule.py)
fires after business hours on workdays only (holidays skipped, make-up workdays kept), catches
up after downtime; each head's report reaches a real SMTP server (aiosmtpd) with the report
attached and the panel as a link to the archive, whose API is scoped to the head's departments;
nothing is sent twice across a restart; one refused recipient does not stop the others;
regenerating a past day gives the same figures, also after calls arrive on another day.
"""
from __future__ import annotations

import asyncio
import email
import email.policy
import io
import json
import socket
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import openpyxl
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from aiosmtpd.controller import Controller
from sqlalchemy import select

from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.notify.channels import SmtpEmail
from callcenter.replay import replay
from callcenter.settings import ConfigError, load_settings
from callcenter.settings_delivery import DeliveryRule, check
from callcenter.storage import tables as t
from callcenter.web.app import init_app
from reports.archive import ALL, Archive, stable_figures
from reports.schedule import ReportSchedule, attach
from tests.auth_helpers import bearer, grant
from tests.conftest import MONDAY_10, ROOT, SHANGHAI, trace_path

MONDAY = MONDAY_10.date()
TUESDAY_10 = MONDAY_10 + timedelta(days=1)
SENDER = "hotline@example.gov.cn"
OFFICE = "office-reports@example.gov.cn"
MARKET_HEAD = "market-head@example.gov.cn"
EDU_HEAD = "edu-head@example.gov.cn"


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=SHANGHAI).astimezone(timezone.utc)


class Mailbox:
    """aiosmtpd handler: keeps what it accepted; refuses the addresses in `refuse`."""

    def __init__(self):
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list:
        return [m for rcpt, m in self.messages if address in rcpt]


@pytest.fixture
def smtp():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    box.port = port
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def rules_settings(settings):
    """The example configuration with delivery rules: every head their department's report as
    HTML (区市场监管局's head gets an address for it), the office the whole report as XLSX, and
    教育局 a JSON one sent even when empty."""
    market = next(d for d in settings.departments if d.id == "market")
    market.head.email = MARKET_HEAD
    settings.reports.delivery = [
        DeliveryRule(format="html", recipients=["heads"]),
        DeliveryRule(format="xlsx", recipients=[OFFICE]),
        DeliveryRule(format="json", recipients=["heads"], departments=["edu"], send_if_empty=True, time="18:00"),
    ]
    return settings


@pytest.fixture
async def replayed(rules_settings, db_url):
    await replay(rules_settings, db_url, [str(trace_path(n)) for n in ("basic", "transfer", "ivr-hangup")], MONDAY_10)
    return db_url


def service(settings, url: str, clock, smtp: Mailbox):
    app = build(settings, url, clock)
    app.extras.remove(app.coverage)                      # A/B coverage alerts: not under test here
    app.channels["email"] = SmtpEmail("127.0.0.1", smtp.port, SENDER)   # the real channel, a local server
    return app, attach(app)


async def deliveries(app, **where) -> list[dict]:
    D = t.report_deliveries.c
    async with app.store.engine.connect() as conn:
        rows = (await conn.execute(select(t.report_deliveries).where(
            *[getattr(D, k) == v for k, v in where.items()]).order_by(D.id))).mappings().all()
    return [dict(r) for r in rows]


async def panel_rows(app) -> list[dict]:
    N = t.notifications.c
    async with app.store.engine.connect() as conn:
        rows = (await conn.execute(select(t.notifications).where(
            N.channel == "panel", N.key.like("report:%")).order_by(N.id))).mappings().all()
    return [dict(r) for r in rows]


async def test_after_hours_on_a_workday_reports_are_archived_mailed_and_linked_in_the_panel(rules_settings, replayed,
                                                                                         smtp):
    clock = FixedClock(at(MONDAY, 16, 50))
    app, schedule = service(rules_settings, replayed, clock, smtp)
    try:
        # business hours end at 16:30; the default time is 30 minutes later: nothing yet
        assert await schedule.run_due() == {"archived": 0, "sent": 0, "failed": 0, "skipped": 0, "retried": 0}
        assert await Archive(app.store, rules_settings, clock).list(MONDAY) == []

        clock.at = at(MONDAY, 17, 5)
        counts = await schedule.run_due()
        archive = Archive(app.store, rules_settings, clock)
        rows = {(a.scope, a.format): a for a in await archive.list(MONDAY)}
        assert (ALL, "json") in rows and (ALL, "xlsx") in rows and ("market", "html") in rows
        assert ("edu", "json") not in rows                   # its rule says 18:00
        market = rows[("market", "html")]
        assert market.as_of == clock.at and market.figures["departments"][0]["department"] == "market"
        offered = market.figures["departments"][0]["offered"]
        assert offered > 0
        assert market.content.decode("utf-8").lstrip().lower().startswith("<!doctype html")

        # the market head's e-mail: zh-CN, the HTML report attached, the figures of the archive
        [mail] = smtp.to(MARKET_HEAD)
        assert mail["Subject"] == f"热线日报 {MONDAY}（区市场监管局）" and mail["From"] == SENDER
        assert f"呼入 {offered} 次" in mail.get_body(("plain",)).get_content()
        [attachment] = list(mail.iter_attachments())
        assert attachment.get_filename() == f"热线日报-{MONDAY}-market.html"
        assert attachment.get_payload(decode=True) == market.content

        # the office: the whole hotline's XLSX, readable
        [office] = smtp.to(OFFICE)
        [xlsx] = list(office.iter_attachments())
        assert xlsx.get_payload(decode=True) == rows[(ALL, "xlsx")].content
        book = openpyxl.load_workbook(io.BytesIO(xlsx.get_payload(decode=True)))
        assert book.sheetnames

        # heads without an address: the panel only; departments without calls: skipped (empty)
        sent = {(d["channel"], d["recipient"]) for d in await deliveries(app, status="sent")}
        assert ("panel", "head:market") in sent and ("email", MARKET_HEAD) in sent and ("email", OFFICE) in sent
        skipped = await deliveries(app, status="skipped")
        assert skipped and all("empty" in d["error"] for d in skipped)
        assert counts["sent"] == len(sent) and counts["skipped"] == len(skipped) and counts["failed"] == 0

        # the panel notification links to the archived report
        [note] = [n for n in await panel_rows(app) if n["recipient"] == "head:market"]
        assert f"/api/reports/archive/{market.id}" in note["body"] and note["status"] == "queued"

        clock.at = at(MONDAY, 18, 1)                         # edu's JSON rule: sent even if empty
        await schedule.run_due()
        [edu] = [d for d in await deliveries(app, day=MONDAY, recipient=EDU_HEAD, status="sent") if ":json:" in d["key"]]
        [attached] = [a for m in smtp.to(EDU_HEAD) if m["Subject"] == f"热线日报 {MONDAY}（区教育局）"
                      for a in m.iter_attachments() if a.get_filename().endswith(".json")]
        assert json.loads(attached.get_payload(decode=True))["scope"] == ["edu"]
    finally:
        await app.store.close()


async def test_holidays_are_skipped_make_up_workdays_reported_and_downtime_caught_up(rules_settings, db_url, smtp):
    # calls on Wednesday 30 Sep 2026, then the service is down until Saturday 10 Oct 17:05, a make-up
    # workday; 1-7 Oct are National Day holidays, 3-4 Oct a weekend
    await replay(rules_settings, db_url, [str(trace_path("basic"))], datetime(2026, 9, 30, 10, tzinfo=SHANGHAI))
    clock = FixedClock(at(date(2026, 10, 10), 17, 5))
    app, schedule = service(rules_settings, db_url, clock, smtp)
    await app.start()                                    # the job runs at start: catches up the week
    try:
        for _ in range(200):
            if schedule.runs:
                break
            await asyncio.sleep(0.05)
        assert schedule.runs >= 1
        days = {a.day for a in await schedule.archive.list() if a.scope == ALL and a.format == "json"}
        # none before the first call (28, 29 Sep), none on the holidays
        assert days == {date(2026, 9, 30), date(2026, 10, 8), date(2026, 10, 9), date(2026, 10, 10)}
        assert smtp.to(MARKET_HEAD)[0]["Subject"] == "热线日报 2026-09-30（区市场监管局）"
        # the rule sending an empty report anyway shows it: one e-mail per reported workday
        edu = sorted(m["Subject"] for m in smtp.to(EDU_HEAD))
        assert edu == sorted(f"热线日报 {d}（区教育局）" for d in days if d != date(2026, 10, 10))   # 18:00 not yet
    finally:
        await app.stop()


async def test_a_restart_sends_nothing_twice_and_a_refused_recipient_does_not_stop_the_others(rules_settings,
                                                                                           replayed, smtp):
    smtp.refuse.add(OFFICE)
    clock = FixedClock(at(MONDAY + timedelta(days=1), 9, 0))    # Tuesday morning: Monday's due, caught up
    app, schedule = service(rules_settings, replayed, clock, smtp)
    try:
        counts = await schedule.run_due()
        assert counts["failed"] == 1 and counts["sent"] >= 3
        [failed] = await deliveries(app, recipient=OFFICE)
        assert failed["status"] == "failed" and "550" in failed["error"]
        assert smtp.to(MARKET_HEAD) and smtp.to(EDU_HEAD)
        mails, notes = len(smtp.messages), len(await panel_rows(app))
    finally:
        await app.store.close()

    smtp.refuse.clear()
    app, schedule = service(rules_settings, replayed, clock, smtp)     # a restart
    try:
        counts = await schedule.run_due()
        assert (counts["sent"], counts["retried"]) == (0, 1)             # only the failed one, once
        assert len(smtp.messages) == mails + 1 and len(smtp.to(OFFICE)) == 1
        assert len(await panel_rows(app)) == notes
        assert (await deliveries(app, recipient=OFFICE))[0]["status"] == "sent"
        assert await schedule.run_due() == {"archived": 0, "sent": 0, "failed": 0, "skipped": 0, "retried": 0}
        assert len(smtp.messages) == mails + 1
    finally:
        await app.store.close()


async def test_the_archive_api_is_scoped_to_the_heads_departments(rules_settings, replayed, smtp):
    clock = FixedClock(at(MONDAY, 17, 5))
    app, schedule = service(rules_settings, replayed, clock, smtp)
    client = TestClient(TestServer(await init_app(app)))
    await client.start_server()
    try:
        await schedule.run_due()
        users = {u: bearer(await grant(app, u, role, deps, agent)) for u, role, deps, agent in (
            ("head-market", "head", ["market"], None), ("head-edu", "head", ["edu"], None),
            ("office", "office", [], None), ("1001", "agent", [], "1001"))}
        market = await schedule.archive.find(MONDAY, "market", "html")
        whole = await schedule.archive.find(MONDAY, ALL, "xlsx")

        async def get(path, user, **params):
            async with client.get(path, headers=users[user], params=params) as r:
                return r.status, await r.read(), r.headers

        status, body, headers = await get(f"/api/reports/archive/{market.id}", "head-market")
        assert status == 200 and body == market.content and headers["Content-Type"].startswith("text/html")
        assert "attachment" in headers["Content-Disposition"] and headers["ETag"] == f'"{market.sha256}"'
        assert (await get(f"/api/reports/archive/{market.id}", "head-edu"))[0] == 404     # not disclosed
        assert (await get(f"/api/reports/archive/{market.id}", "1001"))[0] == 403         # agents: no reports
        assert (await get(f"/api/reports/archive/{whole.id}", "head-market"))[0] == 404
        assert (await get(f"/api/reports/archive/{whole.id}", "office"))[1] == whole.content
        assert (await get("/api/reports/archive/99999", "office"))[0] == 404

        status, body, _ = await get("/api/reports/archive", "head-market", date=str(MONDAY))
        listed = json.loads(body)["reports"]
        assert status == 200 and {r["scope"] for r in listed} == {"market"}
        assert [r["url"] for r in listed] == [f"/api/reports/archive/{market.id}"]
        office = json.loads((await get("/api/reports/archive", "office", date=str(MONDAY)))[1])["reports"]
        assert {(r["scope"], r["format"]) for r in office} >= {(ALL, "json"), (ALL, "xlsx"), ("market", "html")}
        assert (await get("/api/reports/archive", "office", date="2026-13-01"))[0] == 400
    finally:
        await client.close()
        await app.store.close()


async def test_regenerating_a_past_day_gives_the_same_figures(rules_settings, replayed):
    clock = FixedClock(at(MONDAY + timedelta(days=2), 9, 0))       # Monday is over
    app = build(rules_settings, replayed, clock)
    archive = Archive(app.store, rules_settings, clock)
    try:
        first = await archive.generate(MONDAY, ALL, "json")
        assert first.as_of is None and first.figures["totals"]["offered"] > 0
        clock.advance(3600)
        again = await archive.generate(MONDAY, ALL, "json")
        assert (again.id, again.revision) == (first.id, 2)             # replaced in place: links stay valid
        assert stable_figures(again.figures) == stable_figures(first.figures)
    finally:
        await app.store.close()
    # new calls on Tuesday, then Monday regenerated once more
    await replay(rules_settings, replayed, [str(trace_path("abandon")), str(trace_path("nobody"))], TUESDAY_10)
    app = build(rules_settings, replayed, clock)
    archive = Archive(app.store, rules_settings, clock)
    try:
        tuesday = await archive.generate(MONDAY + timedelta(days=1), ALL, "json")
        assert tuesday.figures["totals"]["offered"] > 0
        third = await archive.generate(MONDAY, ALL, "json")
        assert stable_figures(third.figures) == stable_figures(first.figures) and third.revision == 3
        html = [await archive.generate(MONDAY, "market", "html") for _ in range(2)]
        assert stable_figures(html[0].figures) == stable_figures(html[1].figures)
        xlsx = await archive.generate(MONDAY, "market", "xlsx")
        assert openpyxl.load_workbook(io.BytesIO(xlsx.content)).sheetnames
        csv = await archive.generate(MONDAY, "market", "csv")
        assert csv.content.startswith("\ufeff".encode()) and "区市场监管局" in csv.content.decode("utf-8-sig")
    finally:
        await app.store.close()


def _config(tmp_path: Path, delivery: list) -> Path:
    """A copy of the example configuration with `reports.delivery` set (in the file that holds
    the `reports:` section, if one does)."""
    out = tmp_path / "config"
    out.mkdir(parents=True)
    placed = False
    for f in sorted((ROOT / "config").glob("*.yaml")):
        text = f.read_text(encoding="utf-8")
        if "reports" in (yaml.safe_load(text) or {}):
            data = yaml.safe_load(text)
            data["reports"] = {**(data["reports"] or {}), "delivery": delivery}
            text, placed = yaml.safe_dump(data, allow_unicode=True), True
        (out / f.name).write_text(text, encoding="utf-8")
    if not placed:
        (out / "reports.yaml").write_text(yaml.safe_dump({"reports": {"delivery": delivery}}), encoding="utf-8")
    return out


def test_configuration_errors_name_the_key(tmp_path, settings):
    for rule, key in (({"format": "pdf"}, "reports.delivery.0.format"),
                      ({"recipients": ["boss"]}, "reports.delivery.0.recipients"),
                      ({"time": "25:00"}, "reports.delivery.0.time")):
        with pytest.raises(ConfigError) as failed:
            load_settings(_config(tmp_path / key, [rule]))
        assert key in str(failed.value).replace("[", ".").replace("]", ""), str(failed.value)
    settings.reports.delivery = [DeliveryRule(departments=["edu", "nowhere"])]
    with pytest.raises(ValueError, match=r"reports\.delivery\[0\]\.departments\[1\]: unknown department 'nowhere'"):
        check(settings)


async def test_the_command_delivers_a_day_by_hand_and_a_dry_run_changes_nothing(tmp_path, replayed, smtp):
    from callcenter.cli import main
    config = _config(tmp_path, [{"format": "json", "recipients": ["heads"], "departments": ["edu"],
                                 "send_if_empty": True}])
    text = (config / "callcenter.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    data["notify"]["email"].update(host="127.0.0.1", port=smtp.port, sender=SENDER)
    (config / "callcenter.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    args = ["report", "deliver", "--date", str(MONDAY), "--db", replayed, "--config", str(config)]
    assert await asyncio.to_thread(main, args + ["--dry-run"]) == 0
    assert smtp.messages == []
    assert await asyncio.to_thread(main, args) == 0
    assert await asyncio.to_thread(main, args) == 0                 # again: regenerated, not resent
    [mail] = smtp.to(EDU_HEAD)
    assert mail["Subject"] == f"热线日报 {MONDAY}（区教育局）"
    settings = load_settings(config)
    app = build(settings, replayed, FixedClock(at(MONDAY, 20)))
    try:
        rows = await Archive(app.store, settings, app.clock).list(MONDAY)
        assert {(a.scope, a.format, a.revision) for a in rows} == {(ALL, "json", 2), ("edu", "json", 2)}
        assert [n["recipient"] for n in await panel_rows(app)] == ["head:edu"]
    finally:
        await app.store.close()


def test_the_schedule_is_one_of_the_served_extras(rules_settings, sqlite_url):
    served = build(rules_settings, sqlite_url, FixedClock(MONDAY_10), live=True, queue_log=False)
    assert sum(isinstance(e, ReportSchedule) for e in served.extras) == 1
    assert not any(isinstance(e, ReportSchedule) for e in build(rules_settings, sqlite_url).extras)
