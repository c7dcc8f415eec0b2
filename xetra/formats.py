"""Bytes to typed Arrow tables and back: the Xetra source CSV and the report formats. No I/O."""
from __future__ import annotations

import codecs
import csv
import datetime as dt
import importlib
import io
import re
import threading
from dataclasses import dataclass
from typing import Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from xetra import arrow_values as av
from xetra.errors import SourceFormatError

SOURCE_COLUMNS = ("ISIN", "Mnemonic", "SecurityDesc", "SecurityType", "Currency", "SecurityID",
                  "Date", "Time", "StartPrice", "MaxPrice", "MinPrice", "EndPrice",
                  "TradedVolume", "NumberOfTrades")
# The header line of Deutsche Börse's objects. An object holding only it (LF or CRLF line
# end) has no rows: its listed size tells, so it need not be fetched.
SOURCE_HEADER = ",".join(SOURCE_COLUMNS)
HEADER_ONLY_SIZES = frozenset({len(SOURCE_HEADER) + 1, len(SOURCE_HEADER) + 2})
PRICE_COLUMNS = ("StartPrice", "MaxPrice", "MinPrice", "EndPrice")
TEXT_KEY_COLUMNS = ("ISIN", "Currency", "Date", "Time")

# Explicit types: a header-only or odd object can never turn numbers into text. Columns the
# report does not use stay raw bytes, so a stray non-UTF-8 byte in a description is harmless.
SOURCE_TYPES = {
    **{name: pa.binary() for name in SOURCE_COLUMNS},
    **{name: pa.string() for name in TEXT_KEY_COLUMNS},
    **{name: pa.float64() for name in PRICE_COLUMNS},
    "TradedVolume": pa.int64(),
}
SOURCE_SCHEMA = pa.schema([(name, SOURCE_TYPES[name]) for name in SOURCE_COLUMNS])
# What the report needs; parsing only these is ~15 % cheaper and holds ~40 % less per day.
TRADE_COLUMNS = ("ISIN", "Currency", "Date", "Time", *PRICE_COLUMNS, "TradedVolume")

# One rule for every value, whichever path reads it (the fast typed parse, or the tolerant
# one used when some value of the object does not parse): blanks around a number are ignored;
# a price is a decimal number (sign, exponent allowed); a volume is an integer within int64.
# Arrow's float parser accepts exactly these spellings (checked on 105k generated strings), so
# prices are parsed by the CSV reader. Its integer parser refuses "+5" and takes "0x10" as 16,
# so volumes are read as text: when no value holds an x (hex), Arrow's cast converts them
# (it accepts a subset of the rule: digits with an optional minus, within int64), and when a
# value holds an x or the cast refuses one, _integers() applies the rule to each distinct
# value (tests/test_volume_parsing.py checks both against the rule).
_FAST_TYPES = {**SOURCE_TYPES, "TradedVolume": pa.string()}
BLANKS = " \t"
_NUMBER = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_INTEGER = r"^[+-]?[0-9]+$"
_SAFE_INTEGER = r"^[+-]?0*[0-9]{1,18}$"  # at most 18 digits: always within int64
_ASCII_TEXT = r"^[\t\x20-\x7e]*$"
_HOURLY_KEY = re.compile(r"(\d{4}-\d\d-\d\d)/\1_BINS_XETR([01]\d|2[0-3])\.csv")
_INT64 = (-2 ** 63, 2 ** 63 - 1)
# Arrow reads a CSV in blocks of 1 MiB; a row longer than a block (a 2 MB description) needs
# a block as large as the object.
_BLOCK_SIZE = 1 << 20


def is_hourly_object(key: str, day: dt.date) -> bool:
    """True for the key of one of `day`'s own hourly objects (relative to the source root):
    `YYYY-MM-DD/YYYY-MM-DD_BINS_XETRHH.csv` with HH 00..23. Per-minute objects
    (`..._XETRHHMM.csv`) and anything in a folder below the date's (`YYYY-MM-DD/backup/...`)
    are not source."""
    date = day.isoformat()
    return _HOURLY_KEY.fullmatch(key) is not None and key.startswith(f"{date}/{date}_")


@dataclass(frozen=True)
class ParsedSource:
    """One source object as a typed table; `malformed_rows` lines were in rows with the wrong
    number of fields (a row swallowed by a stray quote counts each of its lines)."""

    table: pa.Table
    malformed_rows: int

    @property
    def rows_read(self) -> int:
        """Data lines in the object, malformed ones included."""
        return self.table.num_rows + self.malformed_rows


