"""The domain: trade selection and the daily report, on hand-made rows with hand-computed values."""
import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest

from testkit.sourcedata import BASE, ONE_COLUMN_DIFFERS, Bar, bar, csv_bytes, rows_csv
from xetra import transform
from xetra.formats import SOURCE_COLUMNS, TRADE_COLUMNS, parse_source_csv

DAY = dt.date(2021, 5, 7)  # a Friday


def source(bars, day=DAY):
    """Parse hand-made bars as the job parses an hourly object."""
    parsed = parse_source_csv(csv_bytes(day, bars), "test.csv")
    return parsed.table, parsed.malformed_rows


def report_rows(bars, previous=None, day=DAY):
    """The report of `bars` as a list of dicts keyed by logical column name."""
    table, malformed = source(bars, day)
    trades, _ = transform.select_trades(table, day, ["EUR"], malformed)
    summary = transform.daily_summary(trades, day)
    return transform.with_change_to_previous_close(summary, previous).to_pylist()


def closes(**by_isin):
    """A previous trading day's closes."""
    return pa.table({"isin": list(by_isin), "previous_close": list(by_isin.values())},
                    schema=transform.CLOSES_SCHEMA)


def test_open_close_min_max_volume_by_time_not_file_order():
    bars = [
        bar("DE0005140008", "12:00", 10.5, 11.0, 50, minimum=10.4, maximum=11.2),
        bar("DE0005140008", "08:00", 10.0, 10.5, 100, minimum=9.9, maximum=10.6),
        bar("DE0005140008", "15:59", 11.0, 10.8, 25, minimum=10.7, maximum=11.1),
    ]
    [row] = report_rows(bars)
    assert row == {"isin": "DE0005140008", "date": DAY, "opening_price": 10.0,
                   "closing_price": 10.8, "minimum_price": 9.9, "maximum_price": 11.2,
                   "daily_traded_volume": 175, "change_prev_closing": None}


def test_zero_volume_row_at_1930_is_not_the_close():
    bars = [bar("DE0005140008", "15:30", 20.0, 21.0, 300),
            bar("DE0005140008", "19:30", 99.0, 99.0, 0),
            bar("DE0005140008", "04:00", 1.0, 1.0, 0)]
    [row] = report_rows(bars)
    assert (row["opening_price"], row["closing_price"], row["maximum_price"],
            row["daily_traded_volume"]) == (20.0, 21.0, 21.0, 300)


def test_non_eur_rows_are_dropped_and_counted():
    bars = [bar("US0378331005", "10:00", 150.0, 151.0, 10, currency="USD"),
            bar("DE0005140008", "10:00", 5.0, 5.5, 7)]
    table, _ = source(bars)
    trades, counts = transform.select_trades(table, DAY, ["EUR"])
    assert trades["ISIN"].to_pylist() == ["DE0005140008"]
    assert (counts.rows_read, counts.other_currency, counts.invalid) == (2, 1, 0)
    trades_usd_too, _ = transform.select_trades(table, DAY, ["EUR", "USD"])
    assert trades_usd_too.num_rows == 2


def test_exact_duplicates_count_once_but_same_minute_different_rows_both_count():
    first = bar("DE0005140008", "09:00", 10.0, 10.2, 100)
    other_same_minute = bar("DE0005140008", "09:00", 10.2, 10.1, 40)
    bars = [first, first, other_same_minute, first]
    table, _ = source(bars)
    trades, counts = transform.select_trades(table, DAY, ["EUR"])
    assert trades.num_rows == 2 and counts.duplicate == 2
    [row] = report_rows(bars)
    assert row["daily_traded_volume"] == 140
    # Same minute: source order decides, so the first row opens and the second closes.
    assert (row["opening_price"], row["closing_price"]) == (10.0, 10.1)


def test_invalid_rows_are_dropped_and_counted_by_reason():
    good = bar("DE0005140008", "09:00", 10.0, 10.2, 100)
    bars = [
        good,
        Bar("DE0005140008", "09:01", "", "10.3", "10.0", "10.1", "5"),        # empty price
        Bar("DE0005140008", "09:02", "abc", "10.3", "10.0", "10.1", "5"),     # not a number
        Bar("DE0005140008", "09:03", "10.0", "10.3", "10.0", "10.1", "-5"),   # negative volume
        Bar("DE0005140008", "9:4", "10.0", "10.3", "10.0", "10.1", "5"),      # bad time
        Bar("", "09:05", "10.0", "10.3", "10.0", "10.1", "5"),                # no ISIN
        Bar("DE0005140008", "09:06", "10.0", "10.3", "10.0", "10.1", "5",
            day="2021-05-06"),                                                # other date
        Bar("DE0005140008", "09:07", "nan", "10.3", "10.0", "10.1", "5"),     # NaN price
        Bar("DE0005140008", "09:08", "10.0", "10.3", "10.0", "10.1", "0"),    # zero volume
    ]
    table, malformed = source(bars)
    trades, counts = transform.select_trades(table, DAY, ["EUR"], malformed)
    assert trades.num_rows == 1
    assert (counts.rows_read, counts.invalid, counts.zero_volume, counts.other_currency,
            counts.duplicate, counts.dropped) == (9, 7, 1, 0, 0, 8)


