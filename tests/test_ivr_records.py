"""IVR and survey sessions stored with their calls (ivr/records.py), and what they set off
(callcenter/followup/ratings.py): sessions walked over real TCP through the FastAGI server as
Asterisk drives it, against a real app and database (SQLite and PostgreSQL), with calls tracked
from recorded AMI streams (the IVR runs on the caller's channel: its uniqueid is the call's id)."""
from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from callcenter.replay import replay
from callcenter.settings import DatabaseSettings
from callcenter.storage import tables as t
from tests.conftest import MONDAY_10, ROOT, SHANGHAI, TRACES
from tests.test_fastagi import FakeAsterisk
from tests.test_ivr_agi import HOTLINE, _apps, asterisk

BASIC_CALL = ("1795347503.179", "1795347503.178", "13800000002")    # basic.jsonl: answered by 1001 in q-market
AFTER_HOURS_CALL = ("1795347544.199", "13600000001")                 # afterhours.jsonl: a Sunday caller of market


@pytest.fixture
async def make_app(settings):
    apps = _apps(settings, None)
    make = await anext(apps)
    yield lambda url, at=MONDAY_10, conf=settings: make(at, url=url, conf=conf)
    async for _ in apps:                    # its clean-up: servers, records, stores
        pass


async def walk(app, digits, uniqueid, caller, script=f"ivr?hotline={HOTLINE}", record="200 result=35 (dtmf) endpos=16000"):
    env = {"network": "yes", "network_script": script, "uniqueid": uniqueid, "callerid": caller,
           "channel": f"Local/{HOTLINE}@hotline-0000001;2"}
    client = FakeAsterisk(app.ivr.port, asterisk(digits, record), env=env)
    await client.run()
    assert client.closed_by_server
    return app.ivr.ivr.finished[-1]


async def sessions(app) -> dict:
    async with app.store.engine.connect() as conn:
        rows = (await conn.execute(select(t.ivr_sessions).order_by(t.ivr_sessions.c.id))).mappings().all()
    return {(r["uniqueid"], r["script"]): dict(r) for r in rows}


def close_of(day: str) -> datetime:
    """16:30 in Shanghai (the close of the example configuration's last window) on `day`."""
    return datetime.fromisoformat(f"{day}T16:30:00").replace(tzinfo=SHANGHAI)


async def test_sessions_are_stored_with_their_tracked_call_and_a_bad_rating_opens_a_follow_up(make_app, settings, db_url):
    await replay(settings, db_url, [str(TRACES / "basic.jsonl")], MONDAY_10)
    app = await make_app(db_url, MONDAY_10 + timedelta(minutes=5))
    call_id, linkedid, caller = BASIC_CALL
    [call] = await app.store.calls_where((t.calls.c.pbx == "pbx1") & (t.calls.c.id == call_id))
    calls_before = len(await app.store.calls_where(t.calls.c.pbx == "pbx1"))
    [case] = await app.cases.list(caller=caller, department="market")
    # the caller's path (a wrong key, then 2), then the survey after the agent hung up: 3 不满意
    ivr = await walk(app, ["9", "2"], call_id, caller)
    survey = await walk(app, ["3"], call_id, caller,
                        script=f"survey?hotline={HOTLINE}&pbx=pbx1&queue=q-market&interface=PJSIP/1001")
    await app.ivr_records.flush()
    stored = await sessions(app)
    assert set(stored) == {(call_id, "ivr"), (call_id, "survey")}
    row = stored[(call_id, "ivr")]
    assert json.loads(row["path"]) == ivr["path"] and row["outcome"] == ivr["outcome"] == "queue"
    assert (row["route_kind"], row["route_queue"], row["route_item"]) == ("queue", "q-market", "食品经营许可")
    assert (row["choice"], row["item"], row["level"], row["caller_num"], row["hotline"]) == \
        ("2", "食品经营许可", 1, caller, HOTLINE)
    # one call: the sessions carry the tracked call's key and linkedid; no call row was added
    for row in stored.values():
        assert (row["pbx"], row["call_found"], row["linkedid"], row["case_id"]) == ("pbx1", True, linkedid, case["id"])
        assert row["linked_at"] is not None and row["started_at"] == MONDAY_10 + timedelta(minutes=5)
    assert call.linkedid == linkedid
    assert len(await app.store.calls_where(t.calls.c.pbx == "pbx1")) == calls_before
    rated = stored[(call_id, "survey")]
    assert (rated["rating"], rated["agent"], rated["queue"], rated["choice"]) == ("dissatisfied", "1001", "q-market", "3")
    assert survey["rating"] == "dissatisfied"
    # the follow-up: contact within 1 workday (Tue), rectification within 5 (Mon after); not the rated agent
    [task] = [x for x in await app.followup.list(caller=caller) if x["reason"] == "dissatisfied"]
    assert rated["task_id"] == task["id"]
    assert (task["department"], task["status"], task["case_id"], task["rated_agent"]) == ("market", "open", case["id"], "1001")
    assert datetime.fromisoformat(task["deadline"]) == close_of("2026-11-24")
    assert datetime.fromisoformat(task["rectify_deadline"]) == close_of("2026-11-30")
    assert task["rectify_kind"] == "simple" and task["assignee"] != "1001"
    assert [h["kind"] for h in (await app.followup.get(task["id"]))["history"]] == ["rating", "assigned"]
    history = (await app.cases.get(case["id"]))["history"]
    assert [(h["kind"], h["actor"], h["rating"]) for h in history if h["kind"] == "rating"] == [("rating", "1001", "dissatisfied")]
    # the same session again (a retry, a replayed spool): nothing twice
    app.ivr_records.add(dict(survey))
    await app.ivr_records.flush()
    assert len(await sessions(app)) == 2
    assert len([x for x in await app.followup.list(caller=caller) if x["reason"] == "dissatisfied"]) == 1