def source_schema(columns: Sequence[str] = SOURCE_COLUMNS) -> pa.Schema:
    """The source schema, or the part of it with `columns` (in source order)."""
    return pa.schema([field for field in SOURCE_SCHEMA if field.name in columns])


def empty_source_table(columns: Sequence[str] = SOURCE_COLUMNS) -> pa.Table:
    """A table with the source schema (or its `columns`) and no rows."""
    # Not Schema.empty_table(): that imports pandas (40 MB, 0.2 s) for nothing.
    return pa.Table.from_batches([], schema=source_schema(columns))


def _shown(names: Sequence[str], limit: int = 20) -> str:
    """Header names for a message, at most `limit` of them and 40 characters each."""
    shown = ", ".join(repr(name[:40]) for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def header_names(data: bytes, where: str) -> list[str]:
    """The column names of the object's header line, blanks around each name removed.

    SourceFormatError when the object is not a Xetra CSV at all: empty, compressed, binary,
    or a header without every source column (the message says what the header holds).
    """
    if not data:
        raise SourceFormatError(f"{where}: empty object (0 bytes), expected at least the "
                                f"CSV header")
    if data[:2] == b"\x1f\x8b":
        raise SourceFormatError(f"{where}: gzip-compressed data, not a CSV")
    end = data.find(b"\n")  # not split(): that copies the whole object (~0.2 ms each)
    first_line = (data if end < 0 else data[:end]).removeprefix(codecs.BOM_UTF8).rstrip(b"\r")
    try:
        header = next(csv.reader([first_line.decode("utf-8")]))
    except (UnicodeDecodeError, csv.Error, StopIteration) as exc:
        raise SourceFormatError(f"{where}: not a CSV (unreadable header line)") from exc
    names = [name.strip(BLANKS) for name in header]
    missing = [name for name in SOURCE_COLUMNS if name not in names]
    if missing:
        unknown = [name for name in names if name not in SOURCE_COLUMNS]
        raise SourceFormatError(f"{where}: header lacks required column(s) "
                                f"{', '.join(missing)}"
                                f"{f' (unknown name(s): {_shown(unknown)})' if unknown else ''}")
    twice = sorted({name for name in names if names.count(name) > 1 and name in SOURCE_COLUMNS})
    if twice:
        raise SourceFormatError(f"{where}: header names column(s) {', '.join(twice)} twice")
    # Arrow needs distinct names for the columns it does not read too.
    return [name if names.count(name) == 1 else f"{name}#{index}"
            for index, name in enumerate(names)]


def _read(data: bytes, names: list[str], column_types: dict[str, pa.DataType],
          columns: Sequence[str]) -> tuple[pa.Table, int]:
    """Rows with the right number of fields, and how many had another number (malformed).

    A quoted field may hold line breaks. Arrow only cuts blocks at line breaks outside quotes
    when told to (`newlines_in_values`, ~40 % slower), so the object is read fast first and
    again that way only when a row was malformed, which a cut inside quotes makes happen.
    """
    table, malformed = _read_blocks(data, names, column_types, columns, False)
    if malformed:
        table, malformed = _read_blocks(data, names, column_types, columns, True)
    return table, malformed


def _read_blocks(data: bytes, names: list[str], column_types: dict[str, pa.DataType],
                 columns: Sequence[str], newlines_in_values: bool) -> tuple[pa.Table, int]:
    malformed: list[int] = []

    def skip_malformed(row: pacsv.InvalidRow) -> str:
        # Each line counts: a stray quote can swallow the rest of an object into one row.
        malformed.append(row.text.count("\n") + 1)
        return "skip"

    def read(block_size: int, encoding: str) -> pa.Table:
        malformed.clear()
        # A BufferReader, not a BytesIO: Arrow reads the bytes in place instead of calling
        # back into Python (under the GIL) for every block (parse CPU -9 %, wall -15 %).
        return pacsv.read_csv(
            pa.BufferReader(data),
            read_options=_read_options(names, block_size, encoding),
            parse_options=pacsv.ParseOptions(newlines_in_values=newlines_in_values,
                                             invalid_row_handler=skip_malformed),
            convert_options=pacsv.ConvertOptions(
                column_types={name: column_types[name] for name in columns},
                include_columns=list(columns),
                null_values=[""], strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    return _robustly(read, len(data)), sum(malformed)


def _read_options(names: list[str], block_size: int, encoding: str) -> pacsv.ReadOptions:
    # Our own (stripped) names: a header "ISIN ,..." still finds its columns.
    return pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=block_size,
                             encoding=encoding)


def _robustly(read: Callable[[int, str], pa.Table], size: int) -> pa.Table:
    """read(block size, encoding), again as needed so that no single row stops the object:

    - a row longer than a block (a 2 MB field) needs one block for the whole object;
    - pyarrow hands a malformed row to our handler as UTF-8 text and fails on a row with
      bytes that are not UTF-8: the object is then read as latin-1, which maps every byte.
      No value the report uses changes (prices, volumes, ISIN, Date, Time are ASCII).
    """
    block_size, encoding = _BLOCK_SIZE, "utf8"
    for _ in range(3):
        try:
            return read(block_size, encoding)
        except pa.ArrowInvalid as exc:
            if "straddl" in str(exc) and block_size <= size:
                block_size = size + 1
            elif str(exc).startswith("CSV parse error") and encoding == "utf8":
                encoding = "latin-1"
            else:
                raise
    return read(block_size, encoding)


def _ascii(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Raw values as text; values with bytes outside printable ASCII (or tab) become null."""
    printable = pc.fill_null(pc.match_substring_regex(values, _ASCII_TEXT), av.FALSE)
    return pc.cast(pc.if_else(printable, values, av.null(values.type)), pa.string())


def _only_matching(text: pa.Array | pa.ChunkedArray, pattern: str,
                   target: pa.DataType) -> pa.Array | pa.ChunkedArray:
    """Text values matching `pattern` converted to `target`; everything else becomes null."""
    matching = pc.fill_null(pc.match_substring_regex(text, pattern), av.FALSE)
    return pc.cast(pc.if_else(matching, text, av.null(pa.string())), target)


def _numbers(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Raw price values as float64 by the rule above; anything else null."""
    return _only_matching(pc.utf8_trim(_ascii(column), BLANKS), _NUMBER, pa.float64())


def _integers(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Raw volume values as int64 by the rule above; anything else null. Converts each
    distinct value once (a 2021 day holds ~50k distinct volumes in 1.2M rows)."""
    encoded = pc.dictionary_encode(av.combined(column))
    text = pc.utf8_trim(_ascii(encoded.dictionary), BLANKS)
    # Arrow's cast refuses a plus sign: drop it once the value has matched the rule.
    values = pc.cast(pc.if_else(pc.fill_null(pc.match_substring_regex(text, _SAFE_INTEGER),
                                             av.FALSE),
                                pc.utf8_ltrim(text, "+"), av.null(pa.string())),
                     pa.int64())
    long = pc.and_(pc.is_null(values),
                   pc.fill_null(pc.match_substring_regex(text, _INTEGER), av.FALSE))
    if pc.any(long).as_py():  # 19 digits or more: Python decides what fits in int64
        values = pa.array([int(item) if is_long and _INT64[0] <= int(item) <= _INT64[1]
                           else value for item, is_long, value
                           in zip(text.to_pylist(), long.to_pylist(), values.to_pylist())],
                          pa.int64())
    return pa.chunked_array([pc.take(values, encoded.indices)], pa.int64())


def _volumes(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Volume text as int64 by the rule above: Arrow's cast when it can decide every value
    (no x anywhere, and it refuses none), else _integers()."""
    text = av.combined(column)
    # The values' bytes, searched at once (4 us; a match per value is ~1 ms an object). The
    # buffer may hold bytes of values outside a sliced array: at worst the rule decides.
    data = text.buffers()[2] if len(text) else None
    raw = b"" if data is None else data.to_pybytes()
    if b"x" not in raw and b"X" not in raw:
        try:
            return pa.chunked_array([pc.cast(text, pa.int64())], pa.int64())
        except pa.ArrowInvalid:
            pass  # a value the cast refuses ("+5", " 5", "5e1", "", too long): the rule decides
    return _integers(column)


def _read_tolerant(data: bytes, names: list[str], wanted: Sequence[str]) -> tuple[pa.Table, int]:
    """Slow path for objects with values that do not parse: bad values become nulls."""
    raw, malformed = _read(data, names, {name: pa.binary() for name in SOURCE_COLUMNS}, wanted)
    columns = {}
    for name in wanted:
        column = raw.column(name)
        if name in PRICE_COLUMNS:
            columns[name] = _numbers(column)
        elif name == "TradedVolume":
            columns[name] = _integers(column)
        elif name in TEXT_KEY_COLUMNS:
            columns[name] = _ascii(column)
        else:
            columns[name] = column
    return pa.table(columns, schema=source_schema(wanted)), malformed


def parse_source_csv(data: bytes, where: str,
                     columns: Sequence[str] = SOURCE_COLUMNS) -> ParsedSource:
    """Parse one hourly Xetra CSV object (only `columns` of it, in source order); values that
    do not parse become nulls. Every row still counts, and rows with the wrong number of
    fields are malformed, whichever columns are kept."""
    names = header_names(data, where)
    if b"\n" not in data:
        data += b"\n"  # the header alone without a line end: Arrow cannot skip it as a row
    columns = [name for name in SOURCE_COLUMNS if name in columns]
    try:
        table, malformed = _read(data, names, _FAST_TYPES, columns)
        if "TradedVolume" in columns:
            table = table.set_column(table.schema.get_field_index("TradedVolume"),
                                     "TradedVolume", _volumes(table["TradedVolume"]))
    except (pa.ArrowInvalid, UnicodeDecodeError):
        try:
            table, malformed = _read_tolerant(data, names, columns)
        except pa.ArrowInvalid as exc:
            raise SourceFormatError(f"{where}: not a readable CSV: "
                                    f"{str(exc).splitlines()[0][:200]}") from exc
    return ParsedSource(table.select(columns), malformed)


def read_source_rows(data: bytes, where: str, columns: Sequence[str], rows: pa.Array,
                     expected_rows: int) -> pa.Table:
    """The raw `columns` of the data rows at positions `rows` (ascending, counted as in the
    table parse_source_csv returns, whose row count `expected_rows` is) of one object.

    Reads block by block and keeps only those rows, so memory stays that of one block and
    the rows kept, whatever the object's size. SourceFormatError when the object now reads as
    another number of rows than before.
    """
    names = header_names(data, where)
    wanted = [name for name in SOURCE_COLUMNS if name in columns]

    def read(block_size: int, encoding: str) -> pa.Table:
        reader = pacsv.open_csv(
            pa.BufferReader(data), read_options=_read_options(names, block_size, encoding),
            parse_options=pacsv.ParseOptions(newlines_in_values=True,
                                             invalid_row_handler=lambda _row: "skip"),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.binary() for name in wanted}, include_columns=wanted,
                null_values=[""], strings_can_be_null=False, quoted_strings_can_be_null=False))
        kept, start = [], 0
        for batch in reader:
            end = start + batch.num_rows
            inside = pc.and_(pc.greater_equal(rows, start), pc.less(rows, end))
            kept.append(batch.take(pc.subtract(rows.filter(inside), start)))
            start = end
        if start != expected_rows:
            raise SourceFormatError(f"{where}: read as {start} rows, before as {expected_rows}")
        return pa.Table.from_batches(kept, schema=pa.schema([(n, pa.binary()) for n in wanted]))
    return _robustly(read, len(data))


def parquet():
    """The pyarrow.parquet module, imported on first use: its import (~50 ms CPU) is not paid
    by runs that write no parquet, and a run starts it in the background
    (start_parquet_import) while it reads its first day."""
    return importlib.import_module("pyarrow.parquet")


def start_parquet_import() -> None:
    """Import pyarrow.parquet in a background thread (a later parquet() waits for it through
    Python's import lock), so that the import overlaps the reading of the first day rather
    than delaying the first write."""
    # Not a daemon: the interpreter never stops in the middle of the import.
    threading.Thread(target=parquet, name="xetra-import-parquet").start()


def serialise_table(table: pa.Table, report_format: str) -> bytes:
    """The report table as parquet or CSV bytes."""
    sink = io.BytesIO()
    if report_format == "parquet":
        parquet().write_table(table, sink, compression="zstd")
    elif report_format == "csv":
        pacsv.write_csv(table, sink)
    else:
        raise ValueError(f"unknown report format {report_format!r}")
    return sink.getvalue()


def deserialise_table(data: bytes, report_format: str) -> pa.Table:
    """Read back a report object written by serialise_table."""
    if report_format == "parquet":
        return parquet().read_table(pa.BufferReader(data))
    if report_format == "csv":
        return pacsv.read_csv(pa.BufferReader(data))
    raise ValueError(f"unknown report format {report_format!r}")
