"""Adapter: the statutory workday calendar of mainland China (package ``chinesecalendar``).

Years the package does not cover fall back to Monday-Friday with a warning; the follow-up issue
replaces this with configurable overrides and provisional deadlines.
"""
from __future__ import annotations

import logging
from datetime import date
from functools import lru_cache

log = logging.getLogger(__name__)


@lru_cache(maxsize=4096)
def is_workday(day: date) -> bool:
    try:
        import chinese_calendar
        return chinese_calendar.is_workday(day)
    except (NotImplementedError, ImportError):
        _warn_uncovered(day.year)
        return day.weekday() < 5


@lru_cache(maxsize=None)
def _warn_uncovered(year: int) -> None:
    log.warning("no statutory calendar for %d: treating Monday-Friday as workdays", year)
