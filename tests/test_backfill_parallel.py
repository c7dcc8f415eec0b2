"""The parallel backfill as real processes against real S3 servers on 127.0.0.1.

Slices run as parallel run.py processes on one target (SeaweedFS and moto), also with one of
them SIGKILLed mid-way, and must end with exactly the rows and meta dates of one sequential run.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from testkit.backfill_data import backfill_config, make_small_source
from testkit.contention import run as contended_meta_updates
from testkit.paths import REPO
from testkit.processes import job_command, job_env, kill_at_call, kill_at_stage, run_job
from testkit.s3servers import S3Server, upload_folder
from testkit.targets import META_KEY as META
from testkit.targets import local_objects, meta_records, report_table, s3_objects

pytestmark = pytest.mark.s3server

LAST = "2018-01-21"
LOCK_TTL = 4  # seconds: a killed slice's lock blocks its dates this long


@pytest.fixture(scope="module")
def source_folder(tmp_path_factory) -> Path:
    """The small three-week source, 2018-01-01..2018-01-21."""
    folder = tmp_path_factory.mktemp("source")
    make_small_source(folder)
    return folder


@pytest.fixture(scope="module")
def sequential(source_folder, tmp_path_factory) -> dict:
    """Meta rows and report table of one sequential run over the range (local folders)."""
    folder = tmp_path_factory.mktemp("sequential")
    config = backfill_config(folder / "xetra.yml", str(source_folder), str(folder / "target"))
    done = run_job("--config", str(config), "--to", LAST)
    assert done.returncode == 0, done.stderr
    return {"meta": meta_records((folder / "target" / META).read_bytes()),
            "table": report_table(local_objects(folder / "target", "report1/"))}


_UPLOADED: set[str] = set()


def s3_config(server: S3Server, source_folder: Path, folder: Path, target_bucket: str) -> Path:
    """A config from the source bucket (uploaded once per server) to a new target bucket."""
    client = server.client()
    if server.endpoint_url not in _UPLOADED:
        client.create_bucket(Bucket="backfill-source")
        upload_folder(server, "backfill-source", source_folder)
        _UPLOADED.add(server.endpoint_url)
    client.create_bucket(Bucket=target_bucket)
    return backfill_config(folder / "xetra.yml", "s3://backfill-source/",
                           f"s3://{target_bucket}/", endpoint=server.endpoint_url,
                           lock_ttl_seconds=LOCK_TTL)


def backfill_local(config: Path, server: S3Server, parallel: int) -> subprocess.CompletedProcess:
    """scripts/backfill_local.py over the whole range."""
    return run_job("--config", str(config), "--to", LAST, "--parallel", str(parallel),
                   env=server.env(), script=REPO / "scripts" / "backfill_local.py")


def assert_same_as_sequential(server: S3Server, bucket: str, sequential: dict) -> None:
    """The target holds exactly the sequential run's meta dates and report rows."""
    client = server.client()
    meta = client.get_object(Bucket=bucket, Key=META)["Body"].read()
    assert meta_records(meta) == sequential["meta"]
    assert report_table(s3_objects(client, bucket, "report1/")).equals(sequential["table"])


@pytest.mark.parametrize("server_fixture", ["seaweed", "motoserver"])
def test_parallel_backfill_gives_the_rows_of_one_sequential_run(server_fixture, request,
                                                                source_folder, sequential,
                                                                tmp_path):
    """Plan, three slices at once, verify: the same meta dates and report rows."""
    server = request.getfixturevalue(server_fixture)
    bucket = f"backfill-equal-{server.kind}"
    config = s3_config(server, source_folder, tmp_path, bucket)
    done = backfill_local(config, server, parallel=3)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith('plan: 3 slice(s) [{"from": "2018-01-01", "to": "2018-01-07"}')
    assert sum(line.startswith("slice ") and ": exit 0," in line for line in lines) == 3
    assert "verify ok: 2018-01-01..2018-01-21: 21 date(s) in the meta file" in done.stdout
    assert_same_as_sequential(server, bucket, sequential)


def _listed_dates(server: S3Server, bucket: str) -> set[str]:
    try:
        data = server.client().get_object(Bucket=bucket, Key=META)["Body"].read()
    except server.client().exceptions.NoSuchKey:
        return set()
    return {row[0] for row in meta_records(data)}


