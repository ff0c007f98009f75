"""The after-commit pipeline: batches, poison calls parked while every other call proceeds, a
database outage that parks nothing, callback results off the ingest consumer, lost callback
answers that expire, and a `callcenter serve` that stops within 10 s under a backlog."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import yaml
from sqlalchemy import false, func, select
from sqlalchemy.exc import OperationalError

from callcenter.aftercommit import Runner, parked_calls
from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.domain import cases as case_rules
from callcenter.domain import tasks as task_rules
from callcenter.domain.callbacks import AttemptResult
from callcenter.domain.records import StintEnd
from callcenter.storage import tables as t
from callcenter.storage.store import Store
from tests.conftest import MONDAY_10, ROOT
from tests.test_followup import _call


def _fast(settings, **pipeline):
    values = {"batch_size": 8, "max_attempts": 3, "tick_seconds": 0.05, "linger_seconds": 0, **pipeline}
    return settings.model_copy(update={"pipeline": settings.pipeline.model_copy(update=values)})


async def _pending(store) -> int:
    async with store.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(t.calls).where(
            (t.calls.c.cases_done == false()) | (t.calls.c.followup_done == false())))).scalar_one()


async def _until_done(store, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while await _pending(store):
        assert time.monotonic() < deadline, "the pipeline did not catch up"
        await asyncio.sleep(0.05)


async def _until_serving(log, starts: int, timeout: float = 30) -> None:
    """Until the `starts`-th `serve` writing to `log` says it is serving (its signal handlers are in)."""
    deadline = time.monotonic() + timeout
    while log.read_text(errors="replace").count("serving ") < starts:
        assert time.monotonic() < deadline, f"serve did not start: {log.read_text()[-2000:]}"
        await asyncio.sleep(0.05)


def _calls(n: int):
    """n calls from distinct callers to q-edu: odd ones abandoned (a task), even ones answered (a case)."""
    return [_call(f"c{i}", f"1380000{i:04d}", MONDAY_10 + timedelta(minutes=i),
                  StintEnd.ABANDONED if i % 2 else StintEnd.ANSWERED, wait=30) for i in range(n)]


async def test_a_poisoned_call_is_parked_and_every_other_call_proceeds(settings, db_url, monkeypatch, caplog, capsys):
    plan_for_call, plan_for_answered = task_rules.plan_for_call, case_rules.plan_for_answered

    def poisoned_task_step(record, *args, **kwargs):
        if record.id == "c7":
            raise ValueError("corrupt stint data")
        return plan_for_call(record, *args, **kwargs)

    def poisoned_case_step(record, *args, **kwargs):
        if record.id == "c8":
            raise KeyError("seq")
        return plan_for_answered(record, *args, **kwargs)

    monkeypatch.setattr(task_rules, "plan_for_call", poisoned_task_step)
    monkeypatch.setattr(case_rules, "plan_for_answered", poisoned_case_step)
    app = build(_fast(settings), db_url, FixedClock(MONDAY_10 + timedelta(hours=1)))
    await app.store.migrate()
    await app.store.save_calls(_calls(40))
    caplog.set_level(logging.WARNING, logger="callcenter.aftercommit")
    await app.after_commit.start()
    try:
        await _until_done(app.store)
        tasks = await app.followup.list()
        cases = await app.cases.list()
        parked = await parked_calls(app.store)
        from aiohttp.test_utils import TestClient, TestServer
        from callcenter.web.app import init_app
        client = TestClient(TestServer(await init_app(app)))
        await client.start_server()
        try:
            health = await (await client.get("/api/health")).json()
        finally:
            await client.close()
    finally:
        await app.after_commit.stop()
        await app.store.close()
    # every other call has its task or case; the poisoned ones are listed, each with one clear line
    assert sorted(t_["caller_num"] for t_ in tasks) == sorted(f"1380000{i:04d}" for i in range(1, 40, 2) if i != 7)
    assert sorted(c["caller_num"] for c in cases) == sorted(f"1380000{i:04d}" for i in range(0, 40, 2) if i != 8)
    assert sorted((p["call_id"], p["step"], p["attempts"]) for p in parked) == [("c7", "followup", 3), ("c8", "cases", 3)]
    assert {p["call_id"]: p["error"] for p in parked} == {"c7": "ValueError: corrupt stint data", "c8": "KeyError: 'seq'"}
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and "parked" in r.getMessage()]
    assert sorted(line.split(" parked")[0] for line in lines) == ["call pbx1/c7", "call pbx1/c8"]
    assert health["parked_calls"] == 2
    # and `callcenter calls parked` lists them
    from callcenter.cli import main
    assert await asyncio.to_thread(main, ["calls", "parked", "--db", db_url, "--config", str(ROOT / "config")]) == 0
    out = capsys.readouterr().out
    assert "搁置的来电：2 通" in out and "c7" in out and "followup" in out and "corrupt stint data" in out


async def test_a_database_outage_parks_nothing(settings, sqlite_url):
    """A step that fails because the database is away is retried later; the call is never blamed."""
    store = Store(sqlite_url)
    await store.migrate()
    await store.save_calls(_calls(3))

    class Away:
        name, flag = "followup", "followup_done"

        async def apply(self, conn, records, careful):
            raise OperationalError("INSERT INTO tasks ...", {}, Exception("database is locked"))

    runner = Runner(store, _fast(settings).pipeline, FixedClock(MONDAY_10))
    with pytest.raises(OperationalError):
        await runner.run(Away())
    try:
        assert await parked_calls(store) == []
        async with store.engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(t.call_failures))).scalar_one() == 0
        assert await _pending(store) == 3
    finally:
        await store.close()


async def test_batches_match_one_call_at_a_time(settings, db_url, tmp_path):
    """The same calls processed in batches of 8 and one per transaction give the same tasks and
    cases, and a repeat caller's task and case chains are unbroken within a batch."""
    calls = _calls(24)
    calls += [_call(f"r{i}", "13900000000", MONDAY_10 + timedelta(hours=1, minutes=i),
                    StintEnd.ANSWERED if i == 2 else StintEnd.ABANDONED, wait=30) for i in range(4)]
    got = []
    for batch_size, url in ((8, db_url), (1, f"sqlite:///{tmp_path}/one.db")):
        app = build(_fast(settings, batch_size=batch_size), url, FixedClock(MONDAY_10 + timedelta(hours=2)))
        await app.store.migrate()
        await app.store.save_calls(calls)
        await app.after_commit.catch_up()
        tasks = [await app.followup.get(x["id"]) for x in await app.followup.list()]
        cases = [await app.cases.get(x["id"]) for x in await app.cases.list()]
        await app.store.close()
        got.append(([(x["caller_num"], x["status"], x["misses"], x["closure"], x["version"],
                      [(h["kind"], h["version"]) for h in x["history"]]) for x in tasks],
                    [(x["caller_num"], x["owner"], x["version"], [(h["kind"], h["version"]) for h in x["history"]])
                     for x in cases]))
    assert got[0] == got[1]
    repeat = [x for x in got[0][0] if x[0] == "13900000000"]
    # two misses, then the answered call closes the task; the last miss opens a new one
    assert [(x[1], x[2], x[3]) for x in repeat] == [("closed", 2, "caller_called_again"), ("open", 1, None)]
    assert sorted(v for _, v in repeat[0][5]) == [1, 2, 3, 4] and repeat[0][4] == 4


