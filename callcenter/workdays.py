"""Adapter: the statutory workday calendar of mainland China.

The official schedules (holidays and the weekend days worked instead, 调休) come from the
``chinesecalendar`` package, which covers one range of years (2004-2026 in version 1.11), merged
with the ``calendar:`` configuration key: ``years`` adds or replaces a whole year's official list
(that year then counts as covered), ``extra_holidays`` / ``extra_workdays`` change single days.
Years neither covers are not guessed: the pure calendar (callcenter/domain/calendar.py) counts
them Monday-Friday and marks deadlines that reach into them provisional; ``warn_missing_year``
logs the warning to show at start-up and daily. See docs/calendar.md.

Where the warning is shown (issue 13): once at `serve`'s start-up (and daily by its scheduler)
and by `config check` (`config_check_warning`); every other command runs inside
``calendar_warning_quiet()`` (callcenter/cli.py), where it is logged at DEBUG only (-v).
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from .domain.calendar import WorkdayCalendar
from .settings import CalendarSettings, Settings

log = logging.getLogger(__name__)
_QUIET: ContextVar[bool] = ContextVar("calendar_warning_quiet", default=False)


@lru_cache(maxsize=1)
def statutory_schedule() -> tuple[frozenset[date], frozenset[date], frozenset[int]]:
    """(days off, make-up workdays, covered years) from the chinesecalendar package."""
    try:
        import chinese_calendar
    except ImportError:               # the package is a dependency; without it nothing is covered
        log.warning("the chinesecalendar package is not installed: no statutory calendar")
        return frozenset(), frozenset(), frozenset()
    holidays = frozenset(chinese_calendar.holidays)
    workdays = frozenset(chinese_calendar.workdays)
    years = {d.year for d in holidays}
    # The package itself answers for every year between its first and last holiday.
    covered = frozenset(range(min(years), max(years) + 1)) if years else frozenset()
    return holidays, workdays, covered


def calendar_from(overrides: CalendarSettings, tz: ZoneInfo) -> WorkdayCalendar:
    """The package's schedule merged with configuration overrides."""
    holidays, workdays, covered = statutory_schedule()
    off, worked, years = set(holidays), set(workdays), set(covered)
    for year, schedule in overrides.years.items():      # a whole year's list replaces the package's
        off = {d for d in off if d.year != year} | set(schedule.holidays)
        worked = {d for d in worked if d.year != year} | set(schedule.workdays)
        years.add(year)
    off = (off - set(overrides.extra_workdays)) | set(overrides.extra_holidays)
    worked = (worked - set(overrides.extra_holidays)) | set(overrides.extra_workdays)
    return WorkdayCalendar(off, worked, years, tz)


def build_calendar(settings: Settings) -> WorkdayCalendar:
    return calendar_from(settings.calendar, ZoneInfo(settings.timezone))


def warn_missing_year(calendar: WorkdayCalendar, today: date) -> str | None:
    """Log (and return) the missing-year warning for ``today``; call at start-up and daily.
    Inside ``calendar_warning_quiet()`` it is logged at DEBUG (seen with -v only)."""
    text = calendar.missing_year_warning(today)
    if text:
        log.log(logging.DEBUG if _QUIET.get() else logging.WARNING, "%s", text)
    return text


@contextmanager
def calendar_warning_quiet(quiet: bool = True):
    """Commands other than `serve` and `config check` run inside this: no calendar warning."""
    token = _QUIET.set(quiet)
    try:
        yield
    finally:
        _QUIET.reset(token)


def config_check_warning(settings: Settings, now: datetime | None = None) -> str | None:
    """The missing-year warning as `callcenter config check` prints it (None: nothing missing)."""
    from .clock import SystemClock
    tz = ZoneInfo(settings.timezone)
    text = build_calendar(settings).missing_year_warning((now or SystemClock().now()).astimezone(tz).date())
    return f"warning: {text}" if text else None


@lru_cache(maxsize=1)
def _package_calendar() -> WorkdayCalendar:
    return calendar_from(CalendarSettings(), ZoneInfo("Asia/Shanghai"))


@lru_cache(maxsize=4096)
def is_workday(day: date) -> bool:
    """The package's schedule without configuration overrides (prefer ``build_calendar``)."""
    calendar = _package_calendar()
    if not calendar.is_covered(day):
        _warn_uncovered(day.year)
    return calendar.is_workday(day)


@lru_cache(maxsize=None)
def _warn_uncovered(year: int) -> None:
    log.warning("no statutory calendar for %d: treating Monday-Friday as workdays", year)
