"""Exact duplicate rows count once, and finding them costs no more memory than a day without:
only the trades that share ISIN and Time with another are compared on the columns the report
does not read, fetched for exactly those rows. The bound for a large day is measured by
`python -m benchmarks.duplicate_memory` (figures in the README); here a modest day."""
from __future__ import annotations

from pathlib import Path

import pytest

from testkit.duplicate_memory import peak_rss_mb, with_duplicates, write_day
from testkit.threedays import (D1, D2, D3, ISIN_A, ISIN_B, THREE_DAYS_REPORT, assert_converged,
                               three_days)
from testkit.targets import Folder, fill
from testkit.jobs import Job
from testkit.sourcedata import hourly_key, row, rows_csv
from xetra import formats

A_0900 = row(ISIN_A, D1, "09:00", (10, 11, 9, 10.5), 100)  # D1's first row in three_days()


@pytest.fixture
def reads(monkeypatch) -> dict[str, list]:
    """Every parse of a source object (its columns) and every fetch of other columns (rows)."""
    seen: dict[str, list] = {"parsed_columns": [], "other_rows": []}
    parse, read_rows = formats.parse_source_csv, formats.read_source_rows

    def parse_spy(data, where, columns=formats.SOURCE_COLUMNS):
        seen["parsed_columns"].append(tuple(columns))
        return parse(data, where, columns)

    def read_rows_spy(data, where, columns, rows, expected_rows):
        seen["other_rows"].append((where.rsplit("/", 1)[-1], rows.to_pylist()))
        return read_rows(data, where, columns, rows, expected_rows)
    monkeypatch.setattr(formats, "parse_source_csv", parse_spy)
    monkeypatch.setattr(formats, "read_source_rows", read_rows_spy)
    return seen


# D1's objects, the duplicates dropped (by hand), the other-column fetches (object, rows in it)
# and D1's report by hand when it differs from THREE_DAYS_REPORT.
CASES = {
    "one_exact_duplicate": (
        {hourly_key(D1, 9): rows_csv([A_0900, row(ISIN_B, D1, "09:00", (50, 51, 49, 50), 10),
                                       A_0900])},
        1, [(f"{D1}_BINS_XETR09.csv", [0, 2])], None),
    "same_minute_other_description": (
        {hourly_key(D1, 9): rows_csv([A_0900, row(ISIN_B, D1, "09:00", (50, 51, 49, 50), 10),
                                       {**A_0900, "SecurityDesc": "OTHER"}])},
        0, [(f"{D1}_BINS_XETR09.csv", [0, 2])],
        # A: 09:00 twice (volume 100 each, both trades) and 10:00 -> volume 400.
        [(ISIN_A, 10.0, 11.0, 9.0, 12.0, 400, None), THREE_DAYS_REPORT[D1][1]]),
    "duplicate_in_another_object": (
        {hourly_key(D1, 10): rows_csv([A_0900,
                                        row(ISIN_A, D1, "10:00", (10.5, 12, 10, 11), 200)])},
        1, [(f"{D1}_BINS_XETR09.csv", [0]), (f"{D1}_BINS_XETR10.csv", [0])], None),
    "three_copies_and_a_near_copy": (
        {hourly_key(D1, 9): rows_csv([A_0900, row(ISIN_B, D1, "09:00", (50, 51, 49, 50), 10),
                                       A_0900, {**A_0900, "NumberOfTrades": "2"}, A_0900])},
        2, [(f"{D1}_BINS_XETR09.csv", [0, 2, 3, 4])],
        [(ISIN_A, 10.0, 11.0, 9.0, 12.0, 400, None), THREE_DAYS_REPORT[D1][1]]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_duplicates_are_found_from_the_rows_that_share_isin_and_time(tmp_path, reads, case):
    """The counts and reports by hand; no object is ever parsed with all 14 columns, and the
    other columns are fetched for exactly the rows sharing ISIN and Time."""
    objects, duplicates, fetched, d1_report = CASES[case]
    source = Folder(tmp_path / "source")
    fill(source, {**three_days(), **objects})
    job = Job(tmp_path, source, Folder(tmp_path / "target"))
    result = job.run("--to", D3)
    assert result.code == 0, result
    assert f"duplicate={duplicates}, " in result.summary
    assert formats.SOURCE_COLUMNS not in reads["parsed_columns"]
    assert reads["other_rows"] == fetched
    expected = dict(THREE_DAYS_REPORT)
    if d1_report is not None:
        expected[D1] = d1_report
        # D2 compares with D1's closes, which are unchanged (A 11, B 50).
    assert_converged(job.target, [D1, D2, D3], expected)


def test_peak_memory_does_not_depend_on_duplicates(tmp_path):
    """A synthetic day of ~12 MB run as a process: peak RSS with one duplicate row, and with
    every row of its largest object twice, within 10 % (+ 10 MB) of the day without. (Before,
    one duplicate re-read the day with all columns: 1.8x on a 24 MB day.)"""
    base = tmp_path / "none"
    largest = write_day(base, 10, one_object=False)
    variants = {"none": base}
    for name, every_row in (("one", False), ("all", True)):
        variants[name] = tmp_path / name
        with_duplicates(base, variants[name], largest, every_row)
    repo = Path(__file__).resolve().parents[2]
    runs = {name: peak_rss_mb(repo, source, tmp_path) for name, source in variants.items()}
    assert [runs[name][1] for name in ("none", "one")] == [0, 1]  # the copy was a trade
    assert runs["all"][1] > 1000
    peaks = {name: peak for name, (peak, _) in runs.items()}
    assert peaks["one"] <= peaks["none"] * 1.10 + 10, peaks
    assert peaks["all"] <= peaks["none"] * 1.10 + 10, peaks
