"""SIGKILL at every stage of a run, then rerun: every date exactly once, meta consistent, no
orphan report object, no temporary file left, and the killed run's lock handled clearly.

The killed run is a separate process started through testkit.processes; the reruns run
in-process right after it. The lock's expiry (meta.lock_ttl_seconds) is 4 s here, 12 s when
the run is killed in another pod.
"""
from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from testkit.jobs import Job
from testkit.processes import OTHER_POD_NEEDS, kill_at_stage, other_pod_supported
from testkit.targets import LOCK_KEY, META_KEY, meta_rows, report_key
from testkit.threedays import D1, D2, D3, assert_converged


TTL = 4
# Long enough that the rerun right after a kill in another pod meets the live lock even on a
# loaded machine (the killed run last refreshed it before the kill).
OTHER_POD_TTL = 12
# A pod elsewhere is a PID namespace of its own; an ordinary user gets one through a user
# namespace, which some machines do not allow.
needs_other_pod = pytest.mark.skipif(not other_pod_supported(), reason=f"needs {OTHER_POD_NEEDS}")

# What the target holds right after the kill at D2 (D1 was fully done before).
LEFT_BEHIND = {
    "extract": {"meta": [D1], "reports": [D1]},
    "report_written": {"meta": [D1], "reports": [D1, D2]},  # D2's report is an orphan
    "meta_write": {"meta": [D1], "reports": [D1, D2]},
    "meta_written": {"meta": [D1, D2], "reports": [D1, D2]},
}


def visible(objects: dict[str, bytes]) -> dict[str, bytes]:
    """Objects without the local store's temporary files."""
    return {key: data for key, data in objects.items() if "/.tmp-" not in key}


def wait_for_lock_expiry(job: Job) -> None:
    """Sleep until the lock left by the killed run has expired."""
    lock = json.loads(job.target.objects()[LOCK_KEY])
    expires = dt.datetime.fromisoformat(lock["expires_at"])
    remaining = (expires - dt.datetime.now(dt.timezone.utc)).total_seconds()
    time.sleep(max(0.0, remaining) + 1.1)  # expiry has one-second resolution


def kill_and_recover(job: Job, stage: str, other_pod: bool = False) -> None:
    """Kill a run at `stage` of D2, check what it left, rerun until the job has converged.

    On the same host (same PID namespace) the rerun sees that the lock's owner is dead and
    takes the lock over at once. A run killed in another pod cannot be checked that way: the
    rerun stops with exit 3 naming the lock and its expiry, and succeeds once it has expired.
    """
    job.config["meta"]["lock_ttl_seconds"] = OTHER_POD_TTL if other_pod else TTL
    job.write()
    killed = job.run_process("--to", D3, other_pod=other_pod, env=kill_at_stage(stage, D2))
    assert killed.code == (128 + 9 if other_pod else -9), killed  # died by SIGKILL
    left = visible(job.target.objects())
    if stage == "extract":
        # The job reads the first days while it takes the lock, and days ahead while it
        # commits earlier ones, so the kill in D2's extract comes before the lock, or before
        # or after D1's commit: each is consistent, nothing of D2 is there.
        committed = [r["source_date"] for r in meta_rows(left[META_KEY])] \
            if META_KEY in left else []
        assert committed in ([], [D1])
        assert sorted(left) in (sorted([LOCK_KEY] + [META_KEY] * bool(committed) +
                                       [report_key(day) for day in committed]),
                                sorted([LOCK_KEY, report_key(D1)]), [])
    else:
        assert sorted(left) == sorted([META_KEY, LOCK_KEY] +
                                      [report_key(day) for day in LEFT_BEHIND[stage]["reports"]])
        assert [r["source_date"] for r in meta_rows(left[META_KEY])] == \
            LEFT_BEHIND[stage]["meta"]

    if other_pod and LOCK_KEY in left:  # (a kill during the early reads precedes the lock)
        # The lock is still held: a rerun now stops, writes nothing and says why.
        locked = job.run("--to", D3)
        assert locked.code == 3, locked
        assert locked.err.startswith("xetra: another run (")
        assert f"holds the lock {job.target.url.rstrip('/')}/{LOCK_KEY} until " in locked.err
        assert "rerun after the lock expires, or delete the lock object" in locked.err
        assert visible(job.target.objects()) == left
        wait_for_lock_expiry(job)
    rerun = job.run("--to", D3)
    assert rerun.code == 0, rerun
    assert ("taking over expired lock" in rerun.log) == (LOCK_KEY in left)
    if stage in ("report_written", "meta_write"):
        # D2's report object, written before the kill, is not listed: the rerun names it and
        # replaces it when it processes D2 (same key), never removes it.
        assert f"1 report object(s) of dates the meta file does not list ({D2})" in rerun.log
        assert "removing" not in rerun.log
    expected_processed = {"meta_written": f"1 ({D3}..{D3})", "extract": ""}.get(
        stage, f"2 ({D2}..{D3})")
    assert rerun.summary.startswith(f"dates processed={expected_processed}")
    assert f"..{D3})" in rerun.summary
    assert_converged(job.target, [D1, D2, D3])
    # A further run finds nothing to do and changes nothing.
    before = job.target.objects()
    again = job.run("--to", D3)
    assert again.code == 0 and again.summary.startswith("dates processed=0")
    assert job.target.objects() == before


STAGES = list(LEFT_BEHIND)


@pytest.mark.parametrize("stage", STAGES)
def test_kill_local_target(local_job, stage):
    """Local folders: killed at each stage on this host, the next run converges."""
    kill_and_recover(local_job, stage)


@pytest.mark.s3server
@pytest.mark.parametrize("stage", STAGES)
def test_kill_s3_target(moto_job, stage):
    """Buckets on a real S3 server: killed at each stage, the next run converges."""
    kill_and_recover(moto_job, stage)


@needs_other_pod
@pytest.mark.parametrize("stage", ["report_written", "meta_written"])
def test_kill_in_another_pod_local_target(local_job, stage):
    """Killed in another PID namespace: the rerun waits for the lock's expiry, then converges."""
    kill_and_recover(local_job, stage, other_pod=True)


@pytest.mark.s3server
@needs_other_pod
@pytest.mark.parametrize("stage", ["extract", "meta_write"])
def test_kill_in_another_pod_s3_target(moto_job, stage):
    """Killed in another pod, on S3: exit 3 until the lock expires, then the run converges."""
    kill_and_recover(moto_job, stage, other_pod=True)


def test_kill_during_meta_write_leaves_a_temporary_file_the_next_write_removes(local_job):
    """The local store's interrupted write leaves only a hidden temporary file, never a half
    meta file; the next write into that folder removes it."""
    local_job.config["meta"]["lock_ttl_seconds"] = TTL
    local_job.write()
    killed = local_job.run_process("--to", D3, env=kill_at_stage("meta_write", D2))
    assert killed.code == -9, killed
    temporary = [key for key in local_job.target.objects() if "/.tmp-" in key]
    assert len(temporary) == 1 and temporary[0].startswith("meta/report1/.tmp-")
    assert D2 in local_job.target.objects()[temporary[0]].decode()
    assert local_job.run("--to", D3).code == 0
    assert not [key for key in local_job.target.objects() if "/.tmp-" in key]