async def test_a_complex_case_gets_13_workdays_and_a_later_answered_call_does_not_close_it(make_app, settings, db_url):
    await replay(settings, db_url, [str(TRACES / "basic.jsonl")], MONDAY_10)
    app = await make_app(db_url, MONDAY_10 + timedelta(minutes=5))
    call_id, _, caller = BASIC_CALL
    await app.cases.dispose("pbx1", call_id, "1001", "follow_up_complex")
    await walk(app, ["3"], call_id, caller, script=f"survey?hotline={HOTLINE}&agent=1001&queue=q-market")
    await app.ivr_records.flush()
    [task] = await app.followup.list(caller=caller, status="open")
    assert (task["reason"], task["rectify_kind"]) == ("dissatisfied", "complex")
    # 13 workdays after Monday 23 November 2026: Thursday 10 December
    assert datetime.fromisoformat(task["rectify_deadline"]) == close_of("2026-12-10")
    # the caller calls again and is answered: the follow-up owed on the rating stays open
    from callcenter.domain import tasks as rules
    async with app.store.engine.connect() as conn:
        found = await app.followup._open_tasks(conn, caller)
    [record] = await app.store.calls_where((t.calls.c.pbx == "pbx1") & (t.calls.c.id == call_id))
    decisions = rules.plan_for_call(record, found, app.followup.policy, app.followup.directory.department_of_queue, None)
    assert not any(isinstance(d, rules.Close) for d in decisions)


async def test_deadlines_over_the_national_day_holiday_and_a_make_up_sunday(make_app, db_url):
    """No call tracked for these sessions: after `link_grace_minutes` they are acted on alone."""
    app = await make_app(db_url, datetime(2026, 9, 30, 15, 0, tzinfo=SHANGHAI))      # Wednesday, before 国庆
    await walk(app, ["3"], "1790000000.1", "13900000001", script=f"survey?hotline={HOTLINE}&agent=1002")
    await app.ivr_records.flush()
    assert (await sessions(app))[("1790000000.1", "survey")]["linked_at"] is None   # waits for its call
    assert await app.followup.list(caller="13900000001") == []
    app.clock.advance(31 * 60)
    await app.ivr_records.flush()
    row = (await sessions(app))[("1790000000.1", "survey")]
    assert row["linked_at"] is not None and not row["call_found"] and row["linkedid"] is None
    [task] = await app.followup.list(caller="13900000001")
    # 1-8 October are holidays (with the weekend), 10 October (a Saturday) is worked
    assert datetime.fromisoformat(task["deadline"]) == close_of("2026-10-08")
    assert datetime.fromisoformat(task["rectify_deadline"]) == close_of("2026-10-13")
    assert (task["rated_agent"], task["case_id"], task["rectify_kind"]) == ("1002", None, "simple")
    # Friday 18 September: Sunday 20 September is a make-up workday, so it is the contact deadline
    app.clock.advance((datetime(2026, 9, 18, 10, tzinfo=SHANGHAI) - app.clock.now()).total_seconds())
    await walk(app, ["3"], "1790000000.2", "13900000002", script=f"survey?hotline={HOTLINE}")
    app.clock.advance(3600)
    await app.ivr_records.flush()
    [task] = await app.followup.list(caller="13900000002")
    assert datetime.fromisoformat(task["deadline"]) == close_of("2026-09-20")
    assert datetime.fromisoformat(task["rectify_deadline"]) == close_of("2026-09-24")   # 20, 21-24 (25th: 中秋)


