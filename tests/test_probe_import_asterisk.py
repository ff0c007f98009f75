"""`callcenter import-queue-log` on the queue_log the real Asterisk of ../shared/asterisk wrote for a
hotline probe and a citizen's call beside it (issue 13; skipped only when Asterisk cannot start
here): the probe's call, told by the caller id of its ENTERQUEUE line, is left out and counted
apart; the citizen's call is stored, with its follow-up task."""
from __future__ import annotations

import asyncio

from callcenter.ami.client import AmiClient, Endpoint
from callcenter.bootstrap import build
from callcenter.probes.plan import Target
from callcenter.queuelog.backfill import import_queue_log
from callcenter.settings import load_settings
from tests.fakepbx import stored
from tests import test_probes_asterisk
from tests.test_multi_pbx import until
from tests.test_probes_asterisk import CITIZEN, MONDAY_0931, PROBE_ID, _app, citizen_call

pbx = test_probes_asterisk.pbx          # the real Asterisk with the probe context, queue_log and CDR (fixture)


async def test_import_of_the_real_queue_log_leaves_the_probe_out(pbx, tmp_path):
    port, config, directory = pbx
    queue_log = directory / "log" / "queue_log"
    app = await _app(config, f"sqlite:///{tmp_path}/live.db", at=MONDAY_0931.replace(day=22))   # a Sunday: no schedule
    driver = AmiClient(Endpoint("driver", "127.0.0.1", port, "callcenter", "ccsecret"), lambda *_: None)
    driver.start()
    try:
        await asyncio.wait_for(driver.connected.wait(), 10)
        await citizen_call(driver)
        row = await app.probes.probe(Target("pbx1", "62000001", "market"))
        assert row["result"] == "answered", row

        async def both_left_the_queue():
            text = queue_log.read_text() if queue_log.exists() else ""
            ended = [line for line in text.splitlines() if line.split("|")[4:5] in (["ABANDON"], ["EXITWITHTIMEOUT"],
                                                                                  ["COMPLETECALLER"], ["COMPLETEAGENT"])]
            return len(ended) >= 2
        assert await until(both_left_the_queue, 20)
        text = queue_log.read_text()
        assert f"|ENTERQUEUE||{PROBE_ID}|" in text and f"|ENTERQUEUE||{CITIZEN}|" in text, text
    finally:
        await driver.stop()
        await app.stop()

    db = f"sqlite:///{tmp_path}/import.db"                  # another database: history from the file alone
    settings = load_settings(config).model_copy(update={"posts": []})
    imported = build(settings, db)
    try:
        summary = await import_queue_log(imported, str(queue_log), "pbx1")
        tasks = await imported.followup.list(status="open")
    finally:
        await imported.store.close()
    assert (summary.calls, summary.stored, summary.probes) == (1, 1, 1), summary
    calls = (await stored(db))[0]
    assert [c.caller_num for c in calls.values()] == [CITIZEN]
    assert [task["caller_num"] for task in tasks] == [CITIZEN]
