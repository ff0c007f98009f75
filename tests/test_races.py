"""Races on one case or task: 20 concurrent dispositions, reassignments, closes, task closes,
task reassignments and callback starts. Exactly one wins; the others get 409 (TaskError) with
the case or task as it is now, never a 500; the audit log is one unbroken chain of versions.
At the service level, on SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest

from callcenter.ami.client import Endpoint
from callcenter.ami.server import AmiServer
from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.domain.records import StintEnd
from callcenter.followup.service import TaskError
from tests.conftest import MONDAY_10
from tests.test_followup import _call

N = 20
AGENTS = ["1005", "1006", "1001", "1002"]


async def _app(settings, db_url):
    app = build(settings, db_url, FixedClock(MONDAY_10 + timedelta(hours=1)))
    await app.store.migrate()
    await app.store.save_calls([_call("a1", "13700000001", MONDAY_10, StintEnd.ANSWERED, wait=10),
                                _call("m1", "13700000002", MONDAY_10, StintEnd.ABANDONED, wait=30),
                                _call("m2", "13700000003", MONDAY_10, StintEnd.ABANDONED, wait=30)])
    await app.after_commit.catch_up()
    [case] = await app.cases.list()
    tasks = {x["caller_num"]: x for x in await app.followup.list()}
    return app, case, tasks["13700000002"], tasks["13700000003"]


def _one_wins(results: list, entity_id: int | None = None) -> dict:
    won = [r for r in results if isinstance(r, dict)]
    lost = [r for r in results if not isinstance(r, dict)]
    assert len(won) == 1, [repr(r) for r in results]
    unexpected = [repr(r) for r in lost if not (isinstance(r, TaskError) and r.status == 409)]
    assert not unexpected, unexpected
    assert all(r.current is not None and r.current["id"] == (entity_id or won[0]["id"]) for r in lost)
    return won[0]


def _chain(entity: dict) -> None:
    """Versions 1..n, each once: no event lost, none written from a stale state."""
    assert sorted(h["version"] for h in entity["history"]) == list(range(1, entity["version"] + 1))


async def _gather(calls) -> list:
    return await asyncio.gather(*calls, return_exceptions=True)


async def test_concurrent_case_changes_one_wins(settings, db_url):
    app, case, _, _ = await _app(settings, db_url)
    try:
        dispositions = ["follow_up_simple", "follow_up_complex", "knowledge_gap"]     # the case stays open
        won = _one_wins(await _gather(app.cases.dispose("pbx1", "a1", "1005", dispositions[i % 3])
                                      for i in range(N)))
        case = await app.cases.get(case["id"])
        assert [h["kind"] for h in case["history"]].count("disposition") == 1
        assert case["disposition"] == won["disposition"]
        _chain(case)
        assert case["status"] == "open"
        won = _one_wins(await _gather(app.cases.reassign(case["id"], AGENTS[i % 4], "head-edu", f"排班调整 {i}",
                                                         version=case["version"]) for i in range(N)))
        case = await app.cases.get(case["id"])
        assert [h["kind"] for h in case["history"]].count("reassigned") == 1 and case["owner"] == won["owner"]
        _chain(case)
        owner = case["owner"]
        won = _one_wins(await _gather(app.cases.close_follow_up(case["id"], owner, f"已电话答复 {i}") for i in range(N)))
        case = await app.cases.get(case["id"])
        assert case["status"] == "resolved" and [h["kind"] for h in case["history"]].count("resolved") == 1
        _chain(case)
    finally:
        await app.store.close()


async def test_concurrent_task_changes_one_wins(settings, db_url):
    app, _, task, _ = await _app(settings, db_url)
    try:
        _one_wins(await _gather(app.followup.assign_to(task["id"], AGENTS[i % 4], "head-edu", version=task["version"])
                                for i in range(N)))
        _one_wins(await _gather(app.followup.close(task["id"], ["reached_resolved", "wrong_number"][i % 2], "1005")
                                for i in range(N)))
        task = await app.followup.get(task["id"])
        kinds = [h["kind"] for h in task["history"]]
        assert task["status"] == "closed" and kinds.count("closed") == 1
        assert kinds.count("assigned") == 2                  # the first assignment, then the one that won
        _chain(task)
    finally:
        await app.store.close()


async def test_concurrent_callback_starts_dial_once(settings, db_url):
    server = AmiServer()
    port = await server.start()
    app, _, _, task = await _app(settings, db_url)
    app.callbacks.active = lambda: True                      # this instance leads (callcenter/leader.py)
    client = app.service.add_pbx(Endpoint("pbx1", "127.0.0.1", port, "cc", "cc", reconnect_min=0.05))
    client.start()
    try:
        await asyncio.wait_for(client.connected.wait(), 5)
        won = _one_wins(await _gather(app.callbacks.start(task["id"], AGENTS[i % 2]) for i in range(N)), task["id"])
        task = await app.followup.get(task["id"])
        assert [c["key"] for c in task["callbacks"]] == [won["key"]]
        assert [a["Action"] for a in server.actions].count("Originate") == 1
        _chain(task)
    finally:
        await client.stop()
        await app.store.close()
        await server.close()


async def test_concurrent_dispositions_over_http_one_2xx_the_rest_409(settings, sqlite_url):
    """The same race through the real aiohttp server, signed in as the agent who answered."""
    from aiohttp.test_utils import TestClient, TestServer
    from callcenter.web.app import init_app
    from tests.auth_helpers import bearer, grant
    app, case, _, _ = await _app(settings, sqlite_url)
    client = TestClient(TestServer(await init_app(app)), headers=bearer(await grant(app, "1005", "agent", agent="1005")))
    await client.start_server()

    async def dispose(i: int) -> tuple[int, dict]:
        async with client.post("/api/calls/pbx1/a1/disposition",
                               json={"disposition": ["follow_up_simple", "knowledge_gap"][i % 2]}) as response:
            return response.status, await response.json()

    try:
        answers = await asyncio.gather(*(dispose(i) for i in range(N)))
    finally:
        await client.close()
    case = await app.cases.get(case["id"])
    await app.store.close()
    assert sorted(status for status, _ in answers) == [200] + [409] * (N - 1), answers
    assert all(body["current"]["id"] == case["id"] for status, body in answers if status == 409)
    assert [h["kind"] for h in case["history"]].count("disposition") == 1
    _chain(case)


async def test_a_stale_version_over_http_is_409_and_the_current_one_wins(settings, sqlite_url):
    """Compare-and-set from the API: a case change naming an old `version` is refused with the
    case as it is now; naming the current one goes through."""
    from aiohttp.test_utils import TestClient, TestServer
    from callcenter.web.app import init_app
    from tests.auth_helpers import bearer, grant
    app, case, _, _ = await _app(settings, sqlite_url)
    client = TestClient(TestServer(await init_app(app)), headers=bearer(await grant(app, "1005", "agent", agent="1005")))
    await client.start_server()
    try:
        async with client.post("/api/calls/pbx1/a1/disposition", json={"disposition": "follow_up_simple"}) as r:
            assert r.status == 200, await r.text()
            disposed = await r.json()
        stale = disposed["version"] - 1
        async with client.patch(f"/api/cases/{case['id']}", json={"status": "resolved", "version": stale}) as r:
            body = await r.json()
            assert (r.status, body["error"]) == (409, "version_conflict"), body
            assert body["current"]["version"] == disposed["version"]
        async with client.patch(f"/api/cases/{case['id']}",
                                json={"status": "resolved", "version": disposed["version"]}) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["status"] == "resolved"
    finally:
        await client.close()
        await app.store.close()


async def test_a_first_disposition_that_read_the_call_before_another_committed_loses(settings, postgres_url):
    """The interleaving behind a failure of the race above on PostgreSQL, forced: A reads the
    call's links (no disposition yet), B disposes of the call and commits, then A reads the case
    at B's version. A must not record a second first disposition: 409 `already_disposed`, the
    case as B left it. (SQLite's writers take turns, so this interleaving cannot happen there.)"""
    app, case, _, _ = await _app(settings, postgres_url)
    store, original = app.store, app.store.begin
    links_read, b_committed = asyncio.Event(), asyncio.Event()
    calls = []

    class PausedAfterFirstRead:
        def __init__(self, conn):
            self.conn, self.statements = conn, 0

        def __getattr__(self, name):
            return getattr(self.conn, name)

        async def execute(self, *args, **kwargs):
            result = await self.conn.execute(*args, **kwargs)
            self.statements += 1
            if self.statements == 1:                        # the call's links: now B runs whole
                links_read.set()
                await b_committed.wait()
            return result

    @asynccontextmanager
    async def begin():
        calls.append(1)
        async with original() as conn:
            yield PausedAfterFirstRead(conn) if len(calls) == 1 else conn
    store.begin = begin
    try:
        a = asyncio.create_task(app.cases.dispose("pbx1", "a1", "1005", "follow_up_simple"))
        await asyncio.wait_for(links_read.wait(), 10)
        b = await app.cases.dispose("pbx1", "a1", "1005", "knowledge_gap")
        b_committed.set()
        with pytest.raises(TaskError) as lost:
            await a
        assert (lost.value.status, lost.value.code) == (409, "already_disposed")
        assert lost.value.current["version"] == b["version"]
        case = await app.cases.get(case["id"])
        assert case["disposition"] == "knowledge_gap" and case["version"] == b["version"]
        assert [h["kind"] for h in case["history"]].count("disposition") == 1
        _chain(case)
    finally:
        store.begin = original
        await store.close()