def test_change_to_previous_close_rounded_and_null_cases():
    # Given out of ISIN order (and out of time order), so the sort has something to do.
    bars = [bar("DE000BASF111", "09:00", 7.0, 7.0, 1),     # did not trade before -> null
            bar("DE0007164600", "10:00", 5.0, 5.0, 1),     # prev close 0 -> null
            bar("DE0005140008", "11:00", 10.0, 11.0, 1),   # prev 10.0 -> +10.00 %
            bar("DE0007100000", "08:00", 30.0, 29.0, 1)]   # prev 30.0 -> -3.333.. -> -3.33
    rows = report_rows(bars, closes(DE0005140008=10.0, DE0007100000=30.0, DE0007164600=0.0,
                                    DE000ENER6Y0=12.0))
    assert [(item["isin"], item["change_prev_closing"]) for item in rows] == [
        ("DE0005140008", 10.0), ("DE0007100000", -3.33), ("DE0007164600", None),
        ("DE000BASF111", None)]  # sorted by ISIN (written out by hand)


def test_no_previous_trading_day_gives_null_change():
    [row] = report_rows([bar("DE0005140008", "10:00", 10.0, 11.0, 1)], previous=None)
    assert row["change_prev_closing"] is None


def test_report_schema_types_and_output_names():
    rows_table = transform.with_change_to_previous_close(
        transform.daily_summary(transform.select_trades(
            source([bar("DE0005140008", "10:00", 1.5, 2.5, 3)])[0], DAY, ["EUR"])[0], DAY),
        None)
    assert rows_table.schema == transform.REPORT_SCHEMA
    renamed = transform.with_output_names(rows_table, {
        "isin": "ISIN", "date": "Date", "opening_price": "open", "closing_price": "close",
        "minimum_price": "low", "maximum_price": "high", "daily_traded_volume": "volume",
        "change_prev_closing": "pct"})
    assert renamed.column_names == ["ISIN", "Date", "open", "close", "low", "high", "volume",
                                    "pct"]
    assert renamed.schema.field("volume").type == pa.int64()
    assert renamed.schema.field("Date").type == pa.date32()


REPORT_TYPES = [("isin", pa.string()), ("date", pa.date32()), ("opening_price", pa.float64()),
                ("closing_price", pa.float64()), ("minimum_price", pa.float64()),
                ("maximum_price", pa.float64()), ("daily_traded_volume", pa.int64()),
                ("change_prev_closing", pa.float64())]  # docs/CONTRACT.md section 2.2


@pytest.mark.parametrize("bars", [[], [bar("DE0005140008", "19:30", 9.0, 9.0, 0),
                                       bar("DE0005140008", "20:00", 9.0, 9.0, 5,
                                           currency="USD")]])
