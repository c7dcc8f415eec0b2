"""A run never deletes or overwrites a report object of a date it does not process in that same
run: report objects the meta file does not list are reported (a warning, --verify), and only
replaced when the run processes their date."""
from __future__ import annotations

import uuid

import pytest

from testkit.arrival import (SMALL_WEEK, WEEKEND, assert_complete, deliver, listed_dates,
                             report_keys)
from testkit.jobs import Job
from testkit.targets import META_KEY, Bucket, Folder, report_key

OTHER_META = "meta/other/other_meta_file.csv"
OTHER_LOCK = "meta/other/other.lock"


def two_jobs(tmp_path, source, target, endpoint=None, env=None) -> tuple[Job, Job]:
    """Two configs on one source, target and report prefix, each with its own meta file: the
    first is responsible for 06-26..06-28, the second from 06-29."""
    first = Job(tmp_path / "a", source, target, endpoint, env=env)
    second = Job(tmp_path / "b", source, target, endpoint, env=env,
                 meta={"key": OTHER_META, "lock_key": OTHER_LOCK})
    second.config["job"]["first_date"] = "2017-06-29"
    second.write()
    return first, second


def check_shared_target(first: Job, second: Job) -> None:
    """Neither job touches the other's report objects; each warns about them once."""
    deliver(first.source, SMALL_WEEK)
    assert first.run("--to", "2017-06-28").code == 0
    theirs = {key: data for key, data in first.target.objects().items() if key != META_KEY}
    assert sorted(theirs) == [report_key(day) for day in SMALL_WEEK[:3]]
    done = second.run("--to", "2017-06-30")
    assert done.code == 0, done
    objects = first.target.objects()
    for key, data in theirs.items():
        assert objects[key] == data, f"{key} was changed by the other job"
    warnings = [line for line in done.log.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, warnings
    assert "3 report object(s) of dates the meta file does not list " \
           "(2017-06-26..2017-06-28 (3 dates)): left as they are" in warnings[0]
    assert "removing" not in done.log
    assert listed_dates(objects) == SMALL_WEEK[:3]
    # Each verifies its own range: ok, and the other's objects are warnings, not problems.
    verify = second.run("--verify", "--from", "2017-06-29", "--to", "2017-06-30")
    assert verify.code == 0, verify
    assert "report object(s) of dates the meta file does not list" in verify.log
    assert first.run("--verify", "--from", "2017-06-26", "--to", "2017-06-28").code == 0
    again = first.run("--to", "2017-06-28")
    assert again.code == 0 and again.summary.startswith("dates processed=0")
    assert report_keys(first.target.objects()) == [report_key(day) for day in SMALL_WEEK]


def test_two_configs_sharing_a_target_local(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    check_shared_target(*two_jobs(tmp_path, Folder(tmp_path / "source"),
                                  Folder(tmp_path / "target")))


@pytest.mark.s3server
def test_two_configs_sharing_a_target_s3(tmp_path, motoserver):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    suffix = uuid.uuid4().hex[:8]
    check_shared_target(*two_jobs(tmp_path, Bucket(motoserver, f"orph-src-{suffix}"),
                                  Bucket(motoserver, f"orph-tgt-{suffix}"),
                                  motoserver.endpoint_url, motoserver.env()))


@pytest.mark.parametrize("rerun_to", ["2017-06-28", "2017-06-27"])
def test_meta_file_restored_from_an_older_backup(tmp_path, rerun_to):
    """The meta file of a week ago comes back: the reports of the dates it does not list stay
    until a run processes those dates again, which writes the same bytes."""
    job = Job(tmp_path, Folder(tmp_path / "source"), Folder(tmp_path / "target"))
    deliver(job.source, [*SMALL_WEEK, *WEEKEND])
    assert job.run("--to", "2017-06-28").code == 0
    backup = job.target.objects()[META_KEY]
    assert job.run("--to", "2017-07-02").code == 0
    complete = job.target.objects()
    job.target.put(META_KEY, backup)  # restored
    done = job.run("--to", rerun_to)
    assert done.code == 0 and done.summary.startswith("dates processed=0")
    assert "2 report object(s) of dates the meta file does not list (2017-06-29..2017-06-30 " \
           "(2 dates)): left as they are" in done.log
    assert {k: v for k, v in job.target.objects().items() if k != META_KEY} == \
        {k: v for k, v in complete.items() if k != META_KEY}
    verify = job.run("--verify", "--from", "2017-06-26", "--to", "2017-07-02")
    assert verify.code == 1  # dates with source objects missing from the meta file
    assert "date 2017-06-29 has source objects but is not in the meta file" in verify.err
    caught_up = job.run("--to", "2017-07-02")
    assert caught_up.code == 0 and caught_up.summary.startswith(
        "dates processed=4 (2017-06-29..2017-07-02)")
    objects = assert_complete(job.target, "2017-06-26", "2017-07-02")
    assert {k: v for k, v in objects.items() if k != META_KEY} == \
        {k: v for k, v in complete.items() if k != META_KEY}


def test_a_foreign_object_of_a_processed_date_without_trades_is_removed(tmp_path):
    """The run processes the Saturday: an object under its key cannot be its report (no
    trades), and exactly-once allows no report object for it."""
    job = Job(tmp_path, Folder(tmp_path / "source"), Folder(tmp_path / "target"))
    deliver(job.source, [*SMALL_WEEK, *WEEKEND])
    saturday = report_key(WEEKEND[0])
    job.target.put(saturday, b"not ours")
    done = job.run("--to", "2017-07-02")
    assert done.code == 0
    assert f"{WEEKEND[0]}: removing report object" in done.log
    assert_complete(job.target, "2017-06-26", "2017-07-02")


def test_unlisted_objects_outside_the_range_and_other_files_are_never_touched(tmp_path):
    job = Job(tmp_path, Folder(tmp_path / "source"), Folder(tmp_path / "target"))
    deliver(job.source, SMALL_WEEK)
    foreign = {report_key("2017-05-02"): b"someone else's", "report1/README.txt": b"notes",
               report_key("2017-06-30") + ".bak": b"a copy"}
    for key, data in foreign.items():
        job.target.put(key, data)
    assert job.run("--to", "2017-06-29").code == 0
    objects = assert_complete(job.target, "2017-06-26", "2017-06-29", foreign=foreign)
    for key, data in foreign.items():
        assert objects[key] == data