def _slice_process(config: Path, server: S3Server, item: dict,
                   fault: dict[str, str] | None = None) -> subprocess.Popen:
    """A slice run; `fault`: the environment that arms a testkit.processes fault in it."""
    args = ["--config", str(config), "--slice", "--from", item["from"], "--to", item["to"]]
    env = {**server.env(), **(fault or {})}
    return subprocess.Popen(job_command(*args, env=env), cwd=REPO, env=job_env(env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.parametrize("round_number", [0, 1, 2])
def test_a_slice_killed_mid_way_and_a_rerun_converge(round_number, seaweed, source_folder,
                                                     sequential, tmp_path):
    """Three slices at once; one is SIGKILLed (round 0: between writing a report object and
    recording it, via a wrapper; rounds 1-2: by PID once its first date is in the meta file).
    The others finish, verify fails, and after the lock expires a rerun of the local fan-out
    completes the range with exactly the sequential run's rows."""
    bucket = f"backfill-kill-{round_number}"
    config = s3_config(seaweed, source_folder, tmp_path, bucket)
    planned = run_job("--config", str(config), "--plan", "--to", LAST, "--slices", "3",
                      env=seaweed.env())
    slices = json.loads(planned.stdout.splitlines()[-1])
    assert len(slices) == 3
    victim = round_number % 3
    # Round 0: the victim kills itself once its third date's report object is written, before
    # the meta file records that date (alone or in a commit group). Rounds 1-2: it is slowed
    # down (0.5 s per meta update) so that the kill from outside lands while it still works.
    orphan = str(dt.date.fromisoformat(slices[victim]["from"]) + dt.timedelta(days=2))
    fault = kill_at_stage("report_written", orphan) if round_number == 0 else \
        kill_at_call("xetra.meta:MetaProcess.record", 0, 0.5)
    processes = [_slice_process(config, seaweed, item, fault if index == victim else None)
                 for index, item in enumerate(slices)]
    if round_number:
        victim_dates = {str(dt.date.fromisoformat(slices[victim]["from"]) +
                            dt.timedelta(days=n)) for n in range(7)}
        deadline = time.monotonic() + 60
        while not victim_dates & _listed_dates(seaweed, bucket):
            assert time.monotonic() < deadline and processes[victim].poll() is None
            time.sleep(0.01)
        os.kill(processes[victim].pid, signal.SIGKILL)
    statuses = [process.wait(timeout=120) for process in processes]
    assert statuses == [-signal.SIGKILL if index == victim else 0 for index in range(3)], \
        [process.stdout.read().decode()[-2000:] for process in processes]
    for process in processes:
        process.stdout.close()
    listed = _listed_dates(seaweed, bucket)
    assert 14 < len(listed) < 21
    if round_number == 0:  # killed after writing the third date's object: an orphan is left
        assert orphan not in listed
        assert f"report1/xetra_report1_{orphan}.parquet" in s3_objects(seaweed.client(),
                                                                       bucket, "report1/")
    verify = run_job("--config", str(config), "--verify", "--to", LAST, env=seaweed.env())
    assert verify.returncode == 1
    assert verify.stderr.startswith("xetra: verify failed: ")
    time.sleep(LOCK_TTL + 1)
    done = backfill_local(config, seaweed, parallel=3)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verify ok: 2018-01-01..2018-01-21: 21 date(s) in the meta file" in done.stdout
    assert_same_as_sequential(seaweed, bucket, sequential)


def test_contended_meta_updates_lose_and_double_nothing(seaweed, monkeypatch):
    """Four processes record six dates each into one meta file at the same moment, twice:
    every one of the 24 dates is listed exactly once. On SeaweedFS only: moto 5.2's server
    checks If-Match and stores the object in separate steps, so it can let two writers pass
    (tests/faults/test_faults_concurrency.py)."""
    server = seaweed
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    for round_number in range(2):
        bucket = f"meta-race-{round_number}"
        server.client().create_bucket(Bucket=bucket)
        figures = contended_meta_updates(f"s3://{bucket}/", server.endpoint_url, 4, 6)
        assert (figures["exact"], figures["listed"], figures["updates"]) == (True, 24, 24)
