"""The report's domain logic: pure functions on Arrow tables, no I/O (docs/CONTRACT.md, 2)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from xetra import arrow_values as av
from xetra.errors import NeedsAllColumns
from xetra.formats import PRICE_COLUMNS, SOURCE_COLUMNS, TRADE_COLUMNS

_ISIN = r"^[A-Z]{2}[A-Z0-9]{9}[0-9]$"
# HH:MM as published; HH:MM:SS too, so that a feed with seconds is read rather than lost
# (times of either form order correctly as text: "09:05" < "09:05:30" < "09:06").
_TIME = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$"

# What the summary reads of a trade. Date (the day's own) and Currency (one of the report's)
# are checked and dropped: filtering two string columns fewer is ~45 % cheaper.
TRADE_FIELDS = tuple(name for name in TRADE_COLUMNS if name not in ("Date", "Currency"))

# Logical report columns in output order, with their Arrow types.
REPORT_SCHEMA = pa.schema([
    ("isin", pa.string()),
    ("date", pa.date32()),
    ("opening_price", pa.float64()),
    ("closing_price", pa.float64()),
    ("minimum_price", pa.float64()),
    ("maximum_price", pa.float64()),
    ("daily_traded_volume", pa.int64()),
    ("change_prev_closing", pa.float64()),
])
CLOSES_SCHEMA = pa.schema([("isin", pa.string()), ("previous_close", pa.float64())])
# The largest ISIN x Time key space checked with a table of flags (_any_pair_shares_a_key):
# 64 MB at most, and allocated lazily by the system, so only the pages touched cost.
_MAX_DIRECT_KEYS = 1 << 26
_ZERO_PRICE = av.float64(0.0)
_ZERO_VOLUME = av.int64(0)
_HUNDRED = av.float64(100.0)


@dataclass
class RowCounts:
    """Source rows read, and rows that are not trades, by reason."""

    rows_read: int = 0
    invalid: int = 0
    zero_volume: int = 0
    other_currency: int = 0
    duplicate: int = 0

    def add(self, other: "RowCounts") -> None:
        """Accumulate another count into this one."""
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))

    @property
    def dropped(self) -> int:
        """Rows that did not become trades."""
        return self.invalid + self.zero_volume + self.other_currency + self.duplicate

    @property
    def invalid_share(self) -> float:
        """The share of rows read that are invalid (0.0 when no rows were read)."""
        return self.invalid / self.rows_read if self.rows_read else 0.0


def _all_true(conditions: Sequence[pa.ChunkedArray | pa.Array]) -> pa.Array:
    result = conditions[0]
    for condition in conditions[1:]:
        result = pc.and_kleene(result, condition)
    return pc.fill_null(result, av.FALSE)


def _dictionary(column: pa.ChunkedArray | pa.Array) -> pa.DictionaryArray:
    """The column as one dictionary array: each distinct value once, rows as indices (a
    column that already is one is kept; its dictionary may hold values no row uses)."""
    column = av.combined(column)
    if pa.types.is_dictionary(column.type):
        return column
    return pc.dictionary_encode(column)


def _matches_per_value(column: pa.ChunkedArray | pa.DictionaryArray, pattern: str) -> pa.Array:
    """match_substring_regex, run once per distinct value: a 2021 day has 125k rows but only
    ~3k ISINs and < 1440 times, so this is ~3x cheaper than matching every row."""
    encoded = _dictionary(column)
    return pc.take(pc.match_substring_regex(encoded.dictionary, pattern), encoded.indices)


def _small_codes(ranks: np.ndarray) -> np.ndarray:
    """Ranks or codes (>= 0) in the smallest unsigned type that holds them: numpy sorts 16-bit
    integers stably in linear time (radix sort)."""
    top = int(ranks.max()) if len(ranks) else 0
    return ranks.astype(np.uint16 if top < 1 << 16 else np.uint32 if top < 1 << 32 else
                        np.uint64)


def _ranks(encoded: pa.DictionaryArray) -> np.ndarray:
    """Per row, the rank of its value among the dictionary's values (1-based, in sort order
    of the values), as small unsigned integers. Rows must not be null."""
    ranks = av.to_numpy(pc.rank(encoded.dictionary, tiebreaker="dense"), np.uint64)
    return _small_codes(ranks)[av.to_numpy(encoded.indices, np.int32)]


def _lexical_order(major: np.ndarray, minor: np.ndarray) -> np.ndarray:
    """Positions sorted by `major`, then `minor`, stable: two linear radix passes when both
    hold small unsigned integers."""
    by_minor = np.argsort(minor, kind="stable")
    return by_minor[np.argsort(major[by_minor], kind="stable")]


def _validity_checks(source: pa.Table, day: dt.date,
                     encoded: tuple[pa.DictionaryArray, pa.DictionaryArray] | None = None,
                     ) -> list[tuple[str, pa.Array]]:
    """Each check of a valid row, named by what a row failing it is (SPEC section 2).
    `encoded`: the ISIN and Time columns already dictionary-encoded."""
    isins, times = encoded or (source["ISIN"], source["Time"])
    checks = [
        ("ISIN is not an ISIN", _matches_per_value(isins, _ISIN)),
        (f"Date is not {day.isoformat()}, the date its object is filed under",
         pc.equal(source["Date"], av.string(day.isoformat()))),
        ("Time is not HH:MM or HH:MM:SS", _matches_per_value(times, _TIME)),
    ]
    for name in PRICE_COLUMNS:
        price = source[name]
        # NaN compares false, infinity fails the finite check: neither is a price.
        checks.append((f"{name} is missing, not a number or negative",
                       pc.and_(pc.is_finite(price), pc.greater_equal(price, _ZERO_PRICE))))
    checks.append(("TradedVolume is missing, not an integer or negative",
                   pc.greater_equal(source["TradedVolume"], _ZERO_VOLUME)))
    return checks


def _is_valid(source: pa.Table, day: dt.date,
              encoded: tuple[pa.DictionaryArray, pa.DictionaryArray] | None = None) -> pa.Array:
    """Rows whose required fields are present and parse, for the date the object is filed under."""
    return _all_true([check for _, check in _validity_checks(source, day, encoded)])


MALFORMED_REASON = "wrong number of fields"


def invalid_reasons(source: pa.Table, day: dt.date,
                    malformed_rows: int = 0) -> list[tuple[str, int]]:
    """Why rows are invalid: (reason, rows), most common first. Each invalid row counts once,
    under the first check it fails; malformed rows under MALFORMED_REASON."""
    counts = {MALFORMED_REASON: malformed_rows}
    failed_before = None
    for reason, check in _validity_checks(source, day):
        fails = pc.invert(pc.fill_null(check, av.FALSE))
        first_failure = fails if failed_before is None else \
            pc.and_(fails, pc.invert(failed_before))
        counts[reason] = pc.sum(first_failure).as_py() or 0
        failed_before = fails if failed_before is None else pc.or_(failed_before, fails)
    return sorted(((reason, rows) for reason, rows in counts.items() if rows),
                  key=lambda item: -item[1])


def describe_invalid(day: dt.date, counts: RowCounts,
                     reasons: Sequence[tuple[str, int]]) -> str:
    """A date's invalid rows in words: how many, their share, the most common reason."""
    common = f"; most common: {reasons[0][0]}: {reasons[0][1]} rows" if reasons else ""
    return (f"{day}: {counts.invalid} of {counts.rows_read} rows invalid "
            f"({counts.invalid_share:.1%}{common})")


