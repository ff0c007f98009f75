"""Sends each notification at most once, whatever the number of instances and restarts.

A notification has a key that names it (``task:12:escalate:sms:head:edu``). `notify` first
claims the key by inserting its row into ``notifications`` with status ``claimed``; the unique
key means only one instance (or one run, across restarts) ever gets past that insert. Then it
sends and marks the row ``sent``, or ``failed`` with the error. `retry_failed` takes failed rows
back one by one with an atomic ``UPDATE ... WHERE status = 'failed'`` and sends them again, or
marks them ``expired`` when the caller says they are no longer wanted.

A channel that confirms delivery itself (the panel: `PanelChannel.confirms_delivery`) gets the
row's id with the message, and its row is marked ``queued`` instead of ``sent``: the panel
marks it ``sent`` when it showed it (callcenter/notify/panel.py). `retry_failed` never touches a
queued row.

The price of "never twice" is that a process killed between the claim and the send leaves the
row ``claimed`` and the message unsent; such rows are listed by `stuck` for an operator.

While the database is unavailable, claims and status marks are held in order (`held`,
callcenter/journal.py) and retried until they land; at shutdown they go to the journal.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from ..domain.validation import mask_numbers
from ..journal import HeldWrites
from ..storage import tables as t

log = logging.getLogger(__name__)

N = t.notifications.c
MAX_ERROR = 2000


class Notifier:
    def __init__(self, store, channels: dict, clock, max_attempts: int = 5):
        self.store = store
        self.channels = channels
        self.clock = clock
        self.max_attempts = max_attempts
        self.sent = 0
        self.failed = 0
        self.held = HeldWrites("notifications", self._write_held)

    async def notify(self, key: str, channel: str, recipient: str, subject: str, body: str) -> bool:
        """Send once under ``key``; True if this call delivered it to the channel (False too
        while the database is unavailable: then it is held and sent once the claim lands)."""
        if channel not in self.channels:
            log.warning("notification %s: channel %r is not configured; not sent", key, channel)
            return False
        return bool(await self.held.write({"op": "notify", "key": key, "channel": channel, "recipient": recipient,
                                           "subject": subject, "body": body, "at": self.clock.now()}))

    async def _write_held(self, item: dict) -> bool:
        if item["op"] == "mark":
            where = [N.id == item["id"]]
            if item.get("only_if"):                   # queued: only if a panel has not shown it already
                where.append(N.status == item["only_if"])
            async with self.store.begin() as conn:
                await conn.execute(update(t.notifications).where(*where).values(**item["values"]))
            return True
        return await self._notify(item["key"], item["channel"], item["recipient"], item["subject"], item["body"],
                                  item["at"])

    async def _notify(self, key: str, channel: str, recipient: str, subject: str, body: str, at) -> bool:
        if channel not in self.channels:
            return False
        try:
            async with self.store.begin() as conn:
                result = await conn.execute(insert(t.notifications).values(
                    key=key, channel=channel, recipient=recipient, subject=subject, body=body,
                    status="claimed", attempts=1, error="", created_at=at))
                row_id = result.inserted_primary_key[0]
        except IntegrityError:
            return False                          # another instance, or an earlier run, has it
        return await self._deliver(row_id, key, channel, recipient, subject, body, at)

    async def already(self, keys: list[str]) -> set[str]:
        """The keys among ``keys`` that have a row (claimed, sent or failed)."""
        found: set[str] = set()
        async with self.store.engine.connect() as conn:
            for i in range(0, len(keys), 500):
                rows = await conn.execute(select(N.key).where(N.key.in_(keys[i:i + 500])))
                found.update(r[0] for r in rows)
        return found

    async def retry_failed(self, still_wanted: Callable[[str], bool] | None = None) -> int:
        """Send failed notifications again (up to ``max_attempts`` each); returns how many went.

        ``still_wanted(key)`` false: the message has become pointless (its task was closed, its
        deadline passed) and is marked ``expired`` instead of sent late.
        """
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(select(t.notifications).where(
                N.status == "failed", N.attempts < self.max_attempts).order_by(N.id))).mappings().all()
        delivered = 0
        for row in rows:
            if still_wanted is not None and not still_wanted(row["key"]):
                async with self.store.begin() as conn:
                    await conn.execute(update(t.notifications).where(
                        N.id == row["id"], N.status == "failed").values(status="expired"))
                continue
            if row["channel"] not in self.channels:
                continue
            async with self.store.begin() as conn:
                claimed = await conn.execute(update(t.notifications).where(
                    N.id == row["id"], N.status == "failed").values(
                    status="claimed", attempts=N.attempts + 1))
            if claimed.rowcount != 1:
                continue                          # another instance is retrying it
            if await self._deliver(row["id"], row["key"], row["channel"], row["recipient"],
                                   row["subject"], row["body"], row["created_at"]):
                delivered += 1
        return delivered

    async def stuck(self, older_than: timedelta = timedelta(minutes=10)) -> list[dict]:
        """Claimed rows never marked sent or failed (a crash mid-send): check them by hand."""
        limit: datetime = self.clock.now() - older_than
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(select(t.notifications).where(
                N.status == "claimed", N.created_at < limit).order_by(N.id))).mappings().all()
        return [dict(r) for r in rows]

    async def status(self, key: str) -> dict | None:
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(select(t.notifications).where(N.key == key))).mappings().first()
        return dict(row) if row else None

    async def _deliver(self, row_id: int, key: str, channel: str, recipient: str, subject: str,
                       body: str, created_at: datetime | None = None) -> bool:
        target = self.channels[channel]
        confirms = getattr(target, "confirms_delivery", False)
        try:
            if confirms:
                await target.send(recipient, subject, body, id=row_id, key=key, created_at=created_at)
            else:
                await target.send(recipient, subject, body)
        except Exception as exc:                  # any channel failure is recorded, never raised
            error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
            log.warning("notification %s via %s to %s failed: %s", key, channel, mask_numbers(recipient),
                        mask_numbers(error))
            await self._mark(row_id, status="failed", error=error)
            self.failed += 1
            return False
        if confirms:                              # sent once a panel showed it
            await self._mark(row_id, status="queued", error="", _only_if="claimed")
        else:
            await self._mark(row_id, status="sent", error="", sent_at=self.clock.now())
        self.sent += 1
        return True

    async def _mark(self, row_id: int, _only_if: str | None = None, **values) -> None:
        item = {"op": "mark", "id": row_id, "values": values}
        if _only_if:
            item["only_if"] = _only_if
        await self.held.write(item)