def test_empty_day_gives_empty_report(bars):
    """A day without trades (no rows, or only zero-volume and other-currency rows) gives a
    report of zero rows with the contract's columns and types."""
    table, _ = source(bars)
    trades, counts = transform.select_trades(table, DAY, ["EUR"])
    assert (trades.num_rows, counts.rows_read, counts.zero_volume, counts.other_currency) == \
        (0, len(bars), len(bars) // 2, len(bars) // 2)
    for report in (transform.empty_report(),
                   transform.with_change_to_previous_close(transform.daily_summary(trades, DAY),
                                                           closes(DE0005140008=9.0))):
        assert report.num_rows == 0
        assert [(field.name, field.type) for field in report.schema] == REPORT_TYPES


@pytest.mark.parametrize("price", ["1e2", "100", "100.", "+100.0", "100.000000000000000000001"])
def test_price_spellings_that_parse(price):
    [row] = report_rows([Bar("DE0005140008", "10:00", price, price, price, price, "1")])
    assert row["opening_price"] == pytest.approx(100.0)


def test_same_minute_check_finds_what_a_plain_count_finds():
    def trades(rows):
        return pa.table({"ISIN": [r[0] for r in rows], "Time": [r[1] for r in rows]})
    unique = [("DE0007164600", "09:00"), ("DE0007164600", "09:01"), ("DE0005190003", "09:00"),
              ("DE0005190003", "23:59"), ("DE0005190003", "00:00")]
    repeated = unique + [("DE0005190003", "09:00")]
    for rows in (unique, repeated, unique[:1], []):
        plain = not pd.DataFrame(rows, columns=["ISIN", "Time"]).duplicated().any()
        assert transform._minutes_are_unique(trades(rows)) is plain  # pylint: disable=W0212


def test_every_source_column_has_a_one_column_variant():
    assert sorted(ONE_COLUMN_DIFFERS) == sorted(SOURCE_COLUMNS)


@pytest.mark.parametrize("column", sorted(ONE_COLUMN_DIFFERS))
def test_rows_differing_in_one_column_both_count_and_exact_copies_once(column):
    """Two rows equal but in `column` are two trades (their volumes add up); an exact copy
    of either counts once (docs/CONTRACT.md section 2.8: all 14 fields equal)."""
    value, wanted, invalid = ONE_COLUMN_DIFFERS[column]
    other = {**BASE, column: value}
    data = rows_csv([BASE, other, BASE, other])  # each row twice
    parsed = parse_source_csv(data, "test.csv")
    trades, counts = transform.select_trades(parsed.table, DAY, ["EUR", "USD"])
    assert (counts.rows_read, counts.invalid, counts.duplicate, trades.num_rows) == \
        (4, 2 * invalid, 2 - invalid, 2 - invalid)
    summary = transform.daily_summary(trades, DAY).to_pylist()
    assert {item["isin"]: (item["daily_traded_volume"], item["minimum_price"],
                           item["maximum_price"], item["opening_price"], item["closing_price"])
            for item in summary} == wanted


def test_invalid_rows_are_counted_under_the_first_check_they_fail_most_common_first():
    """Reasons and counts worked out by hand: a row failing two checks counts under the first
    (ISIN, Date, Time, the prices, TradedVolume), malformed lines under their own reason."""
    def line(isin="DE0005140008", time="09:00", start="10.0", volume="5", day=None):
        return Bar(isin, time, start, "10.3", "10.0", "10.1", volume, day=day)
    bars = ([line(volume="-1")] * 5                      # 5: TradedVolume negative
            + [line(start="")] * 3 + [line(start="-2")]   # 4: StartPrice missing or negative
            + [line(isin="XX")] * 2 + [line(isin="DE00051400", start="x")]  # 3: ISIN (first)
            + [line(time="9:00"), line(time="09:00:0")]   # 2: Time
            + [line(day="2021-05-06")]                    # 1: Date
            + [line(), line(time="10:00")])               # 2 valid rows
    table, _ = source(bars)
    reasons = transform.invalid_reasons(table, DAY, malformed_rows=6)
    assert reasons == [
        ("wrong number of fields", 6),
        ("TradedVolume is missing, not an integer or negative", 5),
        ("StartPrice is missing, not a number or negative", 4),
        ("ISIN is not an ISIN", 3),
        ("Time is not HH:MM or HH:MM:SS", 2),
        ("Date is not 2021-05-07, the date its object is filed under", 1)]
    _, counts = transform.select_trades(table, DAY, ["EUR"], malformed_rows=6)
    assert (counts.rows_read, counts.invalid) == (17 + 6, 15 + 6)
    assert transform.describe_invalid(DAY, counts, reasons) == (
        "2021-05-07: 21 of 23 rows invalid (91.3%; most common: wrong number of fields: "
        "6 rows)")
    assert transform.describe_invalid(DAY, counts, []) == \
        "2021-05-07: 21 of 23 rows invalid (91.3%)"
    assert transform.invalid_reasons(source(bars[-2:])[0], DAY) == []


@pytest.mark.parametrize("column", ["MaxPrice", "MinPrice", "EndPrice"])
def test_each_price_is_checked(column):
    fields = {"StartPrice": "10.0", "MaxPrice": "10.3", "MinPrice": "10.0", "EndPrice": "10.1"}
    good = Bar("DE0005140008", "09:00", *fields.values(), "5")
    bad = Bar("DE0005140008", "09:01", *{**fields, column: "inf"}.values(), "5")
    table, _ = source([good, bad])
    assert transform.invalid_reasons(table, DAY) == [
        (f"{column} is missing, not a number or negative", 1)]


def test_two_exact_copies_alone_count_once():
    table = parse_source_csv(rows_csv([BASE, BASE]), "test.csv").table
    trades, counts = transform.select_trades(table, DAY, ["EUR"])
    assert (trades.num_rows, counts.duplicate, trades["TradedVolume"].to_pylist()) == \
        (1, 1, [100])


def test_a_trade_and_a_non_trade_in_one_minute_need_no_other_columns():
    """Only trades sharing ISIN and Time can be duplicates: a zero-volume, other-currency or
    invalid row in the same minute as a trade does not make the job read the object again."""
    rows = [BASE, {**BASE, "TradedVolume": "0"}, {**BASE, "Currency": "USD"},
            {**BASE, "StartPrice": "x"}]
    narrow = parse_source_csv(rows_csv(rows), "test.csv", TRADE_COLUMNS).table
    trades, counts = transform.select_trades(narrow, DAY, ["EUR"])  # no NeedsAllColumns
    assert (trades.num_rows, counts.zero_volume, counts.other_currency, counts.invalid,
            counts.duplicate) == (1, 1, 1, 1, 0)
    with pytest.raises(transform.NeedsAllColumns) as needed:
        transform.select_trades(narrow, DAY, ["EUR", "USD"])  # now two trades share it
    assert needed.value.rows.to_pylist() == [0, 2]  # those two trades only, not the others


def test_trade_hours_are_the_utc_hours_with_trades():
    bars = [bar("DE0005140008", time, 1.0, 1.0, 1) for time in
            ("15:00", "09:59", "10:30", "09:00", "23:59:59")]
    trades, _ = transform.select_trades(source(bars)[0], DAY, ["EUR"])
    assert transform.trade_hours(trades) == [9, 10, 15, 23]