def _any_pair_shares_a_key(isin_codes: np.ndarray, time_codes: np.ndarray, isins: int,
                           times: int) -> bool:
    """Whether two rows have the same (ISIN code, Time code); codes below `isins`, `times`.

    Each pair of codes is one position in a table of isins x times flags (a day: ~3k ISINs x
    < 1.5k times, a few MB): rows that set fewer flags than there are rows repeat a pair. One
    pass, ~5x cheaper than sorting the codes; a key space too large for such a table (an odd
    day with very many distinct values) is sorted instead (two radix passes).
    """
    if isins * times <= _MAX_DIRECT_KEYS:
        flags = np.zeros(isins * times, dtype=np.bool_)
        flags[isin_codes.astype(np.int64) * times + time_codes] = True
        return int(np.count_nonzero(flags)) < len(isin_codes)
    isin_codes, time_codes = _small_codes(isin_codes), _small_codes(time_codes)
    order = _lexical_order(isin_codes, time_codes)
    isin_codes, time_codes = isin_codes[order], time_codes[order]
    return bool(np.any((isin_codes[1:] == isin_codes[:-1]) &
                       (time_codes[1:] == time_codes[:-1])))


def _sharing_isin_and_time(table: pa.Table, among: pa.Array | None = None,
                           encoded: tuple[pa.DictionaryArray, pa.DictionaryArray] | None = None,
                           ) -> pa.Array | None:
    """Per row, whether another row (of those `among`, default all; their ISIN and Time are
    not null) has the same ISIN and Time: only such rows can be exact duplicates. None when no
    two do (_any_pair_shares_a_key on the rows' ISIN and Time codes, instead of grouping by
    two string columns). `encoded`: the ISIN and Time columns already dictionary-encoded."""
    if table.num_rows < 2:
        return None
    isins, times = encoded or (_dictionary(table["ISIN"]), _dictionary(table["Time"]))
    if isinstance(among, pa.ChunkedArray):
        among = av.combined(among)
    isin_codes = av.to_numpy(isins.indices, np.int32)
    time_codes = av.to_numpy(times.indices, np.int32)
    if among is not None:
        rows = av.to_numpy(pc.indices_nonzero(among), np.uint64)
        isin_codes, time_codes = isin_codes[rows], time_codes[rows]
    if not _any_pair_shares_a_key(isin_codes, time_codes, len(isins.dictionary),
                                  len(times.dictionary)):
        return None
    # Rare: some rows share ISIN and Time. Which ones, by Arrow's hashing (nulls stay null).
    key = pc.add(pc.multiply(pc.cast(isins.indices, pa.int64()), av.int64(len(times.dictionary))),
                 pc.cast(times.indices, pa.int64()))
    keys = key if among is None else key.filter(among)
    repeated = pc.value_counts(keys)
    shared = pc.is_in(key, repeated.field("values").filter(pc.greater(repeated.field("counts"),
                                                                       av.int64(1))))
    return shared if among is None else pc.and_(shared, among)


