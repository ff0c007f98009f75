"""The panel channel: notifications an agent's or a head's browser panel shows (issue 11).

A panel notification is *delivered* when a panel showed it, not when it was queued. The
`Notifier` claims its row in ``notifications`` and hands it to `PanelChannel.send` with the row's
id; the channel pushes it live to the hub (topic ``agent:<id>`` for an agent, ``dept:<id>`` for
``head:<dept>``) when one is wired, and the row stays ``queued``. A panel of the recipient then
reports it shown (`PanelInbox.shown`: status ``sent``, ``shown_at``, first time only) and
acknowledged (`ack`: ``acked_at``, ``acked_by``). Everything is in the database, so a panel
that connects later, or after a restart, lists what is not yet acknowledged (`PanelInbox.list`).

Only the recipient marks a notification: the agent bound to the user, or a head of the
department for ``head:<dept>``. `PanelWatch` counts queued panel notifications nobody has seen
for a while (a panel nobody watches) and logs them; /api/health shows the count.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from datetime import datetime, timedelta, timezone

from sqlalchemy import and_, func, or_, select, update

from ..aio import cancel_and_wait, every
from ..domain.access import Identity, Role
from ..followup.service import TaskError
from ..storage import tables as t
from ..storage.health import describe, is_unavailable

log = logging.getLogger(__name__)

N = t.notifications.c
PANEL = "panel"
HEAD_PREFIX = "head:"


def topic_of(recipient: str) -> str:
    """The hub topic of a recipient: ``agent:<id>``, or ``dept:<dept>`` for ``head:<dept>``."""
    if recipient.startswith(HEAD_PREFIX):
        return "dept:" + recipient[len(HEAD_PREFIX):]
    return "agent:" + recipient


def kind_of(key: str) -> str:
    """What a notification is about, from its key: ``task.warn``, ``task.escalate``,
    ``case.warn``, ``case.escalate``, ``coverage`` ... (the first part alone otherwise)."""
    parts = key.split(":")
    if parts[0] in ("task", "case") and len(parts) > 2:
        return f"{parts[0]}.{parts[2]}"
    return parts[0]


def recipients_of(who: Identity) -> list[str]:
    """The panel recipients a user answers for: their agent, and a head's ``head:<dept>``."""
    mine = [who.agent] if who.agent else []
    if who.role is Role.HEAD:
        mine += [HEAD_PREFIX + d for d in sorted(who.departments)]
    return mine


def may_mark(who: Identity, recipient: str) -> bool:
    return recipient in recipients_of(who)


def utc_iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).isoformat()


def as_dict(row) -> dict:
    return {"id": row["id"], "recipient": row["recipient"], "kind": kind_of(row["key"]),
            "subject": row["subject"], "body": row["body"], "status": row["status"],
            "created_at": utc_iso(row["created_at"]), "shown_at": utc_iso(row["shown_at"]),
            "acked_at": utc_iso(row["acked_at"]), "acked_by": row["acked_by"]}


class PanelInbox:
    """The panel notifications in the database: list, shown, acknowledged, unseen."""

    def __init__(self, store, clock):
        self.store = store
        self.clock = clock

    async def identity(self, user) -> Identity:
        """`user`: an Identity, or a user id (the WebSocket's), read again from ``users``."""
        if isinstance(user, Identity):
            return user
        from ..auth.service import identity_of
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(select(t.users).where(t.users.c.id == str(user)))).mappings().first()
        if row is None or row["disabled"]:
            raise TaskError(f"unknown or disabled user {str(user)[:64]!r}", 403, "forbidden")
        return identity_of(row, "session")

    async def get(self, notification_id: int) -> dict:
        if not 0 < notification_id < 2**31:                # beyond a database integer: cannot exist
            raise TaskError(f"no panel notification {notification_id}", 404, "not_found")
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(select(t.notifications).where(
                N.id == notification_id, N.channel == PANEL))).mappings().first()
        if row is None:
            raise TaskError(f"no panel notification {notification_id}", 404, "not_found")
        return dict(row)

    async def _mine(self, notification_id: int, user) -> tuple[Identity, dict]:
        who = await self.identity(user)
        row = await self.get(notification_id)
        if not may_mark(who, row["recipient"]):
            raise TaskError(f"notification {notification_id} is not addressed to you", 403, "forbidden")
        return who, row

    async def shown(self, notification_id: int, user) -> dict:
        """A panel of the recipient showed it: ``sent`` with ``shown_at`` (the first time only)."""
        _, row = await self._mine(notification_id, user)
        now = self.clock.now()
        async with self.store.begin() as conn:
            await conn.execute(update(t.notifications).where(N.id == row["id"], N.shown_at.is_(None)).values(
                status="sent", shown_at=now, sent_at=now, error=""))     # delivered now
        return as_dict(await self.get(row["id"]))

    async def ack(self, notification_id: int, user) -> dict:
        """The recipient acknowledged it (which implies it was shown): ``acked_at``, ``acked_by``."""
        who, row = await self._mine(notification_id, user)
        if row["shown_at"] is None:
            await self.shown(notification_id, who)
        async with self.store.begin() as conn:
            await conn.execute(update(t.notifications).where(N.id == row["id"], N.acked_at.is_(None)).values(
                acked_at=self.clock.now(), acked_by=who.user))
        return as_dict(await self.get(row["id"]))

    async def list(self, user, unacked: bool = True, limit: int = 100) -> list[dict]:
        """The user's panel notifications, newest first: an agent's own, a head's departments'."""
        who = await self.identity(user)
        mine = recipients_of(who)
        if not mine:
            return []
        conditions = [N.channel == PANEL, N.recipient.in_(mine), N.status != "expired"]
        if unacked:
            conditions.append(N.acked_at.is_(None))
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(select(t.notifications).where(and_(*conditions))
                                       .order_by(N.id.desc()).limit(limit))).mappings().all()
        return [as_dict(r) for r in rows]

    async def unseen(self, older_than: timedelta) -> int:
        """Queued panel notifications no panel has shown for `older_than` (nobody watching)."""
        limit = self.clock.now() - older_than
        async with self.store.engine.connect() as conn:
            return (await conn.execute(select(func.count()).select_from(t.notifications).where(
                N.channel == PANEL, or_(N.status == "queued", N.status == "claimed"), N.shown_at.is_(None),
                N.created_at < limit))).scalar_one()


