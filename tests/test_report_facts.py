"""The facts each stint carries for the reports (migration 0016: its call's start and after-hours
flag, wait and talk time in microseconds, last stint or not; each call's number of stints) are
the domain's (`wait_micros`, `talk_micros`) whether `Store.save_calls` wrote them or the
migration worked them out in SQL for rows stored before it, on SQLite and PostgreSQL; waits
across midnight and across days, fractions SQLite's own date functions would round, negative
waits, missing ends and talk times included."""
from __future__ import annotations

import random
from datetime import timedelta

from alembic import command
from alembic.config import Config
from sqlalchemy import select

from callcenter.domain.metrics import talk_micros, wait_micros
from callcenter.storage import tables as t
from callcenter.storage.store import MIGRATIONS, Store
from tests.conftest import MONDAY_10
from tests.test_report_sql import _random_calls


def _expected(records) -> tuple[dict, dict]:
    stints, calls = {}, {}
    for r in records:
        calls[(r.pbx, r.id)] = len(r.stints)
        for seq, s in enumerate(r.stints):
            stints[(r.pbx, r.id, seq)] = (r.started_at, r.after_hours, wait_micros(s), talk_micros(s.talk_seconds),
                                          seq == len(r.stints) - 1)
    return stints, calls


async def _stored(store) -> tuple[dict, dict]:
    s, c = t.stints.c, t.calls.c
    async with store.engine.connect() as conn:
        stints = {(r[0], r[1], r[2]): (r[3], bool(r[4]), r[5], r[6], bool(r[7])) for r in (await conn.execute(select(
            s.pbx, s.call_id, s.seq, s.call_started_at, s.call_after_hours, s.wait_us, s.talk_us, s.is_last))).all()}
        calls = {(r[0], r[1]): r[2] for r in (await conn.execute(select(c.pbx, c.id, c.stint_count))).all()}
    return stints, calls


async def _migrate(store, revision: str, down: bool = False) -> None:
    def run(connection) -> None:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(cfg, revision)
    async with store.begin() as conn:
        await conn.run_sync(run)


async def test_stored_facts_match_the_domain_written_or_migrated(settings, db_url):
    records = _random_calls(random.Random(16), MONDAY_10.replace(hour=0) - timedelta(hours=8), 600, settings)
    expected = _expected(records)
    assert sum(1 for v in expected[1].values() if v == 0) > 20            # calls without a stint
    assert sum(1 for v in expected[1].values() if v > 1) > 50             # transfers
    store = Store(db_url)
    try:
        await store.migrate()
        assert await store.save_calls(records) == len(records)
        assert await _stored(store) == expected                            # as written by save_calls
        await _migrate(store, "0015", down=True)                           # rows from before 0016
        await _migrate(store, "head")
        assert await _stored(store) == expected                            # as the migration works them out
        current, head = await store.schema_status()
        assert current == head
    finally:
        await store.close()
