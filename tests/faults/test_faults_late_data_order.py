"""Arrival-order invariance on real sample days: a date that arrives late is processed, and the
dates whose previous trading day it is are computed again, so that the target ends up holding
exactly what one run over the complete data writes (values from the pandas reference, bytes
from a single run), whatever order the dates arrived in.
"""
from __future__ import annotations

import json
import uuid

import pytest

from testkit.arrival import (MONDAY, SMALL_WEEK, WEEKEND, assert_complete, assert_same_bytes,
                             deliver, listed_dates, meta_by_date, one_run_objects, run_killed)
from testkit.jobs import Job
from testkit.processes import KILL_AT
from testkit.targets import Bucket, Folder

FIRST, FRIDAY = SMALL_WEEK[0], SMALL_WEEK[-1]


def local_job(tmp_path, **sections) -> Job:
    """A job on local folders (empty source) with the sample's first day as first date."""
    return Job(tmp_path, Folder(tmp_path / "source"), Folder(tmp_path / "target"), **sections)


def s3_job(tmp_path, server, **sections) -> Job:
    """A job on two fresh buckets of `server`."""
    suffix = uuid.uuid4().hex[:8]
    return Job(tmp_path, Bucket(server, f"late-src-{suffix}"),
               Bucket(server, f"late-tgt-{suffix}"), server.endpoint_url, env=server.env(),
               **sections)


def run_with_late(job: Job, days: list[str], late: list[str], last: str) -> None:
    """Deliver `days` but `late`, run up to `last` (the late dates are overdue: exit 4, all
    else done), then deliver the late dates and run again."""
    deliver(job.source, [day for day in days if day not in late])
    first = job.run("--to", last)
    assert first.code == 4, first
    assert f"overdue source data: {late[0]}" in first.err, first
    assert not set(late) & set(listed_dates(job.target.objects()))
    deliver(job.source, late)
    second = job.run("--to", last)
    assert second.code == 0, second


@pytest.mark.parametrize("late,after", [("2017-06-28", "2017-06-29"),
                                        ("2017-06-27", "2017-06-28")])
def test_one_late_date_in_the_middle_local(tmp_path, late, after):
    job = local_job(tmp_path)
    run_with_late(job, SMALL_WEEK, [late], FRIDAY)
    objects = assert_complete(job.target, FIRST, FRIDAY)
    meta = meta_by_date(objects)
    assert meta[after]["previous_trading_day"] == late
    assert meta[after]["recomputed_at"] != ""
    assert meta[late]["recomputed_at"] == ""
    assert [day for day, row in meta.items() if row["recomputed_at"]] == [after]
    assert_same_bytes(objects, one_run_objects(tmp_path / "one", FIRST, FRIDAY))
    again = job.run("--to", FRIDAY)  # converged: nothing to do, nothing written
    assert again.code == 0 and again.summary.startswith("dates processed=0")
    assert job.target.objects() == objects


@pytest.mark.s3server
def test_one_late_date_in_the_middle_s3(tmp_path, motoserver):
    job = s3_job(tmp_path, motoserver)
    run_with_late(job, SMALL_WEEK, ["2017-06-28"], FRIDAY)
    objects = assert_complete(job.target, FIRST, FRIDAY)
    assert meta_by_date(objects)["2017-06-29"]["previous_trading_day"] == "2017-06-28"
    assert_same_bytes(objects, one_run_objects(tmp_path / "one", FIRST, FRIDAY))


def test_recompute_is_named_in_the_summary_and_the_log(tmp_path):
    job = local_job(tmp_path)
    deliver(job.source, [day for day in SMALL_WEEK if day != "2017-06-28"])
    job.run("--to", FRIDAY)
    deliver(job.source, ["2017-06-28"])
    second = job.run("--to", FRIDAY)
    assert second.summary.startswith("dates processed=1 (2017-06-28..2017-06-28)")
    assert "recomputed=1 (2017-06-29)" in second.summary
    assert "2017-06-29: recomputed: its previous trading day is now 2017-06-28 " \
           "(was 2017-06-27)" in second.log


