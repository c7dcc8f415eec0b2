"""Weeks or months of realistic Xetra source data from the bundled real sample, for the
backfill's tests and benchmarks.

Every weekday gets a copy of a real trading day (2017-07-03 and 2017-07-04 in turn, about
55,000 rows and 7 MB each), every Saturday and Sunday a copy of the real weekend
(2017-07-01/02: header-only hours and zero-volume rows), with the Date column and the object
names rewritten to the new date. Written under benchmarks/data/ (gitignored); reused when there.

    pipenv run python -m testkit.backfill_data --first 2018-01-01 --weekdays 130
"""
from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from testkit.config import job_config, write_config
from testkit.paths import REPO, SAMPLE

REAL_TRADING_DAYS = (SAMPLE / "2017-07-03", SAMPLE / "2017-07-04")
REAL_WEEKEND = (SAMPLE / "2017-07-01", SAMPLE / "2017-07-02")
# The small data set of the tests: the sample's small real days as weekdays, its real weekend
# as weekends: 2018-01-01 (a Monday) .. 2018-01-21 is 15 weekdays and 3 weekends of real rows
# with rewritten dates.
SMALL_TRADING_DAYS = tuple(SAMPLE / f"2017-06-{day}" for day in (26, 27, 28, 29, 30))
SMALL_FIRST = dt.date(2018, 1, 1)


def copy_day(template: Path, out: Path, day: dt.date) -> int:
    """Write `template`'s hourly objects as `day`'s under `out`; returns the rows rewritten."""
    old, new = template.name, day.isoformat()
    folder = out / new
    folder.mkdir(parents=True, exist_ok=True)
    rows = 0
    for path in sorted(template.glob("*_BINS_XETR??.csv")):
        data = path.read_bytes()
        # Date is the only unquoted YYYY-MM-DD field between commas in every row.
        rewritten = data.replace(f",{old},".encode(), f",{new},".encode())
        changed = data.count(f",{old},".encode())
        lines = data.count(b"\n") - 1
        if changed != lines:
            raise ValueError(f"{path}: {changed} Date fields rewritten, {lines} rows")
        rows += changed
        (folder / path.name.replace(old, new)).write_bytes(rewritten)
    return rows


def make_dataset(out: Path, first: dt.date, weekdays: int,
                 trading_days: tuple[Path, ...] = REAL_TRADING_DAYS,
                 weekend: tuple[Path, ...] = REAL_WEEKEND) -> tuple[dt.date, int]:
    """`weekdays` weekdays from `first` (and the weekends between) under `out`, cycling through
    the templates; returns the last date written and the number of rows."""
    day, written, rows = first, 0, 0
    while True:
        if day.weekday() < 5:
            if written == weekdays:
                return day - dt.timedelta(days=1), rows
            rows += copy_day(trading_days[written % len(trading_days)], out, day)
            written += 1
        else:
            rows += copy_day(weekend[day.weekday() - 5], out, day)
        day += dt.timedelta(days=1)


def make_small_source(folder: Path, weekdays: int = 15) -> dt.date:
    """Write the small data set under `folder`; returns its last date."""
    last, _ = make_dataset(folder, SMALL_FIRST, weekdays, SMALL_TRADING_DAYS, REAL_WEEKEND)
    return last


def backfill_config(path: Path, source: str, target: str, endpoint: str | None = None,
                    lock_ttl_seconds: int = 900) -> Path:
    """Write a job config for the small data set from `source` to `target` (local paths or
    s3:// on `endpoint`), log lines to stdout; returns its path."""
    return write_config(path, job_config(
        source, target, first_date=SMALL_FIRST, endpoint_url=endpoint,
        meta={"lock_ttl_seconds": lock_ttl_seconds},
        s3={"max_attempts": 3, "connect_timeout": 5, "read_timeout": 30}))


def main() -> None:
    """Command line: where, from which date, how many weekdays."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "data" / "backfill"))
    parser.add_argument("--first", default="2018-01-01", help="a Monday is best")
    parser.add_argument("--weekdays", type=int, default=130, help="130: six months")
    options = parser.parse_args()
    out = Path(options.out)
    last, rows = make_dataset(out, dt.date.fromisoformat(options.first), options.weekdays)
    size = sum(path.stat().st_size for path in out.rglob("*.csv"))
    print(f"{out}: {options.first}..{last}, {rows} rows, {size / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
