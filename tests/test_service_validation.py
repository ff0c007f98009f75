"""Validation where values enter the services, behind the web's request models (issue 10).

Callers' numbers, agent ids, pause reasons, notes: each service refuses what the web edge should
already have refused, with a 4xx naming the field. A number stored before these checks (or taken
from a PBX) is checked again right before a callback's Originate is built: nothing is recorded
and the PBX (the local AMI server, over TCP) receives no Originate. A case already resolved keeps
its disposition.
"""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from callcenter.ami.server import AmiServer
from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.domain.tasks import Reason
from callcenter.followup.service import TaskError
from callcenter.replay import replay
from callcenter.storage import tables as t
from tests.conftest import MONDAY_10, TRACES
from tests.test_ami_client import action_names, connected_client

BAD_NUMBERS = ["张三", "abc; DROP TABLE tasks", "1" * 1_000_000, "13800\x000000", "13800000000\r\nAction: Originate",
               "+", "12", "138 0000 0000", ""]


async def _app(settings, db_url, at=MONDAY_10):
    app = build(settings, db_url, FixedClock(at))
    await app.store.migrate()
    return app


async def test_callback_requests_refuse_what_is_not_a_phone_number(settings, db_url):
    app = await _app(settings, db_url)
    try:
        for number in BAD_NUMBERS:
            with pytest.raises(TaskError) as refused:
                await app.followup.request(number, "edu", Reason.CALLBACK_REQUEST, MONDAY_10, "pbx1", "ivr-1")
            assert refused.value.status == 400
            assert refused.value.code in ("invalid_number", "missing_number")
        assert await app.followup.list() == []
        task = await app.followup.request("+8613911112222", "edu", Reason.CALLBACK_REQUEST, MONDAY_10, "pbx1", "ivr-1")
        assert task["caller_num"] == "+8613911112222"
    finally:
        await app.store.close()


@pytest.mark.parametrize("stored", ["13911112222\r\nAction: Originate\r\nChannel: PJSIP/evil", "张三", "139;1"])
async def test_a_stored_number_that_is_not_dialable_never_reaches_the_pbx(settings, sqlite_url, stored):
    app = await _app(settings, sqlite_url)
    server = AmiServer()
    client = await connected_client(server)
    try:
        app.callbacks.clients["pbx1"] = client
        task = await app.followup.request("13911112222", "edu", Reason.CALLBACK_REQUEST, MONDAY_10, "pbx1", "ivr-1")
        async with app.store.begin() as conn:        # as if stored before the checks existed
            await conn.execute(t.tasks.update().where(t.tasks.c.id == task["id"]).values(caller_num=stored))
        await asyncio.sleep(0.05)
        before = len(server.actions)
        with pytest.raises(TaskError) as refused:
            await app.callbacks.start(task["id"], "1005")
        assert (refused.value.status, refused.value.code) == (409, "invalid_number")
        assert "cannot be dialled" in str(refused.value)
        assert (await app.followup.get(task["id"]))["callbacks"] == []          # nothing recorded
        assert "Originate" not in action_names(server)[before:] and client.connected.is_set()
    finally:
        await client.stop()
        await server.close()
        await app.store.close()


@pytest.mark.parametrize("kwargs, field", [
    ({"agent": "1001\r\nAction: Logoff"}, "agent"),
    ({"agent": "1" * 100}, "agent"),
    ({"reason": "开会\r\nAction: QueueRemove"}, "reason"),
    ({"reason": "x\x00"}, "reason"),
    ({"reason": "很长" * 100}, "reason"),
    ({"override_by": "head-market\n"}, "override.by"),
    ({"override_reason": "ok\x00"}, "override.reason"),
])
async def test_pause_requests_refuse_unsafe_fields(settings, sqlite_url, kwargs, field):
    app = await _app(settings, sqlite_url)
    try:
        request = {"agent": "1001", "action": "pause", "reason": "", **kwargs}
        with pytest.raises(TaskError) as refused:
            await app.coverage.request(**request)
        assert (refused.value.status, refused.value.code) == (400, "invalid_field")
        assert str(refused.value).startswith(f"{field}: ")
    finally:
        await app.store.close()


async def test_dispositions_and_reassignments_check_their_fields(settings, db_url):
    await replay(settings, db_url, [str(TRACES / "basic.jsonl")], MONDAY_10)
    app = await _app(settings, db_url, MONDAY_10 + timedelta(minutes=5))
    try:
        await app.cases.process_pending()
        [case] = await app.cases.list(caller="13800000000", department="market")
        call_id = (await app.cases.get(case["id"]))["calls"][0]["call_id"]
        for kwargs, field in [({"agent": "1001\n"}, "agent"), ({"note": "a\x00b"}, "note"),
                              ({"item": "x\r\ny"}, "item"), ({"work_order": "W" * 65}, "work_order"),
                              ({"directed_to": "区信访办\x1b[2J"}, "directed_to")]:
            args = {"agent": "1001", **kwargs}
            with pytest.raises(TaskError, match=f"^{field}: ") as refused:
                await app.cases.dispose("pbx1", call_id, args.pop("agent"), "resolved", **args)
            assert refused.value.status == 400
        for kwargs, field in [({"new_owner": "1002\r\n"}, "new_owner"), ({"by": "head market"}, "by"),
                              ({"reason": "x" * 3000}, "reason")]:
            args = {"new_owner": "1002", "by": "head-market", "reason": "休假", **kwargs}
            with pytest.raises(TaskError, match=f"^{field}: "):
                await app.cases.reassign(case["id"], **args)
        # a note may span lines
        done = await app.cases.dispose("pbx1", call_id, "1001", "resolved", note="已解答\n已告知办理地点")
        assert done["status"] == "resolved" and (await app.cases.get(case["id"]))["owner"] == "1001"
    finally:
        await app.store.close()


async def test_a_second_disposition_on_a_resolved_case_is_refused_with_its_state(settings, db_url):
    await replay(settings, db_url, [str(TRACES / "basic.jsonl")], MONDAY_10)
    app = await _app(settings, db_url, MONDAY_10 + timedelta(minutes=5))
    try:
        await app.cases.process_pending()
        [case] = await app.cases.list(caller="13800000002", department="market")
        call_id = (await app.cases.get(case["id"]))["calls"][0]["call_id"]
        first = await app.cases.dispose("pbx1", call_id, "1001", "resolved", item="食品经营许可")
        assert (first["status"], first["disposition"]) == ("resolved", "resolved")
        for disposition, extra in [("escalated_12345", {"work_order": "W-1"}), ("follow_up_simple", {}),
                                   ("resolved", {})]:
            with pytest.raises(TaskError) as refused:
                await app.cases.dispose("pbx1", call_id, "1001", disposition, **extra)
            assert (refused.value.status, refused.value.code) == (409, "already_closed")
            assert f"case {case['id']} is already resolved (disposition resolved" in str(refused.value)
        after = await app.cases.get(case["id"])
        assert (after["status"], after["disposition"], after["work_order"]) == ("resolved", "resolved", first["work_order"])
        assert [h["kind"] for h in after["history"]].count("disposition") == 1
    finally:
        await app.store.close()
