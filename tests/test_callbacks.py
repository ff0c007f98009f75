"""Callbacks: the real `callback` trace is one answered and one failed attempt; an agent's
callback is one Originate with our idempotency key, recorded from the PBX's answer."""
from __future__ import annotations

from datetime import timedelta

from callcenter.replay import replay
from callcenter.storage import tables as t
from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from tests.conftest import MONDAY_10, TRACES


async def test_callback_trace_is_one_answered_and_one_failed_attempt(settings, db_url):
    # 13900000001 and 13900000002 abandoned q-edu (abandon trace); the callback trace calls both back
    await replay(settings, db_url, [str(TRACES / "abandon.jsonl"), str(TRACES / "callback.jsonl")], MONDAY_10)
    app = build(settings, db_url, FixedClock(MONDAY_10 + timedelta(minutes=1)))
    await app.store.migrate()
    tasks = {task["caller_num"]: await app.followup.get(task["id"]) for task in await app.followup.list()}
    async with app.store.engine.connect() as conn:
        attempts = (await conn.execute(t.callback_attempts.select().order_by(t.callback_attempts.c.id))).mappings().all()
    await app.store.close()
    assert [(a["number"], a["result"], a["agent"]) for a in attempts] == [
        ("13900000001", "answered", "1001"), ("13900000002", "no_answer", "1001")]
    assert attempts[0]["talk_seconds"] == 2.0 and attempts[1]["talk_seconds"] is None
    reached, missed = tasks["13900000001"], tasks["13900000002"]
    assert (reached["status"], reached["closure"]) == ("closed", "callback_completed")
    assert reached["contacted_at"] is not None and reached["attempts"] == 1
    # the agent's phone did not answer: the caller was never dialled, the task stays open
    assert missed["status"] == "open" and missed["attempts"] == 0
    assert [h["failed_leg"] for h in missed["history"] if h["kind"] == "attempt"] == ["agent"]
