"""The source's objects, listed one month at a time and kept for the run.

Xetra's source keys are `YYYY-MM-DD/...`. Listing each date's prefix costs one LIST round trip
per date, one after the other as the dates are read (and ten more for the look-back of the
first date); against a remote bucket that is tens of milliseconds each. The index lists the
prefix `YYYY-MM` instead: one ListObjectsV2 (1000 keys a page) holds a month of hourly objects,
and the months of the run's range are listed concurrently as soon as the run knows them. A
month's listing is kept at most `max_age` seconds (a long run sees objects that arrive while it
runs, as with per-date listing) and is dropped when the next run starts.
"""
from __future__ import annotations

import datetime as dt
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

from xetra.storage import ObjectInfo, ObjectStore

MAX_AGE_SECONDS = 60.0
CONCURRENT_LISTINGS = 8
# Months before the range whose folders are listed too: the look-back for the previous
# trading day of the first date (job.lookback_days, at most a month) reads them.
MARGIN_DAYS = 31


def month_of(day: dt.date) -> str:
    """The key prefix of the date's month, `YYYY-MM`."""
    return f"{day.year:04d}-{day.month:02d}"


def group_by_date(objects: list[ObjectInfo]) -> dict[str, list[ObjectInfo]]:
    """Objects under `YYYY-MM-DD/` grouped by that folder name; keys outside any date folder
    (other tools' files, `YYYY-MM-notes.txt`) are left out."""
    grouped: dict[str, list[ObjectInfo]] = {}
    for info in objects:
        folder, slash, _ = info.key.partition("/")
        if slash and len(folder) == 10:
            grouped.setdefault(folder, []).append(info)
    return grouped


class SourceIndex:
    """Per-month listings of a source store, shared by the run's reading threads.

    `objects(day)` answers what `store.list_objects(f"{day}/")` would (same objects, same
    order), from the listing of the day's month: listed on first use, or ahead of use by
    `folders()`. Two threads asking for the same month wait for the one listing.
    """

    def __init__(self, store: ObjectStore, max_age: float = MAX_AGE_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.max_age = max_age
        self.clock = clock
        self._lock = threading.Lock()
        self._months: dict[str, tuple[float, Future]] = {}
        # The folder names of the last `folders()` call and when it listed them.
        self._folders: tuple[float, frozenset[str]] | None = None

    def clear(self) -> None:
        """Forget every listing (a new run starts)."""
        with self._lock:
            self._months.clear()
            self._folders = None

    def _no_folder(self, day: dt.date) -> bool:
        """True when the folder listing, at most max_age old, has no folder for the date."""
        folders = self._folders
        return folders is not None and self.clock() - folders[0] <= self.max_age and \
            day.isoformat() not in folders[1]

    def _listing(self, month: str, pool: ThreadPoolExecutor | None = None) -> Future:
        """The future listing of `month`, started (in `pool`, else here) unless a fresh one
        exists or is under way."""
        with self._lock:
            held = self._months.get(month)
            if held is not None and self.clock() - held[0] <= self.max_age:
                return held[1]
            future: Future = Future()
            self._months[month] = (self.clock(), future)
        if pool is not None:
            pool.submit(self._list_into, month, future)
        else:
            self._list_into(month, future)
        return future

    def _list_into(self, month: str, future: Future) -> None:
        try:
            future.set_result(group_by_date(self.store.list_objects(month)))
        except BaseException as exc:  # pylint: disable=broad-except  # raised by result()
            # Kept like a listing: every date of the month fails with this one error (after
            # the client's retries) until max_age, rather than each date retrying again.
            future.set_exception(exc)

    def objects(self, day: dt.date) -> list[ObjectInfo]:
        """Every object under the date's folder `YYYY-MM-DD/`, sorted by key; none, without
        a request, for a date the folder listing just found no folder for (the look-back of
        the first date, a month before the data)."""
        if self._no_folder(day):
            return []
        return list(self._listing(month_of(day)).result().get(day.isoformat(), []))

    def prefetch(self, months: list[str]) -> None:
        """Start listing `months`, CONCURRENT_LISTINGS at a time, without waiting."""
        if not months:
            return
        pool = ThreadPoolExecutor(min(CONCURRENT_LISTINGS, len(months)),
                                  thread_name_prefix="xetra-list")
        for month in months:
            self._listing(month, pool)
        pool.shutdown(wait=False)  # the listings run on; objects() waits for its month

    def folders(self, first: dt.date, last: dt.date) -> list[str]:
        """The names of the folders at the source's root (one listing with a delimiter); a new
        run: earlier listings are forgotten, and the months of the date folders from `first`
        (less MARGIN_DAYS) to `last` start being listed. For max_age, a date without a
        folder among these has no objects (no month listing asked)."""
        self.clear()
        listed_at = self.clock()
        names = self.store.list_folders("")
        self._folders = (listed_at, frozenset(names))
        low, high = (first - dt.timedelta(days=MARGIN_DAYS)).isoformat(), last.isoformat()
        self.prefetch(sorted({name[:7] for name in names
                              if len(name) == 10 and low <= name <= high}))
        return names
