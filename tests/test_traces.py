"""Every real trace, replayed over TCP into the real service, agrees with Asterisk's queue_log:
per queue offered, answered, abandoned and timed-out counts, and each call's answering agent."""
from __future__ import annotations

import pytest

from callcenter.replay import replay
from callcenter.storage.store import Store
from reports import daily
from tests import queue_log
from tests.conftest import MONDAY_10, SHANGHAI, TRACES

NAMES = sorted(p.stem for p in TRACES.glob("*.queue_log"))


@pytest.mark.parametrize("name", NAMES)
async def test_trace_matches_queue_log(name, settings, db_url):
    summary = await replay(settings, db_url, [str(TRACES / f"{name}.jsonl")], MONDAY_10)
    assert summary.open_calls == 0
    store = Store(db_url)
    try:
        records = await store.calls_between(*daily.day_bounds(MONDAY_10.date(), SHANGHAI))
    finally:
        await store.close()
    report = daily.build(MONDAY_10.date(), records, settings)
    per_queue, agents, queued = queue_log.parse(TRACES / f"{name}.queue_log")

    got = {q["queue"]: q for q in report["queues"]}
    for queue, want in per_queue.items():
        for key in ("offered", "answered", "abandoned", "timed_out"):
            assert got[queue][key] == want.get(key, 0), f"{name} {queue}.{key}"
    # no queue figures that Asterisk did not log
    for queue, entry in got.items():
        if entry["offered"]:
            assert queue in per_queue, f"{name}: {queue} offered but not in queue_log"

    by_id = {r.id: r for r in records}
    assert queued <= set(by_id), f"{name}: calls missing: {queued - set(by_id)}"
    for key, agent in agents.items():
        call_id, queue = key.split("|")
        stints = [s for s in by_id[call_id].stints if s.queue == queue and s.end.value == "answered"]
        assert stints and stints[-1].member_name == agent
        assert stints[-1].agent is not None, "answering agent not mapped through configuration"
    assert len(records) == len(set((r.pbx, r.id) for r in records))
