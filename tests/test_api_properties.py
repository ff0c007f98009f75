"""Property tests of the request models, through the real aiohttp application: whatever JSON
body or query string arrives, the answer is never a 500 and always the JSON error shape.

The app runs once for the module on its own event loop (hypothesis drives a synchronous test);
the caller is a head of every department who also takes calls as agent 1001, so every request
passes the access checks and reaches validation (or, when valid, the services).
"""
from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.settings import load_settings
from callcenter.web.app import init_app
from tests.auth_helpers import bearer, grant
from tests.conftest import MONDAY_10, ROOT

FIELDS = ["caller", "hotline", "department", "pbx", "ref", "closure", "assignee", "note", "version", "disposition",
          "item", "work_order", "directed_to", "owner", "reason", "status", "override", "agent", "by", "user",
          "password"]
POSTS = ["/api/callback-requests", "/api/tasks/1", "/api/tasks/1/callbacks", "/api/calls/pbx1/1.1/disposition",
         "/api/cases/1", "/api/agents/1001/pause", "/api/agents/1001/unpause", "/api/login"]
GETS = {"/api/tasks": ["status", "department", "assignee", "caller", "overdue", "date", "limit"],
        "/api/cases": ["status", "department", "owner", "caller", "date", "limit"],
        "/api/route": ["caller", "hotline", "department", "pbx"],
        "/api/route.txt": ["caller", "hotline", "department", "pbx"],
        "/api/wrapups/pending": ["department"],
        "/api/coverage/daily": ["date", "department"],
        "/api/coverage/incidents": ["date", "department"],
        "/api/coverage/live": ["department"]}

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
field_dicts = st.dictionaries(st.sampled_from(FIELDS), values, max_size=5)
bodies = field_dicts | values


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    loop = asyncio.new_event_loop()
    db = f"sqlite:///{tmp_path_factory.mktemp('props') / 'cc.db'}"
    app_obj = build(load_settings(ROOT / "config"), db, FixedClock(MONDAY_10))

    async def start():
        await app_obj.start()
        token = await grant(app_obj, "lead", "head", [d.id for d in app_obj.settings.departments], agent="1001")
        client = TestClient(TestServer(await init_app(app_obj)), headers=bearer(token))
        await client.start_server()
        return client
    client = loop.run_until_complete(start())
    yield loop, client
    loop.run_until_complete(client.close())
    loop.run_until_complete(app_obj.stop())
    loop.close()


async def _send(client, method, path, **kwargs) -> tuple[int, dict]:
    async with client.request(method, path, **kwargs) as r:
        assert r.content_type in ("application/json", "text/plain")
        return r.status, (await r.json() if r.content_type == "application/json" else {})


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(POSTS), body=bodies)
def test_any_json_body_is_answered_without_a_500(live, path, body):
    loop, client = live
    method = "PATCH" if path in ("/api/tasks/1", "/api/cases/1") else "POST"
    data = json.dumps(body).encode()
    status, answer = loop.run_until_complete(_send(client, method, path, data=data,
                                                   headers={"Content-Type": "application/json"}))
    assert status != 500, (path, body, answer)
    if status >= 400:
        assert set(answer) >= {"error", "message"} and isinstance(answer["message"], str), answer


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(sorted(GETS)), data=st.data())
def test_any_query_string_is_answered_without_a_500(live, path, data):
    loop, client = live
    names = st.sampled_from(GETS[path]) | st.text(min_size=1, max_size=8)
    query = data.draw(st.lists(st.tuples(names, st.text(max_size=40)), max_size=4))
    status, answer = loop.run_until_complete(_send(client, "GET", path, params=query))
    assert status != 500, (path, query, answer)
    if status >= 400:
        assert set(answer) >= {"error", "message"}, answer


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_any_bytes_as_a_json_body_are_answered_without_a_500(live, raw):
    loop, client = live
    status, answer = loop.run_until_complete(_send(client, "POST", "/api/callback-requests", data=raw,
                                                   headers={"Content-Type": "application/json"}))
    assert status != 500, (raw, answer)
    if status >= 400:
        assert set(answer) >= {"error", "message"}, answer
