"""The workday calendar: statutory workdays, business hours and workday deadlines (pure).

The statutory schedule of mainland China (holidays, and the weekend days that are worked
instead, 调休) is passed in as data by the adapter (callcenter/workdays.py); nothing here reads
a clock, a file or a package. Every moment is judged in the calendar's zone (Asia/Shanghai);
inputs may be in any zone and must be timezone-aware; returned moments are in UTC.

A year the data does not cover is never guessed silently: such days follow the Monday-Friday
rule (plus any explicit overrides), and every deadline whose computation looked at one of them
is marked ``provisional``.

Business-hour windows are ``(start, end)`` pairs of local times, half-open: open from ``start``
up to, not including, ``end`` (the same tuples as callcenter/domain/hours.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Iterable, Sequence

UTC = timezone.utc
Windows = Sequence[tuple[time, time]]

_SEARCH_DAYS = 3660       # how far next_open looks before giving up (ten years)


@dataclass(frozen=True)
class Deadline:
    """A workday deadline. ``provisional``: a day it depends on lies in an uncovered year."""
    at: datetime            # UTC
    provisional: bool


def normalize_windows(windows: Windows) -> tuple[tuple[time, time], ...]:
    """Sorted windows with overlapping or touching ones merged; rejects empty or reversed ones."""
    result: list[tuple[time, time]] = []
    for start, end in sorted(windows):
        if start.tzinfo is not None or end.tzinfo is not None:
            raise ValueError("business-hour windows are local times without a zone")
        if end <= start:
            raise ValueError(f"window ends ({end}) before it starts ({start})")
        if result and start <= result[-1][1]:
            result[-1] = (result[-1][0], max(end, result[-1][1]))
        else:
            result.append((start, end))
    return tuple(result)


def _aware(moment: datetime, name: str = "moment") -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {moment!r}")
    return moment


class WorkdayCalendar:
    """Statutory workdays plus business-hour arithmetic in one time zone.

    ``holidays``: dates that are not worked although they may fall on Monday-Friday.
    ``workdays``: dates that are worked although they may fall on a weekend (调休).
    ``covered_years``: years for which the data above is the complete official schedule.
    """

    def __init__(self, holidays: Iterable[date], workdays: Iterable[date],
                 covered_years: Iterable[int], tz: tzinfo):
        self._holidays = frozenset(holidays)
        self._workdays = frozenset(workdays)
        both = self._holidays & self._workdays
        if both:
            raise ValueError(f"dates both holiday and workday: {', '.join(sorted(map(str, both)))}")
        self._covered = frozenset(covered_years)
        self.tz = tz

    # --- days -------------------------------------------------------------------------------

    @property
    def covered_years(self) -> frozenset[int]:
        return self._covered

    def is_covered(self, day_or_year: date | int) -> bool:
        """Whether the official schedule of that date's year (or that year) is known."""
        year = day_or_year if isinstance(day_or_year, int) else day_or_year.year
        return year in self._covered

    def is_workday(self, day: date) -> bool:
        """A statutory workday. In an uncovered year: Monday-Friday (see ``is_covered``).

        A datetime is judged by its local date in the calendar's zone.
        """
        day = self._local_date(day)
        if day in self._workdays:
            return True
        if day in self._holidays:
            return False
        return day.weekday() < 5

    def uncovered_years(self, first: date, last: date) -> list[int]:
        """The years between two dates (inclusive) whose schedule is not known."""
        first, last = self._local_date(first), self._local_date(last)
        return [y for y in range(min(first, last).year, max(first, last).year + 1) if y not in self._covered]

    def next_workday(self, day: date) -> date:
        """The first workday strictly after ``day``."""
        day = self._local_date(day) + timedelta(days=1)
        while not self.is_workday(day):
            day += timedelta(days=1)
        return day

    # --- business hours ---------------------------------------------------------------------

    def within_business_hours(self, moment: datetime, windows: Windows) -> bool:
        """Whether ``moment`` falls inside a window on a workday (local time)."""
        local = _aware(moment).astimezone(self.tz)
        if not self.is_workday(local.date()):
            return False
        clock = local.time()
        return any(start <= clock < end for start, end in normalize_windows(windows))

    def add_workdays(self, moment: datetime, n: int, windows: Windows) -> Deadline:
        """The deadline ``n`` workdays after the event at ``moment``.

        For ``n >= 1`` the deadline is the end of the last business window of the n-th workday
        after the local day of ``moment``; the time of day of the event does not matter, and an
        event on a weekend or holiday counts from the day after it like any other (``n = 1`` on
        a Monday, or on the Saturday before it, is Tuesday's close).

        ``n = 0`` means "by close of business": the close of the event's own day if that is a
        workday and the event is before its close, otherwise the close of the next workday. So
        a deadline is never earlier than the event, and ``add_workdays(m, 0) <=
        add_workdays(m, 1)``.

        ``provisional`` is true when any day looked at (from the event's day, for n = 0, or the
        day after it, up to the deadline's day) lies in a year the calendar does not cover.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        moment = _aware(moment).astimezone(UTC)
        close = self._close_time(windows)
        day = moment.astimezone(self.tz).date()
        provisional = False
        if n == 0:
            provisional = not self.is_covered(day)
            if self.is_workday(day) and moment < self._at(day, close).astimezone(UTC):
                return Deadline(self._at(day, close).astimezone(UTC), provisional)
            n = 1
        for _ in range(n):
            day += timedelta(days=1)
            provisional |= not self.is_covered(day)
            while not self.is_workday(day):
                day += timedelta(days=1)
                provisional |= not self.is_covered(day)
        return Deadline(self._at(day, close).astimezone(UTC), provisional)

    def business_time(self, start: datetime, end: datetime, windows: Windows) -> timedelta:
        """The time inside business windows on workdays between two moments (exact)."""
        start, end = _aware(start, "start").astimezone(UTC), _aware(end, "end").astimezone(UTC)
        total = timedelta(0)
        if end <= start:
            return total
        spans = normalize_windows(windows)
        day, last = start.astimezone(self.tz).date(), end.astimezone(self.tz).date()
        while day <= last:
            if self.is_workday(day):
                for w_start, w_end in spans:
                    lo = max(start, self._at(day, w_start).astimezone(UTC))
                    hi = min(end, self._at(day, w_end).astimezone(UTC))
                    if hi > lo:
                        total += hi - lo
            day += timedelta(days=1)
        return total

    def business_minutes(self, start: datetime, end: datetime, windows: Windows) -> float:
        """Minutes inside business windows on workdays between two moments; 0 if end <= start."""
        return self.business_time(start, end, windows).total_seconds() / 60

    def next_open(self, moment: datetime, windows: Windows) -> datetime:
        """``moment`` itself (in UTC) if business hours are open then, else when they next open."""
        moment = _aware(moment).astimezone(UTC)
        spans = normalize_windows(windows)
        if not spans:
            raise ValueError("no business-hour windows")
        if self.within_business_hours(moment, spans):
            return moment
        day = moment.astimezone(self.tz).date()
        for _ in range(_SEARCH_DAYS):
            if self.is_workday(day):
                for w_start, _end in spans:
                    opens = self._at(day, w_start).astimezone(UTC)
                    if opens > moment:
                        return opens
            day += timedelta(days=1)
        raise ValueError(f"no workday within {_SEARCH_DAYS} days of {moment.isoformat()}")

    def add_business_minutes(self, moment: datetime, minutes: float, windows: Windows) -> datetime:
        """The moment ``minutes`` of business time after ``moment`` (e.g. callback retry spacing):
        time outside windows and on non-workdays does not count."""
        left = timedelta(minutes=minutes)
        at = self.next_open(moment, windows)
        spans = normalize_windows(windows)
        for _ in range(_SEARCH_DAYS * len(spans)):
            local = at.astimezone(self.tz)
            close = next(self._at(local.date(), end).astimezone(UTC) for start, end in spans
                         if start <= local.time() < end)
            if at + left <= close:
                return at + left
            left -= close - at
            at = self.next_open(close, windows)
        raise ValueError(f"cannot add {minutes} business minutes to {moment.isoformat()}")

    # --- coverage ---------------------------------------------------------------------------

    def missing_year_warning(self, today: date) -> str | None:
        """A warning when the current year, or from 1 November on the next year, is not covered.

        ``today`` is the local date (the caller reads the clock).
        """
        today = self._local_date(today)
        if not self.is_covered(today.year):
            year, when = today.year, "this year"
        elif today >= date(today.year, 11, 1) and not self.is_covered(today.year + 1):
            year, when = today.year + 1, "next year"
        else:
            return None
        return (f"workday calendar: no statutory holiday schedule for {year} ({when}); days in {year} "
                f"are counted Monday-Friday and deadlines reaching into {year} are marked provisional. "
                f"Once the State Council publishes the {year} schedule, add it under the `calendar:` "
                f"configuration key as `calendar.years.{year}` (holidays and make-up workdays), or "
                f"upgrade the chinesecalendar package; see docs/calendar.md.")

    # --- helpers ----------------------------------------------------------------------------

    def _local_date(self, day: date) -> date:
        if isinstance(day, datetime):
            return _aware(day, "day").astimezone(self.tz).date()
        return day

    def _at(self, day: date, clock: time) -> datetime:
        return datetime.combine(day, clock, self.tz)

    @staticmethod
    def _close_time(windows: Windows) -> time:
        spans = normalize_windows(windows)
        if not spans:
            raise ValueError("no business-hour windows")
        return spans[-1][1]
