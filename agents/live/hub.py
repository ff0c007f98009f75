"""The push hub: topics, subscribers with bounded, coalescing queues, serialise once, fan out.

Topics: ``agent:<id>`` (an agent's view, its ringing calls, its notifications), ``dept:<id>``
(a department's dashboard and its head's notifications), ``office`` (every department's dashboard,
numbers masked) and ``user:<user>`` (messages for one signed-in user).

`publish(topic, message, key)` stamps ``sent_at`` (and ``event_at``: null unless given), serialises the message ONCE (UTF-8 JSON) and
hands the same bytes to every subscriber of the topic; nothing is serialised for a topic nobody
listens to. The publisher never waits: each subscriber holds its pending messages in an ordered
dict. A message with a key (a snapshot: ``("agent", id)``, ``("dashboard", department)``) replaces
the pending one with the same key, so a slow client skips stale snapshots and gets the newest; a
message without a key (a notification) is never dropped. A subscriber with more than
``max_unkeyed`` unsent keyless messages is marked overflowed and its socket is closed by its
writer (the notifications stay stored and are listed again on the next connect).
"""
from __future__ import annotations

import asyncio
import itertools
import json
from datetime import timezone

_unique = itertools.count()


def dumps(message: dict) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")


def iso(moment) -> str | None:
    return moment.astimezone(timezone.utc).isoformat() if moment is not None else None


class Subscriber:
    """One connection's view of the hub: the topics it listens to and what it has not sent yet."""

    def __init__(self, hub: "Hub", topics, max_unkeyed: int):
        self.hub = hub
        self.topics = frozenset(topics)
        self.max_unkeyed = max_unkeyed
        self.pending: dict = {}              # key -> bytes, in the order first published
        self.unkeyed = 0
        self.superseded = 0                  # stale snapshots replaced before they were sent
        self.sent = 0
        self.overflowed = False
        self.closed = False
        self._wake = asyncio.Event()

    def put(self, key, data: bytes) -> None:
        if self.closed:
            return
        if key is None:
            if self.unkeyed >= self.max_unkeyed:
                self.overflowed = True
            else:
                self.unkeyed += 1
                self.pending[("_", next(_unique))] = data
        else:
            if key in self.pending:
                self.superseded += 1
            self.pending[key] = data
        self._wake.set()

    async def next(self) -> list[bytes]:
        """Wait for what is pending and take all of it (empty once closed)."""
        while not self.pending and not self.closed and not self.overflowed:
            self._wake.clear()
            await self._wake.wait()
        if self.closed:
            return []
        items = list(self.pending.values())
        self.pending.clear()
        self.unkeyed = 0
        self.sent += len(items)
        return items

    def close(self) -> None:
        self.closed = True
        self._wake.set()
        self.hub.unsubscribe(self)


class Hub:
    def __init__(self, clock, max_unkeyed: int = 500):
        self.clock = clock
        self.max_unkeyed = max_unkeyed
        self.topics: dict[str, set[Subscriber]] = {}
        self.subscribers: set[Subscriber] = set()
        self.recheck_seconds = 30.0          # how often a socket's session is read again (live/ws.py)
        self.published = 0                   # messages serialised
        self.deliveries = 0                  # (message, subscriber) hand-overs

    def subscribe(self, topics) -> Subscriber:
        sub = Subscriber(self, topics, self.max_unkeyed)
        self.subscribers.add(sub)
        for topic in sub.topics:
            self.topics.setdefault(topic, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        for topic in sub.topics:
            subs = self.topics.get(topic)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self.topics[topic]

    def listened(self, topic: str) -> bool:
        return topic in self.topics

    def publish(self, topic: str, message: dict, key=None) -> bytes | None:
        """Serialise once and hand to every subscriber of `topic`; `key` (e.g. the agent id)
        makes it a snapshot that a newer one with the same ``(type, key)`` replaces. Returns the
        bytes sent (None when nobody listens)."""
        subs = self.topics.get(topic)
        if not subs:
            return None
        message.setdefault("event_at", None)          # no PBX event behind it (a notification)
        message["sent_at"] = iso(self.clock.now())
        data = dumps(message)
        self.published += 1
        full_key = None if key is None else (message.get("type"), key)
        for sub in list(subs):
            sub.put(full_key, data)
        self.deliveries += len(subs)
        return data

    def notify(self, recipient: str, message: dict) -> bytes | None:
        """A notification for a panel channel recipient: an agent id -> ``agent:<id>``,
        ``head:<dept>`` -> ``dept:<dept>``, ``user:<user>`` as it is. Never coalesced."""
        return self.publish(recipient_topic(recipient), message)

    def close_all(self) -> None:
        for sub in list(self.subscribers):
            sub.close()


def recipient_topic(recipient: str) -> str:
    if recipient.startswith("head:"):
        return "dept:" + recipient[5:]
    if recipient.startswith(("user:", "dept:", "agent:")) or recipient == "office":
        return recipient
    return "agent:" + recipient
