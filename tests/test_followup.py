"""Follow-up tasks from replayed real traffic: the right tasks, deadlines on the workday
calendar, one open task per caller and department, automatic closing, crash safety."""
from __future__ import annotations


from datetime import datetime, timedelta

import pytest

from callcenter.clock import FixedClock
from callcenter.domain.records import CallRecord, Outcome, Stint, StintEnd
from callcenter.followup.service import FollowUp, TaskError
from callcenter.replay import replay
from callcenter.storage.store import Store
from callcenter.workdays import build_calendar
from tests.conftest import MONDAY_10, SHANGHAI, TRACES

FRIDAY_15 = datetime(2026, 11, 20, 15, 0, tzinfo=SHANGHAI)
BEFORE_NATIONAL_DAY = datetime(2026, 9, 30, 15, 0, tzinfo=SHANGHAI)   # Oct 1-7 off, Oct 8 a workday


async def _followup(settings, db_url, at, available=lambda agent: True) -> tuple[FollowUp, Store]:
    store = Store(db_url)
    await store.migrate()
    fu = FollowUp(store, settings, build_calendar(settings), FixedClock(at + timedelta(minutes=5)), available)
    await fu.process_pending()
    return fu, store


async def _replay_and_tasks(settings, db_url, names, at, **kw):
    await replay(settings, db_url, [str(TRACES / f"{n}.jsonl") for n in names], at, **kw)
    fu, store = await _followup(settings, db_url, at)
    tasks = await fu.list()
    await store.close()
    return fu, tasks


def local(iso: str) -> datetime:
    return datetime.fromisoformat(iso).astimezone(SHANGHAI)


@pytest.mark.parametrize("at, deadline", [
    (MONDAY_10, datetime(2026, 11, 24, 16, 30, tzinfo=SHANGHAI)),           # a workday morning
    (FRIDAY_15, datetime(2026, 11, 23, 16, 30, tzinfo=SHANGHAI)),           # Friday afternoon -> Monday
    (BEFORE_NATIONAL_DAY, datetime(2026, 10, 8, 16, 30, tzinfo=SHANGHAI)),  # before the holiday
])
async def test_abandons_create_tasks_with_workday_deadlines(settings, db_url, at, deadline):
    _, tasks = await _replay_and_tasks(settings, db_url, ["abandon"], at)
    assert sorted(t["caller_num"] for t in tasks) == ["13900000001", "13900000002"]
    for task in tasks:
        assert task["department"] == "edu" and task["reason"] == "abandoned" and task["status"] == "open"
        assert local(task["deadline"]) == deadline and not task["deadline_provisional"]
        # edu's post is 1005 (A) / 1006 (B); neither was logged in during the trace: the pool
        assert task["assignee"] is None and task["assigned_via"] == "pool"
    short = {t["caller_num"]: t["short_abandon"] for t in tasks}
    assert short == {"13900000001": True, "13900000002": False}      # waited 3 s and 6 s


async def test_timeout_after_hours_and_ivr_hangup(settings, db_url):
    _, tasks = await _replay_and_tasks(settings, db_url, ["nobody", "afterhours", "ivr-hangup"], MONDAY_10)
    got = sorted((t["caller_num"], t["department"], t["reason"]) for t in tasks)
    assert got == [("13500000001", "edu", "timed_out"),
                   ("13600000001", "market", "after_hours"),
                   ("13600000009", "market", "ivr_abandoned")]     # 13600000010 was answered: no task


async def test_history_lists_the_calls_behind_a_task(settings, db_url):
    fu, tasks = await _replay_and_tasks(settings, db_url, ["nobody"], MONDAY_10)
    store = Store(db_url)
    fu.store = store
    task = await fu.get(tasks[0]["id"])
    await store.close()
    misses = [h for h in task["history"] if h["kind"] == "miss"]
    assert [(m["call_id"], m["reason"], m["queue"]) for m in misses] == [("1795347549.201", "timed_out", "q-edu")]
    assert any(h["kind"] == "assigned" and h["via"] == "pool" for h in task["history"])


async def test_replaying_load_twice_creates_no_duplicate_tasks(settings, db_url):
    await replay(settings, db_url, [str(TRACES / "load.jsonl")], MONDAY_10, pbx="pbx1")
    fu, store = await _followup(settings, db_url, MONDAY_10)
    first = await fu.list()
    await store.close()
    # the same callers again, as new calls (another PBX id gives them new keys)
    await replay(settings, db_url, [str(TRACES / "load.jsonl")], MONDAY_10 + timedelta(minutes=5), pbx="pbx2")
    fu, store = await _followup(settings, db_url, MONDAY_10 + timedelta(minutes=5))
    second = await fu.list()
    await store.close()
    keys = [(t["caller_num"], t["department"]) for t in second if t["status"] == "open"]
    assert len(keys) == len(set(keys)) == len(first) > 0
    assert all(t["misses"] == 2 for t in second)


