"""Which instance acts: more than one `serve` may run on one PostgreSQL database.

Every instance ingests (writes are idempotent) and serves the API; exactly one, the *active*
instance, sends AMI actions of its own (coverage's QueueAdd, QueuePause, QueuePenalty,
QueueRemove; callbacks' Originate) and runs the deadline scheduler. The active one holds a
PostgreSQL session-level advisory lock on a dedicated connection (not from the pool). The
others try to take it every ``poll`` seconds; the holder checks its connection as often and
steps down at once when the check fails or times out. When the holder dies its connection
closes, PostgreSQL releases the lock and another instance takes over within about one poll.
On SQLite there is one instance per database file: it is always active.
"""
from __future__ import annotations

import asyncio
import logging
import re
from typing import Callable

from .aio import cancel_and_wait

log = logging.getLogger(__name__)
LOCK_KEY = 0x63616C6C63656E74              # "callcent": the advisory lock's key (per database)
Listener = Callable[[bool], None]


def plain_postgres_url(url: str) -> str | None:
    """The asyncpg form of a PostgreSQL URL; None for any other database."""
    if not re.match(r"^postgres(ql)?(\+asyncpg)?://", url):
        return None
    return re.sub(r"^postgres(ql)?(\+asyncpg)?://", "postgresql://", url)


class Leadership:
    def __init__(self, db_url: str, poll: float = 1.0, key: int = LOCK_KEY, connect_timeout: float = 5):
        self.url = plain_postgres_url(db_url)
        self.poll = poll
        self.key = key
        self.connect_timeout = connect_timeout
        self.active = self.url is None            # SQLite: always active
        self.changes = int(self.active)           # times this instance became active
        self._listeners: list[Listener] = []
        self._conn = None
        self._task: asyncio.Task | None = None

    def __call__(self) -> bool:
        return self.active

    def on_change(self, listener: Listener) -> None:
        """``listener(active)`` runs whenever this instance becomes active or stops being so."""
        self._listeners.append(listener)

    async def start(self) -> None:
        if self.url is None:
            return
        await self._step()                        # try once right away: a lone instance acts at once
        self._task = asyncio.get_running_loop().create_task(self._run(), name="leadership")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self._drop()                        # closing the connection releases the lock

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            await self._step()

    async def _step(self) -> None:
        import asyncpg
        timeout = max(self.poll, 1.0)
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self.url, timeout=self.connect_timeout)
            if self.active:
                await self._conn.fetchval("SELECT 1", timeout=timeout)         # still holding it
            elif await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", self.key, timeout=timeout):
                self._set(True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self.active:
                log.warning("leadership: lost the lock's connection (%s); no longer active", exc)
            await self._drop()

    async def _drop(self) -> None:
        if self.url is not None:
            self._set(False)
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 2)
            except Exception:
                conn.terminate()

    def _set(self, active: bool) -> None:
        if active == self.active:
            return
        self.active = active
        if active:
            self.changes += 1
        log.info("leadership: this instance is %s", "active (sends AMI actions, runs the scheduler)"
                 if active else "standing by")
        for listener in self._listeners:
            try:
                listener(active)
            except Exception:
                log.exception("leadership listener %r failed", listener)
