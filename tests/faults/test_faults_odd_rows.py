"""One odd row never stops a day, and a row's validity never depends on its neighbours.

Every expected value is written by hand here (or counted with the csv module), never taken
from the code under test.
"""
from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from testkit.threedays import (D1, D2, D3, ISIN_A, ISIN_B, ISIN_C, THREE_DAYS_REPORT,
                               assert_converged, three_days)
from testkit.targets import Folder, fill
from testkit.jobs import Job
from testkit.sourcedata import HEADER, hourly_key, row, rows_csv
from xetra.formats import SOURCE_COLUMNS as COLUMNS
from xetra import formats, transform

DAY = dt.date.fromisoformat(D1)
INVALID = None
# (column, text as written in the file, the row's value by the rule, or INVALID). The rule:
# blanks around a number are ignored; a price is a decimal number (sign and exponent allowed),
# finite and >= 0; a volume is an integer (sign allowed) within int64 and >= 0.
ODD_VALUES = [
    ("StartPrice", " 10", 10.0),
    ("StartPrice", "10 ", 10.0),
    ("StartPrice", "\t10", 10.0),
    ("StartPrice", "+10", 10.0),
    ("StartPrice", "1e1", 10.0),
    ("StartPrice", ".5", 0.5),
    ("StartPrice", "0x10", INVALID),
    ("StartPrice", "10,0", INVALID),
    ("StartPrice", "1e400", INVALID),
    ("StartPrice", "n/a", INVALID),
    ("TradedVolume", " 7", 7),
    ("TradedVolume", "7\t", 7),
    ("TradedVolume", "+5", 5),
    ("TradedVolume", "007", 7),
    ("TradedVolume", "9223372036854775807", 9223372036854775807),
    ("TradedVolume", "9223372036854775808", INVALID),
    ("TradedVolume", "-9223372036854775809", INVALID),
    ("TradedVolume", "99999999999999999999999", INVALID),
    ("TradedVolume", "0x10", INVALID),
    ("TradedVolume", "5.0", INVALID),
    ("TradedVolume", "1e3", INVALID),
]
GOOD = row(ISIN_A, D1, "09:00", (10, 11, 9, 10.5), 100)
NOT_A_NUMBER = row(ISIN_B, D1, "09:02", ("n/a", 11, 9, 10), 3)  # forces the tolerant path


def trades_of(data: bytes) -> tuple[list[dict], transform.RowCounts]:
    """Parse one object and select its trades, as the job does."""
    parsed = formats.parse_source_csv(data, "odd.csv", formats.TRADE_COLUMNS)
    trades, counts = transform.select_trades(parsed.table, DAY, ["EUR"], parsed.malformed_rows)
    return trades.to_pylist(), counts


@pytest.mark.parametrize("column, text, expected", ODD_VALUES,
                         ids=[f"{c}={t!r}" for c, t, _ in ODD_VALUES])
def test_a_rows_validity_does_not_depend_on_its_neighbours(column, text, expected):
    """The odd row alone with a good row, and the same two rows beside an `n/a` price (which
    sends the object through the tolerant parse): the same decision, the one by the rule."""
    odd = {**row(ISIN_C, D1, "09:01", (10, 11, 9, 10), 7), column: text}
    for neighbours in ([GOOD], [GOOD, NOT_A_NUMBER]):
        trades, counts = trades_of(rows_csv([*neighbours, odd]))
        odd_trades = [t for t in trades if t["ISIN"] == ISIN_C]
        invalid_neighbours = len(neighbours) - 1
        if expected is INVALID:
            assert odd_trades == [] and counts.invalid == 1 + invalid_neighbours
        else:
            assert [t[column] for t in odd_trades] == [expected]
            assert counts.invalid == invalid_neighbours
        assert [t["ISIN"] for t in trades if t["ISIN"] != ISIN_C] == [ISIN_A]


