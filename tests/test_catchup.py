"""Unit tests of xetra.catchup and xetra.progress: stale dates, overdue dates, missing hours,
date ranges and the progress line, each against values worked out by hand."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from xetra.catchup import (ACCEPTED_MISSING, UNKNOWN, StaleDate, accepted_gaps,
                           implied_previous_trading_day, missing_session_hours,
                           previous_day_text, recorded_previous_trading_day, split_overdue,
                           stale_dates)
from xetra.progress import Progress, date_ranges, format_dates, format_duration


@dataclass(frozen=True)
class Entry:
    """A meta file entry as xetra.catchup reads it."""

    report_rows: str
    previous_trading_day: str = ""
    status: str = ""


def day(text: str) -> dt.date:
    """A date from its ISO text."""
    return dt.date.fromisoformat(text)


FIRST = day("2017-06-26")
# Mon 26 .. Fri 30 with trades, Sat 1 and Sun 2 without, Mon 3 with; computed in order.
WEEK = {
    day("2017-06-26"): Entry("10", "none"),
    day("2017-06-27"): Entry("11", "2017-06-26"),
    day("2017-06-28"): Entry("12", "2017-06-27"),
    day("2017-06-29"): Entry("13", "2017-06-28"),
    day("2017-06-30"): Entry("14", "2017-06-29"),
    day("2017-07-01"): Entry("0"),
    day("2017-07-02"): Entry("0"),
    day("2017-07-03"): Entry("15", "2017-06-30"),
}


@pytest.mark.parametrize("target,expected", [
    ("2017-06-27", day("2017-06-26")),
    ("2017-07-03", day("2017-06-30")),   # across the weekend without trades
    ("2017-06-26", UNKNOWN),             # the look-back reaches before first_date at once
    ("2017-07-20", None),                # 07-10..07-19 listed nowhere, 07-09 beyond 10 days
])
def test_implied_previous_trading_day_of_a_complete_week(target, expected):
    assert implied_previous_trading_day(WEEK, day(target), 10, FIRST) == expected


def test_a_complete_week_has_no_stale_date():
    assert not stale_dates(WEEK, WEEK, 10, FIRST)


def test_a_late_date_makes_the_next_trading_day_stale():
    # Wed 28 arrived late: Thu 29 was computed against Tue 27.
    entries = dict(WEEK)
    entries[day("2017-06-29")] = Entry("13", "2017-06-27")
    assert stale_dates(entries, entries, 10, FIRST) == [
        StaleDate(day("2017-06-29"), day("2017-06-27"), day("2017-06-28"))]


def test_a_late_friday_makes_monday_stale_across_the_weekend():
    entries = dict(WEEK)
    entries[day("2017-07-03")] = Entry("15", "2017-06-29")
    assert [s.day for s in stale_dates(entries, entries, 10, FIRST)] == [day("2017-07-03")]


def test_two_late_dates_and_no_previous_day_recorded():
    entries = dict(WEEK)
    entries[day("2017-06-27")] = Entry("11", "none")        # 26 was late: nothing before
    entries[day("2017-06-30")] = Entry("14", "2017-06-28")  # 29 was late
    found = stale_dates(entries, entries, 10, FIRST)
    assert found == [StaleDate(day("2017-06-27"), None, day("2017-06-26")),
                     StaleDate(day("2017-06-30"), day("2017-06-28"), day("2017-06-29"))]
    assert "compares with no previous trading day" in found[0].describe()
    assert "2017-06-28" in found[1].describe() and "now 2017-06-29" in found[1].describe()


def test_only_dates_in_scope_are_returned():
    entries = dict(WEEK)
    entries[day("2017-06-29")] = Entry("13", "2017-06-27")
    entries[day("2017-07-03")] = Entry("15", "2017-06-29")
    scope = [day("2017-07-01"), day("2017-07-02"), day("2017-07-03")]
    assert [s.day for s in stale_dates(entries, scope, 10, FIRST)] == [day("2017-07-03")]


def test_a_date_not_recorded_yet_is_no_reason_to_recompute():
    # A parallel slice computed Mon 3 against Fri 30 from the source; 30 is not listed yet.
    entries = {d: e for d, e in WEEK.items() if d != day("2017-06-30")}
    assert implied_previous_trading_day(entries, day("2017-07-03"), 10, FIRST) == \
        day("2017-06-29")
    assert not stale_dates(entries, entries, 10, FIRST)


def test_unlisted_and_accepted_dates_are_compared_across():
    entries = dict(WEEK)
    del entries[day("2017-06-28")]
    entries[day("2017-06-29")] = Entry("13", "2017-06-27")
    assert not stale_dates(entries, entries, 10, FIRST)   # 28 still missing: not stale
    entries[day("2017-06-28")] = Entry("", status=ACCEPTED_MISSING)
    assert implied_previous_trading_day(entries, day("2017-06-29"), 10, FIRST) == \
        day("2017-06-27")
    assert not stale_dates(entries, entries, 10, FIRST)
    assert accepted_gaps(entries, FIRST, day("2017-07-03")) == [day("2017-06-28")]
    assert accepted_gaps(entries, day("2017-06-29"), day("2017-07-03")) == []


def test_rows_written_by_older_tools_are_never_stale():
    entries = {d: Entry(e.report_rows) for d, e in WEEK.items()}  # no previous day recorded
    entries[day("2017-06-28")] = Entry("")                       # nor report rows
    assert implied_previous_trading_day(entries, day("2017-06-29"), 10, FIRST) is UNKNOWN
    assert recorded_previous_trading_day(entries[day("2017-06-29")]) is UNKNOWN
    assert not stale_dates(entries, entries, 10, FIRST)


@pytest.mark.parametrize("entry,expected", [
    (Entry("5", "2017-06-29"), day("2017-06-29")),
    (Entry("5", "none"), None),
    (Entry("0", "2017-06-29"), UNKNOWN),        # no trades: nothing compared
    (Entry("5", "garbage"), UNKNOWN),
    (Entry("", "2017-06-29", ACCEPTED_MISSING), UNKNOWN),
])
def test_recorded_previous_trading_day(entry, expected):
    assert recorded_previous_trading_day(entry) == expected


def test_previous_day_text():
    assert previous_day_text(day("2017-06-30")) == "2017-06-30"
    assert previous_day_text(None) == "none"


def test_look_back_limit_is_respected():
    entries = {day("2017-06-26"): Entry("10", "none"), day("2017-07-07"): Entry("3", "none")}
    # 07-07 minus 10 days is 06-27: 06-26 is out of reach, so none, and none is recorded.
    assert implied_previous_trading_day(entries, day("2017-07-07"), 10, FIRST) is None
    assert not stale_dates(entries, entries, 10, FIRST)
    # With 11 days the 26th is in reach: the date is stale.
    assert [s.implied for s in stale_dates(entries, entries, 11, FIRST)] == [day("2017-06-26")]


def test_split_overdue_counts_days_since_the_date():
    today = day("2026-12-01")
    dates = [day("2026-11-26"), day("2026-11-27"), day("2026-11-28"), day("2026-11-30")]
    # 3 days allowed: the 28th is 3 days old (waiting), the 27th 4 (overdue).
    assert split_overdue(dates, today, 3) == ([day("2026-11-26"), day("2026-11-27")],
                                              [day("2026-11-28"), day("2026-11-30")])
    assert split_overdue(dates, today, 0) == (dates, [])
    assert split_overdue([], today, 3) == ([], [])


@pytest.mark.parametrize("hours,expected", [
    ({7, 8, 9, 10, 11, 12, 13, 14, 15}, []),
    ({7, 8, 9, 10, 12, 13, 14, 15}, [11]),
    ({7, 8, 9, 13, 15}, [10, 11, 12, 14]),
    ({8}, []),
    (set(), []),
])
def test_missing_session_hours(hours, expected):
    assert missing_session_hours(hours) == expected


def test_date_ranges_and_their_text():
    dates = [day("2017-07-05") + dt.timedelta(days=n) for n in range(3436)]
    assert date_ranges(dates) == [(day("2017-07-05"), day("2026-11-30"))]
    assert format_dates(dates) == "2017-07-05..2026-11-30 (3,436 dates)"
    assert format_dates([day("2017-06-27")]) == "2017-06-27"
    assert format_dates([day("2017-06-29"), day("2017-06-27"), day("2017-06-28"),
                         day("2017-07-03")]) == \
        "2017-06-27..2017-06-29 (3 dates), 2017-07-03"
    every_other = [day("2017-01-01") + dt.timedelta(days=2 * n) for n in range(8)]
    assert format_dates(every_other, max_ranges=3) == \
        "2017-01-01, 2017-01-03, 2017-01-05 and 5 more range(s), 8 dates in all"
    assert format_dates([]) == ""


def test_progress_line_estimates_the_time_left():
    now = [100.0]
    progress = Progress(1304, clock=lambda: now[0])
    now[0] = 100.0 + 119 * 0.3          # 120 dates in 35.7 s: 0.2975 s each
    for _ in range(119):
        progress.step()
    assert progress.step() == "date 120/1304, ~6 min left"   # 1184 * 0.2975 = 352 s
    small = Progress(3, clock=lambda: now[0])
    now[0] += 20
    assert small.step() == "date 1/3, ~40 s left"
    assert small.step() == "date 2/3, ~10 s left"
    assert small.step() == "date 3/3, done"


@pytest.mark.parametrize("seconds,text", [(0.2, "~1 s"), (59, "~59 s"), (61, "~1 min"),
                                          (7199, "~120 min"), (7200, "~2.0 h"),
                                          (5 * 3600 + 1800, "~5.5 h")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
