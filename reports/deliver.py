"""Delivering archived reports by the configuration's rules (``reports.delivery``,
callcenter/settings_delivery.py): to each department's head their own department's report, by
e-mail (SMTP, the report attached) and as a panel notification linking to the archive
(``GET /api/reports/archive/{id}``); to an e-mail address the whole hotline's report.

Each delivery has a key (``report:daily:<day>:<scope>:<format>:<channel>:<recipient>``) and a row
in ``report_deliveries``, claimed before it is sent: a report goes out once, whatever the
restarts and instances. One failing recipient never stops the others: its row is ``failed`` and
retried on the next pass (up to ``MAX_ATTEMPTS``). An empty report (no call at all for the
scope) is ``skipped`` unless the rule says ``send_if_empty``; so is e-mail while no SMTP server
is configured (``notify.email``). A process killed between the claim and the send leaves the row
``claimed`` and the report unsent: never twice, at worst once by hand (``callcenter report
deliver``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from callcenter.settings_delivery import DeliveryRule
from callcenter.storage import tables as t

from .archive import ALL, Archive, Archived

log = logging.getLogger(__name__)

D = t.report_deliveries.c
MAX_ATTEMPTS = 5
AFTER_HOURS = timedelta(minutes=30)     # default time: this long after the business hours end
EMPTY_KEYS = ("offered", "after_hours", "ivr_abandoned")


@dataclass(frozen=True)
class Delivery:
    key: str
    day: date
    scope: str
    format: str
    channel: str                  # email, panel
    recipient: str                # an address, or head:<department>
    send_if_empty: bool
    due: datetime


def rules_of(settings) -> list[DeliveryRule]:
    return list(getattr(getattr(settings, "reports", None), "delivery", None) or [])


def is_empty(figures: dict, scope: str) -> bool:
    """No call at all for the scope (offered, after hours or hung up in the IVR)."""
    if scope == ALL:
        entry = figures.get("totals")
    else:
        entry = next((d for d in figures.get("departments", []) if d.get("department") == scope), None)
    return entry is None or not any(entry.get(k) or 0 for k in EMPTY_KEYS)


class Deliverer:
    """Plans the deliveries the rules owe for a day and sends those not recorded yet."""

    def __init__(self, app, archive: Archive | None = None, rules: list[DeliveryRule] | None = None):
        self.app = app
        self.settings = app.settings
        self.clock = app.clock
        self.tz = ZoneInfo(self.settings.timezone)
        self.archive = archive or Archive(app.store, app.settings, app.clock)
        self.rules = rules if rules is not None else rules_of(app.settings)
        self.departments = {d.id: d for d in self.settings.departments}
        self.sent = self.failed = 0                  # since the start, for the logs and tests

    # --- what is owed ---------------------------------------------------------------------------

    def end_of_hours(self, day: date, scope: str) -> datetime:
        """When `scope`'s business hours end on `day` (the latest department's for "all")."""
        scopes = list(self.departments) if scope == ALL else [scope]
        end = max((w.end for s in scopes for w in self.settings.hours_of(s)),
                  default=max(w.end for w in self.settings.business_hours))
        return datetime.combine(day, end, self.tz)

    def due(self, rule: DeliveryRule, day: date, scope: str) -> datetime:
        if rule.at is not None:
            return datetime.combine(day, rule.at, self.tz)
        return self.end_of_hours(day, scope) + AFTER_HOURS

    def plan(self, day: date) -> list[Delivery]:
        """Every delivery the rules owe for `day` (whether due yet or not; workday or not)."""
        out: dict[str, Delivery] = {}
        for rule in self.rules:
            def add(scope: str, channel: str, recipient: str) -> None:
                key = f"report:{rule.report}:{day.isoformat()}:{scope}:{rule.format}:{channel}:{recipient}"[:255]
                out.setdefault(key, Delivery(key, day, scope, rule.format, channel, recipient,
                                             rule.send_if_empty, self.due(rule, day, scope)))
            if rule.heads:
                for department in rule.departments or list(self.departments):
                    head = self.departments[department].head if department in self.departments else None
                    if head is not None and head.email:
                        add(department, "email", head.email)
                    add(department, "panel", f"head:{department}")
            for address in rule.addresses:
                add(ALL, "email", address)
        return list(out.values())

    async def recorded(self, days: list[date]) -> dict[str, str]:
        """Key -> status of the deliveries recorded for `days`."""
        if not days:
            return {}
        async with self.app.store.engine.connect() as conn:
            rows = await conn.execute(select(D.key, D.status).where(D.day.in_(days)))
            return {key: status for key, status in rows}

    # --- delivering -----------------------------------------------------------------------------

    async def deliver(self, items: list[Delivery], regenerate: bool = False) -> dict[str, int]:
        """Deliver `items` not recorded yet (each claimed first); the archive rows they need are
        generated if missing (all of them again with `regenerate`). Returns counts."""
        counts = {"sent": 0, "failed": 0, "skipped": 0}
        counts["retried"] = await self.retry_failed()       # before new ones: a fresh failure waits a pass
        done = await self.recorded(sorted({i.day for i in items}))
        archived: dict[tuple, Archived] = {}
        with self.archive.one_pass():
            for item in items:
                which = (item.day, item.scope, item.format)
                if which not in archived and (regenerate or item.key not in done):
                    make = self.archive.generate if regenerate else self.archive.ensure
                    archived[which] = await make(item.day, item.scope, item.format)
                if item.key in done:
                    continue
                counts[await self._deliver_new(item, archived[which])] += 1
        return counts

    async def preview(self, items: list[Delivery]) -> list[tuple[Delivery, str]]:
        """A dry run: what `deliver` would do with each item; nothing stored, nothing sent."""
        done = await self.recorded(sorted({i.day for i in items}))
        out = []
        with self.archive.one_pass():
            reports = [await self.archive.generate(i.day, i.scope, i.format, store=False) for i in items]
        for item, report in zip(items, reports):
            if item.key in done:
                out.append((item, f"already {done[item.key]}"))
            elif is_empty(report.figures, item.scope) and not item.send_if_empty:
                out.append((item, "would skip: empty report"))
            elif item.channel == "email" and self.app.channels.get("email") is None:
                out.append((item, "would skip: e-mail is not configured (notify.email)"))
            else:
                out.append((item, "would send"))
        return out

    async def _deliver_new(self, item: Delivery, report: Archived) -> str:
        skip = None
        if is_empty(report.figures, item.scope) and not item.send_if_empty:
            skip = "empty report (send_if_empty: false)"
        elif item.channel == "email" and self.app.channels.get("email") is None:
            skip = "e-mail is not configured (notify.email)"
        try:
            async with self.app.store.begin() as conn:
                row_id = (await conn.execute(insert(t.report_deliveries).values(
                    key=item.key, archive_id=report.id, day=item.day, channel=item.channel,
                    recipient=item.recipient, status="skipped" if skip else "claimed", attempts=0 if skip else 1,
                    error=skip or "", created_at=self.clock.now()))).inserted_primary_key[0]
        except IntegrityError:
            return "skipped"                          # another instance, or an earlier run, has it
        if skip:
            log.info("report delivery %s skipped: %s", item.key, skip)
            return "skipped"
        return await self._send(row_id, item.key, item.channel, item.recipient, report)

    async def retry_failed(self) -> int:
        async with self.app.store.engine.connect() as conn:
            rows = (await conn.execute(select(t.report_deliveries).where(
                D.status == "failed", D.attempts < MAX_ATTEMPTS).order_by(D.id))).mappings().all()
        delivered = 0
        for row in rows:
            async with self.app.store.begin() as conn:
                claimed = await conn.execute(update(t.report_deliveries).where(
                    D.id == row["id"], D.status == "failed").values(status="claimed", attempts=D.attempts + 1))
            if claimed.rowcount != 1:
                continue                              # another instance retries it
            report = await self.archive.get(row["archive_id"])
            if report is None:
                await self._mark(row["id"], "failed", "the archived report is gone")
                continue
            if await self._send(row["id"], row["key"], row["channel"], row["recipient"], report) == "sent":
                delivered += 1
        return delivered

    async def _send(self, row_id: int, key: str, channel: str, recipient: str, report: Archived) -> str:
        try:
            if channel == "email":
                await send_email(self.app.channels["email"], recipient, *self.email_text(report), report)
            else:
                subject, body = self.panel_text(report)
                await self.app.notifier.notify(key, "panel", recipient, subject, body)
        except Exception as exc:                      # one recipient failing never stops the others
            error = f"{type(exc).__name__}: {exc}"[:2000]
            log.warning("report delivery %s failed: %s", key, error)
            await self._mark(row_id, "failed", error)
            self.failed += 1
            return "failed"
        await self._mark(row_id, "sent", "", sent_at=self.clock.now())
        self.sent += 1
        return "sent"

    async def _mark(self, row_id: int, status: str, error: str, **values) -> None:
        async with self.app.store.begin() as conn:
            await conn.execute(update(t.report_deliveries).where(D.id == row_id).values(
                status=status, error=error, **values))

    # --- the words (zh-CN) ------------------------------------------------------------------------

    def scope_name(self, scope: str) -> str:
        return "全部部门" if scope == ALL else (self.departments[scope].name if scope in self.departments else scope)

    def _as_of(self, report: Archived) -> str:
        if report.as_of is None:
            return "全天"
        local = report.as_of.astimezone(self.tz)
        return f"截至 {local:%H:%M}（当日尚未结束）"

    def _summary(self, report: Archived) -> str:
        figures = report.figures
        entry = figures.get("totals") if report.scope == ALL else next(
            (d for d in figures.get("departments", []) if d.get("department") == report.scope), None) or {}
        rate = entry.get("connect_rate")
        return (f"呼入 {entry.get('offered', 0)} 次，接通 {entry.get('answered', 0)} 次，接通率 "
                + ("—" if rate is None else f"{rate * 100:.1f}%"))

    def email_text(self, report: Archived) -> tuple[str, str]:
        name = self.scope_name(report.scope)
        subject = f"热线日报 {report.day.isoformat()}（{name}）"
        body = (f"您好：\n\n附件是{name} {report.day.isoformat()} 的热线日报（{report.format.upper()} 格式，"
                f"{self._as_of(report)}）。\n{self._summary(report)}。\n各项指标的口径见报表中的说明。\n\n"
                f"也可登录坐席面板，在通知中打开本报表（编号 {report.id}）。\n\n此邮件由热线服务系统自动发送，请勿回复。\n")
        return subject, body

    def panel_text(self, report: Archived) -> tuple[str, str]:
        name = self.scope_name(report.scope)
        return (f"热线日报 {report.day.isoformat()}（{name}）",
                f"{name} {report.day.isoformat()} 的热线日报已生成（{self._as_of(report)}）；{self._summary(report)}。"
                f"下载：/api/reports/archive/{report.id}")


async def send_email(smtp, recipient: str, subject: str, body: str, report: Archived) -> None:
    """`smtp`: the configured e-mail channel (callcenter/notify/channels.py `SmtpEmail`); its
    message, with the report attached, sent by it."""
    msg = smtp.message(recipient, subject, body)
    maintype, subtype = report.media_type.split("/")
    msg.add_attachment(report.content, maintype=maintype, subtype=subtype, filename=report.filename())
    await smtp.send_message(msg)
    log.info("report e-mail to %s: %s (%s, %d bytes)", recipient, subject, report.filename(), len(report.content))


async def deliver_by_hand(settings, store, day: date, dry_run: bool = False) -> str:
    """`callcenter report deliver`: every delivery the rules owe for `day`, whatever the time;
    the day's archived reports regenerated (replaced in place) first. Answers a summary."""
    from types import SimpleNamespace
    from callcenter.clock import SystemClock
    from callcenter.notify.channels import PanelChannel, build_channels
    from callcenter.notify.notifier import Notifier
    clock = SystemClock()
    channels = build_channels(settings.notify, PanelChannel().attach(store, clock))
    app = SimpleNamespace(settings=settings, store=store, clock=clock, channels=channels,
                          notifier=Notifier(store, channels, clock))
    deliverer = Deliverer(app)
    items = deliverer.plan(day)
    lines = [f"{day.isoformat()}: {len(items)} delivery(ies) configured"]
    if dry_run:
        for item, what in await deliverer.preview(items):
            lines.append(f"  {item.channel} {item.recipient} ({item.scope}, {item.format}): {what}")
        return "\n".join(lines + ["dry run: nothing archived, nothing sent"])
    whole = await deliverer.archive.generate(day, ALL, "json")
    counts = await deliverer.deliver(items, regenerate=True)
    states = await deliverer.recorded([day])
    for item in items:
        lines.append(f"  {item.channel} {item.recipient} ({item.scope}, {item.format}): {states.get(item.key, '?')}")
    lines.append(f"archived (report {whole.id} and the rules' formats); sent {counts['sent']}, failed {counts['failed']},"
                 f" skipped {counts['skipped']}, retried {counts['retried']}")
    return "\n".join(lines)