@pytest.mark.parametrize("order", ["together", "later_one_first", "earlier_one_first"])
def test_two_late_dates(tmp_path, order):
    job = local_job(tmp_path)
    late = ["2017-06-27", "2017-06-29"]
    deliver(job.source, [day for day in SMALL_WEEK if day not in late])
    assert job.run("--to", FRIDAY).code == 4
    batches = {"together": [late], "later_one_first": [late[1:], late[:1]],
               "earlier_one_first": [late[:1], late[1:]]}[order]
    for batch in batches:
        deliver(job.source, batch)
        done = job.run("--to", FRIDAY)
        assert done.code == (0 if batch is batches[-1] else 4), done
    objects = assert_complete(job.target, FIRST, FRIDAY)
    meta = meta_by_date(objects)
    assert [meta[day]["previous_trading_day"] for day in SMALL_WEEK] == \
        ["none", *SMALL_WEEK[:-1]]
    assert_same_bytes(objects, one_run_objects(tmp_path / "one", FIRST, FRIDAY))


def check_late_friday_after_monday(job: Job, tmp_path) -> None:
    """Friday 06-30 arrives after Monday 07-03 was computed against Thursday."""
    days = [*SMALL_WEEK, *WEEKEND, MONDAY]
    deliver(job.source, [day for day in days if day != FRIDAY])
    first = job.run("--to", MONDAY)
    assert first.code == 4
    assert meta_by_date(job.target.objects())[MONDAY]["previous_trading_day"] == "2017-06-29"
    deliver(job.source, [FRIDAY])
    second = job.run("--to", MONDAY)
    assert second.code == 0, second
    assert "recomputed=1 (2017-07-03)" in second.summary
    objects = assert_complete(job.target, FIRST, MONDAY)
    meta = meta_by_date(objects)
    assert meta[MONDAY]["previous_trading_day"] == FRIDAY and meta[MONDAY]["recomputed_at"]
    assert all(not meta[day]["recomputed_at"] for day in days if day != MONDAY)
    assert_same_bytes(objects, one_run_objects(tmp_path / "one", FIRST, MONDAY))


def test_late_friday_after_monday_local(tmp_path):
    check_late_friday_after_monday(local_job(tmp_path), tmp_path)


@pytest.mark.s3server
def test_late_friday_after_monday_s3(tmp_path, motoserver):
    check_late_friday_after_monday(s3_job(tmp_path, motoserver), tmp_path)


def test_late_date_with_later_dates_pending_in_the_same_run(tmp_path):
    """The late date, the stale date and new dates in one run: pending first, then stale."""
    job = local_job(tmp_path)
    deliver(job.source, ["2017-06-26", "2017-06-27", "2017-06-29"])
    assert job.run("--to", "2017-06-29").code == 4
    deliver(job.source, ["2017-06-28", "2017-06-30"])
    done = job.run("--to", FRIDAY)
    assert done.code == 0
    assert done.summary.startswith("dates processed=2 (2017-06-28..2017-06-30)")
    assert "recomputed=1 (2017-06-29)" in done.summary
    assert_complete(job.target, FIRST, FRIDAY)


@pytest.mark.parametrize("repair", ["slice", "weekly"])
def test_late_date_at_the_end_of_a_backfill_slice(tmp_path, repair):
    """Slices 26..28 and 29..30; the 28th is late. Rerunning the first slice processes the
    28th but leaves the 29th (another slice's date) stale: --verify says so and --plan lists
    it; rerunning its slice (or the weekly run) computes it again."""
    job = local_job(tmp_path)
    deliver(job.source, [day for day in SMALL_WEEK if day != "2017-06-28"])
    assert job.run("--slice", "--from", "2017-06-26", "--to", "2017-06-28").code == 4
    assert job.run("--slice", "--from", "2017-06-29", "--to", FRIDAY).code == 0
    deliver(job.source, ["2017-06-28"])
    rerun = job.run("--slice", "--from", "2017-06-26", "--to", "2017-06-28")
    assert rerun.code == 0, rerun
    assert "recomputed" not in rerun.summary
    assert "2017-06-29" in rerun.log and "outside this run's range" in rerun.log
    verify = job.run("--verify", "--from", FIRST, "--to", FRIDAY)
    assert verify.code == 1
    assert "date 2017-06-29: its report compares with 2017-06-27, but the previous trading " \
           "day is now 2017-06-28" in verify.err
    plan = job.run("--plan", "--from", FIRST, "--to", FRIDAY)
    assert json.loads(plan.out) == [{"from": "2017-06-29", "to": "2017-06-29"}]
    if repair == "slice":
        fixed = job.run("--slice", "--from", "2017-06-29", "--to", FRIDAY)
    else:
        fixed = job.run("--to", FRIDAY)
    assert fixed.code == 0 and "recomputed=1 (2017-06-29)" in fixed.summary
    assert job.run("--verify", "--from", FIRST, "--to", FRIDAY).code == 0
    objects = assert_complete(job.target, FIRST, FRIDAY)
    assert_same_bytes(objects, one_run_objects(tmp_path / "one", FIRST, FRIDAY))


