"""Hotline probes kept out of what is built beside the stream (issue 13), without a PBX:

- `Service.on_dropped`: the calls a submit filter leaves out are told to the listeners, per PBX;
  the queue_log and CDR readers register `forget` themselves, so a reader wired to the service
  (whether or not it is an app extra) stops waiting for a dropped probe call and its saved read
  position moves on past it.
- `callcenter import-queue-log`: a probe call in the file (told by the caller id of its
  ENTERQUEUE line) is not stored and is counted apart.
- The head dashboard's waiting list (agents/live/views.py) leaves out a probe waiting in a queue,
  told by its caller id or by the probe context's Local channel."""
from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from agents.live import views
from callcenter.bootstrap import build
from callcenter.cdr.reader import CdrReconciler
from callcenter.clock import FixedClock
from callcenter.domain.records import CallRecord, Outcome
from callcenter.queuelog.backfill import import_queue_log
from callcenter.queuelog.reconciler import QueueLogReconciler
from callcenter.storage import tables as t
from tests.fakepbx import stored

PROBE = "95000"
AT = datetime(2026, 11, 30, 4, 30, tzinfo=timezone.utc)
QUEUE_LOG = """1796012299|NONE|NONE|NONE|QUEUESTART|
1796012305|1796012304.2|q-market|NONE|ENTERQUEUE||95000|1
1796012307|1796012304.2|q-market|NONE|ABANDON|1|1|2
1796012308|1796012308.5|q-market|NONE|ENTERQUEUE||13800000001|1
1796012310|1796012308.5|q-market|NONE|ABANDON|1|1|2
"""
_CDR = ('"","{num}","62000002","hotline","""Caller {num}"" <{num}>","Local/62000002@hotline-0000000{n};2","","Wait",'
        '"5","2026-11-30 04:18:24","2026-11-30 04:18:24","2026-11-30 04:18:25",1,1,"ANSWERED","DOCUMENTATION",'
        '"1796012320.{n}","","","1796012320.{n}",{n}\n')
CDR = _CDR.format(num=PROBE, n=1) + _CDR.format(num="13800000002", n=2)


def probing(settings):
    return settings.model_copy(update={"probes": settings.probes.model_copy(update={"caller_id": PROBE})})


def _record(pbx: str, callid: str, caller: str) -> CallRecord:
    return CallRecord(pbx=pbx, id=callid, linkedid=callid, caller_num=caller, caller_name="", hotline="62000001",
                      department="market", started_at=AT, ended_at=AT + timedelta(seconds=5),
                      outcome=Outcome.ABANDONED, reconciled=True)


async def test_submit_tells_drop_listeners_what_a_filter_left_out(settings, sqlite_url):
    app = build(probing(settings), sqlite_url, FixedClock(AT))
    service = app.service
    told = []
    service.on_dropped(lambda pbx, ids: told.append((pbx, ids)))
    service.on_dropped(lambda pbx, ids: 1 / 0)            # a failing listener is logged and counted
    errors = service.handler_errors
    try:
        service.submit([_record("pbx1", "1.1", PROBE), _record("pbx1", "1.2", "13800000001"),
                        _record("pbx2", "2.1", PROBE), _record("pbx1", "1.3", PROBE)])
        assert told == [("pbx1", ["1.1", "1.3"]), ("pbx2", ["2.1"])]
        assert [r.id for r in service.unsaved_calls] == ["1.2"]
        assert service.handler_errors == errors + 2
        told.clear()
        service.submit([_record("pbx1", "1.4", "13800000001")])        # nothing dropped: nobody told
        assert told == []
    finally:
        await app.store.close()


