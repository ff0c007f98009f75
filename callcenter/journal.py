"""Writes held while the database is away: retried until they land, journalled at shutdown.

Holders (the service's unsaved calls, sessions and callback results; coverage incidents;
notifications) keep what they could not write and register with the store's `DatabaseHealth`.
`Backlog` retries them every `database.retry_seconds` (and probes a degraded database so that
/api/health turns ok again without any write, and a quiet one every `database.probe_seconds` so
that an outage shows without any write), and at shutdown tries the database for at most
`database.stop_seconds`, then writes whatever is still held to a local journal file: JSON lines,
written to a temporary file, fsync'd and renamed over the old one (so it is complete or absent).
The next start reads it back into the holders before anything else is written and removes it
once everything landed; every held write is idempotent, so a replay is safe.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import fields, is_dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Awaitable, Callable

from .aio import cancel_and_wait
from .domain.callbacks import AttemptResult
from .domain.coverage import CloseIncident, OpenIncident
from .domain.presence import AgentSession
from .domain.records import CallRecord, Outcome, Stint, StintEnd
from .storage.health import DatabaseHealth, describe, is_unavailable

log = logging.getLogger(__name__)
DEFAULT_JOURNAL = "callcenter-journal.jsonl"

# --- a JSON codec for the held values ---------------------------------------------------------

_TYPES = {cls.__name__: cls for cls in (CallRecord, Stint, AgentSession, AttemptResult, OpenIncident,
                                        CloseIncident, Outcome, StintEnd)}


def encode(value):
    """Dataclasses, enums and aware datetimes as tagged JSON-ready values."""
    if is_dataclass(value) and not isinstance(value, type):
        return {"$type": type(value).__name__, **{f.name: encode(getattr(value, f.name)) for f in fields(value)}}
    if isinstance(value, Enum):
        return {"$enum": type(value).__name__, "value": value.value}
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    return value


def decode(value):
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "$dt" in value:
        return datetime.fromisoformat(value["$dt"])
    if "$enum" in value:
        return _TYPES[value["$enum"]](value["value"])
    if "$type" in value:
        cls = _TYPES[value["$type"]]
        return cls(**{k: decode(v) for k, v in value.items() if k != "$type"})
    return {k: decode(v) for k, v in value.items()}


# --- the file -----------------------------------------------------------------------------------

def journal_path(configured: str | None, db_url: str) -> Path:
    """The configured path; else next to the SQLite file; else ./callcenter-journal.jsonl."""
    if configured:
        return Path(configured)
    for prefix in ("sqlite:///", "sqlite+aiosqlite:///"):
        if db_url.startswith(prefix) and db_url[len(prefix):] not in ("", ":memory:"):
            db = Path(db_url[len(prefix):])
            return db.with_name(db.name + ".journal.jsonl")
    return Path(DEFAULT_JOURNAL)


class Journal:
    """``database``: which database the held writes belong to (a URL without its password); the
    journal's first line names it, and a journal of another database is never replayed."""

    def __init__(self, path: str | os.PathLike, database: str = ""):
        self.path = Path(path)
        self.database = database

    def write(self, entries: list[dict]) -> None:
        """Replace the journal with ``entries``, atomically and durably."""
        entries = [{"journal": 1, "database": self.database}] + entries
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)   # callers' numbers: owner only
        with open(fd, "w", encoding="utf-8") as fh:
            for entry in entries:
                fh.write(json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self._sync_dir()

    def read(self) -> list[dict]:
        """The entries, or [] without a journal. An unreadable journal is set aside (renamed
        ``*.unreadable``) with an ERROR naming the file and line: it never stops a start."""
        if not self.path.exists():
            return []
        entries = []
        with open(self.path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    if isinstance(entry, dict) and "journal" in entry:
                        if entry.get("database", "") != self.database:
                            raise ValueError(f"written for database {entry.get('database')!r}, "
                                             f"not {self.database!r}")
                        continue
                    if not isinstance(entry, dict) or "holder" not in entry:
                        raise ValueError("not a journal entry")
                except ValueError as exc:
                    aside = self.path.with_name(self.path.name + ".unreadable")
                    os.replace(self.path, aside)
                    log.error("journal %s:%d: %s; set aside as %s, not replayed", self.path, number, exc, aside)
                    return []
                entries.append(entry)
        return entries

    def remove(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            return
        self._sync_dir()

    def _sync_dir(self) -> None:
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --- one list of held writes --------------------------------------------------------------------

class HeldWrites:
    """Writes kept in order while the database is away. `write` writes now, or holds the item
    when something is already held (order) or the database is unavailable; `retry` writes the
    held items in order and stops at the first that still fails."""

    def __init__(self, name: str, write: Callable[[object], Awaitable[object]]):
        self.name = name
        self._write = write
        self.items: list = []

    async def write(self, item):
        if self.items:
            self.items.append(item)
            return None
        try:
            return await self._write(item)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            self.items.append(item)
            return None

    async def retry(self) -> None:
        while self.items:
            try:
                await self._write(self.items[0])
            except Exception as exc:
                if is_unavailable(exc):
                    return
                log.error("held %s write dropped: %s", self.name, describe(exc))
            self.items.pop(0)

    def backlog(self) -> dict[str, int]:
        return {self.name: len(self.items)}

    def take_held(self) -> list[dict]:
        entries, self.items = [{"record": encode(i)} for i in self.items], []
        return entries

    def restore(self, entries: list[dict]) -> None:
        self.items.extend(decode(e["record"]) for e in entries)


class ListHolder:
    """Someone else's list of held values (e.g. the after-commit worker's callback results,
    retried by its own passes) as a holder: counted, journalled and restored."""

    def __init__(self, name: str, items: Callable[[], list]):
        self.name = name
        self._items = items

    def backlog(self) -> dict[str, int]:
        return {self.name: len(self._items())}

    async def retry(self) -> None:
        return None

    def take_held(self) -> list[dict]:
        items = self._items()
        entries = [{"record": encode(i)} for i in items]
        items.clear()
        return entries

    def restore(self, entries: list[dict]) -> None:
        self._items().extend(decode(e["record"]) for e in entries)


# --- the retry loop and the journal -------------------------------------------------------------

class Backlog:
    """One of `App.extras`: retries the holders while started; `journal()` at the very end."""

    def __init__(self, health: DatabaseHealth, store, journal: Journal, retry_seconds: float = 1.0,
                 stop_seconds: float = 3.0, probe_seconds: float = 5.0):
        self.health = health
        self.store = store
        self.file = journal
        self.retry_seconds = retry_seconds
        self.stop_seconds = stop_seconds
        self.probe_seconds = probe_seconds        # a database without writes this long is probed
        self.replayed = 0                         # entries read from the journal at this start
        self._journal_pending = False            # a journal was read and is not fully landed yet
        self._orphans: list[dict] = []           # journal entries of a holder not running now: kept
        self._task: asyncio.Task | None = None

    def held(self) -> int:
        return sum(self.health.backlog().values())

    def load(self) -> int:
        """Read the journal into the holders (before anything is written); returns how many."""
        entries = self.file.read()
        holders = {h.name: h for h in self.health.holders}
        by_holder: dict[str, list[dict]] = {}
        for entry in entries:
            by_holder.setdefault(entry["holder"], []).append(entry)
        for name, items in by_holder.items():
            if name not in holders:
                log.error("journal %s: %d entries for %r, which is not running; kept in the journal",
                          self.file.path, len(items), name)
                self._orphans += items
                continue
            holders[name].restore(items)
        self.replayed = len(entries)
        self._journal_pending = bool(entries) and not self._orphans
        if entries:
            log.warning("journal %s: %d held writes read back; replaying them first", self.file.path, len(entries))
        return len(entries)

    async def retry_all(self) -> None:
        for holder in self.health.holders:
            await holder.retry()
        if not self.held():
            if self._journal_pending:
                self.file.remove()
                self._journal_pending = False
                log.info("journal %s: all %d held writes landed; removed", self.file.path, self.replayed)
            if not self.health.ok:
                await self.store.ping()           # nothing to write: ask whether it is back

    async def start(self) -> None:
        await self.retry_all()                     # the journal first
        self._task = asyncio.get_running_loop().create_task(self._run(), name="backlog")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.retry_seconds)
            try:
                if self.held() or not self.health.ok or self._journal_pending:
                    await self.retry_all()
                elif self.health.idle_for() > self.probe_seconds:
                    await self.store.ping()       # no writes lately: would one be answered?
            except Exception:
                log.exception("retrying held writes failed")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def journal(self) -> int:
        """At shutdown, after everyone else stopped: one more try (at most `stop_seconds`, and
        only if the database looks up), then whatever is still held goes to the journal."""
        if self.held() and self.health.ok:
            try:
                await asyncio.wait_for(self.retry_all(), self.stop_seconds)
            except asyncio.TimeoutError:
                pass
        entries = list(self._orphans)
        for holder in self.health.holders:
            entries += [{"holder": holder.name, **e} for e in holder.take_held()]
        if entries:
            self.file.write(entries)
            log.warning("journal %s: %d held writes saved for the next start (%s)", self.file.path, len(entries),
                        ", ".join(f"{n} {k}" for k, n in _count(entries).items()))
        elif self._journal_pending:
            self.file.remove()                   # what was read at the start has landed
        return len(entries)


def _count(entries: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in entries:
        kind = e.get("kind") or e["holder"]
        out[kind] = out.get(kind, 0) + 1
    return out
