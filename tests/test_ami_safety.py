"""Nothing a requester writes can become a second AMI action (issue 10, defence in depth).

The AMI client checks every field name and value before a byte is written: a CR, LF, NUL or other
control character, an odd field name or an over-long value raises `UnsafeAction` (from the
encoder's `UnsafeField`). Property tests drive `encode_action` with arbitrary dicts of strings:
either refused, or the bytes parse back (with the client's own `Framer`) into exactly one message
with the same fields. Over real TCP the local AMI server receives nothing for a refused action and
the link stays up.
"""
from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, example, given, settings as hsettings
from hypothesis import strategies as st

from callcenter.ami.client import LinkDown, UnsafeAction
from callcenter.ami.framing import Framer, UnsafeField, encode_action
from callcenter.ami.server import AmiServer
from callcenter.domain.validation import MAX_AMI_VALUE
from tests.test_ami_client import action_names, connected_client

INJECTION = "13800000000\r\n\r\nAction: Originate\r\nChannel: PJSIP/evil\r\nExten: 99999"

# field names: plausible AMI names or arbitrary text; values: arbitrary text, control characters
# and Unicode line breaks included (hypothesis draws them often enough)
names = st.one_of(st.sampled_from(["Channel", "Exten", "Context", "CallerID", "Reason", "Queue", "action",
                                   "Interface", "Variable", "X-Y_z", "Priority"]),
                  st.text(min_size=0, max_size=12))
values = st.one_of(st.text(max_size=40), st.sampled_from(["", " ", "a\rb", "a\nb", "x\x00", "\u2028", "a: b",
                                                         INJECTION, "张三 <62000001>", "\ud800"]))


def parse_all(data: bytes) -> list[dict]:
    return Framer(expect_banner=False, kinds=("Action",)).feed(data)


@given(st.dictionaries(names, values, max_size=6), values)
@example({"Exten": INJECTION}, "Originate")
@example({"Exten": "13800000000"}, "Originate")
@example({"Reason": "暂离: 会议"}, "QueuePause")
@hsettings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_dict_of_strings_is_refused_or_becomes_exactly_one_identical_action(fields, action):
    fields = {k: v for k, v in fields.items() if k not in ("Action", "ActionID")}
    try:
        data = encode_action({"Action": action, **fields}, "cc-1")
    except UnsafeField as exc:
        assert "not sent" in str(exc)
        return
    messages = parse_all(data)
    assert messages == [{"Action": action, "ActionID": "cc-1", **fields}]
    # and in any TCP chunking
    framer = Framer(expect_banner=False, kinds=("Action",))
    chunked = [m for i in range(0, len(data), 7) for m in framer.feed(data[i:i + 7])]
    assert chunked == messages


@pytest.mark.parametrize("fields, key, problem", [
    ({"Action": "Originate", "Exten": INJECTION}, "Exten", "control characters"),
    ({"Action": "Originate", "Exten": "1380000\n0000"}, "Exten", "control characters"),
    ({"Action": "QueuePause", "Reason": "x\x00"}, "Reason", "control characters"),
    ({"Action": "QueuePause", "Reason": "line\u2028break"}, "Reason", "control characters"),
    ({"Action": "QueuePause\r\nAction: Logoff"}, "Action", "control characters"),
    ({"Action": "QueuePause", "Interface": "PJSIP/1001\r\n"}, "Interface", "control characters"),
    ({"Action": "QueuePause", "Evil\r\nAction: Logoff": "x"}, "Evil\r\nAction: Logoff", "field name"),
    ({"Action": "QueuePause", "Re ason": "x"}, "Re ason", "field name"),
    ({"Action": "QueuePause", "Reason:": "x"}, "Reason:", "field name"),
    ({"Action": "QueuePause", "": "x"}, "", "field name"),
    ({"Action": "QueuePause", "action": "Logoff"}, "action", "given twice"),
    ({"Action": "QueuePause", "Reason": "x" * (MAX_AMI_VALUE + 1)}, "Reason", f"at most {MAX_AMI_VALUE}"),
    ({"Action": "Originate", "Variable": ["A=1", "B=2\r\nAction: Logoff"]}, "Variable", "control characters"),
    ({"Action": "Originate", "Exten": None}, "Exten", "expected text"),
    ({"Action": "Originate", "Exten": "\udc80"}, "Exten", "lone surrogate"),
    ({"Exten": "1"}, "Action", "missing"),
])
def test_each_kind_of_unsafe_field_is_named(fields, key, problem):
    with pytest.raises(UnsafeField) as exc:
        encode_action(fields, "cc-1")
    assert exc.value.key == key and problem in exc.value.problem
    assert problem in str(exc.value)


def test_an_action_over_the_framers_limit_is_refused():
    fields = {"Action": "Originate", **{f"V{i}": "x" * MAX_AMI_VALUE for i in range(70)}}
    with pytest.raises(UnsafeField, match="over 65536 bytes"):
        encode_action(fields, "cc-1")


def test_lists_repeat_their_key_and_numbers_become_text():
    data = encode_action({"Action": "Originate", "Priority": 1, "Variable": ["A=1", "B=2"]}, "k-1")
    assert data == b"Action: Originate\r\nActionID: k-1\r\nPriority: 1\r\nVariable: A=1\r\nVariable: B=2\r\n\r\n"
    [message] = parse_all(data)
    assert message["Variable"] == "A=1" and message["_extra"] == "Variable: B=2\n"


async def test_a_refused_action_reaches_nothing_and_the_link_stays_up():
    server = AmiServer()
    client = await connected_client(server)
    try:
        await asyncio.sleep(0.05)                  # the login's resync actions have arrived
        before = list(server.actions)
        with pytest.raises(UnsafeAction, match="'Exten'"):
            await client.originate("cb-1-1", {"Channel": "PJSIP/1001", "Context": "callback",
                                              "Exten": INJECTION, "Priority": 1})
        with pytest.raises(UnsafeAction, match="'Reason'"):
            await client.action({"Action": "QueuePause", "Queue": "q-market", "Interface": "PJSIP/1001",
                                 "Paused": "true", "Reason": "暂离\r\n\r\nAction: QueueRemove"})
        assert "cb-1-1" not in client.originated and not client.pending
        # the next action goes through on the same connection; the PBX saw only it
        response = await client.action({"Action": "QueuePause", "Queue": "q-market", "Interface": "PJSIP/1001",
                                        "Paused": "true", "Reason": "暂离"})
        assert response["Response"] == "Success"
        await client.originate("cb-1-1", {"Channel": "PJSIP/1001", "Context": "callback",
                                          "Exten": "13800000000", "Priority": 1})
        assert action_names(server)[len(before):] == ["QueuePause", "Originate"]
        assert server.actions[-1]["Exten"] == "13800000000" and server.actions[-2]["Reason"] == "暂离"
        assert client.logins == 1 and client.connected.is_set()
    finally:
        await client.stop()
        await server.close()


async def test_an_unsafe_action_is_refused_even_when_the_link_is_down():
    server = AmiServer()
    client = await connected_client(server)
    try:
        await server.close()
        await asyncio.sleep(0.05)
        with pytest.raises(UnsafeAction):
            await client.action({"Action": "QueuePause", "Reason": "a\nb"})
        with pytest.raises(LinkDown):
            await client.action({"Action": "QueuePause", "Reason": "ab"})
    finally:
        await client.stop()
