"""The daily report's IVR section (reports/ivr.py over callcenter/storage/ivr_queries.py) on a
story with known answers, on SQLite and PostgreSQL. The sessions are handed to the IVR records
(ivr/records.py) as the FastAGI handlers hand them over, then counted by SQL."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from reports.ivr import ivr_section, table_lines
from tests.conftest import MONDAY_10, SHANGHAI

FOOD = "食品经营许可"


def session(script, uid, caller, department, outcome, path, at, route=None, rating=None, agent=None, recordings=()):
    return {"script": script, "uniqueid": uid, "channel": "", "hotline": "62000001", "caller": caller, "pbx": "pbx1",
            "department": department, "started_at": at, "ended_at": at + timedelta(seconds=20), "path": path,
            "outcome": outcome, "rating": rating, "recordings": list(recordings), "route": route,
            **({"agent": agent, "queue": "q-market", "interface": None} if script == "survey" else {})}


def queue(item, digits):
    return {"kind": "queue", "queue": "q-market", "item": item, "target": None}


def rated(rating):
    digit = {"satisfied": "1", "basic": "2", "dissatisfied": "3"}[rating]
    return [{"at_step": "survey", "choice": digit, "rating": rating}]


def story(at: datetime) -> list[dict]:
    m = lambda i: at + timedelta(minutes=i)        # noqa: E731
    return [
        # market: 6 entries; 2 and 0 chosen; one hang-up in the menu, one before it; one callback request
        session("ivr", "1.1", "13900000001", "market", "queue",
                [{"at_step": "menu", "choice": "2", "level": 1, "item": FOOD}], m(0), queue(FOOD, "2")),
        session("ivr", "1.2", "13900000002", "market", "queue",
                [{"at_step": "menu", "invalid": "9", "level": 1}, {"at_step": "menu", "choice": "2", "level": 1, "item": FOOD}],
                m(1), queue(FOOD, "2")),
        session("ivr", "1.3", "13900000003", "market", "queue", [{"at_step": "menu", "choice": "0", "level": 1}],
                m(2), queue(None, "0")),
        session("ivr", "1.4", "13900000004", "market", "hangup", [{"hangup_at": "menu", "level": 1}], m(3)),
        session("ivr", "1.5", "13900000005", "market", "hangup", [{"hangup_at": "welcome"}], m(4)),
        session("ivr", "1.6", "13900000006", "market", "callback_request",
                [{"at_step": "gap_callback", "choice": "1"}, {"at_step": "callback_record", "recorded": True}], m(5),
                {"kind": "callback_task", "queue": "q-market", "item": None, "target": None},
                recordings=["ivr-callback-1-6"]),
        # market surveys: 4 offered, 3 rated (satisfied, 2 dissatisfied), 1 no rating
        session("survey", "1.1", "13900000001", "market", "rated", rated("satisfied"), m(10), rating="satisfied", agent="1001"),
        session("survey", "1.2", "13900000002", "market", "rated", rated("dissatisfied"), m(11), rating="dissatisfied",
                agent="1001"),
        session("survey", "1.3", "13900000003", "market", "no_rating", [{"at_step": "survey", "timeout": True}] * 2, m(12)),
        session("survey", "1.7", "13900000007", "market", "rated", rated("dissatisfied"), m(13), rating="dissatisfied",
                agent="1002"),
        # edu: one entry that went down to a sub-menu and hung up there; 2 ratings (basic; a
        # withheld caller's dissatisfied: no follow-up possible); a disabled survey is not offered
        session("ivr", "2.1", "13900000021", "edu", "hangup",
                [{"at_step": "menu", "choice": "1", "level": 1, "item": "招生"}, {"hangup_at": "menu", "level": 2}], m(20)),
        session("survey", "2.2", "13900000022", "edu", "rated", rated("basic"), m(21), rating="basic"),
        session("survey", "2.3", "", "edu", "rated", rated("dissatisfied"), m(22), rating="dissatisfied"),
        session("survey", "2.4", "13900000024", "edu", "disabled", [], m(23)),
        # the day before: not counted
        session("ivr", "0.1", "13900000031", "market", "queue", [{"at_step": "menu", "choice": "1", "level": 1}],
                at - timedelta(days=1), queue("x", "1")),
    ]


@pytest.fixture
async def app(settings, db_url):
    app = build(settings, db_url, FixedClock(MONDAY_10))
    await app.store.migrate()
    yield app
    await app.ivr_records.stop()
    await app.store.close()


async def test_the_ivr_section_of_a_known_day(app, settings):
    for record in story(MONDAY_10):
        app.ivr_records.add(record)
    await app.ivr_records.flush()
    app.clock.advance(60 * 60)                          # no call tracked for them: acted on alone
    await app.ivr_records.flush()
    # the first dissatisfied caller is reached on Monday afternoon (in time); the other never
    [reached] = await app.followup.list(caller="13900000002")
    app.clock.advance(3 * 3600)
    await app.followup.close(reached["id"], "reached_resolved", by="1002")
    now = datetime(2026, 11, 24, 18, 0, tzinfo=SHANGHAI)            # Tuesday evening: both contact deadlines past
    section = await ivr_section(app.store, settings, MONDAY_10.date(), now)
    edu, market = section["departments"]            # in the configuration's order
    totals = section["totals"]
    assert (market["department"], market["department_name"], edu["department"]) == ("market", "区市场监管局", "edu")
    assert (market["entries"], market["hangups"], market["hangups_by_level"], market["callback_requests"]) == \
        (6, 2, {"0": 1, "1": 1}, 1)
    assert market["choices"] == [{"item": None, "digit": "0", "n": 1}, {"item": FOOD, "digit": "2", "n": 2}]
    assert (market["survey_offered"], market["survey_rated"], market["satisfied"], market["basic"],
            market["dissatisfied"]) == (4, 3, 1, 0, 2)
    assert (market["survey_participation"], market["satisfaction_rate"]) == (0.75, 0.3333)
    assert (market["dissatisfied_contacted_in_time"], market["dissatisfied_contact_due"]) == (1, 2)
    listed = {x["call_id"]: x for x in market["dissatisfied_list"]}
    assert (listed["1.2"]["contacted_in_time"], listed["1.7"]["contacted_in_time"]) == (True, False)
    assert listed["1.2"]["caller"] == "139****0002" and listed["1.2"]["agent"] == "1001"
    assert datetime.fromisoformat(listed["1.2"]["contact_deadline"]) == datetime(2026, 11, 24, 16, 30, tzinfo=SHANGHAI)
    assert datetime.fromisoformat(listed["1.2"]["rectify_deadline"]) == datetime(2026, 11, 30, 16, 30, tzinfo=SHANGHAI)
    assert (edu["entries"], edu["hangups_by_level"], edu["choices"]) == (1, {"2": 1}, [{"item": "招生", "digit": "1", "n": 1}])
    assert (edu["survey_offered"], edu["survey_rated"], edu["basic"], edu["dissatisfied"], edu["satisfaction_rate"]) == \
        (2, 2, 1, 1, 0.0)
    assert [x["contacted_in_time"] for x in edu["dissatisfied_list"]] == [None]        # withheld: no task
    assert (totals["entries"], totals["hangups"], totals["hangups_by_level"], totals["callback_requests"]) == \
        (7, 3, {"0": 1, "1": 1, "2": 1}, 1)
    assert (totals["survey_offered"], totals["survey_rated"], totals["satisfied"], totals["basic"],
            totals["dissatisfied"]) == (6, 5, 1, 1, 3)
    assert (totals["survey_participation"], totals["satisfaction_rate"]) == (0.8333, 0.2)
    assert (totals["dissatisfied_contacted_in_time"], totals["dissatisfied_contact_due"]) == (1, 2)
    assert len(totals["dissatisfied_list"]) == 3
    lines = table_lines(section)
    text = "\n".join(lines)
    assert "区市场监管局" in text and "满意率" in text and "33.3%" in text and "20.0%" in text
    assert "139****0002" in text and "13900000002" not in text
    assert "2026-11-23 10:11" in text                                                # the rating, in Shanghai time
    # while the day is in progress (10:12), only what started by then counts, and nothing is late yet
    early = await ivr_section(app.store, settings, MONDAY_10.date(), MONDAY_10 + timedelta(minutes=12))
    assert early["totals"]["entries"] == 6 and early["totals"]["survey_offered"] == 2
    assert [x["contacted_in_time"] for x in early["totals"]["dissatisfied_list"]] == [True]


async def test_an_empty_day(app, settings):
    section = await ivr_section(app.store, settings, MONDAY_10.date(), MONDAY_10 + timedelta(days=1))
    assert section["departments"] == []
    assert section["totals"]["entries"] == 0 and section["totals"]["satisfaction_rate"] is None
    assert any("—" in line for line in table_lines(section))
