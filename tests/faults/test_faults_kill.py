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

# What the target holds right after the kill at D2: whether D2 is recorded, and the dates of
# the commit it belongs to (dates computed while an earlier commit is under way go together:
# xetra.etl.GroupCommitter), as (recorded dates, report objects) that may be left.
D2_RECORDED = {"report_written": False, "meta_write": False, "meta_written": True}


def check_left_behind(stage: str, committed: list[str], reports: list[str]) -> list[str]:
    """What a kill at `stage` of D2 may leave: the recorded dates a prefix of D1..D3, each with
    its report object; D2 recorded or not as the stage says, its report object written; the
    objects of unrecorded dates those of D2's commit group, right after the recorded ones
    (a group is D2 alone, D1-D2, D2-D3 or D1-D3). Returns the unrecorded dates."""
    days = [D1, D2, D3]
    assert committed == days[:len(committed)], committed
    assert set(committed) <= set(reports) <= set(days), (committed, reports)
    assert (D2 in committed) == D2_RECORDED[stage], committed
    assert D2 in reports, reports
    unlisted = sorted(set(reports) - set(committed))
    assert unlisted == days[len(committed):len(committed) + len(unlisted)], unlisted
    return unlisted


class WithoutLock:  # pylint: disable=too-few-public-methods
    """A target as assert_converged sees it, without the lock object."""

    def __init__(self, target):
        self.target = target

    def objects(self, prefix: str = "") -> dict[str, bytes]:
        """The target's objects but the lock."""
        return {key: data for key, data in self.target.objects(prefix).items()
                if key != LOCK_KEY}


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
        unlisted: list[str] = []
    else:
        committed = [r["source_date"] for r in meta_rows(left[META_KEY])] \
            if META_KEY in left else []
        reports = [day for day in (D1, D2, D3) if report_key(day) in left]
        unlisted = check_left_behind(stage, committed, reports)
        assert sorted(left) == sorted([LOCK_KEY] + [META_KEY] * bool(committed) +
                                      [report_key(day) for day in reports])

    todo = [day for day in (D1, D2, D3) if day not in committed]
    if other_pod and LOCK_KEY in left and todo:  # (a kill in the early reads precedes the lock)
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
    # A rerun with nothing to do takes no lock (and writes nothing): the killed run's lock is
    # taken over by the next run that has work.
    assert ("taking over expired lock" in rerun.log) == (LOCK_KEY in left and bool(todo))
    if unlisted:
        # The report objects of D2's commit, written before the kill, are not listed: the
        # rerun names them and replaces them when it processes their dates (same keys),
        # never removes them.
        named = unlisted[0] if len(unlisted) == 1 else \
            f"{unlisted[0]}..{unlisted[-1]} ({len(unlisted)} dates)"
        assert f"{len(unlisted)} report object(s) of dates the meta file does not list " \
            f"({named})" in rerun.log
        assert "removing" not in rerun.log
    if stage != "extract" and todo:
        assert rerun.summary.startswith(f"dates processed={len(todo)} ({todo[0]}..{D3})")
    if todo:
        assert f"..{D3})" in rerun.summary
    else:  # D3 went in D2's commit: nothing left to do
        assert rerun.summary.startswith("dates processed=0")
        assert visible(job.target.objects()) == left  # the killed run's lock included
    assert_converged(WithoutLock(job.target) if not todo else job.target, [D1, D2, D3])
    # A further run finds nothing to do and changes nothing.
    before = job.target.objects()
    again = job.run("--to", D3)
    assert again.code == 0 and again.summary.startswith("dates processed=0")
    assert job.target.objects() == before


STAGES = ["extract", *D2_RECORDED]


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
