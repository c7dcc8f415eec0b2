"""Text or dictionary key columns: what reading ISIN, Time, Currency and Date as dictionaries in
the CSV reader would save the selection, and what it costs the parse.

    .venv/bin/python -m benchmarks.key_columns [--days 10] [--runs 5]

The selection spends ~9 ms of its ~33 ms per trading day dictionary-encoding ISIN and Time,
and some more comparing Date and Currency as text. Arrow's CSV reader can produce those columns
as dictionaries itself (per block, on its own threads). Per variant, over the same objects in
the same process, interleaved: the parse (the job's columns and options, one object after the
other, Arrow's threads inside each) and `transform.select_trades` + `daily_summary` on each
day's table, CPU seconds of the whole process (process_time), medians of `--runs`. The reports
of both variants are checked equal.
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

import pyarrow as pa

from benchmarks.run_benchmark import dataset
from xetra import formats, transform

KEY_COLUMNS = ("ISIN", "Time", "Currency", "Date")
# The job's own fast-path types; the benchmark compares them with one change, so it reads them.
TEXT_TYPES = formats._FAST_TYPES  # pylint: disable=protected-access
DICTIONARY_TYPES = {**TEXT_TYPES,
                    **{name: pa.dictionary(pa.int32(), pa.string()) for name in KEY_COLUMNS}}


def day_objects(data: Path, first: dt.date, days: int) -> list[tuple[dt.date, list[bytes]]]:
    """Each trading day's non-empty source objects, as bytes, in key order."""
    found = []
    for offset in range(days):
        day = first + dt.timedelta(days=offset)
        objects = [path.read_bytes() for path in sorted((data / day.isoformat()).glob("*.csv"))]
        objects = [item for item in objects if len(item) not in formats.HEADER_ONLY_SIZES]
        if objects:
            found.append((day, objects))
    return found


def parse_day(objects: list[bytes], types: dict[str, pa.DataType]) -> pa.Table:
    """The day's rows, parsed with the job's options and `types` (no odd values here)."""
    tables = []
    for data in objects:
        names = formats.header_names(data, "benchmark object")
        # pylint: disable-next=protected-access  # the job's reader, with other column types
        table, _ = formats._read(data, names, types, formats.TRADE_COLUMNS)
        volumes = formats._volumes(table["TradedVolume"])  # pylint: disable=protected-access
        tables.append(table.set_column(table.schema.get_field_index("TradedVolume"),
                                       "TradedVolume", volumes))
    return pa.concat_tables(tables)


def measure(days: list[tuple[dt.date, list[bytes]]], types: dict[str, pa.DataType]
            ) -> tuple[float, float, list[pa.Table]]:
    """CPU seconds of parsing every day, of selecting and summarising every day; the summaries."""
    parse_cpu = select_cpu = 0.0
    summaries = []
    for day, objects in days:
        started = time.process_time()
        table = parse_day(objects, types)
        parsed = time.process_time()
        trades, _ = transform.select_trades(table, day, ["EUR"])
        summaries.append(transform.daily_summary(trades, day))
        parse_cpu += parsed - started
        select_cpu += time.process_time() - parsed
    return parse_cpu, select_cpu, summaries


def main() -> None:
    """Print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2021, 3, 1))
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    last = args.start + dt.timedelta(days=args.days - 1)
    days = day_objects(dataset(args.start, last, 2021), args.start, args.days)
    variants = {"text (the job)": TEXT_TYPES, "dictionary": DICTIONARY_TYPES}
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    reference = None
    for _ in range(args.runs):
        for name, types in variants.items():
            parse_cpu, select_cpu, summaries = measure(days, types)
            figures[name].append((parse_cpu, select_cpu))
            reference = reference or summaries
            if any(not ours.equals(theirs) for ours, theirs in zip(summaries, reference)):
                raise SystemExit(f"{name}: the summaries differ from the text variant's")
    trading_days = len(days)
    lines = [f"key columns as text or dictionaries: {args.start}..{last}, {trading_days} trading "
             f"days, CPU ms per trading day, medians of {args.runs} interleaved runs, summaries "
             f"equal", "",
             "| variant | parse | select + summary | together |", "| --- | ---: | ---: | ---: |"]
    for name, runs in figures.items():
        parse_ms = statistics.median(run[0] for run in runs) * 1000 / trading_days
        select_ms = statistics.median(run[1] for run in runs) * 1000 / trading_days
        lines.append(f"| {name} | {parse_ms:.1f} | {select_ms:.1f} | "
                     f"{parse_ms + select_ms:.1f} |")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
