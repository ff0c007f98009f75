"""Database health: one small object that the store's write transactions report to.

`Store.begin` tells it when a write starts and how it ended. A failure that means the database
is unreachable, hung or refusing (`unavailable`) makes the state ``degraded`` with ONE log line
(no traceback); a write still pending after `stall_seconds` does too (a frozen server answers
nothing, not even an error). The first write that the database answers makes it ``ok`` again,
with one line. While degraded a reminder with the backlog is logged every `remind_seconds`.

Whoever keeps writes back for a retry (the service's unsaved calls and sessions, coverage
incidents, notifications) registers as a holder (callcenter/journal.py); their counts are the
backlog that /api/health shows. Messages never carry SQL or its parameters (personal data).
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Protocol

from sqlalchemy import exc as sa_exc

from ..domain.validation import mask_numbers

log = logging.getLogger(__name__)

# SQLSTATE classes of a database that is away rather than of a statement that is wrong:
# 08 connection exception, 53 insufficient resources (disk full), 57 operator intervention
# (shutdown, cannot connect now), 58 system error (I/O)
_UNAVAILABLE_CLASSES = ("08", "53", "57", "58")


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the database could not be reached or could not do any work (so
    the same write will succeed later), False for a statement the database rejected."""
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated or isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
            return True
        state = str(getattr(exc.orig, "sqlstate", "") or "")
        return state[:2] in _UNAVAILABLE_CLASSES or state == "25006"   # read-only: a standby after failover
    return isinstance(exc, (sa_exc.TimeoutError, TimeoutError, OSError, sa_exc.DisconnectionError))


def describe(exc: BaseException) -> str:
    """A one-line account of a database failure, without SQL or parameters."""
    inner = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
    text = str(inner).strip().splitlines()[0] if str(inner).strip() else ""
    if not text and isinstance(inner, (TimeoutError, sa_exc.TimeoutError)):
        text = "no answer from the database in time"
    text = f"{type(inner).__name__}: {text}" if text else type(inner).__name__
    return mask_numbers(text)[:200]


class Holder(Protocol):
    """Something that keeps failed writes and retries them (see callcenter/journal.py)."""
    name: str

    def backlog(self) -> dict[str, int]: ...
    async def retry(self) -> None: ...
    def take_held(self) -> list[dict]: ...
    def restore(self, entries: list[dict]) -> None: ...


class DatabaseHealth:
    def __init__(self, clock, stall_seconds: float = 3.0, remind_seconds: float = 60.0):
        self.clock = clock
        self.stall_seconds = stall_seconds
        self.remind_seconds = remind_seconds
        self.degraded_since: datetime | None = None
        self.error = ""
        self.failures = 0                    # failed or stalled writes since the start
        self.outages = 0                     # times it went degraded
        self.holders: list[Holder] = []
        self._pending: dict[int, asyncio.TimerHandle] = {}
        self._next_token = 0
        self._reminded_at = 0.0
        self._degraded_at = 0.0              # loop time, for the outage's length
        self.answered_at = 0.0               # loop time of the last write the database answered

    @property
    def ok(self) -> bool:
        return self.degraded_since is None

    # --- reports from the store --------------------------------------------------------------

    def started(self) -> int:
        """A write begins; if it is still pending after `stall_seconds` the database is degraded."""
        self._next_token += 1
        token = self._next_token
        self._pending[token] = asyncio.get_running_loop().call_later(self.stall_seconds, self._stalled, token)
        return token

    def finished(self, token: int, exc: BaseException | None = None) -> None:
        handle = self._pending.pop(token, None)
        if handle is not None:
            handle.cancel()
        if exc is None or not isinstance(exc, Exception):
            if exc is None:
                self.succeeded()
            return                               # cancelled: says nothing about the database
        if is_unavailable(exc):
            self.failed(describe(exc))
        else:
            self.succeeded()                     # the database answered (it refused one statement)

    def idle_for(self) -> float:
        """Seconds since the database last answered a write (probe it when long)."""
        return asyncio.get_running_loop().time() - self.answered_at

    def _stalled(self, token: int) -> None:
        if token in self._pending:
            self.failed(f"a write has had no answer for {self.stall_seconds:g} s (hung or overloaded)")

    def failed(self, error: str) -> None:
        self.failures += 1
        self.error = error
        now = asyncio.get_running_loop().time()
        if self.degraded_since is None:
            self.degraded_since = self.clock.now()
            self.outages += 1
            self._reminded_at = self._degraded_at = now
            log.error("database unavailable: %s; writes are kept and retried", error)
        elif now - self._reminded_at >= self.remind_seconds:
            self._reminded_at = now
            log.warning("database still unavailable since %s: %s; held: %s", self.degraded_since.isoformat(),
                        error, self._backlog_text())

    def succeeded(self) -> None:
        self.answered_at = asyncio.get_running_loop().time()
        if self.degraded_since is None:
            return
        if self._pending and any(h.when() <= asyncio.get_running_loop().time() for h in self._pending.values()):
            return                               # another write is still stuck
        seconds = asyncio.get_running_loop().time() - self._degraded_at
        self.degraded_since, self.error = None, ""
        log.warning("database available again after %.1f s; held: %s", seconds, self._backlog_text())

    # --- what /api/health shows ----------------------------------------------------------------

    def backlog(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for holder in self.holders:
            for name, count in holder.backlog().items():
                out[name] = out.get(name, 0) + count
        return out

    def snapshot(self) -> dict:
        return {"status": "ok" if self.ok else "degraded",
                "since": self.degraded_since.isoformat() if self.degraded_since else None,
                "error": self.error, "outages": self.outages, "backlog": self.backlog()}

    def _backlog_text(self) -> str:
        return ", ".join(f"{n} {name}" for name, n in self.backlog().items() if n) or "nothing"
