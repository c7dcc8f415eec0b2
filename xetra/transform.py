"""The report's domain logic: pure functions on Arrow tables, no I/O (SPEC section 2)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from xetra.formats import PRICE_COLUMNS, SOURCE_COLUMNS

_ISIN = r"^[A-Z]{2}[A-Z0-9]{9}[0-9]$"
_TIME = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"

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


def _all_true(conditions: Sequence[pa.ChunkedArray | pa.Array]) -> pa.Array:
    result = conditions[0]
    for condition in conditions[1:]:
        result = pc.and_kleene(result, condition)
    return pc.fill_null(result, False)


def _is_valid(source: pa.Table, day: dt.date) -> pa.Array:
    """Rows whose required fields are present and parse, for the date the object is filed under."""
    checks = [
        pc.match_substring_regex(source["ISIN"], _ISIN),
        pc.equal(source["Date"], day.isoformat()),
        pc.match_substring_regex(source["Time"], _TIME),
        pc.greater_equal(source["TradedVolume"], 0),
    ]
    for name in PRICE_COLUMNS:
        price = source[name]
        # NaN compares false, infinity fails the finite check: neither is a price.
        checks.append(pc.and_(pc.is_finite(price), pc.greater_equal(price, 0.0)))
    return _all_true(checks)


def _first_occurrences(table: pa.Table) -> pa.Table:
    """Drop exact duplicate rows (all source fields equal), keeping the first of each."""
    if table.group_by(["ISIN", "Time"]).aggregate([]).num_rows == table.num_rows:
        return table  # no two rows share ISIN and minute, so none can be identical
    indexed = table.append_column("row_index", pa.array(range(table.num_rows), pa.int64()))
    firsts = indexed.group_by(list(SOURCE_COLUMNS), use_threads=False).aggregate(
        [("row_index", "min")])
    first_rows = firsts["row_index_min"]
    return table.take(pc.take(first_rows, pc.sort_indices(first_rows)))


def select_trades(source: pa.Table, day: dt.date, currencies: Sequence[str],
                  malformed_rows: int = 0) -> tuple[pa.Table, RowCounts]:
    """The trades of `day` among its source rows, and the count of every row dropped, by reason.

    Invalid rows come first, then zero volume, then other currencies; exact duplicates of a
    trade count once.
    """
    valid = _is_valid(source, day)
    positive = pc.fill_null(pc.greater(source["TradedVolume"], 0), False)
    in_currency = pc.fill_null(pc.is_in(source["Currency"], pa.array(list(currencies))), False)
    is_trade = _all_true([valid, positive, in_currency])
    trades = _first_occurrences(source.filter(is_trade))
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
    """Per ISIN: first StartPrice and last EndPrice by Time, min, max and summed volume."""
    # Arrow's sort is stable, so trades in the same minute keep their source order.
    by_time = trades.take(pc.sort_indices(trades, [("Time", "ascending")]))
    grouped = by_time.group_by("ISIN", use_threads=False).aggregate([
        ("StartPrice", "first"), ("EndPrice", "last"), ("MinPrice", "min"),
        ("MaxPrice", "max"), ("TradedVolume", "sum"),
    ])
    summary = pa.table({
        "isin": grouped["ISIN"],
        "date": pa.array([day] * grouped.num_rows, pa.date32()),
        "opening_price": grouped["StartPrice_first"],
        "closing_price": grouped["EndPrice_last"],
        "minimum_price": grouped["MinPrice_min"],
        "maximum_price": grouped["MaxPrice_max"],
        "daily_traded_volume": pc.cast(grouped["TradedVolume_sum"], pa.int64()),
    })
    return summary.sort_by("isin")


def closing_prices(summary: pa.Table) -> pa.Table:
    """The closes of one trading day, to compare the next trading day with."""
    return pa.table({"isin": summary["isin"], "previous_close": summary["closing_price"]},
                    schema=CLOSES_SCHEMA)


def with_change_to_previous_close(summary: pa.Table,
                                  previous_closes: pa.Table | None) -> pa.Table:
    """Add change_prev_closing: % change of the close to the previous trading day's close.

    Null when the ISIN did not trade that day, when there is no previous trading day
    (`previous_closes` is None) or when the previous close is 0.
    """
    if previous_closes is None:
        previous_closes = CLOSES_SCHEMA.empty_table()
    joined = summary.join(previous_closes, keys="isin", join_type="left outer",
                          use_threads=False).sort_by("isin")
    previous = joined["previous_close"]
    previous_or_null = pc.if_else(pc.equal(previous, 0.0), pa.scalar(None, pa.float64()),
                                  previous)
    change = pc.round(pc.multiply(pc.divide(pc.subtract(joined["closing_price"],
                                                        previous_or_null),
                                            previous_or_null), 100.0), 2)
    report = joined.drop_columns(["previous_close"]).append_column("change_prev_closing", change)
    return report.select(REPORT_SCHEMA.names).cast(REPORT_SCHEMA)


def empty_report() -> pa.Table:
    """A report with no rows, in the logical schema."""
    return REPORT_SCHEMA.empty_table()


def with_output_names(report: pa.Table, names: Mapping[str, str]) -> pa.Table:
    """Rename logical report columns to the configured output names."""
    return report.rename_columns([names[name] for name in report.column_names])
