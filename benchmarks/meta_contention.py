"""Meta file contention: K processes record M dates each into one meta file at the same time.

Starts a real S3 server on 127.0.0.1 (SeaweedFS or moto, from tests/s3servers.py) or uses a
local folder, runs K writer processes that call MetaProcess.record once per date as fast as
they can (the worst case: real slices spend most of their time reading and transforming), and
prints, per writer and in total, the updates, the 412 conflicts and the seconds spent per update,
then checks that the meta file lists each of the K*M dates exactly once.

    pipenv run python -m benchmarks.meta_contention --store seaweedfs --writers 4 --dates 20
"""
from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import tempfile
import time
from contextlib import nullcontext

from tests.s3servers import moto_server, seaweedfs
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


def main() -> None:
    """Command line: which store, how many writers and dates, how many rounds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["seaweedfs", "moto", "local"], default="seaweedfs")
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--dates", type=int, default=20, help="dates per writer")
    parser.add_argument("--rounds", type=int, default=1)
    options = parser.parse_args()
    servers = {"seaweedfs": seaweedfs, "moto": moto_server}
    with servers[options.store]() if options.store in servers else nullcontext() as server:
        if server:
            os.environ.update(server.env())
        for writers in options.writers:
            for round_number in range(options.rounds):
                if server:
                    bucket = f"meta-{writers}-{round_number}"
                    server.client().create_bucket(Bucket=bucket)
                    url = f"s3://{bucket}/"
                else:
                    url = tempfile.mkdtemp(prefix="xetra-meta-")
                figures = run(url, server.endpoint_url if server else None, writers,
                              options.dates)
                print(f"{options.store} writers={writers} round={round_number} "
                      f"updates={figures['updates']} conflicts_412={figures['conflicts']} "
                      f"conflicts_per_update={figures['conflicts'] / figures['updates']:.2f} "
                      f"s_per_update={figures['seconds_per_update']:.3f} "
                      f"max_update_s={figures['max_update_seconds']:.2f} "
                      f"updates_per_s={figures['updates'] / figures['wall']:.1f} "
                      f"exact={figures['exact']} listed={figures['listed']}", flush=True)

if __name__ == "__main__":
    main()
