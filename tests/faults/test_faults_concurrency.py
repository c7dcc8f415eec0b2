"""Two runs started at the same instant on the same target, and concurrent meta updates."""
from __future__ import annotations

import datetime as dt
import subprocess
import threading
import time

import pytest

from testkit.jobs import Job
from testkit.paths import REPO
from testkit.processes import job_command, job_env, start_at
from testkit.targets import META_KEY, meta_rows
from testkit.threedays import D1, D3, assert_converged
from xetra.config import MetaSettings, StorageLocation
from xetra.meta import MetaEntry, MetaProcess
from xetra.s3 import S3BucketConnector
from xetra.storage import LocalStorage


# The processes are waited for with communicate(): a `with` block per process would serialise them.
# pylint: disable=consider-using-with
def race(job: Job, runs: int = 2) -> list[subprocess.CompletedProcess]:
    """Start `runs` processes of the job that all begin work at the same instant."""
    env = {**job.env, **start_at(time.time() + 4)}
    processes = [subprocess.Popen(job_command("--config", str(job.config_path), "--to", D3,
                                              env=env),
                                  cwd=REPO, env=job_env(env), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for _ in range(runs)]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


def check_one_winner(job: Job, results: list[subprocess.CompletedProcess]) -> None:
    """Exactly one run worked; every other stopped with exit 3 and a clear line."""
    codes = sorted(result.returncode for result in results)
    assert codes == [0] + [3] * (len(results) - 1), [(r.returncode, r.stderr) for r in results]
    for loser in (result for result in results if result.returncode == 3):
        lines = loser.stderr.splitlines()
        assert len(lines) == 1
        assert lines[0].startswith("xetra: another run (")
        assert ("holds the lock" in lines[0] or "took the lock at the same moment" in lines[0])
        assert "this run stops without writing" in lines[0]
    log = job.log_file.read_text()
    assert log.count("run summary: dates processed=3 ") == 1
    assert_converged(job.target, [D1, "2017-06-27", D3])


def test_two_runs_at_the_same_instant_local(local_job):
    """Local target: one run does the work, the other exits 3; nothing lost or doubled."""
    check_one_winner(local_job, race(local_job))


@pytest.mark.s3server
def test_two_runs_at_the_same_instant_s3(moto_job):
    """S3 target (conditional PUT of the lock object): one run works, the other exits 3."""
    check_one_winner(moto_job, race(moto_job))


def record_concurrently(meta: MetaProcess, writers: int = 4, dates_each: int = 3) -> None:
    """`writers` threads each record their own dates at the same time (no lock taken)."""
    start = threading.Barrier(writers)

    def write(number: int) -> None:
        start.wait()
        for index in range(dates_each):
            day = dt.date(2017, 1, 1) + dt.timedelta(days=number * dates_each + index)
            meta.record([MetaEntry(day, "2017-07-01T00:00:00+00:00", "", "0")])

    threads = [threading.Thread(target=write, args=(number,)) for number in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)


EXPECTED_DATES = [(dt.date(2017, 1, 1) + dt.timedelta(days=n)).isoformat() for n in range(12)]


def test_concurrent_meta_updates_lose_nothing_local(tmp_path):
    """Optimistic concurrency on the local store: 4 writers x 3 dates = 12 rows, each once."""
    store = LocalStorage(tmp_path, create=True)
    record_concurrently(MetaProcess(store, MetaSettings()))
    rows = meta_rows((tmp_path / META_KEY).read_bytes())
    assert [row["source_date"] for row in rows] == EXPECTED_DATES


@pytest.mark.s3server
def test_concurrent_meta_updates_lose_nothing_s3(seaweed, monkeypatch):
    """Conditional PUTs (If-Match) on a real S3 server: 12 rows, each exactly once.

    SeaweedFS, not moto: moto 5.2's server checks If-Match and then stores the object in
    separate steps of a threaded server, so two writers can both pass the check (seen once in
    CI under load, a row lost); AWS and SeaweedFS decide the condition and the write at once."""
    for key, value in seaweed.env().items():
        monkeypatch.setenv(key, value)
    seaweed.client().create_bucket(Bucket="xetra-meta-race")
    store = S3BucketConnector(StorageLocation("s3://xetra-meta-race/", seaweed.endpoint_url,
                                              "us-east-1"))
    record_concurrently(MetaProcess(store, MetaSettings()))
    rows = meta_rows(store.get_bytes(META_KEY))
    assert [row["source_date"] for row in rows] == EXPECTED_DATES