async def test_a_callback_request_marks_the_after_hours_task_of_its_call(make_app, settings, db_url):
    sunday = datetime(2026, 11, 22, 10, 0, tzinfo=SHANGHAI)
    await replay(settings, db_url, [str(TRACES / "afterhours.jsonl")], sunday)
    app = await make_app(db_url, sunday)
    call_id, caller = AFTER_HOURS_CALL
    [before] = await app.followup.list(caller=caller)
    assert before["reason"] == "after_hours"
    done = await walk(app, ["1"], call_id, caller)
    assert done["outcome"] == "callback_request"
    await app.ivr_records.flush()
    [task] = await app.followup.list(caller=caller)
    assert (task["id"], task["reason"], task["misses"]) == (before["id"], "callback_request", 1)
    assert task["recording"] == "ivr-callback-1795347544-199" == done["recordings"][0]
    row = (await sessions(app))[(call_id, "ivr")]
    assert (row["task_id"], row["call_found"], row["outcome"]) == (task["id"], True, "callback_request")
    # a caller whose call was never tracked: after the grace, a task of its own
    await walk(app, ["1"], "1795349999.5", "13600000009")
    app.clock.advance(31 * 60)
    await app.ivr_records.flush()
    [other] = await app.followup.list(caller="13600000009")
    assert (other["reason"], other["recording"], other["department"]) == ("callback_request", "ivr-callback-1795349999-5", "market")


async def test_a_bad_rating_joins_the_callers_open_task_and_a_good_one_opens_none(make_app, db_url):
    from callcenter.domain.tasks import Reason
    app = await make_app(db_url, MONDAY_10)
    missed = await app.followup.request("13900000041", "market", Reason.RING_NO_ANSWER, MONDAY_10 - timedelta(hours=20),
                                        "pbx1", "1795340000.1")
    await walk(app, ["3"], "1795352000.1", "13900000041", script=f"survey?hotline={HOTLINE}&agent=1002")
    await walk(app, ["1"], "1795352000.2", "13900000042", script=f"survey?hotline={HOTLINE}&agent=1002")
    app.clock.advance(31 * 60)
    await app.ivr_records.flush()
    [task] = await app.followup.list(caller="13900000041")
    assert task["id"] == missed["id"]                     # one open task per caller and department
    assert (task["reason"], task["rated_agent"], task["rectify_kind"]) == ("dissatisfied", "1002", "simple")
    assert task["deadline"] == missed["deadline"]         # the earlier of the two contact deadlines
    assert [h["kind"] for h in (await app.followup.get(task["id"]))["history"]][-1] == "rating"
    assert await app.followup.list(caller="13900000042") == []
    stored = await sessions(app)
    assert stored[("1795352000.2", "survey")]["rating"] == "satisfied" and stored[("1795352000.2", "survey")]["task_id"] is None


async def test_a_stop_keeps_what_was_not_stored_yet(make_app, settings, db_url, tmp_path):
    conf = short_db(settings, tmp_path / "journal.jsonl")
    app = await make_app(db_url, MONDAY_10, conf)
    done = await walk(app, ["2"], "1795353000.1", "13900000051")
    app.ivr_records._task.cancel()                    # the writer never got to it
    app.ivr_records.pending = [done]
    async with Lock(db_url):
        await app.ivr_records.stop()                  # the database is busy: onto the spool
    assert app.ivr_records.spool.path.exists() and await sessions(app) == {}
    again = await make_app(db_url, MONDAY_10, conf)
    await again.ivr_records.start()
    await again.ivr_records.flush()
    assert list(await sessions(again)) == [("1795353000.1", "ivr")]


# --- the database away, and a crash ------------------------------------------------------------

def short_db(settings, journal):
    return settings.model_copy(update={"database": DatabaseSettings(
        connect_timeout=1, statement_timeout=1, pool_timeout=1, busy_timeout=0.2, stall_seconds=1,
        retry_seconds=0.2, probe_seconds=0.5, stop_seconds=1, journal=str(journal))})


class Lock:
    """The database really busy: SQLite locked by another connection (BEGIN EXCLUSIVE), or the
    PostgreSQL table locked by another session (ACCESS EXCLUSIVE): writes time out until released."""

    def __init__(self, url: str):
        self.url = url

    async def __aenter__(self):
        if self.url.startswith("sqlite"):
            self.conn = sqlite3.connect(self.url[len("sqlite:///"):], isolation_level=None)
            self.conn.execute("BEGIN EXCLUSIVE")
        else:
            import asyncpg
            self.conn = await asyncpg.connect(self.url)
            self.tx = self.conn.transaction()
            await self.tx.start()
            await self.conn.execute("LOCK TABLE ivr_sessions IN ACCESS EXCLUSIVE MODE")
        return self

    async def __aexit__(self, *exc):
        if self.url.startswith("sqlite"):
            self.conn.execute("ROLLBACK")
            self.conn.close()
        else:
            await self.tx.rollback()
            await self.conn.close()


