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


async def test_callback_requests_and_the_retry_policy(settings, sqlite_url):
    from aiohttp.test_utils import TestClient, TestServer
    from callcenter.web.app import init_app
    app = build(settings, sqlite_url, FixedClock(MONDAY_10))
    await app.store.migrate()
    from tests.auth_helpers import bearer, grant
    lead = await grant(app, "head-edu", "head", ["edu"], agent="1005")     # a head of edu who takes calls
    client = TestClient(TestServer(await init_app(app)), headers=bearer(lead))
    await client.start_server()
    try:
        # a caller asks to be called back (e.g. from the IVR during a coverage gap)
        response = await client.post("/api/callback-requests", json={"caller": "13911112222", "hotline": "62000002"})
        task = await response.json()
        assert response.status == 201 and (task["department"], task["reason"]) == ("edu", "callback_request")
        again = await (await client.post("/api/callback-requests",
                                         json={"caller": "13911112222", "department": "edu"})).json()
        assert again["id"] == task["id"] and again["misses"] == 2             # one task per caller
        bad = await client.post("/api/callback-requests", json={"caller": "139", "hotline": "99999999"})
        assert bad.status == 400 and (await bad.json())["error"] == "unknown_department"
        # the retry policy: spacing within business hours, then attempts exhausted
        async with app.store.begin() as conn:
            await conn.execute(t.tasks.update().where(t.tasks.c.id == task["id"]).values(
                attempts=1, next_attempt_at=MONDAY_10 + timedelta(minutes=30)))
        early = await client.post(f"/api/tasks/{task['id']}/callbacks", json={})
        assert early.status == 409 and (await early.json())["error"] == "retry_not_due"
        async with app.store.begin() as conn:
            await conn.execute(t.tasks.update().where(t.tasks.c.id == task["id"]).values(attempts=3))
        done = await client.post(f"/api/tasks/{task['id']}/callbacks", json={})
        assert done.status == 409 and (await done.json())["error"] == "attempts_exhausted"
    finally:
        await client.close()
        await app.store.close()


async def test_a_callback_the_caller_does_not_answer_becomes_a_task(settings, sqlite_url):
    from callcenter.domain.callbacks import AttemptResult
    app = build(settings, sqlite_url, FixedClock(MONDAY_10))
    await app.store.migrate()
    # placed on the PBX by agent 1005 (post edu-1), outside any task; the caller did not answer
    miss = AttemptResult("pbx1", "pbx1:1795000000.1", "13922223333", "Local/1005@agents-0000001;1", "no_answer",
                         "caller", "3", MONDAY_10, None, MONDAY_10 + timedelta(seconds=40), "1795000000.1")
    await app.callbacks.record([miss])
    [task] = await app.followup.list(caller="13922223333")
    task = await app.followup.get(task["id"])
    await app.store.close()
    assert (task["department"], task["reason"], task["attempts"]) == ("edu", "ring_no_answer", 1)
    assert [c["result"] for c in task["callbacks"]] == ["no_answer"]
    assert task["next_attempt_at"] is not None