# --- kills during the catch-up ------------------------------------------------------------
# The catch-up run after the 28th arrived writes, in order: the lock (1), the 28th's report
# (2), the meta file recording it (3), the 29th's new report (4), the meta file recording the
# recompute (5); then it removes the lock. Killing it before each of these writes, then
# running again, must converge.
CATCH_UP_WRITES = 5


def kill_catch_up(job: Job, method: str, nth: int) -> None:
    """Set up the late 28th, kill the catch-up run before its nth write, run again."""
    deliver(job.source, [day for day in SMALL_WEEK if day != "2017-06-28"])
    assert job.run("--to", FRIDAY).code == 4
    deliver(job.source, ["2017-06-28"])
    killed = run_killed(job, method, nth, "--to", FRIDAY)
    assert killed.code == -9, killed
    after_kill = job.target.objects()
    rerun = job.run("--to", FRIDAY)
    assert rerun.code == 0, (nth, rerun)
    if nth >= 4:  # the 28th was recorded before the kill: the rerun only recomputes the 29th
        assert "2017-06-28" in listed_dates(after_kill)
        assert rerun.summary.startswith("dates processed=0")
        assert "recomputed=1 (2017-06-29)" in rerun.summary
    assert_complete(job.target, FIRST, FRIDAY)
    assert job.run("--to", FRIDAY).summary.startswith("dates processed=0")


@pytest.mark.parametrize("nth", range(1, CATCH_UP_WRITES + 1))
def test_kill_before_each_write_of_the_catch_up_local(tmp_path, nth):
    job = local_job(tmp_path, meta={"lock_ttl_seconds": 60})
    kill_catch_up(job, "xetra.storage:LocalStorage.put_bytes", nth)


@pytest.mark.s3server
@pytest.mark.parametrize("nth", [2, 4, 5])
def test_kill_before_each_write_of_the_catch_up_s3(tmp_path, motoserver, nth):
    job = s3_job(tmp_path, motoserver)
    kill_catch_up(job, "xetra.s3:S3BucketConnector.put_bytes", nth)


# killwrap's stages, by what the kill leaves: the meta file as a reader sees it afterwards.
KILLWRAP_STAGES = {
    # in the recompute's read of the 29th: the 28th is recorded, the 29th stale
    "extract:2017-06-29": "stale",
    # the 29th's new report written, its meta entry not updated: still stale
    "report_written:2017-06-29": "stale",
    # in the middle of the meta write that records the 28th: the 28th is not recorded
    "meta_write:2017-06-28": "unrecorded",
    # right after the first meta write naming the 29th (recording the 28th): stale
    "meta_written:2017-06-29": "stale",
}


@pytest.mark.parametrize("kill_at", list(KILLWRAP_STAGES))
def test_kill_at_each_stage_of_the_catch_up_local(tmp_path, kill_at):
    """tests/faults/killwrap.py's stages around the catch-up; --verify names what is wrong
    after the kill, and the next run converges."""
    job = local_job(tmp_path)
    deliver(job.source, [day for day in SMALL_WEEK if day != "2017-06-28"])
    assert job.run("--to", FRIDAY).code == 4
    deliver(job.source, ["2017-06-28"])
    killed = job.run_process("--to", FRIDAY, env={KILL_AT: kill_at})
    assert killed.code == -9, killed
    verify = job.run("--verify", "--from", FIRST, "--to", FRIDAY)
    assert verify.code == 1, verify
    if KILLWRAP_STAGES[kill_at] == "stale":
        assert "date 2017-06-29: its report compares with 2017-06-27" in verify.err, verify
    else:
        assert "date 2017-06-28 has source objects but is not in the meta file" in verify.err
    assert job.run("--to", FRIDAY).code == 0
    assert_complete(job.target, FIRST, FRIDAY)
    assert job.run("--verify", "--from", FIRST, "--to", FRIDAY).code == 0