def with_odd_row(odd: dict[str, str] | bytes) -> dict[str, bytes]:
    """The three-day source with one odd row (or raw line) added to D1's 09 object."""
    objects = three_days()
    line = odd if isinstance(odd, bytes) else rows_csv([odd]).split(b"\n", 1)[1]
    objects[hourly_key(D1, 9)] += line
    return objects


LONG_DESC = "X" * 3_000_000  # longer than two blocks of 1 MiB
# The odd row, the counts it gives by hand, and D1's report rows (ISIN_C traded or not).
ODD_ROWS = {
    "volume_beyond_int64": (row(ISIN_C, D1, "09:30", (5, 5, 5, 5), "9223372036854775808"),
                            "invalid=1", []),
    "volume_with_plus_sign": (row(ISIN_C, D1, "09:30", (5, 6, 4, 5.5), "+5"), "invalid=0",
                              [(ISIN_C, 5.0, 5.5, 4.0, 6.0, 5, None)]),
    "three_megabyte_description": (row(ISIN_C, D1, "09:30", (5, 6, 4, 5.5), 5,
                                     SecurityDesc=LONG_DESC), "invalid=0",
                                 [(ISIN_C, 5.0, 5.5, 4.0, 6.0, 5, None)]),
    "three_megabyte_price": (row(ISIN_C, D1, "09:30", ("5" * 3_000_000, 6, 4, 5.5), 5),
                           "invalid=1", []),  # three million digits: infinite
    "fifteen_fields": (b"DE0008404005,MNE,SOME SHARE,Common stock,EUR,1,2017-06-26,09:30,"
                       b"5,6,4,5.5,5,1,EXTRA\n", "invalid=1", []),
    "binary_junk_line": (b"\x00\x01\x02\xff garbage\n", "invalid=1", []),
}


@pytest.mark.parametrize("skip", [False, True], ids=["default", "skip_bad_objects"])
@pytest.mark.parametrize("kind", list(ODD_ROWS))
def test_one_odd_row_never_stops_the_day(tmp_path, kind, skip):
    """D1 gets one odd row: the run succeeds, the row is a trade or one invalid row, and no
    object is skipped. Reports by hand: THREE_DAYS_REPORT, plus ISIN_C on D1 when the row is
    a trade (open 5, close 5.5, min 4, max 6, volume 5; no earlier day, change null)."""
    odd, invalid, extra = ODD_ROWS[kind]
    source = Folder(tmp_path / "source")
    fill(source, with_odd_row(odd))
    job = Job(tmp_path, source, Folder(tmp_path / "target"), job={"skip_bad_objects": skip})
    result = job.run("--to", D3)
    assert result.code == 0, result
    rows_read = 3 + 1 + 2 + 1  # D1: 3 rows and the odd one, D2: 2, D3: 1
    assert result.summary.startswith(f"dates processed=3 ({D1}..{D3}), rows read={rows_read}, "
                                     f"rows dropped: {invalid} ")
    assert "skipped bad objects" not in result.summary
    expected = dict(THREE_DAYS_REPORT)
    expected[D1] = sorted(THREE_DAYS_REPORT[D1] + extra)
    assert_converged(job.target, [D1, D2, D3], expected)


def large_object_with_line_breaks(rows: int, breaks: int) -> tuple[bytes, int]:
    """An hourly object of D1 with `rows` distinct trades of ISIN_A (NumberOfTrades tells
    them apart, so none is a duplicate); `breaks` of them hold a quoted
    description with a line break placed so that it ends a 1 MiB block of the file exactly
    (where a reader cutting blocks at line breaks cuts the row in two). Returns the data and
    the volume sum, counted with the csv module."""
    out = io.BytesIO()
    out.write(HEADER.encode() + b"\n")
    boundary, placed, written = 1 << 20, 0, 0
    prefix = f'{ISIN_A},MNE,"'.encode()
    while written < rows:
        volume = written % 97 + 1
        plain = rows_csv([row(ISIN_A, D1, f"09:{written % 60:02d}", (10, 11, 9, 10),
                               volume, NumberOfTrades=str(written))]).split(b"\n", 1)[1]
        room = boundary - out.tell()
        # The last chance before the boundary: a plain row would leave too little room.
        if placed < breaks and len(prefix) < room <= len(prefix) + len(plain):
            out.write(prefix + b"Y" * (room - len(prefix) - 1) + b"\nBAR, INC\",Common stock,"
                      + f"EUR,1,{D1},10:{placed:02d},10,11,9,10,{volume},1\n".encode())
            placed += 1
        else:
            out.write(plain)
        if out.tell() >= boundary:
            boundary += 1 << 20
        written += 1
    data = out.getvalue()
    assert placed == breaks
    volumes = [int(r["TradedVolume"]) for r in csv.DictReader(io.StringIO(data.decode()))]
    assert len(volumes) == rows
    return data, sum(volumes)


