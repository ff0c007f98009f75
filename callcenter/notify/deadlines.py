"""Deadline watch: warn before a follow-up task's deadline, escalate once it has passed.

The deadlines live in the ``tasks`` table, so `DeadlineWatch.check` simply asks the database
what is due *now*: a task whose deadline passed while the service was down is escalated by the
first check after the start. Every message has a key (task, kind, channel, person) and goes
through the `Notifier`, which sends it at most once, however often ``check`` runs and however
many instances run it.

- deadline within ``followup.warn_before_minutes``: warn the assignee (a pool task: every agent
  of the department's posts) on ``notify.warning_channels``; key ``task:<id>:warn:<channel>:<agent>``
- deadline passed, task still open: escalate to the department head (the service office's head
  when the department has none) on ``notify.escalation_channels``;
  key ``task:<id>:escalate:<channel>:head:<department>``
- ``followup.acknowledge_callers_by_sms``: one SMS to the caller (a mobile number) saying the
  missed call is noted and when they will be called back; key ``task:<id>:ack``

`Scheduler` runs ``check`` on an APScheduler interval job, and a daily job that logs the
missing-year warning of the workday calendar.
"""
from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import select

from ..storage import tables as t
from ..workdays import warn_missing_year

log = logging.getLogger(__name__)