async def test_callback_results_are_recorded_off_the_consumer(settings, sqlite_url):
    """The tracker's results are handed to the pipeline at once, even while a pass is running."""
    app = build(settings, sqlite_url, FixedClock(MONDAY_10))
    await app.store.migrate()
    [(_, _, persist)] = app.service.trackers
    result = AttemptResult("pbx1", "pbx1:1700000000.1", "13911112222", "PJSIP/1005-00000001", "no_answer", "caller",
                           "", MONDAY_10, None, MONDAY_10 + timedelta(seconds=20))
    async with app.after_commit._running:               # a long pass is under way
        await asyncio.wait_for(persist([result]), 0.5)
    assert app.after_commit.results == [result]
    await app.after_commit.catch_up()
    async with app.store.engine.connect() as conn:
        rows = (await conn.execute(select(t.callback_attempts.c.key, t.callback_attempts.c.result))).all()
    await app.store.close()
    assert [tuple(r) for r in rows] == [("pbx1:1700000000.1", "no_answer")]


async def test_a_lost_callback_answer_expires_and_a_late_one_still_counts(settings, db_url):
    clock = FixedClock(MONDAY_10)
    app = build(settings, db_url, clock)             # ring_timeout 30 s + margin 30 s
    await app.store.migrate()
    task = await app.followup.request("13911112222", "edu", task_rules.Reason.CALLBACK_REQUEST, MONDAY_10, "pbx1", "r1")
    async with app.store.begin() as conn:
        for key, age in (("cb-old", 61), ("cb-new", 10)):
            await conn.execute(t.callback_attempts.insert().values(
                key=key, task_id=task["id"], pbx="pbx1", agent="1005", number="13911112222",
                requested_at=MONDAY_10 - timedelta(seconds=age), result="pending", reason_code=""))
    await app.after_commit.start()                    # reconciled at start-up
    await app.after_commit.stop()
    now = await app.followup.get(task["id"])
    assert {c["key"]: c["result"] for c in now["callbacks"]} == {"cb-old": "expired", "cb-new": "pending"}
    assert [h["result"] for h in now["history"] if h["kind"] == "attempt"] == ["expired"]
    clock.at = MONDAY_10 + timedelta(seconds=55)      # the other one expires on a later pass
    assert await app.callbacks.expire_pending() == 1
    # the PBX's answer for the old attempt arrives after all: the truth is recorded
    await app.callbacks.record([AttemptResult("pbx1", "cb-old", "13911112222", "Local/1005@agents-1;1", "answered", "",
                                              "0", MONDAY_10, MONDAY_10 + timedelta(seconds=5),
                                              MONDAY_10 + timedelta(seconds=65), "1700000000.9")])
    done = await app.followup.get(task["id"])
    await app.store.close()
    assert {c["key"]: c["result"] for c in done["callbacks"]} == {"cb-old": "answered", "cb-new": "expired"}
    assert (done["status"], done["closure"]) == ("closed", "callback_completed")
    assert [h["version"] for h in sorted(done["history"], key=lambda h: h["version"])] == list(range(1, done["version"] + 1))


