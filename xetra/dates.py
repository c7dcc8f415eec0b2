"""Calendar helpers: the job's dates are calendar days of the exchange's time zone."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo


def utc_now_iso() -> str:
    """The current time in UTC, ISO 8601 with seconds."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def yesterday(timezone: str, now: dt.datetime | None = None) -> dt.date:
    """The day before today in `timezone` (Europe/Berlin: the exchange's calendar day)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return now.astimezone(ZoneInfo(timezone)).date() - dt.timedelta(days=1)


def date_range(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every calendar day from `first` to `last`, both included."""
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
