"""Source data published late: a date without hourly objects waits for a later run.

`job.max_wait_days` is set far beyond the dates' age here, so the missing date is waiting, not
overdue (tests/faults/test_faults_overdue.py tests the alarm)."""
from __future__ import annotations

import pytest

from testkit.jobs import Job
from testkit.sourcedata import HEADER_ONLY, row, rows_csv
from testkit.targets import META_KEY, Bucket, Folder, fill, meta_rows, new_bucket, report_key
from testkit.threedays import D1, D2, D3, ISIN_A, assert_converged, three_days


def late_job(tmp_path, source: Folder | Bucket, target: Folder | Bucket, env=None,
             endpoint=None) -> tuple[Job, dict[str, bytes]]:
    """A job whose source holds D1 only; returns it with D2's objects, held back."""
    everything = three_days()
    fill(source, {key: data for key, data in everything.items() if key.startswith(D1)})
    return Job(tmp_path, source, target, endpoint, env=env,
               job={"max_wait_days": 36500}), \
        {key: data for key, data in everything.items() if key.startswith(D2)}


def check_late_date_is_processed_later(job: Job, d2_objects: dict[str, bytes]) -> None:
    """Run 1 leaves D2 waiting; once D2's objects exist, run 2 processes it (and then D3)."""
    first = job.run("--to", D2)
    assert first.code == 0, first
    assert first.summary.startswith(f"dates processed=1 ({D1}..{D1})")
    assert first.summary.endswith(f"waiting: {D2}")
    objects = job.target.objects()
    assert [r["source_date"] for r in meta_rows(objects[META_KEY])] == [D1]
    assert report_key(D2) not in objects
    fill(job.source, d2_objects)  # published late
    second = job.run("--to", D2)
    assert second.code == 0 and second.summary.startswith(f"dates processed=1 ({D2}..{D2})")
    fill(job.source, {key: data for key, data in three_days().items() if key.startswith(D3)})
    assert job.run("--to", D3).code == 0
    assert_converged(job.target, [D1, D2, D3])  # D2 compares with D1: same as one run


def test_late_date_local(tmp_path):
    """Local folders."""
    job, late = late_job(tmp_path, Folder(tmp_path / "source"), Folder(tmp_path / "target"))
    check_late_date_is_processed_later(job, late)


@pytest.mark.s3server
def test_late_date_s3(tmp_path, motoserver):
    """Buckets on a real S3 server."""
    job, late = late_job(tmp_path, new_bucket(motoserver, "src"), new_bucket(motoserver, "tgt"),
                         motoserver.env(), motoserver.endpoint_url)
    check_late_date_is_processed_later(job, late)


def test_date_with_minute_objects_only_is_not_processed_yet(tmp_path):
    """Per-minute objects (YYYY-MM-DD_BINS_XETRHHMM.csv) mean the day is still being
    published: the date waits; once hourly objects exist, only those are read."""
    job, late = late_job(tmp_path, Folder(tmp_path / "source"), Folder(tmp_path / "target"))
    # Minute objects whose rows would change D2's report if they were read (volume 999).
    minute = {f"{D2}/{D2}_BINS_XETR0905.csv":
              rows_csv([row(ISIN_A, D2, "09:05", (1, 99, 1, 99), 999)]),
              f"{D2}/{D2}_BINS_XETR0906.csv": HEADER_ONLY}
    fill(job.source, minute)
    first = job.run("--to", D2)
    assert first.code == 0
    assert first.summary.endswith(f"waiting: {D2}")
    assert report_key(D2) not in job.target.objects()
    fill(job.source, late)  # the hourly objects arrive; the minute objects stay
    assert job.run("--to", D2).code == 0
    fill(job.source, {key: data for key, data in three_days().items() if key.startswith(D3)})
    assert job.run("--to", D3).code == 0
    assert_converged(job.target, [D1, D2, D3])