async def test_answered_call_closes_the_task(settings, db_url):
    store = Store(db_url)
    await store.migrate()
    missed = _call("m1", "13912345678", MONDAY_10, StintEnd.ABANDONED, wait=20)
    answered = _call("a1", "13912345678", MONDAY_10 + timedelta(hours=1), StintEnd.ANSWERED, wait=4)
    await store.save_calls([missed])
    fu = FollowUp(store, settings, build_calendar(settings), FixedClock(MONDAY_10))
    await fu.process_pending()
    [task] = await fu.list(status="open")
    await store.save_calls([answered])
    await fu.process_pending()
    closed = await fu.get(task["id"])
    await store.close()
    assert closed["status"] == "closed" and closed["closure"] == "caller_called_again"
    assert local(closed["contacted_at"]) == MONDAY_10 + timedelta(hours=1, seconds=4)
    assert closed["closed_by"] == "system"


async def test_crash_between_call_and_task_loses_nothing(settings, db_url):
    """The call is committed, the process dies before any task exists; the restart creates it."""
    store = Store(db_url)
    await store.migrate()
    await store.save_calls([_call("c1", "13811112222", MONDAY_10, StintEnd.ABANDONED, wait=30)])
    await store.close()                                  # "killed" here: no follow-up ran
    fu, store = await _followup(settings, db_url, MONDAY_10)     # restart: catch-up at start
    tasks = await fu.list()
    assert [(t["caller_num"], t["reason"]) for t in tasks] == [("13811112222", "abandoned")]
    assert await fu.process_pending() == 0               # and never twice
    assert len(await fu.list()) == 1
    await store.close()


async def test_unmapped_queue_goes_to_the_service_office_pool(settings, db_url):
    store = Store(db_url)
    await store.migrate()
    call = _call("u1", "13700001111", MONDAY_10, StintEnd.ABANDONED, wait=30, queue="q-unknown", department=None)
    await store.save_calls([call])
    fu = FollowUp(store, settings, build_calendar(settings), FixedClock(MONDAY_10))
    await fu.process_pending()
    [task] = await fu.list()
    await store.close()
    assert task["department"] == "office" and task["pooled_from_unmapped"]


async def test_assignment_a_then_b_then_pool(settings, sqlite_url):
    store = Store(sqlite_url)
    await store.migrate()
    await store.save_calls([_call("x1", "1", MONDAY_10, StintEnd.ABANDONED, wait=30),
                            _call("x2", "2", MONDAY_10, StintEnd.ABANDONED, wait=30),
                            _call("x3", "3", MONDAY_10, StintEnd.ABANDONED, wait=30)])
    calendar = build_calendar(settings)
    for number, available in (("1", {"1005", "1006"}), ("2", {"1006"}), ("3", set())):
        fu = FollowUp(store, settings, calendar, FixedClock(MONDAY_10), available=available.__contains__)
        records = await store.calls_where(store_calls_id(number))
        for r in records:
            await fu._process(r)
    got = {t["caller_num"]: (t["assignee"], t["assigned_via"]) for t in await fu.list()}
    await store.close()
    assert got == {"1": ("1005", "post_a"), "2": ("1006", "post_b"), "3": (None, "pool")}


async def test_agent_closes_with_an_outcome_never_silently(settings, sqlite_url):
    store = Store(sqlite_url)
    await store.migrate()
    await store.save_calls([_call("y1", "13600001234", MONDAY_10, StintEnd.ABANDONED, wait=30)])
    fu = FollowUp(store, settings, build_calendar(settings), FixedClock(MONDAY_10))
    await fu.process_pending()
    [task] = await fu.list()
    with pytest.raises(TaskError, match="unknown outcome"):
        await fu.close(task["id"], "done", by="1005")
    with pytest.raises(TaskError, match="set by the system"):
        await fu.close(task["id"], "caller_called_again", by="1005")
    with pytest.raises(TaskError, match="unreachable needs 3 callback attempts"):
        await fu.close(task["id"], "unreachable", by="1005")
    closed = await fu.close(task["id"], "reached_resolved", by="1005", note="已电话答复")
    assert (closed["status"], closed["closure"], closed["closed_by"], closed["note"]) == \
        ("closed", "reached_resolved", "1005", "已电话答复")
    with pytest.raises(TaskError, match="already closed"):
        await fu.close(task["id"], "wrong_number", by="1005")
    await store.close()


def store_calls_id(number):
    from callcenter.storage import tables as t
    return t.calls.c.caller_num == number


def _call(call_id, number, at, end, wait, queue="q-edu", department="edu") -> CallRecord:
    left = at + timedelta(seconds=wait)
    stint = Stint(queue, department, at, left_at=left, end=end,
                  answered_at=left if end is StintEnd.ANSWERED else None,
                  agent="1005" if end is StintEnd.ANSWERED else None)
    outcome = Outcome.ANSWERED if end is StintEnd.ANSWERED else Outcome.ABANDONED
    return CallRecord("pbx1", call_id, call_id, number, "", "62000002", department, at,
                      left + timedelta(seconds=30), outcome, stints=[stint])