def _minutes_are_unique(trades: pa.Table) -> bool:
    """True when no two trades share ISIN and Time."""
    return _sharing_isin_and_time(trades) is None


def _repeats(source: pa.Table, is_trade: pa.Array, other_columns: pa.Table | None,
             encoded: tuple[pa.DictionaryArray, pa.DictionaryArray]) -> pa.Array | None:
    """Per source row, whether it is an exact duplicate (all source fields equal) of an earlier
    trade; None when there is none. Only trades sharing ISIN and Time with another are compared
    (with `other_columns`, the source columns `source` lacks, for the rows NeedsAllColumns
    named), and nothing is copied but those rows, so memory does not depend on duplicates."""
    sharing = _sharing_isin_and_time(source, is_trade, encoded)
    if sharing is None:
        return None  # no two trades share ISIN and Time, so none can be identical
    candidates = source.filter(sharing)
    rows = pc.indices_nonzero(sharing)
    missing = [name for name in SOURCE_COLUMNS if name not in source.column_names]
    if missing:
        if other_columns is None or other_columns.num_rows != len(rows):
            raise NeedsAllColumns(rows, missing)
        for name in missing:
            candidates = candidates.append_column(name, other_columns[name])
    firsts = av.combined(candidates.select(list(SOURCE_COLUMNS)).append_column("row", rows)
                         .group_by(list(SOURCE_COLUMNS), use_threads=False)
                         .aggregate([("row", "min")])["row_min"])
    # Spread "is a repeat" from the candidates back over all rows (others are not).
    return pc.replace_with_mask(sharing, sharing, pc.invert(pc.is_in(rows, firsts)))


