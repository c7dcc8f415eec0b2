"""Support for the arrival-order tests: real sample days delivered in any order, and the check
that a target holds exactly what one run over the complete data would write.

Expected rows come from testkit/reference.py (pandas over every CSV of the complete sample at
once), never from the job's own earlier output.
"""
from __future__ import annotations

import datetime as dt
import io
import math
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import pandas as pd

from testkit.jobs import Job, JobResult
from testkit.paths import SAMPLE
from testkit.processes import kill_at_call
from testkit.reference import COLUMNS, reference_report
from testkit.targets import META_KEY, Bucket, Folder, meta_rows, report_key

SAMPLE_DAYS = sorted(path.name for path in SAMPLE.iterdir() if path.is_dir())
SMALL_WEEK = SAMPLE_DAYS[:5]          # Mon 2017-06-26 .. Fri 06-30: a few hundred rows each
WEEKEND = SAMPLE_DAYS[5:7]            # Sat 07-01 (zero-volume rows only), Sun 07-02
MONDAY = SAMPLE_DAYS[7]               # 2017-07-03, 60k rows


def sample_objects(days: Iterable[str], drop_hours: dict[str, Iterable[int]] | None = None
                   ) -> dict[str, bytes]:
    """The sample's hourly objects of `days` by source key, without `drop_hours` per day."""
    drop_hours = drop_hours or {}
    objects = {}
    for day in days:
        dropped = {f"{day}_BINS_XETR{hour:02d}.csv" for hour in drop_hours.get(day, ())}
        for path in sorted((SAMPLE / day).iterdir()):
            if path.name not in dropped:
                objects[f"{day}/{path.name}"] = path.read_bytes()
    return objects


def deliver(store: Folder | Bucket, days: Iterable[str]) -> None:
    """Publish the sample's objects of `days` in `store` (late, or for the first time)."""
    for key, data in sample_objects(days).items():
        store.put(key, data)


@lru_cache(maxsize=1)
def _reference_by_date() -> dict[str, pd.DataFrame]:
    """report1 of every sample date, computed once by the reference from all of its rows."""
    report = reference_report(SAMPLE, dt.date.fromisoformat(SAMPLE_DAYS[0]),
                              dt.date.fromisoformat(SAMPLE_DAYS[-1]))
    return {str(day): rows.reset_index(drop=True) for day, rows in report.groupby("date")}


def expected_rows(first: str, last: str) -> dict[str, pd.DataFrame]:
    """report1 by date over `first`..`last`, computed by the reference over the complete
    sample (every day of it, so the look-back sees what a complete source holds); a date's
    rows do not depend on the range (batch invariance of the reference)."""
    return {day: rows for day, rows in _reference_by_date().items() if first <= day <= last}


def _same_rows(actual: pd.DataFrame, wanted: pd.DataFrame, where: str) -> None:
    """Equal rows; the % change may differ only at an exact rounding tie (SPEC section 2)."""
    assert list(actual.columns) == COLUMNS, where
    assert list(actual["isin"]) == list(wanted["isin"]), where
    for column in COLUMNS[1:-1]:
        assert list(actual[column]) == list(wanted[column]), f"{where}: {column}"
    for got, want, isin in zip(actual[COLUMNS[-1]], wanted[COLUMNS[-1]], actual["isin"]):
        got_null = got is None or (isinstance(got, float) and math.isnan(got))
        want_null = want is None or pd.isna(want)
        assert got_null == want_null, f"{where}: {isin} change {got} != {want}"
        if not got_null:
            assert abs(got - float(want)) <= 0.0100001, f"{where}: {isin} {got} != {want}"


def listed_dates(objects: dict[str, bytes]) -> list[str]:
    """The meta file's source_date column, in file order."""
    return [row["source_date"] for row in meta_rows(objects[META_KEY])]


def assert_complete(target: Folder | Bucket, first: str, last: str,
                    foreign: Iterable[str] = ()) -> dict[str, bytes]:
    """The target holds, for every date of `first`..`last`, exactly what one run over the
    complete data writes: the meta file lists each date once, each date with trades has one
    report object with the reference's rows, and there is no other object (but `foreign`
    keys the test put there itself). Returns the target's objects."""
    objects = target.objects()
    wanted = expected_rows(first, last)
    days = [str(dt.date.fromisoformat(first) + dt.timedelta(days=n))
            for n in range((dt.date.fromisoformat(last) - dt.date.fromisoformat(first)).days + 1)]
    assert listed_dates(objects) == days
    reports = sorted(report_key(day) for day in wanted)
    assert sorted(key for key in objects if key != META_KEY and key not in set(foreign)) == \
        reports, "report objects differ from one per date with trades"
    for day, rows in wanted.items():
        actual = pd.read_parquet(io.BytesIO(objects[report_key(day)]))
        _same_rows(actual, rows, day)
    return objects


def one_run_objects(tmp: Path, first: str, last: str) -> dict[str, bytes]:
    """The report objects of a single run over the complete sample (for the byte-for-byte
    claim of the contract; the values are checked against the reference separately)."""
    source = Folder(tmp / "complete-source")
    deliver(source, SAMPLE_DAYS)
    job = Job(tmp, source, Folder(tmp / "complete-target"))
    job.config["job"]["first_date"] = first
    job.write()
    done = job.run("--to", last)
    assert done.code == 0, done
    return {key: data for key, data in job.target.objects().items() if key != META_KEY}


def assert_same_bytes(objects: dict[str, bytes], single_run: dict[str, bytes]) -> None:
    """Every report object is byte for byte the one of the single run."""
    reports = {key: data for key, data in objects.items() if key != META_KEY}
    assert sorted(reports) == sorted(single_run)
    for key, data in reports.items():
        assert data == single_run[key], f"{key} differs from the single run's object"


def meta_by_date(objects: dict[str, bytes]) -> dict[str, dict[str, str]]:
    """The meta file's rows by source_date."""
    return {row["source_date"]: row for row in meta_rows(objects[META_KEY])}


def report_keys(objects: dict[str, bytes]) -> list[str]:
    """The report object keys of a target's objects."""
    return sorted(key for key in objects if key != META_KEY and key.endswith(".parquet"))


def run_killed(job: Job, method: str, nth: int, *args: str) -> JobResult:
    """Run the job as a process, SIGKILLed when `method` (MODULE:CLASS.METHOD) is called for
    the `nth` time, before that call runs (testkit.processes)."""
    return job.run_process(*args, env=kill_at_call(method, nth))
