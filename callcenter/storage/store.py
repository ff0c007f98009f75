"""The Store: one async engine; writes completed calls and sessions, reads them back.

Writes are idempotent (the call's PBX and caller-leg Uniqueid are its key; a session's PBX,
interface, queue, kind and start are its key), so a restart or a second delivery never
duplicates a record.

Database faults: connections and statements time out (`database:` settings), pooled connections
are checked before use, and every write transaction reports to `self.health`
(callcenter/storage/health.py), which /api/health shows.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from sqlalchemy import event, false, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ..clock import SystemClock
from ..domain.metrics import CaseFact, TaskFact, talk_micros, wait_micros
from ..domain.presence import AgentSession
from ..domain.records import CallRecord, Outcome, Stint, StintEnd
from . import tables as t
from .health import DatabaseHealth

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
DEFAULT_URL = "sqlite:///callcenter.db"


def async_url(url: str) -> str:
    """Accept plain URLs (sqlite:///x.db, postgresql://...) and pick the async driver."""
    if url.startswith("sqlite://") and "+" not in url.split("://")[0]:
        return "sqlite+aiosqlite://" + url[len("sqlite://"):]
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    return url


class Store:
    def __init__(self, url: str = DEFAULT_URL, clock=None, options=None, read_only: bool = False):
        """``options``: the `database:` settings (callcenter/settings.py DatabaseSettings).
        ``read_only`` (reports): SQLite is opened with ``mode=ro`` and ``query_only``, so it never
        takes the write lock and a missing file is an error, not a new database; PostgreSQL
        sessions are read-only transactions. Such a store is never migrated (`schema_status`)."""
        from ..settings import DatabaseSettings
        self.clock = clock or SystemClock()
        self.options = options = options or DatabaseSettings()
        self.read_only = read_only
        self.url = async_url(url)
        if read_only and self.url.startswith("sqlite+aiosqlite:///") and "mode=ro" not in self.url:
            path = self.url[len("sqlite+aiosqlite:///"):]
            self.url = f"sqlite+aiosqlite:///file:{path}{'&' if '?' in path else '?'}mode=ro&uri=true"
        self.health = DatabaseHealth(self.clock, options.stall_seconds)
        kwargs: dict = {"pool_timeout": options.pool_timeout, "pool_pre_ping": True}
        if self.url.startswith("postgresql+asyncpg"):
            kwargs["connect_args"] = {"timeout": options.connect_timeout, "command_timeout": options.statement_timeout}
            if read_only:       # jit off: compiling a report's aggregates took PostgreSQL 15 ~2 s
                kwargs["connect_args"]["server_settings"] = {"default_transaction_read_only": "on", "jit": "off"}
        # hide_parameters: no log level or error message ever shows SQL parameters (callers' numbers)
        self.engine: AsyncEngine = create_async_engine(self.url, hide_parameters=True, **kwargs)
        self.dialect = self.engine.dialect.name
        # writes begin through `begin()`: on SQLite they take the write lock at once (see _sqlite_begin)
        self._writer = self.engine.execution_options(immediate=True)
        if self.dialect == "sqlite":
            busy = int(options.busy_timeout * 1000)
            event.listen(self.engine.sync_engine, "connect",
                         lambda c, r: _sqlite_pragmas(c, r, busy, read_only=read_only))
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)

    @asynccontextmanager
    async def begin(self):
        """A write transaction (`async with store.begin() as conn`); reads use engine.connect().
        On SQLite, writers of this process take turns on an asyncio lock rather than spinning
        in SQLite's busy handler (SQLite has one writer at a time anyway). How it ends is
        reported to `health` (a write still pending after `stall_seconds` counts as a fault)."""
        if self.dialect != "sqlite":
            async with self._reported():
                async with self._writer.begin() as conn:
                    yield conn
            return
        async with _write_lock(self.url):
            async with self._reported():
                async with self._writer.begin() as conn:
                    yield conn

    @asynccontextmanager
    async def _reported(self):
        token = self.health.started()
        try:
            yield
        except BaseException as exc:
            self.health.finished(token, exc)
            raise
        self.health.finished(token)

    async def ping(self) -> bool:
        """One tiny write transaction (reported like any write): is the database back?"""
        try:
            async with self.begin() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def schema_status(self) -> tuple[str | None, str]:
        """(the database's Alembic revision, None if it has none; the revision this code expects:
        the newest file in migrations/versions, named after its revision), read without writing
        anything and without importing Alembic (a report starts faster)."""
        head = max(p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))
        async with self.engine.connect() as conn:
            def current(sync_conn):
                from sqlalchemy import inspect
                if not inspect(sync_conn).has_table("alembic_version"):
                    return None
                return sync_conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
            return await conn.run_sync(current), head

    async def migrate(self) -> None:
        if self.read_only:
            raise RuntimeError("a read-only store is never migrated")
        from alembic import command
        from alembic.config import Config

        def upgrade(connection) -> None:
            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
        if self.dialect == "sqlite":
            # SQLite: Alembic's batch mode copies a table and drops the old one; with foreign keys
            # on, that drop cascades to the children (upgrading 0001 emptied `stints`). Migrate on
            # an engine of its own with foreign keys off, as Alembic's documentation advises.
            engine = create_async_engine(self.url, hide_parameters=True)
            event.listen(engine.sync_engine, "connect",
                         lambda c, r: _sqlite_pragmas(c, r, foreign_keys=False))
            event.listen(engine.sync_engine, "begin", _sqlite_begin)
            try:
                async with _write_lock(self.url):
                    async with engine.execution_options(immediate=True).begin() as conn:
                        await conn.run_sync(upgrade)
            finally:
                await engine.dispose()
            return
        # PostgreSQL: on an engine of its own without the service's statement timeout (a migration
        # that fills a new column of every stored call, as 0016 does, runs for as long as it takes)
        engine = create_async_engine(self.url, hide_parameters=True,
                                     connect_args={"timeout": self.options.connect_timeout, "command_timeout": None})
        try:
            async with engine.begin() as conn:
                await conn.run_sync(upgrade)
        finally:
            await engine.dispose()

    async def close(self, timeout: float = 2.0) -> None:
        """Close the pool; a hung server cannot hold the shutdown longer than ``timeout`` (half
        a second when it is known to be away)."""
        try:
            await asyncio.wait_for(self.engine.dispose(), timeout if self.health.ok else min(timeout, 0.5))
        except Exception as exc:
            log.warning("database connections not closed cleanly: %s", type(exc).__name__)

    def _insert(self, table):
        # the dialect's INSERT ... ON CONFLICT is imported on the first write, not with the store (start-up)
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

    # --- writes -------------------------------------------------------------------------------

    async def save_calls(self, records: list[CallRecord]) -> int:
        """Commit completed calls; returns how many were new."""
        if not records:
            return 0
        now = self.clock.now()
        call_rows, stint_rows = [], []
        for r in records:
            call_rows.append({
                "pbx": r.pbx, "id": r.id, "linkedid": r.linkedid, "caller_num": r.caller_num,
                "caller_name": r.caller_name, "hotline": r.hotline, "department": r.department,
                "started_at": r.started_at, "ended_at": r.ended_at, "outcome": r.outcome.value,
                "ivr_choice": r.ivr_choice, "ivr_queue": r.ivr_queue, "after_hours": r.after_hours,
                "reconciled": r.reconciled, "recorded_at": now, "stint_count": len(r.stints),
            })
            for seq, s in enumerate(r.stints):        # with the facts the reports count it by (0016)
                stint_rows.append({
                    "pbx": r.pbx, "call_id": r.id, "seq": seq, "queue": s.queue, "department": s.department,
                    "entered_at": s.entered_at, "left_at": s.left_at, "answered_at": s.answered_at,
                    "end": (s.end or StintEnd.UNKNOWN).value, "agent": s.agent, "member_name": s.member_name,
                    "interface": s.interface, "talk_seconds": s.talk_seconds, "completed_by": s.completed_by,
                    "transferred": s.transferred, "rings": s.rings, "no_answers": "\n".join(s.no_answers),
                    "call_started_at": r.started_at, "call_after_hours": r.after_hours, "wait_us": wait_micros(s),
                    "talk_us": talk_micros(s.talk_seconds), "is_last": seq == len(r.stints) - 1,
                })
        async with self.begin() as conn:
            existing = set()
            for pbx in {r.pbx for r in records}:
                found = await self.stored_call_ids(pbx, [r.id for r in records if r.pbx == pbx], conn)
                existing.update((pbx, call_id) for call_id in found)
            new_calls = [c for c in call_rows if (c["pbx"], c["id"]) not in existing]
            if not new_calls:
                return 0
            new_stints = [s for s in stint_rows if (s["pbx"], s["call_id"]) not in existing]
            await conn.execute(self._insert(t.calls).on_conflict_do_nothing(), new_calls)
            if new_stints:
                await conn.execute(self._insert(t.stints).on_conflict_do_nothing(), new_stints)
        return len(new_calls)

    async def save_sessions(self, sessions: list[AgentSession]) -> None:
        if not sessions:
            return
        rows = [{
            "pbx": s.pbx, "agent": s.agent, "interface": s.interface, "member_name": s.member_name,
            "queue": s.queue, "kind": s.kind, "reason": s.reason, "started_at": s.started_at,
            "ended_at": s.ended_at, "reconciled": s.reconciled,
        } for s in sessions]
        async with self.begin() as conn:
            await conn.execute(self._insert(t.agent_sessions).on_conflict_do_nothing(), rows)

    # --- reads --------------------------------------------------------------------------------

    async def stored_call_ids(self, pbx: str, ids: list[str], conn=None) -> set[str]:
        """Which of ``ids`` (calls of ``pbx``) are stored already (in ``conn``'s transaction
        when given: `save_calls`; else on a connection of its own: the PBX files' readers)."""
        if conn is None:
            async with self.engine.connect() as own:
                return await self.stored_call_ids(pbx, ids, own)
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            rows = await conn.execute(select(t.calls.c.id).where(
                t.calls.c.pbx == pbx, t.calls.c.id.in_(ids[i:i + 500])))
            found.update(row[0] for row in rows)
        return found

    async def calls_between(self, start: datetime, end: datetime) -> list[CallRecord]:
        """Calls that started in [start, end), oldest first, with their stints."""
        return await self.calls_where((t.calls.c.started_at >= start) & (t.calls.c.started_at < end))

    # --- the database as a queue of committed calls -----------------------------------------------

    async def each_unclaimed(self, flag: str, handle, batch: int = 200) -> int:
        """Call `handle(record)` for every committed call whose `flag` column (followup_done,
        cases_done) is still false, oldest first; `handle` claims it (see `claim`). Returns how
        many were handled."""
        column = t.calls.c[flag]
        done = 0
        while True:
            records = await self.calls_where(column == false(), limit=batch)
            if not records:
                return done
            for record in records:
                await handle(record)
            done += len(records)

    @staticmethod
    async def claim(conn, record: CallRecord, flag: str) -> bool:
        """Set the call's `flag` inside the caller's transaction; False if someone else did."""
        column = t.calls.c[flag]
        result = await conn.execute(update(t.calls).where(
            t.calls.c.pbx == record.pbx, t.calls.c.id == record.id, column == false()).values({flag: True}))
        return result.rowcount == 1

    async def calls_where(self, condition, limit: int | None = None, conn=None) -> list[CallRecord]:
        """Calls matching a condition on the calls table, oldest first, with their stints."""
        query = select(t.calls).where(condition).order_by(t.calls.c.started_at, t.calls.c.id)
        if limit:
            query = query.limit(limit)
        if conn is None:
            async with self.engine.connect() as own:
                return await self._load_calls(own, query)
        return await self._load_calls(conn, query)

    async def _load_calls(self, conn, query) -> list[CallRecord]:
        call_rows = (await conn.execute(query)).mappings().all()
        by_call: dict[tuple[str, str], list[Stint]] = {}
        keys = [(c["pbx"], c["id"]) for c in call_rows]
        for pbx in {k[0] for k in keys}:
            ids = [k[1] for k in keys if k[0] == pbx]
            for chunk in range(0, len(ids), 500):
                rows = (await conn.execute(select(t.stints).where(
                    t.stints.c.pbx == pbx, t.stints.c.call_id.in_(ids[chunk:chunk + 500]))
                    .order_by(t.stints.c.call_id, t.stints.c.seq))).mappings().all()
                for s in rows:
                    by_call.setdefault((s["pbx"], s["call_id"]), []).append(_stint(s))
        return [CallRecord(
            pbx=c["pbx"], id=c["id"], linkedid=c["linkedid"], caller_num=c["caller_num"],
            caller_name=c["caller_name"], hotline=c["hotline"], department=c["department"],
            started_at=c["started_at"], ended_at=c["ended_at"], outcome=Outcome(c["outcome"]),
            ivr_choice=c["ivr_choice"], ivr_queue=c["ivr_queue"], after_hours=c["after_hours"],
            reconciled=c["reconciled"], stints=by_call.get((c["pbx"], c["id"]), []),
        ) for c in call_rows]

    async def task_facts(self, start: datetime, end: datetime) -> list[TaskFact]:
        """Tasks first missed or closed in [start, end), for the daily report."""
        c = t.tasks.c
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(c.pbx, c.queue, c.department, c.first_missed_at, c.deadline,
                                              c.contacted_at, c.closed_at, c.closure).where(
                ((c.first_missed_at >= start) & (c.first_missed_at < end))
                | ((c.closed_at >= start) & (c.closed_at < end))))).all()
        return [TaskFact(*row) for row in rows]

    async def case_facts(self, start: datetime, end: datetime) -> list[CaseFact]:
        """Cases opened, closed or due in [start, end), and open cases already past their deadline."""
        c = t.cases.c
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(
                c.department, c.status, c.opened_at, c.deadline, c.closed_at, c.resolved_first_contact,
                c.knowledge_gap).where(
                ((c.opened_at >= start) & (c.opened_at < end)) | ((c.closed_at >= start) & (c.closed_at < end))
                | ((c.deadline >= start) & (c.deadline < end)) | ((c.status == "open") & (c.deadline < end))))).all()
        return [CaseFact(*row) for row in rows]

    async def pending_wrapups(self, cutoff: datetime) -> dict[str, int]:
        """Per department: answered calls without a disposition since before `cutoff`."""
        from sqlalchemy import func
        cc = t.case_calls.c
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(t.cases.c.department, func.count()).select_from(
                t.case_calls.join(t.cases, t.cases.c.id == cc.case_id)).where(
                cc.disposition.is_(None), cc.answered_at <= cutoff).group_by(t.cases.c.department))).all()
        return {department: count for department, count in rows}

    async def sessions_between(self, start: datetime, end: datetime) -> list[AgentSession]:
        """The sessions overlapping [start, end), in start order. Sorted here, not in SQL: without
        an ORDER BY, SQLite reads them by `ix_agent_sessions_ended_at` (those ending after the
        start: a recent day's) rather than by the start index, which holds the whole history
        before the day's end (0.09 s of a report on 317,000 sessions; migration 0016)."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(
                select(t.agent_sessions).where(t.agent_sessions.c.ended_at >= start,
                                               t.agent_sessions.c.started_at < end))).mappings().all()
        rows = sorted(rows, key=lambda r: (r["started_at"], r["id"]))
        return [AgentSession(r["pbx"], r["agent"], r["interface"], r["member_name"], r["queue"], r["kind"],
                             r["reason"], r["started_at"], r["ended_at"], r["reconciled"]) for r in rows]

    async def count_calls(self) -> int:
        from sqlalchemy import func
        async with self.engine.connect() as conn:
            return (await conn.execute(select(func.count()).select_from(t.calls))).scalar_one()


def _stint(s) -> Stint:
    return Stint(
        queue=s["queue"], department=s["department"], entered_at=s["entered_at"], left_at=s["left_at"],
        answered_at=s["answered_at"], end=StintEnd(s["end"]), agent=s["agent"], member_name=s["member_name"],
        interface=s["interface"], talk_seconds=s["talk_seconds"], completed_by=s["completed_by"],
        transferred=s["transferred"], rings=s["rings"], no_answers=[n for n in s["no_answers"].split("\n") if n])


_WRITE_LOCKS: dict[tuple[str, int], asyncio.Lock] = {}


def _write_lock(url: str) -> asyncio.Lock:
    """One writer at a time per SQLite file in this process (shared by every Store on it)."""
    key = (url, id(asyncio.get_running_loop()))
    lock = _WRITE_LOCKS.get(key)
    if lock is None:
        if len(_WRITE_LOCKS) > 64:                    # locks of finished event loops (tests)
            _WRITE_LOCKS.clear()
        lock = _WRITE_LOCKS[key] = asyncio.Lock()
    return lock


def _sqlite_begin(connection) -> None:
    """Write transactions take SQLite's write lock when they begin: a deferred transaction that
    read first and then writes cannot wait for another writer (SQLite answers "database is
    locked" at once to avoid a deadlock); an immediate one waits up to busy_timeout instead.
    Reads begin deferred and, in WAL mode, never wait."""
    immediate = connection.get_execution_options().get("immediate")
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _sqlite_pragmas(dbapi_connection, _record, busy_ms: int = 5000, foreign_keys: bool = True,
                    read_only: bool = False) -> None:
    dbapi_connection.isolation_level = None        # transactions are begun by _sqlite_begin
    cursor = dbapi_connection.cursor()
    if read_only:                                  # no journal-mode change (a write): reads only
        cursor.execute("PRAGMA query_only=ON")
    else:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cursor.close()
