"""The IVR's records: every finished IVR or survey session stored with its call (issue 12).

`attach(app)` (callcenter/bootstrap.py) adds `app.ivr_records`, an `IvrRecords`; the FastAGI
handlers (ivr/agi_session.py, via ivr/server.py) and the Twilio webhooks hand it each finished
session as the record dict `IvrAgi._finish` builds (`add(record)`: no I/O, never raises, so it
can neither block nor break a caller's session).

- Storing: a background writer stores sessions in `ivr_sessions` (one transaction per batch,
  idempotent on (pbx, uniqueid, script, started_at): a transferred caller's second IVR walk
  on the same channel is a second row). While the database is away the sessions are held and
  appended (fsync'd) to a spool file next to the journal (`<journal>.ivr.jsonl`), so neither a
  stop nor a crash (SIGKILL) loses one; the backlog retries them (`retry`, a holder of
  callcenter/journal.py) and the next start reads the spool back. A session the database rejects
  (a bad value, not an outage) is logged and stays in the spool for the next start.
- Linking (ivr/links.py): once the session's call (its uniqueid is the call's id) is stored and
  processed, the session is linked to it, its case and agent, and acted on: a dissatisfied rating
  opens its follow-up, a callback request marks the call's task (callcenter/followup/ratings.py).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

from callcenter.aio import cancel_and_wait
from callcenter.followup.ratings import RatingFollowUp
from callcenter.journal import Journal, decode, encode, journal_path
from callcenter.storage import tables as t
from callcenter.storage.health import describe, is_unavailable
from .links import Linker

log = logging.getLogger(__name__)


class Spool(Journal):
    """The held sessions on disk: appended and fsync'd as they are held, rewritten as they land."""

    def append(self, entries: list[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)   # callers' numbers: owner only
        with open(fd, "a", encoding="utf-8") as fh:
            if new:
                fh.write(json.dumps({"journal": 1, "database": self.database}) + "\n")
            for entry in entries:
                fh.write(json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if new:
            self._sync_dir()                     # the new file's name is durable too

    def rewrite(self, entries: list[dict]) -> None:
        if entries:
            self.write(entries)
        else:
            self.remove()


def summary(path: list[dict]) -> dict:
    """What the report groups by: the menu digits chosen, the last item, the deepest level."""
    menu = [p for p in path if p.get("at_step") == "menu" and "choice" in p]
    survey = [p for p in path if p.get("at_step") == "survey" and "choice" in p]
    items = [p["item"] for p in menu if p.get("item")]
    choice = "".join(str(p["choice"]) for p in (menu or survey))
    return {"choice": choice[:32], "item": items[-1][:255] if items else None,
            "level": max((int(p.get("level") or 0) for p in path), default=0)}


def _text(value, size: int) -> str | None:
    return None if value is None else str(value)[:size]


class IvrRecords(Linker):
    name = "ivr_sessions"                       # as a holder of held writes (callcenter/journal.py)

    def __init__(self, app):
        self.app, self.store, self.clock = app, app.store, app.clock
        self.cfg = app.settings.survey_followup
        self.directory = app.cases.directory
        self.ratings = RatingFollowUp(app.followup, app.cases, app.settings)
        journal = journal_path(app.settings.database.journal, app.store.url)
        self.spool = Spool(journal.with_name(Path(journal).stem + ".ivr.jsonl"),
                           app.store.engine.url.render_as_string(hide_password=True))
        self.pending: list[dict] = []           # finished, not yet tried
        self.held: list[dict] = []              # the database was away (also in the spool)
        self.rejected: list[dict] = []          # refused by the database (kept in the spool)
        self.stored = self.linked = 0
        self._failures: dict[int, int] = {}
        self.excluded_callers: set[str] = set()
        self._unlinked = True
        self._kick = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None

    # --- from the IVR ---------------------------------------------------------------------------

    def add(self, record: dict) -> None:
        """A finished session (ivr/agi_session.py's record dict); stored in the background.
        Sessions of `excluded_callers` (the hotline probes' caller id) are not stored."""
        if str(record.get("caller") or "") in self.excluded_callers:
            return
        self.pending.append(record)
        self._kick.set()
        if self._task is None or self._task.done():
            try:
                self._task = asyncio.get_running_loop().create_task(self._run(), name="ivr-records")
            except RuntimeError:                 # no loop (a plain handler's thread): the next start
                pass

    # --- lifecycle (one of App.extras) ----------------------------------------------------------

    async def start(self) -> None:
        try:
            entries = await asyncio.to_thread(self.spool.read)
        except Exception as exc:
            entries = []
            log.error("IVR spool %s unreadable: %s", self.spool.path, exc)
        if entries:
            self.held += [decode(e["record"]) for e in entries]
            log.warning("IVR spool %s: %d sessions read back; storing them first", self.spool.path, len(entries))
        self._unlinked = True
        self._kick.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="ivr-records")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if self.pending and self.store.health.ok:
            try:
                await asyncio.wait_for(self.flush(), 1.0)
            except Exception as exc:             # (the database is slow or away: the spool keeps them)
                log.warning("IVR records: storing at stop failed (%s)", type(exc).__name__)
        if self.pending:                         # not tried yet: onto the spool (the next start stores them)
            batch, self.pending = self.pending, []
            self.held += batch
            self.spool.append([{"holder": self.name, "record": encode(r)} for r in batch])

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._kick.wait(), self.cfg.link_seconds)
            except asyncio.TimeoutError:
                pass
            self._kick.clear()
            try:
                await self.flush()
            except Exception as exc:
                if not is_unavailable(exc):
                    log.exception("IVR records: a pass failed")

    async def flush(self) -> None:
        """Store what is pending (or hold it), retry what is held, then link what is ready."""
        async with self._lock:
            if self.held:                        # the older ones first
                await self._retry()
            if self.pending:
                batch, self.pending = self.pending, []
                try:
                    if self.held:                # still away: straight onto the spool, no wait
                        await self._hold(batch, "the database is still away")
                    else:
                        await self._store(batch)
                except BaseException:            # cancelled mid-write: tried again (idempotent)
                    self.pending[:0] = batch
                    raise
            if self._unlinked and not self.held:
                try:
                    await self.link()
                except Exception as exc:
                    if not is_unavailable(exc):
                        raise

    # --- storing ----------------------------------------------------------------------------------

    def row(self, r: dict) -> dict:
        route = r.get("route") or {}
        path = list(r.get("path") or [])
        pbx = _text(r.get("pbx") or "pbx1", 64)
        agent = _text(r.get("agent"), 64)
        if agent is None and r.get("interface"):
            agent = self.directory.agent_of(r["interface"], pbx=pbx)
        started = r["started_at"]
        return {"pbx": pbx, "uniqueid": _text(r.get("uniqueid") or f"noid-{started.timestamp():.6f}", 64),
                "script": _text(r.get("script") or "ivr", 16), "hotline": _text(r.get("hotline") or "", 64),
                "caller_num": _text(r.get("caller") or "", 64), "department": _text(r.get("department"), 64),
                "path": json.dumps(path, ensure_ascii=False), "outcome": _text(r.get("outcome") or "", 32),
                "route_kind": _text(route.get("kind"), 16), "route_queue": _text(route.get("queue"), 128),
                "route_item": _text(route.get("item"), 255), **summary(path),
                "rating": _text(r.get("rating"), 16), "agent": agent, "queue": _text(r.get("queue"), 128),
                "interface": _text(r.get("interface"), 255),
                "recordings": json.dumps([str(x)[:255] for x in r.get("recordings") or []]),
                "started_at": started, "ended_at": r.get("ended_at") or started, "stored_at": self.clock.now()}

    async def _write(self, records: list[dict]) -> None:
        rows = [self.row(r) for r in records]
        async with self.store.begin() as conn:
            await conn.execute(self.store._insert(t.ivr_sessions).on_conflict_do_nothing(), rows)
        self.stored += len(rows)
        self._unlinked = True

    async def _store(self, batch: list[dict]) -> None:
        try:
            await self._write(batch)
            return
        except Exception as exc:
            if is_unavailable(exc):
                await self._hold(batch, describe(exc))
                return
        for record in batch:                     # refused as a batch: one by one
            try:
                await self._write([record])
            except Exception as exc:
                if is_unavailable(exc):
                    await self._hold([record], describe(exc))
                    continue
                self.rejected.append(record)
                await asyncio.to_thread(self.spool.append, [{"holder": self.name, "record": encode(record)}])
                log.error("IVR session %s refused by the database: %s; kept in %s", record.get("uniqueid"),
                          describe(exc) if hasattr(exc, "orig") else f"{type(exc).__name__}: {exc}", self.spool.path)

    async def _hold(self, batch: list[dict], why: str) -> None:
        self.held += batch
        await asyncio.to_thread(self.spool.append, [{"holder": self.name, "record": encode(r)} for r in batch])
        log.warning("IVR: %d sessions held for a retry (%s); spooled to %s", len(batch), why, self.spool.path)

    async def _retry(self) -> None:
        try:
            await self._write(self.held)
        except Exception as exc:
            if is_unavailable(exc):
                return
            log.error("IVR: held sessions refused as a batch (%s); retried one by one", describe(exc))
            held, self.held = self.held, []
            await self._store(held)
            return
        log.info("IVR: %d held sessions stored", len(self.held))
        self.held = []
        await asyncio.to_thread(self.spool.rewrite, [{"holder": self.name, "record": encode(r)} for r in self.rejected])

    # --- holder of held writes (callcenter/journal.py Backlog) -------------------------------------

    def backlog(self) -> dict[str, int]:
        return {self.name: len(self.held) + len(self.rejected)}

    async def retry(self) -> None:
        if self.held:
            async with self._lock:
                await self._retry()

    def take_held(self) -> list[dict]:
        return []                                # already in the spool, read back at the next start

    def restore(self, entries: list[dict]) -> None:
        self.held += [decode(e["record"]) for e in entries]

def attach(app) -> IvrRecords:
    """`app.ivr_records`, started with the app and counted in its backlog (/api/health)."""
    records = IvrRecords(app)
    app.ivr_records = records
    app.extras.append(records)
    app.store.health.holders.append(records)
    return records