T = t.tasks.c
_MOBILE = re.compile(r"^(?:\+?86|0086|0)?(1[3-9]\d{9})$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


@dataclass(frozen=True)
class Message:
    key: str
    channel: str
    recipient: str
    subject: str
    body: str


def sms_number(number: str | None) -> str | None:
    """The caller's number in E.164 if it can receive SMS (a mainland mobile, or already E.164
    outside +86); None for landlines, withheld and malformed numbers."""
    if not number:
        return None
    n = re.sub(r"[\s\-()]", "", number)
    mobile = _MOBILE.match(n)
    if mobile:
        return "+86" + mobile.group(1)
    if _E164.match(n) and not n.startswith("+86"):
        return n
    return None


def mask(number: str) -> str:
    """139****0001: enough to recognise a caller, not enough to leak the number."""
    if len(number) >= 8:
        return number[:3] + "****" + number[-4:]
    return number[:2] + "*" * max(len(number) - 2, 0)


@dataclass(frozen=True)
class Kind:
    """The wording and key prefix of what is due: a follow-up task or a first-ask case."""
    key: str
    noun: str
    short: str
    tag: str
    ask: str


TASK = Kind("task", "回访任务", "任务", "热线回访", "请尽快联系。")
CASE = Kind("case", "诉求办理", "事项", "首问负责", "请按时办结并答复来电人。")


class DeadlineWatch:
    """Turns the open tasks of the database into the messages due now (see the module doc)."""

    def __init__(self, store, settings, notifier, clock):
        self.store = store
        self.settings = settings
        self.notifier = notifier
        self.clock = clock
        self.tz = ZoneInfo(settings.timezone)
        self.agents = {a.id: a for a in settings.agents}
        self.departments = {d.id: d for d in settings.departments}
        self.post_agents: dict[str, list[str]] = {}
        for post in settings.posts:
            members = self.post_agents.setdefault(post.department, [])
            members.extend(a for a in (post.a, post.b) if a not in members)

    # --- the check --------------------------------------------------------------------------

    async def check(self) -> dict[str, int]:
        """Send what is due now and retry failed sends; returns counts of what was sent."""
        now = self.clock.now()
        follow = self.settings.followup
        warn_until = now + timedelta(minutes=follow.warn_before_minutes)
        async with self.store.engine.connect() as conn:
            due = (await conn.execute(select(t.tasks).where(
                T.status == "open", T.deadline <= warn_until).order_by(T.deadline, T.id))).mappings().all()
            cases = (await conn.execute(select(t.cases).where(
                t.cases.c.status == "open", t.cases.c.deadline <= warn_until)
                .order_by(t.cases.c.deadline, t.cases.c.id))).mappings().all()
            fresh = []
            if follow.acknowledge_callers_by_sms and "sms" in self.notifier.channels:
                fresh = (await conn.execute(select(t.tasks).where(
                    T.status == "open", T.deadline >= now).order_by(T.id))).mappings().all()
        messages: list[tuple[str, Message]] = []
        for task in due:
            if task["deadline"] < now:
                messages += [("escalated", m) for m in self.escalations(task)]
            elif follow.warn_before_minutes > 0:
                messages += [("warned", m) for m in self.warnings(task)]
        for case in cases:
            # a case (first-ask) warns its owner and escalates like a task, under its own keys
            item = {**case, "assignee": case["owner"]}
            if case["deadline"] < now:
                messages += [("escalated", m) for m in self.escalations(item, CASE)]
            elif follow.warn_before_minutes > 0:
                messages += [("warned", m) for m in self.warnings(item, CASE)]
        for task in fresh:
            messages += [("acknowledged", m) for m in self.acknowledgment(task)]
        counts = {"warned": 0, "escalated": 0, "acknowledged": 0, "retried": 0}
        wanted = {m.key for _, m in messages}
        counts["retried"] = await self.notifier.retry_failed(       # before new ones: a fresh failure waits
            lambda key: not key.startswith(("task:", "case:")) or key in wanted)   # a closed task's warning expires
        done = await self.notifier.already([m.key for _, m in messages])
        for kind, m in messages:
            if m.key not in done and await self.notifier.notify(m.key, m.channel, m.recipient, m.subject, m.body):
                counts[kind] += 1
        if any(counts.values()):
            log.info("deadline check: %s", ", ".join(f"{k} {v}" for k, v in counts.items() if v))
        return counts

    # --- the messages -----------------------------------------------------------------------

    def warnings(self, task, kind: "Kind | None" = None) -> list[Message]:
        kind = kind or TASK
        agents = [task["assignee"]] if task["assignee"] else self.post_agents.get(task["department"], [])
        name = self._department_name(task["department"])
        subject = f"{kind.noun}即将到期：{name} #{task['id']}"
        messages = []
        for agent_id in agents:
            agent = self.agents.get(agent_id)
            if agent is None:
                log.warning("task %s: assignee %r is not a configured agent; not warned", task["id"], agent_id)
                continue
            for channel in self._channels(self.settings.notify.warning_channels):
                recipient = {"panel": agent.id, "sms": agent.phone, "email": agent.email}.get(channel)
                if not recipient:
                    continue
                body = (f"【{kind.tag}提醒】来电 {self._number(task, channel)} 的{kind.noun}（{name}，{kind.short} "
                        f"#{task['id']}）将于 {self._when(task['deadline'])} 到期，{kind.ask}")
                messages.append(Message(f"{kind.key}:{task['id']}:warn:{channel}:{agent.id}", channel, recipient,
                                        subject, body))
        return messages

    def escalations(self, task, kind: "Kind | None" = None) -> list[Message]:
        kind = kind or TASK
        department = task["department"]
        head_of, head = department, self._head(department)
        if head is None and self.settings.service_office:
            head_of, head = self.settings.service_office, self._head(self.settings.service_office)
        if head is None:
            log.warning("%s %s is overdue but department %r has no head to escalate to", kind.key, task["id"], department)
            return []
        name = self._department_name(department)
        agent = self.agents.get(task["assignee"]) if task["assignee"] else None
        owner = f"{agent.name}（{agent.id}）" if agent else (task["assignee"] or "部门待办池（未分配）")
        subject = f"{kind.noun}超期：{name} #{task['id']}"
        messages = []
        for channel in self._channels(self.settings.notify.escalation_channels):
            recipient = {"panel": f"head:{head_of}", "sms": head.phone, "email": head.email}.get(channel)
            if not recipient:
                continue
            body = (f"【{kind.tag}超期】{name}：来电 {self._number(task, channel)} 的{kind.noun}（{kind.short} "
                    f"#{task['id']}）已于 {self._when(task['deadline'])} 到期，仍未办结。责任人：{owner}。请督办。")
            messages.append(Message(f"{kind.key}:{task['id']}:escalate:{channel}:head:{head_of}", channel, recipient,
                                    subject, body))
        return messages

    def acknowledgment(self, task) -> list[Message]:
        number = sms_number(task["caller_num"])
        if number is None:
            return []
        name = self._department_name(task["department"])
        body = (f"【{name}】您好，您于{self._when(task['first_missed_at'])}的来电未能接通，我们已登记，"
                f"将于 {self._when(task['deadline'])} 前回电，请保持电话畅通。")
        return [Message(f"task:{task['id']}:ack", "sms", number, f"{name}来电回复", body)]

    # --- helpers ----------------------------------------------------------------------------

    def _channels(self, wanted: list[str]) -> list[str]:
        return [c for c in wanted if c in self.notifier.channels]

    def _head(self, department: str):
        d = self.departments.get(department)
        return d.head if d else None

    def _department_name(self, department: str) -> str:
        d = self.departments.get(department)
        return d.name if d else department

    @staticmethod
    def _number(task, channel: str) -> str:
        """The full number inside the panel; masked in SMS and e-mail, which leave the system."""
        return task["caller_num"] if channel == "panel" else mask(task["caller_num"])

    def _when(self, moment: datetime) -> str:
        local = moment.astimezone(self.tz)
        return f"{local.month}月{local.day}日 {local:%H:%M}"


class Scheduler:
    """APScheduler jobs: the deadline check every ``check_interval_seconds`` (first run right at
    start, so downtime is caught up), and the calendar's missing-year warning daily at 09:00.

    ``start``/``stop`` fit ``App.extras``; ``stop`` lets a running check finish (so no
    notification is left half-sent) before the scheduler shuts down.
    """

    def __init__(self, watch: DeadlineWatch, calendar, settings, clock):
        self.watch = watch
        self.calendar = calendar
        self.clock = clock
        self.interval = settings.followup.check_interval_seconds
        self.tz = ZoneInfo(settings.timezone)
        self.active = lambda: True        # more than one instance: only the active one checks
        self.scheduler: AsyncIOScheduler | None = None
        self.checks = 0
        self._running: asyncio.Future | None = None
        self._stopping = False

    async def start(self) -> None:
        self._running = None
        self._stopping = False
        self.scheduler = AsyncIOScheduler(timezone=self.tz)
        common = {"coalesce": True, "max_instances": 1}
        self.scheduler.add_job(self.run_check, "interval", seconds=self.interval, id="deadline-check",
                               misfire_grace_time=max(1, int(self.interval)), **common)
        self.scheduler.add_job(self.run_check, id="deadline-check-at-start", misfire_grace_time=None, **common)
        self.scheduler.add_job(self.calendar_warning, "cron", hour=9, minute=0, id="calendar-warning",
                               misfire_grace_time=3600, **common)
        self.scheduler.start()

    async def stop(self, timeout: float = 30) -> None:
        if self.scheduler is None:
            return
        self._stopping = True
        self.scheduler.shutdown(wait=False)
        await asyncio.sleep(0)                                       # shutdown runs on the loop
        running = self._running
        if running is not None and not running.done():               # let a running check finish,
            done, _ = await asyncio.wait({running}, timeout=timeout)  # so nothing is left half-sent
            if not done:
                log.warning("deadline check still running after %.0f s; cancelling it", timeout)
                running.cancel()
        self.scheduler = None

    def on_leadership(self, active: bool) -> None:
        """This instance became active: check at once (the previous one may have died mid-way)."""
        if active and self.scheduler is not None and not self._stopping:
            asyncio.get_running_loop().create_task(self.run_check())

    async def run_check(self) -> None:
        if self._stopping or (self._running is not None and not self._running.done()):
            return                                                   # stopping, or the last one still runs
        if not self.active():
            return                                                   # standing by
        self._running = asyncio.ensure_future(self.watch.check())
        self._running.add_done_callback(self._checked)
        await asyncio.wait({self._running})        # the scheduler's shutdown cancels this wait, not the check

    def _checked(self, check: asyncio.Future) -> None:
        self.checks += 1
        if not check.cancelled() and check.exception() is not None:
            log.error("deadline check failed; next try in %s s", self.interval, exc_info=check.exception())

    async def calendar_warning(self) -> str | None:
        return warn_missing_year(self.calendar, self.clock.now().astimezone(self.tz).date())
