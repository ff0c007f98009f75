"""Nothing lost across restarts and link drops (issue 9): a fake PBX over real TCP keeps playing a
real trace (load: 36 callers, three queues) whether or not the service listens, and writes the
matching queue_log as it goes. `callcenter serve` (a real subprocess) is stopped with SIGTERM, or
killed with SIGKILL, mid-stream and started again 10 s (trace time) later on the same database;
or the PBX drops the link several times a minute. Compared with an uninterrupted replay of the
same stream: no call missing or doubled; every call has the same outcome and answering agents;
calls seen whole have the same waits, the others are flagged reconciled with the PBX's figures;
the same follow-up tasks and cases.
"""
from __future__ import annotations

import asyncio
import random
import signal
from datetime import datetime, timezone
from pathlib import Path

from callcenter.domain.records import CallRecord, StintEnd
from callcenter.replay import replay
from tests.conftest import ROOT, trace_path
from tests.fakepbx import FakePbx, free_port, serve, stored, until, write_config

SPEED = 6.0                   # trace seconds per wall second


async def uninterrupted(settings, tmp_path: Path, at: datetime):
    url = f"sqlite:///{tmp_path}/baseline.db"
    await replay(settings, url, [str(trace_path("load"))], at)
    return await stored(url)


def answered_agents(record: CallRecord) -> list:
    return [(s.queue, s.agent) for s in record.stints if s.end is StintEnd.ANSWERED]


def waits(record: CallRecord) -> list:
    return [(s.queue, None if s.wait_seconds is None else round(s.wait_seconds, 1)) for s in record.stints]


def assert_same(base, got) -> tuple[int, int]:
    """The interrupted run agrees with the uninterrupted one; returns (whole, reconciled) counts."""
    base_calls, base_tasks, base_cases = base
    calls, tasks, cases = got
    assert set(calls) == set(base_calls), (f"missing {sorted(set(base_calls) - set(calls))}, "
                                           f"extra {sorted(set(calls) - set(base_calls))}")
    whole = reconciled = 0
    for call_id, want in base_calls.items():
        have = calls[call_id]
        assert have.outcome == want.outcome, (call_id, have.reconciled, have.stints, want.stints)
        assert answered_agents(have) == answered_agents(want), call_id
        assert have.department == want.department and have.caller_num == want.caller_num, call_id
        if have.reconciled:
            reconciled += 1
            for (q1, w1), (q2, w2) in zip(waits(have), waits(want), strict=True):
                assert q1 == q2 and w1 is not None and abs(w1 - w2) <= 1.5, (call_id, have, want)
        else:
            whole += 1
            assert waits(have) == waits(want), call_id
    assert tasks == base_tasks
    assert cases == base_cases
    return whole, reconciled


async def run_with_restart(tmp_path, db_url, settings, stop_signal) -> None:
    at = datetime.now(timezone.utc).replace(microsecond=0)
    base = await uninterrupted(settings, tmp_path, at)
    queue_log = tmp_path / "queue_log"
    fake = FakePbx(trace_path("load"), queue_log, at, SPEED)
    port = await fake.start()
    config = write_config(ROOT / "config", tmp_path / "config", port, queue_log, free_port())
    log = tmp_path / "serve.log"
    first = await serve(config, db_url, log)
    try:
        await asyncio.wait_for(fake.started.wait(), 30)
        await fake.wait_until(8.0)
        first.send_signal(stop_signal)
        code = await asyncio.wait_for(first.wait(), 15)
        assert code == (0 if stop_signal == signal.SIGTERM else -signal.SIGKILL), log.read_text()[-3000:]
        down_at = fake.trace_time
        await fake.wait_until(down_at + 10.0)            # ten seconds of calls while it is down
        second = await serve(config, db_url, log)
        try:
            await asyncio.wait_for(fake.done.wait(), 60)

            async def caught_up():
                got = await stored(db_url)
                return got if set(got[0]) >= set(base[0]) and got[1] == base[1] and got[2] == base[2] else None
            await until(caught_up, 20)
        finally:
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), 15) == 0, log.read_text()[-3000:]
    finally:
        if first.returncode is None:
            first.kill()
        await fake.close()
    whole, reconciled = assert_same(base, await stored(db_url))
    print(f"{stop_signal.name}: {whole} calls seen whole, {reconciled} reconciled")
    assert whole and reconciled, (whole, reconciled)


async def test_sigterm_mid_stream_then_restart(tmp_path, db_url, settings):
    await run_with_restart(tmp_path, db_url, settings, signal.SIGTERM)


async def test_kill_9_mid_stream_then_restart(tmp_path, sqlite_url, settings):
    await run_with_restart(tmp_path, sqlite_url, settings, signal.SIGKILL)


async def test_random_link_drops(tmp_path, sqlite_url, settings):
    """Four drops of the TCP link, from the PBX side, at random moments of the 42 s trace."""
    from callcenter.bootstrap import build
    from callcenter.settings import load_settings
    at = datetime.now(timezone.utc).replace(microsecond=0)
    base = await uninterrupted(settings, tmp_path, at)
    queue_log = tmp_path / "queue_log"
    fake = FakePbx(trace_path("load"), queue_log, at, SPEED)
    port = await fake.start()
    live = load_settings(write_config(ROOT / "config", tmp_path / "config", port, queue_log, 0))
    app = build(live, sqlite_url, queue_log=True)
    client = app.service.add_pbx(live.pbxes[0])
    await app.start()
    rng = random.Random(9)
    span = (fake.end - 6) / 4
    drops = [3 + i * span + rng.uniform(0, span - 2) for i in range(4)]   # at least 2 s apart
    try:
        await asyncio.wait_for(fake.started.wait(), 10)
        for moment in drops:
            await fake.wait_until(moment)
            await fake.drop()
        await asyncio.wait_for(fake.done.wait(), 60)

        async def caught_up():
            got = await stored(sqlite_url)
            return got if set(got[0]) >= set(base[0]) and got[1] == base[1] and got[2] == base[2] else None
        await until(caught_up, 15)
    finally:
        await app.stop()
        await fake.close()
    assert client.logins == 1 + len(drops)
    whole, reconciled = assert_same(base, await stored(sqlite_url))
    print(f"{len(drops)} link drops: {whole} calls seen whole, {reconciled} reconciled")
    assert whole and reconciled, (whole, reconciled)
