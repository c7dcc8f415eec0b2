"""Parsing source CSV objects and serialising the report."""
import datetime as dt
import gzip

import pyarrow as pa
import pytest

from testkit.sourcedata import HEADER, Bar, bar, csv_bytes
from xetra import formats

DAY = dt.date(2022, 4, 7)
REAL_2022_ROW = ('DK0060534915,NOVC,"NOVO-NORDISK NAM.B DK-,20",Common stock,EUR,2505141,'
                 '2022-04-07,15:19,110.1,110.1,109.8,109.8,104,3')
REAL_2017_ROW = ('"DE000A0S9GB0","4GLD","DT.BOERSE COM. XETRA-GOLD","ETC","EUR",2506202,'
                 '2017-06-30,07:06,35.02,35.02,35.02,35.02,1998,1')


def parse(text: str | bytes):
    """Parse as the job does."""
    data = text.encode() if isinstance(text, str) else text
    return formats.parse_source_csv(data, "bucket/key.csv")


def test_header_only_sizes_are_those_of_the_bucket():
    """The bucket's header-only hours are 136 bytes (docs/CONTRACT.md section 1), 137 with
    CRLF: exactly those sizes are skipped unread (tests/test_etl.py shows the job does), and
    both parse as zero rows when read anyway."""
    assert formats.HEADER_ONLY_SIZES == {136, 137}
    for data in ((HEADER + "\n").encode(), (HEADER + "\r\n").encode()):
        assert len(data) in formats.HEADER_ONLY_SIZES
        assert parse(data).rows_read == 0


@pytest.mark.parametrize("row", [REAL_2022_ROW, REAL_2017_ROW])
def test_real_rows_quoted_commas_and_types(row):
    parsed = parse(f"{HEADER}\n{row}\n")
    assert parsed.table.schema == formats.SOURCE_SCHEMA
    assert parsed.rows_read == 1 and parsed.malformed_rows == 0
    record = parsed.table.to_pylist()[0]
    if row is REAL_2022_ROW:
        assert record["SecurityDesc"] == b"NOVO-NORDISK NAM.B DK-,20"
        assert (record["StartPrice"], record["MinPrice"], record["TradedVolume"]) == \
            (110.1, 109.8, 104)
    else:
        assert (record["ISIN"], record["Time"], record["EndPrice"]) == \
            ("DE000A0S9GB0", "07:06", 35.02)


def test_header_only_object_keeps_numeric_types():
    parsed = parse(HEADER + "\n")
    assert parsed.table.num_rows == 0
    assert parsed.table.schema.field("StartPrice").type == pa.float64()
    assert parsed.table.schema.field("TradedVolume").type == pa.int64()


def test_bad_values_become_nulls_without_losing_the_object():
    text = (f"{HEADER}\n" + bar("DE0005140008", "09:00", 1.0, 2.0, 3).line(DAY) + "\n" +
            Bar("DE0005140008", "09:01", "x1", "2", "1", "2", "3.5").line(DAY) + "\n")
    table = parse(text).table
    assert table["StartPrice"].to_pylist() == [1.0, None]
    assert table["TradedVolume"].to_pylist() == [3, None]


def test_malformed_and_truncated_lines_are_counted_not_fatal():
    good = bar("DE0005140008", "09:00", 1.0, 2.0, 3).line(DAY)
    text = f"{HEADER}\r\n{good}\r\n{good[:40]}"
    parsed = parse(text)
    assert (parsed.table.num_rows, parsed.malformed_rows, parsed.rows_read) == (1, 1, 2)


def test_bom_extra_column_other_order_and_non_utf8_description():
    columns = list(reversed(HEADER.split(","))) + ["Extra"]
    values = dict(zip(HEADER.split(","), bar("DE0005140008", "09:00", 1.0, 2.0, 3)
                      .line(DAY).replace('"TEST AG, INH."', "TEST AG").split(",")))
    values["SecurityDesc"] = "M\xfcLLER"
    line = ",".join([values[name] for name in columns[:-1]] + ["zzz"])
    data = b"\xef\xbb\xbf" + ",".join(columns).encode() + b"\n" + line.encode("latin-1") + b"\n"
    record = parse(data).table.to_pylist()[0]
    assert (record["ISIN"], record["EndPrice"], record["TradedVolume"]) == \
        ("DE0005140008", 2.0, 3)
    assert record["SecurityDesc"] == b"M\xfcLLER"


@pytest.mark.parametrize("data, problem", [
    (b"", "empty object (0 bytes)"),
    (gzip.compress(csv_bytes(DAY, [])), "gzip-compressed"),
    (HEADER.replace(",TradedVolume", "").encode() + b"\n", "lacks required column(s) "
                                                            "TradedVolume"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a CSV (unreadable header line)"),
])
def test_unreadable_objects_fail_naming_the_key(data, problem):
    with pytest.raises(formats.SourceFormatError) as error:
        parse(data)
    assert str(error.value).startswith("bucket/key.csv: ")
    assert problem in str(error.value)


@pytest.mark.parametrize("report_format", ["parquet", "csv"])
def test_serialise_round_trip(report_format):
    table = pa.table({"isin": ["DE0005140008"], "date": pa.array([DAY], pa.date32()),
                      "daily_traded_volume": pa.array([7], pa.int64())})
    back = formats.deserialise_table(formats.serialise_table(table, report_format),
                                     report_format)
    assert back.to_pylist() == [{"isin": "DE0005140008", "date": DAY,
                                 "daily_traded_volume": 7}]


def test_unknown_format_is_rejected():
    with pytest.raises(ValueError, match="unknown report format 'xlsx'"):
        formats.serialise_table(pa.table({"a": [1]}), "xlsx")
    with pytest.raises(ValueError, match="unknown report format 'xlsx'"):
        formats.deserialise_table(b"", "xlsx")


def test_parsing_only_the_trade_columns_keeps_every_row_and_count():
    rows = [REAL_2022_ROW, "DE0007164600,SAP,x,Common stock,EUR,1,2022-04-07,15:20,abc,1,1,1,5,1",
            "DE0007164600,SAP,too,few,fields"]
    data = (HEADER + "\n" + "\n".join(rows) + "\n").encode()
    full = formats.parse_source_csv(data, "k.csv")
    narrow = formats.parse_source_csv(data, "k.csv", formats.TRADE_COLUMNS)
    assert narrow.table.column_names == ["ISIN", "Currency", "Date", "Time", "StartPrice",
                                         "MaxPrice", "MinPrice", "EndPrice", "TradedVolume"]
    assert (narrow.rows_read, narrow.malformed_rows) == (full.rows_read, full.malformed_rows) \
        == (3, 1)
    # "abc" is no price: the tolerant path nulls it in the narrow read as in the full one.
    assert narrow.table["StartPrice"].to_pylist() == [110.1, None]
    assert narrow.table.equals(full.table.select(narrow.table.column_names))
    assert formats.empty_source_table(formats.TRADE_COLUMNS).schema == narrow.table.schema
