"""Parsing source CSV objects and serialising the report."""
import datetime as dt
import gzip
import io
import threading

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


def test_a_header_without_a_column_lists_the_unknown_names_shortened():
    """The message names what is missing and at most 20 unknown names, each cut to 40
    characters, then how many more (worked out by hand: 23 unknown names, 3 more)."""
    unknown = [f"Unknown{number:02d}" for number in range(22)] + ["L" * 50]
    header = HEADER.replace("Currency,", "").replace(",Time", "") + "," + ",".join(unknown)
    with pytest.raises(formats.SourceFormatError) as error:
        parse(header + "\n")
    shown = ", ".join(repr(name) for name in unknown[:20])
    assert str(error.value) == (f"bucket/key.csv: header lacks required column(s) Currency, "
                                f"Time (unknown name(s): {shown} and 3 more)")
    with pytest.raises(formats.SourceFormatError) as error:
        parse(HEADER.replace(",Time", "") + ",Extra\n")
    assert str(error.value) == ("bucket/key.csv: header lacks required column(s) Time "
                                "(unknown name(s): 'Extra')")
    with pytest.raises(formats.SourceFormatError) as error:
        parse(HEADER.replace(",Time", "") + "\n")
    assert str(error.value) == "bucket/key.csv: header lacks required column(s) Time"
    long_name = "M" * 50
    with pytest.raises(formats.SourceFormatError) as error:
        parse(HEADER.replace(",Time", "") + "," + ",".join([long_name] * 20) + "\n")
    assert str(error.value).endswith(f"(unknown name(s): {', '.join([repr('M' * 40)] * 20)})")


def test_a_source_column_named_twice_is_refused_other_names_twice_are_not():
    header = HEADER + ",ISIN,Time"
    with pytest.raises(formats.SourceFormatError) as error:
        parse(header + "\n")
    assert str(error.value) == "bucket/key.csv: header names column(s) ISIN, Time twice"
    line = bar("DE0005140008", "09:00", 1.0, 2.0, 3).line(DAY)
    parsed = parse(f"{HEADER},Extra,Extra\n{line},a,b\n")
    assert (parsed.table["ISIN"].to_pylist(), parsed.table["TradedVolume"].to_pylist()) == \
        (["DE0005140008"], [3])
    assert formats.header_names(f"{HEADER},Extra,Extra\n".encode(), "k") == \
        [*formats.SOURCE_COLUMNS, "Extra#14", "Extra#15"]


def test_a_header_without_a_line_end_is_an_object_without_rows():
    parsed = parse(HEADER)
    assert (parsed.rows_read, parsed.table.num_rows) == (0, 0)
    assert formats.header_names(HEADER.encode(), "k") == list(formats.SOURCE_COLUMNS)


def source_text(lines):
    """An object of the header and `lines`, as bytes (latin-1 keeps a stray byte as is)."""
    return (HEADER + "\n" + "\n".join(lines) + "\n").encode("latin-1")


def test_read_source_rows_gives_the_raw_fields_of_the_rows_named():
    """Rows counted as parse_source_csv counts them (a malformed line is no row), a quoted
    line break inside a field, empty fields as empty bytes, a non-UTF-8 byte kept as it is."""
    base = "DE0005140008,{m},{d},Common stock,EUR,{i},2022-04-07,09:0{n},1,1,1,1,5,1"
    lines = [base.format(m="A", d="plain", i="1", n=0),
             base.format(m="B", d='"two\nlines"', i="2", n=1),
             "DE0005140008,too,few",
             base.format(m="", d='""', i="3", n=2),
             base.format(m="D", d="M\xfcLLER", i="4", n=3)]
    data = source_text(lines)
    assert formats.parse_source_csv(data, "k.csv").table.num_rows == 4
    rows = formats.read_source_rows(data, "k.csv", ["SecurityID", "SecurityDesc", "Mnemonic"],
                                    pa.array([1, 2, 3]), 4)
    assert rows.schema == pa.schema([("Mnemonic", pa.binary()), ("SecurityDesc", pa.binary()),
                                     ("SecurityID", pa.binary())])
    assert rows.to_pylist() == [
        {"Mnemonic": b"B", "SecurityDesc": b"two\nlines", "SecurityID": b"2"},
        {"Mnemonic": b"", "SecurityDesc": b"", "SecurityID": b"3"},
        {"Mnemonic": b"D", "SecurityDesc": b"M\xfcLLER", "SecurityID": b"4"}]
    with pytest.raises(formats.SourceFormatError) as error:
        formats.read_source_rows(data, "k.csv", ["Mnemonic"], pa.array([0]), 5)
    assert str(error.value) == "k.csv: read as 4 rows, before as 5"


def test_read_source_rows_of_a_row_longer_than_a_block_and_of_no_rows():
    long_desc = "x" * (3 << 20)  # 3 MiB: longer than Arrow's 1 MiB block
    line = "DE0005140008,A,{d},Common stock,EUR,1,2022-04-07,09:00,1,1,1,1,5,1"
    data = source_text([line.format(d="short"), line.format(d=long_desc)])
    rows = formats.read_source_rows(data, "k.csv", ["SecurityDesc"], pa.array([1]), 2)
    assert rows["SecurityDesc"].to_pylist() == [long_desc.encode()]
    empty = formats.read_source_rows(source_text([])[:-1], "k.csv", ["Mnemonic"],
                                     pa.array([], pa.int64()), 0)
    assert (empty.num_rows, empty.schema) == (0, pa.schema([("Mnemonic", pa.binary())]))


def test_parquet_reports_are_zstd_compressed():
    table = pa.table({"isin": ["DE0005140008"] * 3, "daily_traded_volume": [1, 2, 3]})
    data = formats.serialise_table(table, "parquet")
    metadata = formats.parquet().ParquetFile(io.BytesIO(data)).metadata
    assert {metadata.row_group(0).column(i).compression for i in range(2)} == {"ZSTD"}


def test_start_parquet_import_imports_in_a_named_thread(monkeypatch):
    calls = []
    monkeypatch.setattr(formats, "parquet", lambda: calls.append(
        threading.current_thread().name))
    formats.start_parquet_import()
    for thread in threading.enumerate():
        if thread.name == "xetra-import-parquet":
            thread.join(5)
    assert calls == ["xetra-import-parquet"]


def test_read_source_rows_of_an_object_no_longer_a_csv_names_the_key():
    """The rows are read again in a later request: the object may have changed since."""
    with pytest.raises(formats.SourceFormatError, match="^k.csv: empty object"):
        formats.read_source_rows(b"", "k.csv", ["Mnemonic"], pa.array([0]), 1)