async def test_storage_down_then_up_loses_nothing(make_app, settings, db_url, tmp_path):
    conf = short_db(settings, tmp_path / "journal.jsonl")
    app = await make_app(db_url, MONDAY_10, conf)
    records = app.ivr_records
    async with Lock(db_url):
        loop = asyncio.get_running_loop()
        started = loop.time()
        done = [await walk(app, ["2"], f"1795350000.{i}", f"1390000010{i}") for i in range(3)]
        assert loop.time() - started < 3            # the callers never waited for the database
        await records.flush()
        assert records.backlog() == {"ivr_sessions": 3}
        assert records.spool.path.stat().st_mode & 0o777 == 0o600          # callers' numbers: owner only
        assert app.store.health.snapshot()["backlog"]["ivr_sessions"] == 3  # /api/health shows them
        assert [json.loads(x)["record"]["uniqueid"] for x in records.spool.path.read_text().splitlines()[1:]] == \
            [d["uniqueid"] for d in done]
    await records.retry()                            # what the backlog does every retry_seconds
    assert records.backlog() == {"ivr_sessions": 0} and not records.spool.path.exists()
    stored = await sessions(app)
    assert sorted(stored) == sorted((d["uniqueid"], "ivr") for d in done)
    assert all(json.loads(stored[(d["uniqueid"], "ivr")]["path"]) == d["path"] for d in done)


CHILD = textwrap.dedent("""
    import asyncio, sys
    from datetime import datetime
    from callcenter.bootstrap import build
    from callcenter.clock import FixedClock
    from callcenter.settings import DatabaseSettings, load_settings
    from ivr import server as ivr_server

    async def main(url, journal):
        s = load_settings(sys.argv[3])
        s = s.model_copy(update={"database": DatabaseSettings(connect_timeout=1, statement_timeout=1,
            pool_timeout=1, busy_timeout=0.2, stall_seconds=1, retry_seconds=0.2, journal=journal)})
        app = build(s, url, FixedClock(datetime.fromisoformat(sys.argv[4])))
        server = ivr_server.attach(app, port=0)
        await server.start()
        print(server.port, flush=True)
        await asyncio.sleep(3600)
    asyncio.run(main(sys.argv[1], sys.argv[2]))
""")


async def test_a_crash_while_the_database_is_away_loses_nothing(make_app, settings, db_url, tmp_path):
    """The first service runs in a process of its own and is killed (SIGKILL) with sessions held;
    a new app over the same database and journal stores them."""
    journal = tmp_path / "journal.jsonl"
    conf = short_db(settings, journal)
    first = await make_app(db_url, MONDAY_10, conf)                 # migrated; its server is not used
    spool = first.ivr_records.spool.path
    child = subprocess.Popen([sys.executable, "-c", CHILD, db_url, str(journal), str(ROOT / "config"),
                              MONDAY_10.isoformat()], stdout=subprocess.PIPE, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        port = int(await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 30))
        async with Lock(db_url):
            for i in range(2):
                client = FakeAsterisk(port, asterisk(["3"]), env={
                    "network": "yes", "network_script": f"survey?hotline={HOTLINE}&agent=1001",
                    "uniqueid": f"1795351000.{i}", "callerid": f"1390000020{i}", "channel": "Local/x;2"})
                await client.run()
                assert client.closed_by_server
            for _ in range(100):                      # held: on disk before anything else happens
                if spool.exists() and len(spool.read_text().splitlines()) == 3:
                    break
                await asyncio.sleep(0.1)
            child.kill()                              # SIGKILL: no stop, no journal
            child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    assert len(spool.read_text().splitlines()) == 3
    second = await make_app(db_url, MONDAY_10 + timedelta(minutes=1), conf)
    assert second.ivr_records in second.extras      # App.start starts it
    await second.ivr_records.start()
    await second.ivr_records.flush()
    stored = await sessions(second)
    assert sorted(stored) == [("1795351000.0", "survey"), ("1795351000.1", "survey")]
    assert all(r["rating"] == "dissatisfied" and r["agent"] == "1001" for r in stored.values())
    assert not spool.exists() and second.ivr_records.backlog() == {"ivr_sessions": 0}
    async with second.store.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(t.ivr_sessions))).scalar() == 2