# --- a real `callcenter serve`: SIGTERM under a backlog ----------------------------------------------

def _serve_config(tmp, port: int) -> str:
    out = tmp / "config"
    out.mkdir()
    for path in (ROOT / "config").glob("*.yaml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if path.name == "callcenter.yaml":
            data["pbxes"] = [{**data["pbxes"][0], "port": port, "reconnect_min": 0.05, "reconnect_max": 0.5}]
            data.setdefault("web", {})["port"] = 0
            data["pipeline"] = {"batch_size": 1, "linger_seconds": 0}    # one call per transaction: a backlog
        (out / path.name).write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return str(out)


async def test_sigterm_under_a_backlog_exits_within_10_s_and_the_next_start_catches_up(settings, sqlite_url, tmp_path):
    from benchmarks.bench_ingest import build_stream
    from callcenter.ami.server import AmiServer
    stream = build_stream(ROOT / "tests" / "traces" / "load.jsonl", 12)          # 432 calls
    server = AmiServer(messages=stream.messages, banner=stream.banner)
    port = await server.start()
    config = _serve_config(tmp_path, port)
    env = {**os.environ, "CALLCENTER_AMI_SECRET": "test"}
    store = Store(sqlite_url)

    async def serve():
        return await asyncio.create_subprocess_exec(sys.executable, "-m", "callcenter.cli", "serve", "--db", sqlite_url,
                                                    "--config", config, env=env, cwd=ROOT,
                                                    stdout=subprocess.DEVNULL, stderr=open(tmp_path / "serve.log", "ab"))

    async def stop(proc) -> float:
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
        return time.monotonic() - sent

    try:
        proc = await serve()
        deadline = time.monotonic() + 60
        while True:                                   # half the calls stored, the pipeline behind
            try:
                calls = await store.count_calls()
            except Exception:
                calls = 0
            if calls >= 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        backlog = await _pending(store)
        took = await stop(proc)
        assert proc.returncode == 0, (tmp_path / "serve.log").read_text()[-3000:]
        assert took < 10, f"SIGTERM took {took:.1f} s"
        assert backlog > 0                            # there was a backlog to cut
        stored = await store.count_calls()
        proc = await serve()                          # the next start catches up
        await _until_serving(tmp_path / "serve.log", 2)   # (a stop before it is up would kill it: -15)
        await _until_done(store, 60)
        assert await store.count_calls() >= stored
        assert await stop(proc) < 10 and proc.returncode == 0
    finally:
        await store.close()
        await server.close()


async def test_upgrading_a_database_numbers_the_existing_audit_events(db_url):
    """Migration 0008 on a database with cases and events: nothing deleted, each event numbered
    in order, each case at its event count."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text
    from callcenter.storage.store import MIGRATIONS

    def upgrade(revision):
        def run(connection):
            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
        return run

    store = Store(db_url)
    try:
        async with store.begin() as conn:
            await conn.run_sync(upgrade("0007"))
        at = MONDAY_10.astimezone(tz=None).replace(tzinfo=None)
        async with store.begin() as conn:
            for case_id in (1, 2):
                await conn.execute(text(
                    "INSERT INTO cases (id, caller_num, department, pbx, status, item, opened_at, deadline_provisional, "
                    "resolved_first_contact, knowledge_gap, work_order, directed_to) "
                    "VALUES (:id, :caller, 'edu', 'pbx1', 'open', '', :at, false, false, false, '', '')"),
                    {"id": case_id, "caller": str(case_id), "at": at})
            for case_id, kind in ((1, "opened"), (2, "opened"), (1, "joined"), (1, "disposition")):
                await conn.execute(text("INSERT INTO case_events (case_id, at, kind, actor, detail) "
                                        "VALUES (:c, :at, :k, '', '')"), {"c": case_id, "at": at, "k": kind})
        async with store.begin() as conn:
            await conn.run_sync(upgrade("head"))
        async with store.engine.connect() as conn:
            cases = (await conn.execute(text("SELECT id, version FROM cases ORDER BY id"))).all()
            events = (await conn.execute(text("SELECT case_id, kind, version FROM case_events ORDER BY id"))).all()
    finally:
        await store.close()
    assert [tuple(c) for c in cases] == [(1, 3), (2, 1)]
    assert [tuple(e) for e in events] == [(1, "opened", 1), (2, "opened", 1), (1, "joined", 2), (1, "disposition", 3)]
