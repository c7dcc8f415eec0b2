"""Arrival order: which report of a date is stale, which missing date is overdue (pure, no I/O).

A date's `change_prev_closing_%` is computed against its previous trading day: the latest
earlier date with trades, at most `lookback_days` back. When a date arrives late, the dates
after it were computed against an earlier day. The meta file records, for every date with
report rows, the previous trading day it was computed against; the meta file itself tells
which day that should be now. Where the two disagree because a later trading day has been
recorded since, the date is stale and the job computes it again (the design is in
docs/CONTRACT.md, "Late and missing data").
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable, Mapping, Protocol

# The meta file's `status` of a date an operator recorded as never having data.
ACCEPTED_MISSING = "accepted_missing"
# `previous_trading_day` of a date that had no trading day within the look-back.
NO_PREVIOUS_DAY = "none"


class Recorded(Protocol):  # pylint: disable=too-few-public-methods
    """What this module reads of a meta file entry (xetra.meta.MetaEntry has it)."""

    status: str
    report_rows: str
    previous_trading_day: str


class _Unknown:  # pylint: disable=too-few-public-methods
    """The meta file cannot tell (dates before first_date, rows written by older tools)."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()


def _report_rows(entry: Recorded) -> int | None:
    """The entry's report rows; None when not recorded (older tools) or not a number."""
    try:
        return int(entry.report_rows)
    except ValueError:
        return None


def implied_previous_trading_day(entries: Mapping[dt.date, Recorded], day: dt.date,
                                 lookback_days: int, first_date: dt.date
                                 ) -> dt.date | None | _Unknown:
    """The previous trading day of `day` as the meta file implies it now: the latest listed
    date with report rows within the look-back; None when there is none; UNKNOWN when the
    file cannot tell (the search reaches before `first_date`, or meets a date whose report
    rows were not recorded)."""
    for back in range(1, lookback_days + 1):
        candidate = day - dt.timedelta(days=back)
        if candidate < first_date:
            return UNKNOWN
        entry = entries.get(candidate)
        if entry is None or entry.status == ACCEPTED_MISSING:
            continue  # not there (yet), or never will be: compare across it
        rows = _report_rows(entry)
        if rows is None:
            return UNKNOWN
        if rows > 0:
            return candidate
    return None


def recorded_previous_trading_day(entry: Recorded) -> dt.date | None | _Unknown:
    """The previous trading day the entry's report was computed against; UNKNOWN when the
    entry does not say (older tools, a date without trades, an accepted gap)."""
    value = entry.previous_trading_day
    rows = _report_rows(entry)
    if entry.status == ACCEPTED_MISSING or not value or rows is None or rows <= 0:
        return UNKNOWN
    if value == NO_PREVIOUS_DAY:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return UNKNOWN


def previous_day_text(previous: dt.date | None) -> str:
    """How the meta file records a previous trading day (or that there was none)."""
    return previous.isoformat() if previous is not None else NO_PREVIOUS_DAY


@dataclass(frozen=True)
class StaleDate:
    """A date whose report was computed against an earlier day than the meta file now implies."""

    day: dt.date
    recorded: dt.date | None
    implied: dt.date

    def describe(self) -> str:
        """One clause for logs and --verify."""
        recorded = self.recorded.isoformat() if self.recorded else "no previous trading day"
        return (f"date {self.day}: its report compares with {recorded}, but the previous "
                f"trading day is now {self.implied} (a date that arrived late)")


def stale_dates(entries: Mapping[dt.date, Recorded], days: Iterable[dt.date],
                lookback_days: int, first_date: dt.date) -> list[StaleDate]:
    """The dates among `days` (sorted) whose report is stale.

    Only a later implied day counts: a late date that has been recorded since. An earlier
    one means the meta file lags the source (a parallel slice has not recorded its dates
    yet) and is no reason to compute the date again.
    """
    found = []
    for day in sorted(days):
        entry = entries.get(day)
        if entry is None:
            continue
        recorded = recorded_previous_trading_day(entry)
        if recorded is UNKNOWN:
            continue
        implied = implied_previous_trading_day(entries, day, lookback_days, first_date)
        if isinstance(implied, dt.date) and (recorded is None or implied > recorded):
            found.append(StaleDate(day, recorded, implied))
    return found


def accepted_gaps(entries: Mapping[dt.date, Recorded], first: dt.date,
                  last: dt.date) -> list[dt.date]:
    """The dates from `first` to `last` recorded as accepted missing."""
    return sorted(day for day, entry in entries.items()
                  if first <= day <= last and entry.status == ACCEPTED_MISSING)


def split_overdue(without_source: Iterable[dt.date], today: dt.date,
                  max_wait_days: int) -> tuple[list[dt.date], list[dt.date]]:
    """(overdue, waiting): a date without source objects is overdue once more than
    `max_wait_days` days have passed since it (today in the job's time zone)."""
    overdue, waiting = [], []
    for day in sorted(without_source):
        (overdue if (today - day).days > max_wait_days else waiting).append(day)
    return overdue, waiting


def missing_session_hours(hours_with_trades: Iterable[int]) -> list[int]:
    """The hours without trades between the first and the last hour with trades: inside the
    session, so their objects are missing or empty rather than the exchange quiet."""
    hours = set(hours_with_trades)
    if not hours:
        return []
    return [hour for hour in range(min(hours) + 1, max(hours)) if hour not in hours]