async def test_readers_forget_dropped_probe_calls_and_move_on(tmp_path, settings, sqlite_url):
    """The readers are wired to the service by hand here, not through `build` (not app extras):
    the drop hook reaches them all the same."""
    queue_log, csv_file = tmp_path / "queue_log", tmp_path / "Master.csv"
    queue_log.write_text(QUEUE_LOG)
    csv_file.write_text(CDR)
    settings = probing(settings)
    endpoint = settings.pbxes[0].model_copy(update={
        "queue_log": str(queue_log), "queue_log_poll": 3600, "queue_log_settle": 0,
        "cdr_csv": str(csv_file), "cdr_csv_poll": 3600, "cdr_csv_settle": 0, "hotline_contexts": ["hotline"]})
    app = build(settings, sqlite_url, FixedClock(AT), queue_log=False)
    await app.store.migrate()
    async with app.store.begin() as conn:                  # both files known from their start (no history)
        for table, path in ((t.queue_log_positions, queue_log), (t.cdr_positions, csv_file)):
            await conn.execute(table.insert().values(pbx=endpoint.id, path=str(path), inode=os.stat(path).st_ino,
                                                     offset=0, updated_at=AT))
    await app.start()
    q = QueueLogReconciler(app.service, app.store, endpoint, app.clock)
    cdr = CdrReconciler(app.service, app.store, endpoint, app.clock, ZoneInfo("UTC"), q)
    assert q not in app.extras and cdr not in app.extras
    await q.start()
    await cdr.start()
    try:
        await q.pass_once()                                  # (their first passes run at start too)
        await cdr.pass_once()
        assert q.created == 2 and cdr.created == 2          # the probe's call among them
        assert list(q.submitted) == ["1796012308.5"] and list(cdr.submitted) == ["1796012320.2"]
        await app.service.settled(5)
        await q.pass_once()
        await cdr.pass_once()                                # the citizens' calls are stored: nothing waits
        assert q.submitted == {} and cdr.submitted == {}
        assert q._saved[1] == queue_log.stat().st_size and cdr._saved[1] == csv_file.stat().st_size
        assert app.probe_recogniser.dropped == 2
    finally:
        await cdr.stop()
        await q.stop()
        await app.stop()
    calls = (await stored(sqlite_url))[0]
    assert sorted(c.caller_num for c in calls.values()) == ["13800000001", "13800000002"]


async def test_import_queue_log_leaves_probe_calls_out(tmp_path, settings, sqlite_url):
    src = tmp_path / "queue_log"
    src.write_text(QUEUE_LOG)
    app = build(probing(settings), sqlite_url)
    try:
        first = await import_queue_log(app, str(src), "pbx1")
        again = await import_queue_log(app, str(src), "pbx1")
        tasks = await app.followup.list(status="open")
    finally:
        await app.store.close()
    assert (first.calls, first.stored, first.probes, first.unfinished) == (1, 1, 1, 0)
    assert (again.calls, again.stored, again.probes) == (1, 0, 1)
    calls = (await stored(sqlite_url))[0]
    assert [c.caller_num for c in calls.values()] == ["13800000001"]
    assert [task["caller_num"] for task in tasks] == ["13800000001"]      # no follow-up for the probe


def _caller(linkedid: str, caller: str, n: int) -> list[dict]:
    """A caller's hotline channel created, then joining q-market."""
    leg = {"Channel": f"Local/62000001@hotline-0000a{n};2", "CallerIDNum": caller, "CallerIDName": "",
           "Context": "hotline", "Exten": "62000001", "Uniqueid": f"{linkedid[:-1]}{n + 1}", "Linkedid": linkedid}
    return [{"Event": "Newchannel", "ChannelState": "0", "Priority": "1", **leg},
            {"Event": "QueueCallerJoin", "ChannelState": "6", "Priority": "5", "Queue": "q-market",
             "Position": str(n), "Count": str(n), **leg}]


async def test_a_probe_waiting_in_a_queue_is_not_on_the_dashboard(settings, sqlite_url):
    app = build(probing(settings), sqlite_url, FixedClock(AT))
    service = app.service
    probe_leg = {"Event": "Newchannel", "Channel": "Local/62000001@callcenter-probe-00000001;1", "ChannelState": "0",
                 "CallerIDNum": "", "CallerIDName": "", "Context": "callcenter-probe", "Exten": "62000001",
                 "Priority": "1", "Uniqueid": "1796012400.1", "Linkedid": "1796012400.1"}
    messages = [*_caller("1796012300.0", "13900000001", 1),     # a citizen
                *_caller("1796012350.0", PROBE, 2),             # a probe, by its caller id
                probe_leg, *_caller("1796012400.1", "62000009", 3)]   # a probe, by the probe context's channel
    records, sessions = [], []
    try:
        for message in messages:
            service._process("pbx1", message, AT, records, sessions)
        assert service.calls.open_calls == 3
        now = AT + timedelta(seconds=10)
        today = SimpleNamespace(figures=lambda d: {}, open_incidents={}, overdue_tasks={}, overdue_cases={})
        board = views.dashboard_message(app, "market", now, today)
        assert board["waiting"]["count"] == 1 and [c["caller_num"] for c in board["waiting"]["calls"]] == ["13900000001"]
        assert [w.caller_num for w in views.waiting_callers(app, now)] == ["13900000001"]
    finally:
        await app.store.close()
