"""Meta file contention as a workload: K processes record M dates each into one meta file at
the same time, as fast as they can (the worst case: real slices spend most of their time
reading and transforming). Used by the parallel backfill tests and by
benchmarks/meta_contention.py, which prints its figures.
"""
from __future__ import annotations

import datetime as dt
import multiprocessing
import time

from xetra.config import MetaSettings, StorageLocation
from xetra.dates import utc_now_iso
from xetra.meta import MetaEntry, MetaProcess
from xetra.s3 import S3BucketConnector
from xetra.storage import LocalStorage

FIRST = dt.date(2018, 1, 1)


def open_target(url: str, endpoint: str | None):
    """The target store of a writer."""
    if url.startswith("s3://"):
        return S3BucketConnector(StorageLocation(url, endpoint_url=endpoint, region="us-east-1"))
    return LocalStorage(url)


def writer(args: tuple[int, int, int, str, str | None, float]
           ) -> tuple[int, int, float, float, float]:
    """Record dates index, index+K, index+2K, ... (M of them): (updates, conflicts, seconds,
    max seconds of one update, time.time() at the end)."""
    index, writers, dates, url, endpoint, start_at = args
    meta = MetaProcess(open_target(url, endpoint), MetaSettings())
    while time.time() < start_at:  # start together
        time.sleep(0.005)
    longest = 0.0
    for number in range(dates):
        day = FIRST + dt.timedelta(days=index + number * writers)
        before = meta.update_seconds
        meta.record([MetaEntry(day, utc_now_iso(), f"report1/x_{day}.parquet", "1")])
        longest = max(longest, meta.update_seconds - before)
    return meta.updates, meta.conflicts, meta.update_seconds, longest, time.time()


def run(url: str, endpoint: str | None, writers: int, dates: int) -> dict:
    """One contended round; returns the figures and whether the meta file is exact."""
    start_at = time.time() + 1.0 + 0.3 * writers  # after every writer has imported boto3
    with multiprocessing.get_context("spawn").Pool(writers) as pool:
        results = pool.map(writer, [(i, writers, dates, url, endpoint, start_at)
                                    for i in range(writers)])
    wall = max(r[4] for r in results) - start_at
    meta = MetaProcess(open_target(url, endpoint), MetaSettings())
    listed = sorted(meta.load().entries)
    expected = sorted(FIRST + dt.timedelta(days=n) for n in range(writers * dates))
    return {"updates": sum(r[0] for r in results), "conflicts": sum(r[1] for r in results),
            "seconds_per_update": sum(r[2] for r in results) / sum(r[0] for r in results),
            "max_update_seconds": max(r[3] for r in results), "wall": wall,
            "exact": listed == expected, "listed": len(listed)}
