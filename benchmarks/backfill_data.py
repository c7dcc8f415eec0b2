"""Months of realistic Xetra source data from the bundled real sample, for the backfill.

Every weekday gets a copy of a real trading day (2017-07-03 and 2017-07-04 in turn, about
55,000 rows and 7 MB each), every Saturday and Sunday a copy of the real weekend
(2017-07-01/02: header-only hours and zero-volume rows), with the Date column and the object
names rewritten to the new date. Written under benchmarks/data/ (gitignored); reused when there.

    pipenv run python -m benchmarks.backfill_data --first 2018-01-01 --weekdays 130
"""
from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"
REAL_TRADING_DAYS = (SAMPLE / "2017-07-03", SAMPLE / "2017-07-04")
REAL_WEEKEND = (SAMPLE / "2017-07-01", SAMPLE / "2017-07-02")


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
