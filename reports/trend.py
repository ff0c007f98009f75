"""The 30-day trend of the daily report's chart (issue 13): per day, the hotline's connect rate
and resolution rate with the offered and answered calls behind them, ending on the report's day.

One grouped query per figure (callcenter/storage/period_queries.py `daily_call_totals`,
`daily_case_totals`), not one report per day; the figures are the daily report's `totals`
(each call once, by its last stint) and the sum of its departments' case counts.

Cost: the call query reads every call of the days it counts (about 1.3-1.7 s for 137,000 calls
on SQLite here). Days that are over do not change, so a caller holding their daily reports (the
report archive) passes them as `known` (`trend_entry` of each) and only the other days are read:
at city scale the daily report should do that.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta

DAYS = 30


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole > 0 else None


def trend_entry(report: dict) -> dict:
    """The trend entry of a daily report (reports/daily.py `build`, e.g. an archived one): the
    same figures `trend_section` counts for that day."""
    totals, departments = report["totals"], report["departments"]
    due = sum(d.get("cases_due", 0) for d in departments)
    in_time = sum(d.get("resolved_in_time", 0) for d in departments)
    return {"date": report["date"], "offered": totals["offered"], "answered": totals["answered"],
            "connect_rate": totals["connect_rate"], "resolution_rate": _rate(in_time, due)}


async def trend_section(store, settings, day: date, now: datetime,
                        known: dict[date, dict] | None = None) -> list[dict]:
    """30 entries {"date", "connect_rate", "resolution_rate", "offered", "answered"}, oldest
    first, the last one `day`. `known`: entries already worked out (`trend_entry`), by date;
    only the other days are read. `now` is accepted for symmetry with the other sections:
    days are counted as they stand in the store."""
    from callcenter.storage.period_queries import daily_call_totals, daily_case_totals
    from callcenter.workdays import build_calendar

    from .daily import metric_settings
    ms = metric_settings(settings)
    calendar = build_calendar(settings)
    known = known or {}
    days = [day - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]
    missing = [d for d in days if d not in known]
    calls = await daily_call_totals(store, settings, calendar, missing, ms)
    cases = await daily_case_totals(store, calendar, missing)
    out = []
    for d in days:
        if d in known:
            out.append({"date": d.isoformat(), **{k: known[d][k] for k in
                                                  ("offered", "answered", "connect_rate", "resolution_rate")}})
            continue
        offered, answered, short = calls[d]
        due, in_time = cases[d]
        out.append({"date": d.isoformat(), "offered": offered, "answered": answered,
                    "connect_rate": _rate(answered, offered - (short if ms.exclude_short_abandons else 0)),
                    "resolution_rate": _rate(in_time, due)})
    return out
