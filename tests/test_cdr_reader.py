"""The CDR reader (callcenter/cdr/reader.py) in the real service, on the real Master.csv and
queue_log the bundled Asterisk wrote for the same calls (tests/traces/cdr/), real SQLite:
calls that never reached a queue come from the CDR, the rest from queue_log -- the queue timeout
whose CDR looks like an after-hours call included -- each stored once, also across a restart."""
from __future__ import annotations

import asyncio
import os
import shutil

from callcenter.bootstrap import build
from callcenter.domain.records import Outcome
from callcenter.settings import load_settings
from callcenter.storage import tables as t
from callcenter.storage.tables import cdr_positions
from tests.conftest import ROOT, TRACES
from tests.fakepbx import free_port, stored, until, write_config

# caller number -> outcome; 1, 5 and 6 reached a queue (queue_log's), 2, 3 and 4 did not (the CDR's)
EXPECTED = {"13800000001": Outcome.ANSWERED, "13800000002": Outcome.ABANDONED_IVR,
            "13800000003": Outcome.AFTER_HOURS, "13800000004": Outcome.ABANDONED_IVR,
            "13800000005": Outcome.ABANDONED, "13800000006": Outcome.TIMED_OUT}


async def _run(settings, db_url: str, seconds: float | None = None):
    app = build(settings, db_url, queue_log=True)
    await app.start()
    try:
        async def all_there():
            return len((await stored(db_url))[0]) >= len(EXPECTED)
        if seconds is None:
            assert await until(all_there, 10, 0.1)
        else:
            await asyncio.sleep(seconds)
        readers = [x for x in app.extras if type(x).__name__ == "CdrReconciler"]
    finally:
        await app.stop()
    return readers[0]


async def test_cdr_and_queue_log_together_store_every_call_once(tmp_path, db_url):
    csv_file, queue_log = tmp_path / "Master.csv", tmp_path / "queue_log"
    shutil.copy(TRACES / "cdr" / "Master.csv", csv_file)
    shutil.copy(TRACES / "cdr" / "queue_log", queue_log)
    config = write_config(ROOT / "config", tmp_path / "config", free_port(), queue_log, free_port(),
                          queue_log_poll=0.05, queue_log_settle=0.6, cdr_csv=str(csv_file),
                          cdr_csv_timezone="UTC", cdr_csv_poll=0.05, cdr_csv_settle=0.2)
    settings = load_settings(config)
    # both files were there before: read from their start (a first start would call them history)
    app = build(settings, db_url, queue_log=True)
    await app.store.migrate()
    async with app.store.begin() as conn:
        for table, path in ((t.queue_log_positions, queue_log), (cdr_positions, csv_file)):
            await conn.execute(table.insert().values(pbx="pbx1", path=str(path), inode=os.stat(path).st_ino,
                                                     offset=0, updated_at=app.clock.now()))
    await app.store.close()

    reader = await _run(settings, db_url)
    calls, tasks, _ = await stored(db_url)
    assert {c.caller_num: c.outcome for c in calls.values()} == EXPECTED
    assert all(c.reconciled for c in calls.values())
    assert reader.created == 3 and reader.bad_lines == 0        # 2, 3 and 4; 6 was left to queue_log
    by_caller = {c.caller_num: c for c in calls.values()}
    assert by_caller["13800000002"].id == "1796012304.3" and by_caller["13800000002"].department == "edu"
    assert by_caller["13800000003"].after_hours and by_caller["13800000003"].stints == []
    # follow-up tasks through the same commit path, one per unanswered caller
    assert {caller for _, caller, _ in tasks} == {n for n, o in EXPECTED.items() if o is not Outcome.ANSWERED}

    again = await _run(settings, db_url, seconds=0.8)       # a restart from the saved positions
    assert again.created == 0
    assert (await stored(db_url))[0].keys() == calls.keys()


async def test_a_first_start_leaves_older_cdrs_alone(tmp_path, sqlite_url):
    """No saved position: the rows already in Master.csv ended before this start (history; dated
    2020 here so that any clock agrees)."""
    csv_file, queue_log = tmp_path / "Master.csv", tmp_path / "queue_log"
    csv_file.write_text((TRACES / "cdr" / "Master.csv").read_text().replace('"2026-11-30 ', '"2020-01-02 '))
    queue_log.write_text("1577836800|NONE|NONE|NONE|QUEUESTART|\n")
    config = write_config(ROOT / "config", tmp_path / "config", free_port(), queue_log, free_port(),
                          queue_log_poll=0.05, queue_log_settle=0.3, cdr_csv=str(csv_file),
                          cdr_csv_timezone="UTC", cdr_csv_poll=0.05, cdr_csv_settle=0.1)
    reader = await _run(load_settings(config), sqlite_url, seconds=0.6)
    assert reader.created == 0 and (await stored(sqlite_url))[0] == {}
