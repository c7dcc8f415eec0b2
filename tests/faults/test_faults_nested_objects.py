"""Only a date folder's own hourly objects are source: copies in folders below it
(`YYYY-MM-DD/backup/...`), other dates' names and odd hours are never read."""
from __future__ import annotations

import datetime as dt

import pytest

from testkit.threedays import D1, D2, D3, ISIN_A, assert_converged, three_days
from testkit.targets import Bucket, Folder, fill, new_bucket
from testkit.jobs import Job
from testkit.sourcedata import HEADER_ONLY, row, rows_csv
from xetra.formats import is_hourly_object

DAY = dt.date.fromisoformat(D1)


@pytest.mark.parametrize("key, source", [
    (f"{D1}/{D1}_BINS_XETR00.csv", True),
    (f"{D1}/{D1}_BINS_XETR09.csv", True),
    (f"{D1}/{D1}_BINS_XETR23.csv", True),
    (f"{D1}/backup/{D1}_BINS_XETR09.csv", False),      # a copy below the date's folder
    (f"{D1}/{D1}/{D1}_BINS_XETR09.csv", False),        # the folder nested in itself
    (f"{D1}/{D1}_BINS_XETR24.csv", False),             # no 24th hour
    (f"{D1}/{D1}_BINS_XETR0905.csv", False),           # a per-minute object
    (f"{D1}/{D2}_BINS_XETR09.csv", False),             # another date's object in D1's folder
    (f"{D1}/{D1}_BINS_XETR09.csv.bak", False),
    (f"{D1}/{D1}_BINS_XETR09.CSV", False),
    (f"x{D1}/{D1}_BINS_XETR09.csv", False),
    (f"{D1}/{D1}_BINS_XEUR09.csv", False),             # Eurex, not Xetra
])
def test_which_keys_are_a_dates_hourly_objects(key, source):
    """The predicate the source reader lists with, on keys classified by hand."""
    assert is_hourly_object(key, DAY) is source


# Objects that would change the reports if they were read: volume 999 or a thousandfold copy.
NESTED = {
    f"{D1}/backup/{D1}_BINS_XETR09.csv": three_days()[f"{D1}/{D1}_BINS_XETR09.csv"],
    f"{D1}/backup/old/{D1}_BINS_XETR10.csv": rows_csv([row(ISIN_A, D1, "10:30",
                                                            (1, 99, 1, 99), 999)]),
    f"{D2}/{D2}/{D2}_BINS_XETR09.csv": rows_csv([row(ISIN_A, D2, "09:30", (1, 99, 1, 99),
                                                      999)]),
    f"{D2}/{D3}_BINS_XETR11.csv": rows_csv([row(ISIN_A, D3, "11:30", (1, 99, 1, 99), 999)]),
    f"{D3}/{D3}_BINS_XETR24.csv": rows_csv([row(ISIN_A, D3, "11:30", (1, 99, 1, 99), 999)]),
    f"{D3}/tmp/{D3}_BINS_XETR11.csv": HEADER_ONLY + b"garbage that is no CSV row\n",
}


def check_only_own_objects_are_read(job: Job) -> None:
    """Exactly the reports of the three days worked out by hand (THREE_DAYS_REPORT)."""
    result = job.run("--to", D3)
    assert result.code == 0, result
    assert result.summary.startswith(f"dates processed=3 ({D1}..{D3}), rows read=6, "
                                     f"rows dropped: invalid=0 ")
    assert_converged(job.target, [D1, D2, D3])


def test_objects_below_a_dates_folder_are_not_read_local(tmp_path):
    """Local folders (listed recursively)."""
    source = Folder(tmp_path / "source")
    fill(source, {**three_days(), **NESTED})
    check_only_own_objects_are_read(Job(tmp_path, source, Folder(tmp_path / "target")))


@pytest.mark.s3server
def test_objects_below_a_dates_folder_are_not_read_s3(tmp_path, motoserver):
    """Buckets on a real S3 server (a prefix LIST is recursive too)."""
    source: Bucket = new_bucket(motoserver, "src")
    fill(source, {**three_days(), **NESTED})
    check_only_own_objects_are_read(Job(tmp_path, source, new_bucket(motoserver, "tgt"),
                                        motoserver.endpoint_url, env=motoserver.env()))


def test_a_date_with_only_nested_objects_waits(tmp_path):
    """D2 holds only a copy below its folder: it has no hourly objects of its own, so it is
    never recorded as a day without trades. It waits like a late date (within
    job.max_wait_days, here a hundred years) and, once overdue (the default 3 days; D2 is
    years old), is the overdue alarm, exit 4 naming it."""
    objects = {key: data for key, data in three_days().items() if not key.startswith(D2)}
    objects[f"{D2}/backup/{D2}_BINS_XETR09.csv"] = three_days()[f"{D2}/{D2}_BINS_XETR09.csv"]
    source = Folder(tmp_path / "source")
    fill(source, objects)
    (tmp_path / "waiting").mkdir()
    waiting = Job(tmp_path / "waiting", source, Folder(tmp_path / "target"),
                  job={"max_wait_days": 36500})
    result = waiting.run("--to", D2)
    assert result.code == 0, result
    assert result.summary.endswith(f"; waiting: {D2}")
    assert_converged(waiting.target, [D1])
    overdue = Job(tmp_path, source, Folder(tmp_path / "target"))
    result = overdue.run("--to", D2)
    assert result.code == 4, result
    assert result.err.startswith(f"xetra: overdue source data: {D2} has no hourly objects")
    assert_converged(overdue.target, [D1])
