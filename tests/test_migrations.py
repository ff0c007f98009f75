"""Upgrading a database that already holds data keeps it (SQLite's batch migrations copy tables;
with foreign keys on, dropping the old `calls` used to cascade and empty `stints`)."""
from __future__ import annotations

import sqlite3
from contextlib import closing

from alembic import command
from alembic.config import Config

from callcenter.storage.store import MIGRATIONS, Store


def _fill(con, table: str, given: dict) -> None:
    row = dict(given)
    for _, name, typ, notnull, default, _pk in con.execute(f"pragma table_info({table})"):
        if name in row or not notnull or default is not None:
            continue
        kind = typ.upper()
        row[name] = 0 if any(k in kind for k in ("INT", "BOOL", "FLOAT")) else (
            "2026-11-23 02:00:00.000000" if "DATE" in kind else "x")
    names = ",".join(f'"{k}"' for k in row)
    con.execute(f"insert into {table} ({names}) values ({','.join('?' * len(row))})", list(row.values()))


async def test_upgrading_an_old_sqlite_database_keeps_every_row(tmp_path):
    path = tmp_path / "old.db"
    store = Store(f"sqlite:///{path}")

    def to_0001(connection) -> None:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0001")
    async with store.begin() as conn:
        await conn.run_sync(to_0001)
    with closing(sqlite3.connect(path)) as con:
        _fill(con, "calls", {"pbx": "pbx1", "id": "1795347500.171"})
        _fill(con, "stints", {"pbx": "pbx1", "call_id": "1795347500.171", "seq": 0})
        con.commit()
    await store.migrate()                               # 0001 -> head
    await store.close()
    with closing(sqlite3.connect(path)) as con:
        assert con.execute("select count(*) from calls").fetchone() == (1,)
        assert con.execute("select count(*) from stints").fetchone() == (1,)
        assert con.execute("pragma foreign_key_check").fetchall() == []
