"""A day with no business hours near it (National Day 2026-10-05: a holiday, with holidays on both
sides) is counted by SQL like any other day: the SQL path must not fall back or fail (a constant
`false` in the IVR grouping was read by SQLite as "GROUP BY column 0": "6th GROUP BY term out of
range"), and its figures equal the reference path's (every call is after-hours)."""
from __future__ import annotations

import dataclasses
import random
from datetime import date, datetime, time

from callcenter.storage.report_queries import daily_report_inputs
from callcenter.storage.store import Store
from reports import daily
from tests.conftest import SHANGHAI
from tests.test_report_sql import _compare, _random_calls

NATIONAL_DAY = date(2026, 10, 5)


async def test_a_holiday_without_business_hours_near_it(settings, db_url):
    rng = random.Random(5)
    calls = _random_calls(rng, datetime.combine(NATIONAL_DAY, time(0), SHANGHAI), 300, settings)
    store = Store(db_url)
    try:
        await store.migrate()
        await store.save_calls([dataclasses.replace(c, id=f"h-{c.id}") for c in calls])
        report = await _compare(store, settings, NATIONAL_DAY)
        totals = report["totals"]
        assert totals["offered"] == 0 and totals["answered"] == 0
        assert totals["after_hours"] > 0 and totals["ivr_abandoned"] == 0
        inputs = await daily_report_inputs(store, settings, NATIONAL_DAY,
                                           datetime(2026, 10, 8, 12, 0, tzinfo=SHANGHAI))
        assert daily.build(NATIONAL_DAY, [], settings, **inputs)["totals"]["after_hours"] == totals["after_hours"]
    finally:
        await store.close()
