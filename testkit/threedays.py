"""The small source of the fault suite: three dates of a few rows each, and its report.

Every expected report value is worked out by hand in THREE_DAYS_REPORT (see the comments
there), not computed by the code under test.
"""
from __future__ import annotations

from typing import Iterable

from testkit.sourcedata import HEADER_ONLY, hourly_key, row, rows_csv
from testkit.targets import META_KEY, Bucket, Folder, assert_report, meta_rows, report_key

# Real ISINs (Deutsche Bank, SAP, Allianz): they pass the ISIN check.
ISIN_A, ISIN_B, ISIN_C = "DE0005140008", "DE0007164600", "DE0008404005"
D1, D2, D3 = "2017-06-26", "2017-06-27", "2017-06-28"


def three_days() -> dict[str, bytes]:
    """The small source used by most fault tests: D1..D3, with header-only hours between."""
    return {
        hourly_key(D1, 8): HEADER_ONLY,
        hourly_key(D1, 9): rows_csv([row(ISIN_A, D1, "09:00", (10, 11, 9, 10.5), 100),
                                     row(ISIN_B, D1, "09:00", (50, 51, 49, 50), 10)]),
        hourly_key(D1, 10): rows_csv([row(ISIN_A, D1, "10:00", (10.5, 12, 10, 11), 200)]),
        hourly_key(D2, 9): rows_csv([row(ISIN_A, D2, "09:05", (11, 11.5, 10.8, 11.2), 50),
                                     row(ISIN_B, D2, "09:05", (50, 55, 50, 55), 20)]),
        hourly_key(D2, 10): HEADER_ONLY,
        hourly_key(D3, 11): rows_csv([row(ISIN_A, D3, "11:00", (11, 11, 11, 11), 5)]),
    }


# Expected report1 rows, by hand:
#  D1 A: open 10 (09:00), close 11 (10:00), min 9, max 12, volume 100+200; no trading day in
#        the 10 days before -> change null.  D1 B: single row, change null.
#  D2 A: close 11.2 vs 11 -> (11.2-11)/11*100 = 1.8181.. -> 1.82.  D2 B: 55 vs 50 -> 10.0.
#  D3 A: close 11 vs 11.2 -> -0.2/11.2*100 = -1.7857.. -> -1.79.
THREE_DAYS_REPORT = {
    D1: [(ISIN_A, 10.0, 11.0, 9.0, 12.0, 300, None), (ISIN_B, 50.0, 50.0, 49.0, 51.0, 10, None)],
    D2: [(ISIN_A, 11.0, 11.2, 10.8, 11.5, 50, 1.82), (ISIN_B, 50.0, 55.0, 50.0, 55.0, 20, 10.0)],
    D3: [(ISIN_A, 11.0, 11.0, 11.0, 11.0, 5, -1.79)],
}


def assert_converged(target: Folder | Bucket, dates: Iterable[str],
                     expected: dict[str, list[tuple]] | None = None) -> None:
    """The target holds exactly one report object per processed date with trades, with the
    expected rows, a meta file listing each date exactly once, and nothing else (no lock,
    no orphan, no temporary file)."""
    expected = THREE_DAYS_REPORT if expected is None else expected
    dates = sorted(dates)
    objects = target.objects()
    listed = [item["source_date"] for item in meta_rows(objects[META_KEY])]
    assert listed == dates, f"meta file lists {listed}, expected each of {dates} once"
    with_trades = [day for day in dates if expected.get(day)]
    assert sorted(objects) == sorted([META_KEY] + [report_key(day) for day in with_trades])
    for day in with_trades:
        assert_report(objects[report_key(day)], expected[day])