@pytest.mark.parametrize("breaks", [1, 2])
def test_quoted_line_breaks_in_a_large_object_lose_no_row(tmp_path, breaks):
    """30,007 rows (3.2 MB) with descriptions like "YYY<newline>BAR, INC" cut by block
    boundaries: every row is a trade; the volume is the csv module's sum."""
    data, volume = large_object_with_line_breaks(30_007, breaks)
    source = Folder(tmp_path / "source")
    fill(source, {hourly_key(D1, 9): data})
    job = Job(tmp_path, source, Folder(tmp_path / "target"))
    result = job.run("--to", D1)
    assert result.code == 0, result
    assert result.summary.startswith(f"dates processed=1 ({D1}..{D1}), rows read=30007, "
                                     f"rows dropped: invalid=0 zero_volume=0 other_currency=0 "
                                     f"duplicate=0, report rows=1")
    assert_converged(job.target, [D1], {D1: [(ISIN_A, 10.0, 10.0, 9.0, 11.0, volume, None)]})


HEADER_SPELLINGS = {
    "trailing_blanks": ",".join(name + " " for name in COLUMNS),
    "leading_blanks_and_tabs": ",".join(("\t" if i % 2 else " ") + name
                                        for i, name in enumerate(COLUMNS)),
    "quoted_with_blanks": ",".join(f'" {name} "' for name in COLUMNS),
}


@pytest.mark.parametrize("kind", list(HEADER_SPELLINGS))
def test_header_names_with_blanks_are_read(tmp_path, kind):
    """Blanks around header names do not hide the columns: the three days give the report
    worked out by hand."""
    header = HEADER_SPELLINGS[kind].encode()
    objects = {key: header + data[len(HEADER):] for key, data in three_days().items()}
    source = Folder(tmp_path / "source")
    fill(source, objects)
    job = Job(tmp_path, source, Folder(tmp_path / "target"))
    result = job.run("--to", D3)
    assert result.code == 0, result
    assert_converged(job.target, [D1, D2, D3])


@pytest.mark.parametrize("header, problem", [
    (HEADER.replace(",", ";"), "header lacks required column(s) " + ", ".join(COLUMNS) +
     " (unknown name(s): '" + HEADER.replace(",", ";")[:40] + "')\n"),
    (HEADER.replace("ISIN", "Isin"), "header lacks required column(s) ISIN (unknown name(s): "
     "'Isin')\n"),
    (HEADER + ",ISIN", "header names column(s) ISIN twice"),
])
def test_a_header_that_is_really_wrong_is_named(tmp_path, header, problem):
    """A header that lacks columns names those and the names it has instead; a column named
    twice is named."""
    source = Folder(tmp_path / "source")
    data_line = rows_csv([row(ISIN_A, D2, "11:00", (1, 1, 1, 1), 1)]).split(b"\n", 1)[1]
    fill(source, {**three_days(), hourly_key(D2, 11): header.encode() + b"\n" + data_line})
    job = Job(tmp_path, source, Folder(tmp_path / "target"))
    result = job.run("--to", D3)
    assert result.code == 1, result
    assert result.err.startswith(f"xetra: run failed: {source.url}/{hourly_key(D2, 11)}: "
                                 f"{problem}"), result.err
    assert len(result.err.splitlines()) == 1
    assert_converged(job.target, [D1])
