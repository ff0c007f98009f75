"""The push hub (agents/live/hub.py) on its own: serialise once, fan out by topic, coalesce a
slow subscriber's snapshots, never drop a notification, never block the publisher."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

from callcenter.clock import FixedClock
from agents.live.hub import Hub, recipient_topic

AT = datetime(2026, 11, 23, 2, 30, tzinfo=timezone.utc)


def hub() -> Hub:
    return Hub(FixedClock(AT), max_unkeyed=3)


async def test_one_serialisation_for_every_subscriber_of_the_topic():
    h = hub()
    a, b, other = h.subscribe(["dept:market"]), h.subscribe(["dept:market", "user:x"]), h.subscribe(["dept:edu"])
    data = h.publish("dept:market", {"type": "dashboard", "department": "market", "name": "区市场监管局"}, key="market")
    [got_a], [got_b] = await a.next(), await b.next()
    assert got_a is data and got_b is data                       # the same bytes object, not a copy
    assert json.loads(data) == {"type": "dashboard", "department": "market", "name": "区市场监管局",
                                "event_at": None, "sent_at": "2026-11-23T02:30:00+00:00"}
    assert "区市场监管局".encode() in data                       # UTF-8, not \\u escapes
    assert other.pending == {} and (h.published, h.deliveries) == (1, 2)


async def test_nothing_is_serialised_for_a_topic_nobody_listens_to():
    h = hub()
    assert h.publish("agent:1001", {"type": "agent"}, key="1001") is None
    assert h.published == 0 and not h.listened("agent:1001")
    sub = h.subscribe(["agent:1001"])
    assert h.listened("agent:1001")
    sub.close()
    assert not h.listened("agent:1001") and h.subscribers == set()


async def test_a_slow_subscriber_gets_the_newest_snapshot_per_key_and_every_notification():
    h = hub()
    sub = h.subscribe(["agent:1001"])
    for n in range(1000):                                        # nobody reads meanwhile
        h.publish("agent:1001", {"type": "agent", "agent": "1001", "n": n}, key="1001")
        h.publish("agent:1001", {"type": "ringing", "agent": "1001", "n": n}, key="1001")
    h.publish("agent:1001", {"type": "notification", "id": 1})
    h.publish("agent:1001", {"type": "notification", "id": 2})
    h.publish("agent:1001", {"type": "agent", "agent": "1001", "n": 1000}, key="1001")
    got = [json.loads(m) for m in await sub.next()]
    assert [(m["type"], m.get("n", m.get("id"))) for m in got] == [
        ("agent", 1000), ("ringing", 999), ("notification", 1), ("notification", 2)]
    assert sub.superseded == 1999 and sub.pending == {}


async def test_too_many_unsent_notifications_mark_the_subscriber_overflowed():
    h = hub()
    sub = h.subscribe(["dept:edu"])
    for i in range(3):
        h.publish("dept:edu", {"type": "notification", "id": i})
    assert not sub.overflowed
    h.publish("dept:edu", {"type": "notification", "id": 3})     # the socket is closed; they stay stored
    assert sub.overflowed


async def test_next_waits_for_a_message_and_ends_when_closed():
    h = hub()
    sub = h.subscribe(["office"])
    waiter = asyncio.get_running_loop().create_task(sub.next())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    h.publish("office", {"type": "dashboard", "department": "edu"}, key="edu")
    assert len(await asyncio.wait_for(waiter, 1)) == 1
    waiter = asyncio.get_running_loop().create_task(sub.next())
    await asyncio.sleep(0.01)
    h.close_all()
    assert await asyncio.wait_for(waiter, 1) == [] and h.topics == {}


def test_recipients_map_to_topics():
    assert recipient_topic("1001") == "agent:1001"
    assert recipient_topic("head:market") == "dept:market"
    assert recipient_topic("user:office") == "user:office"
