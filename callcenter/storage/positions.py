"""Read positions in the PBXes' files (queue_log, CDR): one row per PBX holding the file's inode
and the offset to read again from. The tables share one shape (`queue_log_positions`,
`cdr_positions`); the readers in callcenter/queuelog/ and callcenter/cdr/ decide the offset."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Table, select


async def load(store, table: Table, pbx: str) -> tuple[int, int] | None:
    """(inode, offset) saved for `pbx`, or None before its first save."""
    c = table.c
    async with store.engine.connect() as conn:
        row = (await conn.execute(select(c.inode, c.offset).where(c.pbx == pbx))).first()
    return (row[0], row[1]) if row else None


async def save(store, table: Table, pbx: str, path: str, inode: int, offset: int, at: datetime) -> None:
    """Insert or move `pbx`'s position (idempotent)."""
    row = {"pbx": pbx, "path": path, "inode": inode, "offset": offset, "updated_at": at}
    async with store.begin() as conn:
        await conn.execute(store._insert(table).values(row).on_conflict_do_update(
            index_elements=["pbx"], set_={k: row[k] for k in ("path", "inode", "offset", "updated_at")}))
