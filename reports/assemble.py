"""The whole daily report read from a store: the one place the command (`callcenter report
daily`), the REST API (`GET /api/reports/daily`) and the archive (reports/archive.py) build it.

The day's call, task, case, agent and coverage figures (callcenter/storage/report_queries.py),
the IVR and survey section (reports/ivr.py: "ivr"), the hotline probes (reports/probes.py:
"probes") and, when asked (the HTML and XLSX formats chart it), the 30-day trend (reports/trend.py:
"trend"), combined by reports/daily.py `build`. A read only: the store may be read-only.
"""
from __future__ import annotations

import asyncio
from datetime import date, datetime

TREND_FORMATS = frozenset({"html", "xlsx"})     # the formats that draw the 30-day trend


async def daily_report(store, settings, day: date, now: datetime, trend: bool = False,
                       known_trend: dict | None = None) -> dict:
    """`day`'s report as judged at `now`. `trend`: add the 30-day trend ("trend"); `known_trend`
    (date -> reports/trend.py `trend_entry`, e.g. from archived reports) spares reading those days."""
    from callcenter.storage.report_queries import daily_report_inputs

    from . import daily
    from .ivr import ivr_section
    from .probes import probes_section
    reads = [daily_report_inputs(store, settings, day, now), ivr_section(store, settings, day, now),
             probes_section(store, settings, day, now)]
    if trend:
        from .trend import trend_section
        reads.append(trend_section(store, settings, day, now, known=known_trend))
    inputs, *parts = await asyncio.gather(*reads)        # independent reads, at once
    sections = dict(zip(("ivr", "probes", "trend"), parts))
    return daily.build(day, [], settings, sections=sections, **inputs)
