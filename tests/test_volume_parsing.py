"""TradedVolume parsing (issue 16): Arrow's cast where it can decide, the careful per-value
parser where it cannot; both must give exactly the rule of docs/CONTRACT.md §2.7.

The rule, written out independently here: blanks (spaces, tabs) around the value are ignored;
what is left is an optional sign and ASCII digits only, and its value fits in int64. Anything
else is not a volume (null, so the row is invalid).
"""
# The two paths are formats' private functions: which one decides is what is tested here.
# pylint: disable=protected-access
import csv
import datetime as dt
import io
import re

import pyarrow as pa
import pytest

from xetra import formats, transform
from xetra.formats import SOURCE_COLUMNS, parse_source_csv

DAY = dt.date(2021, 3, 1)


def rule(value: str) -> int | None:
    """The contract's volume rule, by plain Python."""
    text = value.strip(" \t")
    if re.fullmatch(r"[+-]?[0-9]+", text, flags=re.ASCII) is None:
        return None
    number = int(text)
    return number if -2 ** 63 <= number <= 2 ** 63 - 1 else None


SPELLINGS = [
    "5", "0", "-0", "+0", "+5", "-5", "007", "-00005", "+0005", "0" * 30 + "5",
    " 5", "5 ", "\t5\t", " +5 ", " -5", "1 000", "",
    " ", "5.0", "5.", ".5", "5e1", "5E1", "1e2", "0x10", "0X1F", "0x", "x5", "5x", "0b1",
    "0o7", "1_000", "1,000", "--5", "+-5", "5-", "-", "+", "NaN", "nan", "inf", "-inf",
    "Infinity", "٥", "５", "12a", "9223372036854775807", "-9223372036854775808",
    "9223372036854775808", "-9223372036854775809", "99999999999999999999",
    "000000000000000000009223372036854775807", "1234567890123456789",
]


def test_the_rule_itself_on_a_few_values_worked_by_hand():
    assert rule(" +5 ") == 5
    assert rule("007") == 7
    assert rule("5e1") is None
    assert rule("0x10") is None
    assert rule("9223372036854775808") is None
    assert rule("٥") is None  # not an ASCII digit


@pytest.mark.parametrize("value", SPELLINGS)
def test_each_spelling_alone_follows_the_rule(value):
    parsed = formats._volumes(pa.chunked_array([pa.array([value, "12"], pa.string())]))
    assert parsed.to_pylist() == [rule(value), 12]


def test_all_spellings_together_follow_the_rule():
    parsed = formats._volumes(pa.chunked_array([pa.array(SPELLINGS[:20], pa.string()),
                                                pa.array(SPELLINGS[20:], pa.string())]))
    assert parsed.to_pylist() == [rule(value) for value in SPELLINGS]


def test_plain_volumes_take_the_fast_path(monkeypatch):
    def refuse(_column):
        raise AssertionError("the careful parser was used for plain volumes")
    monkeypatch.setattr(formats, "_integers", refuse)
    values = ["1", "-2", "0", "007", "9223372036854775807", "-9223372036854775808"]
    parsed = formats._volumes(pa.chunked_array([pa.array(values, pa.string())]))
    assert parsed.to_pylist() == [1, -2, 0, 7, 2 ** 63 - 1, -2 ** 63]
    assert parsed.type == pa.int64()
    empty = formats._volumes(pa.chunked_array([], pa.string()))
    assert empty.to_pylist() == [] and empty.type == pa.int64()


def test_a_hex_looking_value_goes_to_the_rule_though_arrow_would_read_it(monkeypatch):
    used = []
    careful = formats._integers
    monkeypatch.setattr(formats, "_integers", lambda column: used.append(1) or careful(column))
    parsed = formats._volumes(pa.chunked_array([pa.array(["0x10", "16"], pa.string())]))
    assert parsed.to_pylist() == [None, 16]
    assert used == [1]


def source_csv(volumes: list[str], prices: tuple[str, str, str, str] = ("1", "2", "0.5", "1.5"),
               ) -> bytes:
    """A source object with one row per volume (quoted as csv needs)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SOURCE_COLUMNS)
    for minute, volume in enumerate(volumes):
        writer.writerow(["DE0007164600", "SAP", "SAP SE", "Common stock", "EUR", "2504",
                         DAY.isoformat(), f"09:{minute % 60:02d}", *prices, volume, "3"])
    return out.getvalue().encode("utf-8")


@pytest.mark.parametrize("value", SPELLINGS)
def test_a_source_object_reads_each_spelling_by_the_rule(value):
    parsed = parse_source_csv(source_csv([value, "7"]), "test object")
    assert parsed.table["TradedVolume"].to_pylist() == [rule(value), 7]
    assert parsed.malformed_rows == 0


def test_one_object_with_every_spelling():
    parsed = parse_source_csv(source_csv(SPELLINGS), "test object")
    assert parsed.table["TradedVolume"].to_pylist() == [rule(value) for value in SPELLINGS]


def test_an_object_of_plain_volumes_does_not_use_the_careful_parser(monkeypatch):
    monkeypatch.setattr(formats, "_integers", lambda column: pytest.fail("careful parser"))
    parsed = parse_source_csv(source_csv(["1", "20", "300"]), "test object")
    assert parsed.table["TradedVolume"].to_pylist() == [1, 20, 300]


def test_which_rows_become_trades():
    """Counted by hand: volume 5e1 and -5 and 0x10 are invalid, 0 is zero volume, +5 and
    ' 6 ' are trades; a price 1e2 is a price (exponent allowed), NaN and inf are not."""
    volumes = ["5e1", "-5", "0x10", "0", "+5", " 6 "]
    table = parse_source_csv(source_csv(volumes), "test object").table
    trades, counts = transform.select_trades(table, DAY, ["EUR"])
    assert (counts.rows_read, counts.invalid, counts.zero_volume) == (6, 3, 1)
    assert trades["TradedVolume"].to_pylist() == [5, 6]
    for price, is_trade in (("1e2", True), ("NaN", False), ("inf", False), ("-1", False),
                            (" 2.5 ", True)):
        table = parse_source_csv(source_csv(["3"], (price, "200", "0.5", "1.5")),
                                 "test object").table
        trades, counts = transform.select_trades(table, DAY, ["EUR"])
        assert (trades.num_rows, counts.invalid) == ((1, 0) if is_trade else (0, 1)), price


def test_a_slice_is_read_by_the_rule_whatever_its_buffer_holds_beside_it():
    whole = pa.array(["0x10", "5", "+6", "0X7", "8"], pa.string())
    for start, length in ((1, 1), (1, 2), (0, 2), (2, 3), (4, 1), (5, 0)):
        values = whole.to_pylist()[start:start + length]
        parsed = formats._volumes(pa.chunked_array([whole.slice(start, length)], pa.string()))
        assert parsed.to_pylist() == [rule(value) for value in values], (start, length)


def test_header_is_found_without_a_line_end_too():
    header = ",".join(SOURCE_COLUMNS).encode()
    assert formats.header_names(header, "x") == list(SOURCE_COLUMNS)
    assert formats.header_names(b"\xef\xbb\xbf" + header + b"\r\nrow", "x") == \
        list(SOURCE_COLUMNS)
