"""What long runs tell the operator: dates as ranges, and the position with the time left."""
from __future__ import annotations

import datetime as dt
import time
from typing import Callable, Iterable


def date_ranges(dates: Iterable[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Consecutive calendar days collapsed into (first, last) ranges, in date order."""
    ranges: list[tuple[dt.date, dt.date]] = []
    for day in sorted(set(dates)):
        if ranges and day - ranges[-1][1] == dt.timedelta(days=1):
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def format_dates(dates: Iterable[dt.date], max_ranges: int = 5) -> str:
    """Dates for one log line: `2017-07-05..2026-11-30 (3,432 dates)`, ranges separated by
    commas, at most `max_ranges` of them followed by how many more there are."""
    days = sorted(set(dates))
    ranges = date_ranges(days)
    parts = []
    for first, last in ranges[:max_ranges]:
        count = (last - first).days + 1
        parts.append(str(first) if count == 1 else f"{first}..{last} ({count:,} dates)")
    text = ", ".join(parts)
    if len(ranges) > max_ranges:
        text += f" and {len(ranges) - max_ranges:,} more range(s), {len(days):,} dates in all"
    return text


def format_duration(seconds: float) -> str:
    """A rough duration for a progress line: `~40 s`, `~6 min`, `~3.5 h`."""
    if seconds < 60:
        return f"~{max(1, round(seconds))} s"
    if seconds < 2 * 3600:
        return f"~{round(seconds / 60)} min"
    return f"~{seconds / 3600:.1f} h"


class Progress:
    """Counts the dates of a run and estimates the time left from the pace so far."""

    def __init__(self, total: int, clock: Callable[[], float] = time.monotonic):
        self.total = total
        self.done = 0
        self.clock = clock
        self.started = clock()

    def step(self) -> str:
        """Count one date done; `date 120/1304, ~6 min left`."""
        self.done += 1
        self.total = max(self.total, self.done)
        left = self.total - self.done
        if left == 0:
            return f"date {self.done}/{self.total}, done"
        per_date = (self.clock() - self.started) / self.done
        return f"date {self.done}/{self.total}, {format_duration(per_date * left)} left"
