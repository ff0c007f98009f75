"""The workday calendar: real 2025/2026 schedules, deadlines, business minutes, overrides, properties.

The official schedules (State Council notices, as in chinesecalendar 1.11):

2025  New Year 1/1 off.
      Spring Festival 1/28 (Tue) - 2/4 (Tue) off; 1/26 (Sun) and 2/8 (Sat) worked.
      Qingming 4/4-4/6 off.  Labour Day 5/1-5/5 off; 4/27 (Sun) worked.  Dragon Boat 5/31-6/2 off.
      National Day + Mid-Autumn 10/1 (Wed) - 10/8 (Wed) off; 9/28 (Sun) and 10/11 (Sat) worked.
2026  New Year 1/1-1/3 off; 1/4 (Sun) worked.
      Spring Festival 2/15 (Sun) - 2/23 (Mon) off; 2/14 (Sat) and 2/28 (Sat) worked.
      Qingming 4/4-4/6 off.  Labour Day 5/1-5/5 off; 5/9 (Sat) worked.  Dragon Boat 6/19-6/21 off.
      Mid-Autumn 9/25 (Fri) - 9/27 (Sun) off; National Day 10/1 (Thu) - 10/7 (Wed) off;
      9/20 (Sun) and 10/10 (Sat) worked.
2027  not published yet (the package raises for it): counted Monday-Friday, provisional.

Default business hours: 09:00-11:30 and 13:30-16:30 (330 minutes a day), Asia/Shanghai.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from hypothesis import given, settings as hsettings, strategies as st
from pydantic import ValidationError

from callcenter.domain.calendar import Deadline, WorkdayCalendar, normalize_windows
from callcenter.settings import CalendarSettings, ConfigError, Settings, load_settings
from callcenter.workdays import build_calendar, calendar_from, is_workday, warn_missing_year

SH = ZoneInfo("Asia/Shanghai")
UTC = timezone.utc
HOURS = ((time(9), time(11, 30)), (time(13, 30), time(16, 30)))
CAL = build_calendar(Settings())


def at(y, m, d, hh=10, mm=0):
    return datetime(y, m, d, hh, mm, tzinfo=SH)


def close(y, m, d):
    return datetime(y, m, d, 16, 30, tzinfo=SH).astimezone(UTC)


# --- the real schedules ---------------------------------------------------------------------

OFF = [date(2025, 1, 1), *(date(2025, 1, 28) + timedelta(days=i) for i in range(8)),
       date(2025, 4, 4), date(2025, 5, 5), date(2025, 6, 2),
       *(date(2025, 10, 1) + timedelta(days=i) for i in range(8)),
       date(2026, 1, 1), date(2026, 1, 2), *(date(2026, 2, 15) + timedelta(days=i) for i in range(9)),
       date(2026, 4, 6), date(2026, 5, 4), date(2026, 5, 5), date(2026, 6, 19), date(2026, 9, 25),
       *(date(2026, 10, 1) + timedelta(days=i) for i in range(7))]
WORKED_WEEKENDS = [date(2025, 1, 26), date(2025, 2, 8), date(2025, 4, 27), date(2025, 9, 28), date(2025, 10, 11),
                   date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9), date(2026, 9, 20),
                   date(2026, 10, 10)]
ORDINARY = [date(2025, 1, 27), date(2025, 2, 5), date(2025, 9, 30), date(2025, 10, 9), date(2026, 2, 13),
            date(2026, 2, 24), date(2026, 9, 30), date(2026, 10, 8)]


@pytest.mark.parametrize("day", OFF)
def test_statutory_days_off(day):
    assert not CAL.is_workday(day) and not is_workday(day)


@pytest.mark.parametrize("day", WORKED_WEEKENDS)
def test_make_up_weekend_days_are_workdays(day):
    assert day.weekday() >= 5 and CAL.is_workday(day) and is_workday(day)


@pytest.mark.parametrize("day", ORDINARY + [date(2025, 2, 9), date(2026, 3, 1)])
def test_agrees_with_the_package(day):
    assert CAL.is_workday(day) == chinese_calendar.is_workday(day)


def test_whole_2025_and_2026_agree_with_the_package():
    day = date(2025, 1, 1)
    while day.year < 2027:
        assert CAL.is_workday(day) == chinese_calendar.is_workday(day), day
        day += timedelta(days=1)


def test_coverage_ends_with_the_package():
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(date(2027, 1, 4))
    assert CAL.is_covered(2025) and CAL.is_covered(date(2026, 12, 31)) and not CAL.is_covered(2027)
    assert CAL.is_workday(date(2027, 1, 1)) and not CAL.is_workday(date(2027, 1, 2))   # Monday-Friday only
    assert CAL.uncovered_years(date(2026, 6, 1), date(2028, 1, 1)) == [2027, 2028]


# --- deadlines ------------------------------------------------------------------------------

DEADLINES = [
    # event, n, deadline day                        why
    (at(2025, 3, 10, 9, 30), 1, (2025, 3, 11)),      # workday morning -> next day's close
    (at(2025, 3, 10, 9, 30), 5, (2025, 3, 17)),
    (at(2025, 3, 10, 9, 30), 15, (2025, 3, 31)),
    (at(2025, 3, 14, 15, 0), 1, (2025, 3, 17)),      # Friday afternoon -> Monday
    (at(2025, 3, 15, 10, 0), 1, (2025, 3, 17)),      # Saturday: counts from Sunday -> Monday
    (at(2025, 1, 24), 1, (2025, 1, 26)),             # Friday before Spring Festival -> make-up Sunday
    (at(2025, 1, 24), 2, (2025, 1, 27)),
    (at(2025, 1, 27, 16, 0), 1, (2025, 2, 5)),       # day before the holiday -> first day after it
    (at(2025, 1, 27), 4, (2025, 2, 8)),              # 2/5, 2/6, 2/7, make-up Saturday 2/8
    (at(2025, 1, 27), 5, (2025, 2, 10)),             # Sunday 2/9 is off -> Monday 2/10
    (at(2025, 1, 29), 1, (2025, 2, 5)),              # event during the holiday
    (at(2025, 9, 26), 1, (2025, 9, 28)),             # Friday -> make-up Sunday before National Day
    (at(2025, 9, 30), 1, (2025, 10, 9)),             # day before National Day
    (at(2025, 9, 30), 3, (2025, 10, 11)),            # 10/9, 10/10, make-up Saturday 10/11
    (at(2025, 9, 30), 4, (2025, 10, 13)),
    (at(2025, 12, 31), 1, (2026, 1, 4)),             # New Year 2026: make-up Sunday 1/4
    (at(2026, 2, 13), 1, (2026, 2, 14)),             # Friday -> make-up Saturday 2/14
    (at(2026, 2, 13), 2, (2026, 2, 24)),             # over Spring Festival 2/15-2/23
    (at(2026, 2, 14), 5, (2026, 2, 28)),             # 2/24..2/27, make-up Saturday 2/28
    (at(2026, 9, 18), 1, (2026, 9, 20)),             # make-up Sunday before Mid-Autumn / National Day
    (at(2026, 9, 24), 1, (2026, 9, 28)),             # Mid-Autumn 9/25-9/27
    (at(2026, 9, 30), 1, (2026, 10, 8)),             # day before National Day
    (at(2026, 9, 30), 3, (2026, 10, 10)),            # make-up Saturday 10/10
]


@pytest.mark.parametrize("event,n,day", DEADLINES)
def test_deadlines_on_the_real_schedule(event, n, day):
    assert CAL.add_workdays(event, n, HOURS) == Deadline(close(*day), provisional=False)


def test_deadline_takes_any_zone_and_returns_utc():
    event = datetime(2025, 3, 10, 1, 30, tzinfo=UTC)                  # 09:30 in Shanghai
    deadline = CAL.add_workdays(event, 1, HOURS)
    assert deadline.at.tzinfo == UTC and deadline.at == datetime(2025, 3, 11, 8, 30, tzinfo=UTC)
    late = datetime(2025, 3, 14, 17, 0, tzinfo=UTC)                   # Saturday 01:00 in Shanghai
    assert CAL.add_workdays(late, 1, HOURS).at == close(2025, 3, 17)
    with pytest.raises(ValueError):
        CAL.add_workdays(datetime(2025, 3, 10, 9), 1, HOURS)          # naive


def test_deadline_uses_the_last_window_of_the_department():
    evening = ((time(9), time(12)), (time(18), time(20, 30)))
    assert CAL.add_workdays(at(2025, 3, 10), 1, evening).at == datetime(2025, 3, 11, 20, 30, tzinfo=SH)


def test_zero_workdays_is_close_of_business():
    assert CAL.add_workdays(at(2025, 3, 10, 10), 0, HOURS).at == close(2025, 3, 10)
    assert CAL.add_workdays(at(2025, 3, 10, 17), 0, HOURS).at == close(2025, 3, 11)   # after close
    assert CAL.add_workdays(at(2025, 3, 15, 10), 0, HOURS).at == close(2025, 3, 17)   # Saturday
    assert CAL.add_workdays(at(2025, 1, 29), 0, HOURS).at == close(2025, 2, 5)        # holiday
    with pytest.raises(ValueError):
        CAL.add_workdays(at(2025, 3, 10), -1, HOURS)


def test_deadlines_into_2027_are_provisional():
    event = at(2026, 12, 24)        # Thursday
    assert CAL.add_workdays(event, 5, HOURS) == Deadline(close(2026, 12, 31), provisional=False)
    assert CAL.add_workdays(event, 6, HOURS) == Deadline(close(2027, 1, 1), provisional=True)
    assert CAL.add_workdays(at(2026, 12, 31), 0, HOURS).provisional is False
    assert CAL.add_workdays(at(2027, 3, 1), 1, HOURS).provisional is True


# --- business hours and minutes -------------------------------------------------------------

def test_within_business_hours():
    assert CAL.within_business_hours(at(2025, 3, 10, 9, 0), HOURS)
    assert not CAL.within_business_hours(at(2025, 3, 10, 11, 30), HOURS)        # windows are half-open
    assert not CAL.within_business_hours(at(2025, 3, 10, 12, 0), HOURS)         # lunch
    assert CAL.within_business_hours(at(2025, 1, 26, 10), HOURS)                 # make-up Sunday
    assert not CAL.within_business_hours(at(2025, 10, 8, 10), HOURS)             # National Day
    assert CAL.within_business_hours(datetime(2025, 3, 10, 2, 0, tzinfo=UTC), HOURS)  # 10:00 local


def test_business_minutes():
    assert CAL.business_minutes(at(2025, 3, 10, 11, 0), at(2025, 3, 10, 14, 0), HOURS) == 60   # across lunch
    assert CAL.business_minutes(at(2025, 3, 14, 16, 0), at(2025, 3, 17, 10, 0), HOURS) == 90   # across a weekend
    assert CAL.business_minutes(at(2025, 3, 10, 0, 0), at(2025, 3, 11, 0, 0), HOURS) == 330
    # Friday 2/13 16:00 -> make-up Saturday 2/14 (330) -> Spring Festival -> Tuesday 2/24 09:30
    assert CAL.business_minutes(at(2026, 2, 13, 16, 0), at(2026, 2, 24, 9, 30), HOURS) == 30 + 330 + 30
    assert CAL.business_minutes(at(2025, 3, 10, 14), at(2025, 3, 10, 10), HOURS) == 0


def test_next_open():
    open_now = at(2025, 3, 10, 10)
    assert CAL.next_open(open_now, HOURS) == open_now.astimezone(UTC)
    assert CAL.next_open(at(2025, 3, 10, 12), HOURS) == at(2025, 3, 10, 13, 30).astimezone(UTC)
    assert CAL.next_open(at(2025, 3, 14, 17), HOURS) == at(2025, 3, 17, 9, 0).astimezone(UTC)
    assert CAL.next_open(at(2025, 1, 27, 17), HOURS) == at(2025, 2, 5, 9, 0).astimezone(UTC)


def test_windows_are_validated_and_merged():
    assert normalize_windows([(time(13), time(15)), (time(9), time(12)), (time(11), time(12, 30))]) == \
        ((time(9), time(12, 30)), (time(13), time(15)))
    with pytest.raises(ValueError):
        normalize_windows([(time(12), time(9))])
    with pytest.raises(ValueError):
        CAL.add_workdays(at(2025, 3, 10), 1, ())


# --- configuration overrides ----------------------------------------------------------------

def test_extra_holiday_moves_a_deadline():
    cal = calendar_from(CalendarSettings(extra_holidays=[date(2025, 3, 11)]), SH)
    assert cal.add_workdays(at(2025, 3, 10), 1, HOURS).at == close(2025, 3, 12)
    worked = calendar_from(CalendarSettings(extra_workdays=[date(2025, 3, 15)]), SH)
    assert worked.add_workdays(at(2025, 3, 14), 1, HOURS).at == close(2025, 3, 15)


# A HYPOTHETICAL 2027 list for the test only (the official schedule is not published yet).
FAKE_2027 = {"holidays": ["2027-01-01", "2027-01-04"], "workdays": ["2027-01-09"]}


def test_a_configured_year_is_covered_and_not_provisional():
    cal = calendar_from(CalendarSettings.model_validate({"years": {2027: FAKE_2027}}), SH)
    assert cal.is_covered(2027)
    # Thu 2026-12-24 + 6: 12/25, 12/28-12/31 (5), 1/1 and 1/4 off -> Tuesday 1/5
    assert cal.add_workdays(at(2026, 12, 24), 6, HOURS) == Deadline(close(2027, 1, 5), provisional=False)
    assert cal.is_workday(date(2027, 1, 9)) and cal.missing_year_warning(date(2026, 11, 1)) is None


def test_a_configured_year_replaces_the_package_list():
    cal = calendar_from(CalendarSettings.model_validate(
        {"years": {2025: {"holidays": ["2025-01-01"], "workdays": []}}}), SH)
    assert cal.is_workday(date(2025, 10, 2)) and not cal.is_workday(date(2025, 9, 28))
    assert not cal.is_workday(date(2026, 10, 2))                      # other years untouched


@pytest.mark.parametrize("data,key", [
    ({"extra_holidays": ["2026-03-02"], "extra_workdays": ["2026-03-02"]}, "extra_workdays[0]"),
    ({"years": {2027: {"holidays": ["2026-12-31"]}}}, "years[2027].holidays[0]"),
    ({"years": {2027: {"holidays": ["2027-01-01"], "workdays": ["2027-01-01"]}}}, "years[2027].workdays[0]"),
    ({"years": {2027: {"holidays": ["2027-01-01"]}}, "extra_workdays": ["2027-01-01"]}, "years[2027].holidays[0]"),
])
def test_contradictory_overrides_are_rejected(data, key):
    with pytest.raises(ValidationError, match=key.replace("[", r"\[").replace("]", r"\]")):
        Settings.model_validate({"calendar": data})


def test_config_error_names_the_key(tmp_path):
    (tmp_path / "c.yaml").write_text("calendar:\n  years:\n    2027:\n      holidays: [2026-12-31]\n")
    with pytest.raises(ConfigError, match=r"c.yaml: calendar: years\[2027\].holidays\[0\]: 2026-12-31 is not in 2027"):
        load_settings(tmp_path)
    (tmp_path / "c.yaml").write_text("calendar:\n  years:\n    2027:\n      workdays: [2027-01-09]\n")
    with pytest.raises(ConfigError, match=r"c.yaml: calendar.years\[2027\].holidays: "):
        load_settings(tmp_path)


def test_example_configuration_has_an_empty_calendar_section(settings):
    assert settings.calendar == CalendarSettings()
    assert build_calendar(settings).covered_years == CAL.covered_years


# --- the missing-year warning ---------------------------------------------------------------

def test_missing_year_warning(caplog):
    assert CAL.missing_year_warning(date(2026, 10, 31)) is None
    text = CAL.missing_year_warning(date(2026, 11, 1))
    assert "2027" in text and "calendar" in text and "docs/calendar.md" in text
    assert "2027" in CAL.missing_year_warning(date(2027, 2, 1))            # the current year itself
    assert warn_missing_year(CAL, date(2026, 12, 1)) == text and "2027" in caplog.text
    assert warn_missing_year(CAL, date(2026, 6, 1)) is None


# --- properties -----------------------------------------------------------------------------

minutes = st.integers(0, 24 * 60 - 1)


@st.composite
def window_sets(draw):
    points = sorted(draw(st.sets(minutes, min_size=2, max_size=6)))
    if len(points) % 2:
        points = points[:-1]
    return tuple((time(a // 60, a % 60), time(b // 60, b % 60)) for a, b in zip(points[::2], points[1::2]))


windows_st = st.one_of(st.just(HOURS), window_sets())
moments = st.datetimes(min_value=datetime(2024, 12, 1), max_value=datetime(2027, 3, 1), timezones=st.just(SH))
edges = st.builds(lambda d, t: datetime.combine(d, t, SH), st.dates(date(2024, 12, 1), date(2027, 3, 1)),
                  st.sampled_from([t for w in HOURS for t in w]))                    # exactly on a window edge
moments = st.one_of(moments, moments.map(lambda m: m.replace(second=0, microsecond=0)), edges)
moment_any_zone = st.builds(lambda m, z: m.astimezone(z), moments,
                            st.sampled_from([SH, UTC, ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")]))
PROPS = hsettings(max_examples=150, deadline=None)


@PROPS
@given(moment_any_zone, st.integers(0, 20), windows_st)
def test_deadline_is_a_window_end_on_a_workday_and_strictly_increasing(moment, n, windows):
    d = CAL.add_workdays(moment, n, windows)
    local = d.at.astimezone(SH)
    assert d.at.tzinfo == UTC and CAL.is_workday(local.date())
    assert local.time() == max(end for _, end in windows)
    assert d.at >= moment and (n == 0 or local.date() > moment.astimezone(SH).date())
    nxt = CAL.add_workdays(moment, n + 1, windows)
    assert nxt.at >= d.at and (n == 0 or nxt.at > d.at)
    assert nxt.provisional >= d.provisional
    assert d.provisional == (not CAL.is_covered(local.date()))   # covered years are 2004-2026 here


@PROPS
@given(moment_any_zone, st.integers(1, 20), st.integers(1, 20))
def test_deadline_is_monotonic_in_n(moment, a, b):
    lo, hi = sorted((a, b))
    assert CAL.add_workdays(moment, lo, HOURS).at <= CAL.add_workdays(moment, hi, HOURS).at


@PROPS
@given(st.lists(moment_any_zone, min_size=3, max_size=3), windows_st)
def test_business_time_is_additive_and_bounded(points, windows):
    a, b, c = sorted(points)
    ab, bc, ac = (CAL.business_time(x, y, windows) for x, y in ((a, b), (b, c), (a, c)))
    assert ab + bc == ac
    assert CAL.business_minutes(a, b, windows) + CAL.business_minutes(b, c, windows) == \
        pytest.approx(CAL.business_minutes(a, c, windows))
    assert 0 <= ac.total_seconds() / 60 <= (c - a).total_seconds() / 60
    assert CAL.business_minutes(c, a, windows) == 0


@PROPS
@given(moment_any_zone, windows_st)
def test_open_agrees_with_business_time_over_a_tiny_interval(moment, windows):
    tiny = timedelta(microseconds=1)
    assert CAL.within_business_hours(moment, windows) == (CAL.business_time(moment, moment + tiny, windows) > timedelta(0))


@PROPS
@given(moment_any_zone, windows_st)
def test_next_open_is_open_and_nothing_opens_before_it(moment, windows):
    opens = CAL.next_open(moment, windows)
    assert opens >= moment and CAL.within_business_hours(opens, windows)
    assert CAL.business_time(moment, opens, windows) == timedelta(0)


def test_the_pure_calendar_needs_no_package():
    cal = WorkdayCalendar([date(2030, 1, 1)], [date(2030, 1, 5)], [2030], SH)
    assert not cal.is_workday(date(2030, 1, 1)) and cal.is_workday(date(2030, 1, 5))
    with pytest.raises(ValueError):
        WorkdayCalendar([date(2030, 1, 1)], [date(2030, 1, 1)], [2030], SH)


def test_add_business_minutes_skips_lunch_and_the_weekend():
    from callcenter.workdays import calendar_from
    from callcenter.settings import CalendarSettings
    from zoneinfo import ZoneInfo
    tz = ZoneInfo("Asia/Shanghai")
    cal = calendar_from(CalendarSettings(), tz)
    w = ((time(9, 0), time(11, 30)), (time(13, 30), time(16, 30)))
    assert cal.add_business_minutes(datetime(2026, 11, 23, 11, 15, tzinfo=tz), 30, w) == \
        datetime(2026, 11, 23, 13, 45, tzinfo=tz)
    assert cal.add_business_minutes(datetime(2026, 11, 20, 16, 20, tzinfo=tz), 30, w) == \
        datetime(2026, 11, 23, 9, 20, tzinfo=tz)                 # Friday 16:20 -> Monday 9:20
    assert cal.add_business_minutes(datetime(2026, 11, 22, 3, 0, tzinfo=tz), 0, w) == \
        datetime(2026, 11, 23, 9, 0, tzinfo=tz)                  # Sunday night -> Monday's opening