class PanelChannel:
    """The panel as a notification channel: `send` pushes to the hub (when wired) and to the
    in-memory subscribers; `shown`, `ack` and `list` are the database's (`PanelInbox`, once
    `attach`ed to a store). ``confirms_delivery``: the Notifier leaves its rows ``queued``.

    In-memory subscribers (tests, the demo) each get their own queue; one that does not keep up
    loses its oldest messages and never blocks the sender. The last ``history`` messages are kept
    in ``recent``.
    """

    confirms_delivery = True

    def __init__(self, history: int = 200, queue_size: int = 100, hub=None, inbox: PanelInbox | None = None):
        self.queue_size = queue_size
        self.recent: deque[dict] = deque(maxlen=history)
        self._subscribers: list[asyncio.Queue] = []
        self.hub = hub                                # agents/live/hub.py Hub, or None
        self.inbox = inbox
        self.find_hub = None                          # or a callable answering the hub (bootstrap)
        self.watch: PanelWatch | None = None          # the unseen count for /api/health
        self.pushed = 0

    def attach(self, store, clock) -> "PanelChannel":
        self.inbox = PanelInbox(store, clock)
        return self

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=self.queue_size)
        self._subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        if queue in self._subscribers:
            self._subscribers.remove(queue)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def send(self, recipient: str, subject: str, body: str, id: int | None = None, key: str = "",
                   created_at: datetime | None = None) -> None:
        message = {"recipient": recipient, "subject": subject, "body": body}
        if id is not None:                            # a stored notification: the panel can mark it
            message.update(id=id, kind=kind_of(key), created_at=utc_iso(created_at))
        self.recent.append(message)
        for queue in list(self._subscribers):
            if queue.full():
                queue.get_nowait()                       # drop the oldest for a slow panel
            queue.put_nowait(message)
        hub = self.hub if self.hub is not None else (self.find_hub() if self.find_hub else None)
        if hub is not None and id is not None:
            published = hub.publish(topic_of(recipient), {"type": "notification", **message})
            if inspect.isawaitable(published):
                await published
            self.pushed += 1

    # --- what the panels report (the WebSocket and /api/notifications) -------------------------

    def _inbox(self) -> PanelInbox:
        if self.inbox is None:
            raise RuntimeError("PanelChannel.attach(store, clock) first")
        return self.inbox

    async def shown(self, notification_id: int, user) -> dict:
        return await self._inbox().shown(notification_id, user)

    async def ack(self, notification_id: int, user) -> dict:
        return await self._inbox().ack(notification_id, user)

    async def list(self, user, unacked: bool = True, limit: int = 100) -> list[dict]:
        return await self._inbox().list(user, unacked, limit)


class PanelWatch:
    """Every ``interval`` seconds: counts the panel notifications queued longer than
    ``older_than`` without a panel showing them (`count`, for /api/health) and logs a warning
    when there are some. ``start``/``stop`` fit `App.extras`."""

    def __init__(self, inbox: PanelInbox, older_than: timedelta = timedelta(minutes=30), interval: float = 60.0):
        self.inbox = inbox
        self.older_than = older_than
        self.interval = interval
        self.count: int | None = None                 # None until the first pass
        self._task: asyncio.Task | None = None

    async def check(self) -> int | None:
        try:
            count = await self.inbox.unseen(self.older_than)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.debug("panel watch: database unavailable (%s); next count in %.0f s", describe(exc), self.interval)
            return self.count                           # /api/health says degraded meanwhile
        if count and count != self.count:
            log.warning("%d panel notification(s) queued for over %d minutes and not shown by any panel",
                        count, int(self.older_than.total_seconds() // 60))
        self.count = count
        return count

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(every(self.interval, self.check, log, "panel watch"))

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
