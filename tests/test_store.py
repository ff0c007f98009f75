"""Storage on SQLite and PostgreSQL: migrations, idempotent writes, restart safety, day bounds."""
from __future__ import annotations

from datetime import timedelta, timezone

from callcenter.domain.presence import AgentSession
from callcenter.replay import replay
from callcenter.storage.store import Store, async_url
from reports.daily import day_bounds
from tests.conftest import MONDAY_10, SHANGHAI, TRACES
from tests.scenario import run


async def test_writes_are_idempotent_and_survive_restart(settings, db_url):
    records, sessions, *_ = run("load", settings, MONDAY_10)
    store = Store(db_url)
    await store.migrate()
    assert await store.save_calls(records[:10]) == 10
    assert await store.save_calls(records) == len(records) - 10        # the first ten again: skipped
    await store.save_sessions(sessions)
    await store.save_sessions(sessions)
    await store.close()

    again = Store(db_url)                                              # a restart
    await again.migrate()                                              # migrations are re-runnable
    assert await again.count_calls() == len(records)
    assert await again.save_calls(records) == 0
    stored = await again.calls_between(*day_bounds(MONDAY_10.date(), SHANGHAI))
    stored_sessions = await again.sessions_between(MONDAY_10, MONDAY_10 + timedelta(hours=1))
    await again.close()
    assert [r.id for r in stored] == [r.id for r in sorted(records, key=lambda r: (r.started_at, r.id))]
    assert len(stored_sessions) == len(sessions)
    original = {r.id: r for r in records}
    for r in stored:
        o = original[r.id]
        assert (r.outcome, r.caller_num, r.department, len(r.stints)) == (o.outcome, o.caller_num, o.department, len(o.stints))
        assert r.started_at == o.started_at and r.started_at.tzinfo is not None
        for s, so in zip(r.stints, o.stints):
            assert (s.queue, s.end, s.agent, s.member_name, s.entered_at) == (so.queue, so.end, so.agent, so.member_name, so.entered_at)


async def test_times_are_stored_in_utc_and_read_back_aware(settings, db_url):
    [call], *_ = run("nobody", settings, MONDAY_10)
    store = Store(db_url)
    await store.migrate()
    await store.save_calls([call])
    [back] = await store.calls_between(MONDAY_10 - timedelta(minutes=1), MONDAY_10 + timedelta(minutes=1))
    await store.close()
    assert back.started_at.utcoffset() == timedelta(0) and back.started_at.tzinfo is timezone.utc
    assert back.started_at == call.started_at


async def test_day_is_judged_in_shanghai(settings, db_url):
    """00:30 in Shanghai on the 24th is the 23rd in UTC; it belongs to the 24th's list."""
    late = MONDAY_10.replace(day=24, hour=0, minute=30)
    await replay(settings, db_url, [str(TRACES / "nobody.jsonl")], late)
    store = Store(db_url)
    on_23 = await store.calls_between(*day_bounds(MONDAY_10.date(), SHANGHAI))
    on_24 = await store.calls_between(*day_bounds(late.date(), SHANGHAI))
    await store.close()
    assert on_23 == [] and len(on_24) == 1


async def test_replaying_twice_duplicates_nothing(settings, db_url):
    files = [str(TRACES / "basic.jsonl")]
    await replay(settings, db_url, files, MONDAY_10)
    await replay(settings, db_url, files, MONDAY_10)
    store = Store(db_url)
    assert await store.count_calls() == 4
    await store.close()


def test_async_url():
    assert async_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert async_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert async_url("postgresql+asyncpg://u@h/db") == "postgresql+asyncpg://u@h/db"


async def test_session_rows(db_url):
    store = Store(db_url)
    await store.migrate()
    s = AgentSession("pbx1", "1001", "PJSIP/1001", "张伟", "q-market", "pause", "午休",
                     MONDAY_10, MONDAY_10 + timedelta(minutes=30))
    await store.save_sessions([s, s])
    [back] = await store.sessions_between(MONDAY_10, MONDAY_10 + timedelta(hours=1))
    await store.close()
    assert back == s