def select_trades(source: pa.Table, day: dt.date, currencies: Sequence[str],
                  malformed_rows: int = 0,
                  other_columns: pa.Table | None = None) -> tuple[pa.Table, RowCounts]:
    """The trades of `day` among its source rows, and the count of every row dropped, by reason.

    Invalid rows come first, then zero volume, then other currencies; exact duplicates of a
    trade count once. `source` may hold only formats.TRADE_COLUMNS: NeedsAllColumns names the
    source rows (and columns) needed when trades share ISIN and Time; call again with those
    as `other_columns`.

    The trades hold TRADE_FIELDS; their ISIN and Time columns are dictionary-encoded (each
    distinct value once; the day's values are encoded once here and reused by daily_summary
    and trade_hours).
    """
    encoded = (_dictionary(source["ISIN"]), _dictionary(source["Time"]))
    valid = _is_valid(source, day, encoded)
    positive = pc.fill_null(pc.greater(source["TradedVolume"], _ZERO_VOLUME), av.FALSE)
    in_currency = pc.fill_null(pc.is_in(source["Currency"], av.strings(list(currencies))),
                               av.FALSE)
    is_trade = _all_true([valid, positive, in_currency])
    repeats = _repeats(source, is_trade, other_columns, encoded)
    keyed = source.set_column(source.schema.get_field_index("ISIN"), "ISIN", encoded[0]) \
        .set_column(source.schema.get_field_index("Time"), "Time", encoded[1])
    one_copy = is_trade if repeats is None else pc.and_(is_trade, pc.invert(repeats))
    trades = keyed.select(list(TRADE_FIELDS)).filter(one_copy)
    n_valid = pc.sum(valid).as_py() or 0
    n_positive = pc.sum(pc.and_(valid, positive)).as_py() or 0
    n_trades_with_duplicates = pc.sum(is_trade).as_py() or 0
    counts = RowCounts(
        rows_read=source.num_rows + malformed_rows,
        invalid=source.num_rows - n_valid + malformed_rows,
        zero_volume=n_valid - n_positive,
        other_currency=n_positive - n_trades_with_duplicates,
        duplicate=n_trades_with_duplicates - trades.num_rows,
    )
    return trades, counts


def daily_summary(trades: pa.Table, day: dt.date) -> pa.Table:
    """Per ISIN: first StartPrice and last EndPrice by Time, min, max and summed volume; rows
    sorted by ISIN.

    No sort of the rows: each row's ISIN is its value's rank among the day's ISINs (a small
    integer, _ranks), and numpy accumulates per rank (ufunc.at): min and max prices, the sum
    of volumes (int64, exact), and for the opening and closing trade the smallest and largest
    (Time rank, row position), so trades in the same minute count in source order. Ranks are
    in ISIN order, so the groups come out sorted. No Acero (its import pulls in
    pyarrow.dataset) and no hashing of strings per row.
    """
    rows = trades.num_rows
    if rows == 0:
        return empty_report().drop_columns(["change_prev_closing"])
    isins = _dictionary(trades["ISIN"])
    isin_ranks = _ranks(isins)
    groups = int(isin_ranks.max()) + 1
    # A Time rank is at most the number of the source's distinct times, so the key stays far
    # below 2**63 for any day that fits in memory.
    time_then_row = _ranks(_dictionary(trades["Time"])).astype(np.int64) * rows + \
        np.arange(rows, dtype=np.int64)
    first = np.full(groups, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, isin_ranks, time_then_row)
    last = np.full(groups, -1, dtype=np.int64)
    np.maximum.at(last, isin_ranks, time_then_row)
    traded = last >= 0  # ranks of ISINs in the dictionary that no trade has are skipped
    first_rows, last_rows = first[traded] % rows, last[traded] % rows

    def per_isin(ufunc: np.ufunc, name: str, start: float | int, dtype: type) -> np.ndarray:
        accumulated = np.full(groups, start, dtype=dtype)
        ufunc.at(accumulated, isin_ranks, av.to_numpy(trades[name], dtype))
        return accumulated[traded]

    def at_rows(name: str, positions: np.ndarray) -> pa.Array:
        return av.from_numpy(av.to_numpy(trades[name], np.float64)[positions], pa.float64())

    codes = av.to_numpy(isins.indices, np.int32)
    return pa.table({
        "isin": isins.dictionary.take(av.from_numpy(codes[first_rows], pa.int32())),
        "date": av.same_date(day, len(first_rows)),
        "opening_price": at_rows("StartPrice", first_rows),
        "closing_price": at_rows("EndPrice", last_rows),
        "minimum_price": av.from_numpy(per_isin(np.minimum, "MinPrice", np.inf, np.float64),
                                       pa.float64()),
        "maximum_price": av.from_numpy(per_isin(np.maximum, "MaxPrice", -np.inf, np.float64),
                                       pa.float64()),
        "daily_traded_volume": av.from_numpy(per_isin(np.add, "TradedVolume", 0, np.int64),
                                             pa.int64()),
    })


def closing_prices(summary: pa.Table) -> pa.Table:
    """The closes of one trading day, to compare the next trading day with."""
    return pa.table({"isin": summary["isin"], "previous_close": summary["closing_price"]},
                    schema=CLOSES_SCHEMA)


def with_change_to_previous_close(summary: pa.Table,
                                  previous_closes: pa.Table | None) -> pa.Table:
    """Add change_prev_closing: % change of the close to the previous trading day's close.

    Null when the ISIN did not trade that day, when there is no previous trading day
    (`previous_closes` is None) or when the previous close is 0. The previous close is
    looked up by index (each ISIN once in `previous_closes`), not joined.
    """
    if previous_closes is None or previous_closes.num_rows == 0:
        previous = pa.nulls(summary.num_rows, pa.float64())
    else:
        where = pc.index_in(summary["isin"],
                            value_set=av.combined(previous_closes["isin"]))
        previous = av.combined(previous_closes["previous_close"]).take(where)
    previous_or_null = pc.if_else(pc.equal(previous, _ZERO_PRICE), av.null(pa.float64()),
                                  previous)
    change = pc.round(pc.multiply(pc.divide(pc.subtract(summary["closing_price"],
                                                        previous_or_null),
                                            previous_or_null), _HUNDRED), 2)
    report = summary.append_column("change_prev_closing", change)
    return report.select(REPORT_SCHEMA.names).cast(REPORT_SCHEMA)


def empty_report() -> pa.Table:
    """A report with no rows, in the logical schema."""
    return pa.Table.from_batches([], schema=REPORT_SCHEMA)  # empty_table() imports pandas


def with_output_names(report: pa.Table, names: Mapping[str, str]) -> pa.Table:
    """Rename logical report columns to the configured output names."""
    return report.rename_columns([names[name] for name in report.column_names])


def trade_hours(trades: pa.Table) -> list[int]:
    """The distinct hours (UTC, from Time "HH:MM") in which the trades happened, sorted;
    from the distinct times the trades use."""
    if trades.num_rows == 0:
        return []
    times = _dictionary(trades["Time"])
    used = times.dictionary.take(pc.unique(times.indices))
    hours = pc.unique(pc.utf8_slice_codeunits(used, 0, 2)).to_pylist()
    return sorted(int(hour) for hour in hours)
