"""The domain on inputs that tell its code paths apart: many ISINs and times (codes past a byte
boundary), ISINs whose codes sort otherwise than their text, many trades in one minute, exact
copies and copies differing in one column, unsorted and chunked input, huge volumes.

Each expectation comes from a second, plain-Python implementation of the rules
(docs/CONTRACT.md section 2) or is worked out by hand; none is what the job returned before.
"""
import datetime as dt
import math
import random
import re
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from xetra import transform
from xetra.formats import PRICE_COLUMNS, SOURCE_COLUMNS, SOURCE_SCHEMA, TRADE_COLUMNS

DAY = dt.date(2021, 5, 7)
CURRENCIES = ("EUR",)
ISIN_RULE = re.compile(r"[A-Z]{2}[A-Z0-9]{9}[0-9]")
TIME_RULE = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?")

# pylint: disable=protected-access


# --- the reference: the rules written out plainly, one row at a time -------------------------

def is_valid(row):
    """A row whose fields are all present and well formed, filed under DAY."""
    prices = [row[name] for name in PRICE_COLUMNS]
    return (row["ISIN"] is not None and ISIN_RULE.fullmatch(row["ISIN"]) is not None
            and row["Date"] == DAY.isoformat()
            and row["Time"] is not None and TIME_RULE.fullmatch(row["Time"]) is not None
            and all(price is not None and math.isfinite(price) and price >= 0
                    for price in prices)
            and row["TradedVolume"] is not None and row["TradedVolume"] >= 0)


def reference_trades(rows, currencies=CURRENCIES):
    """(positions of the trades, each exact copy once, in source order; counts by reason)."""
    counts = Counter()
    seen, kept = set(), []
    for position, row in enumerate(rows):
        if not is_valid(row):
            counts["invalid"] += 1
        elif row["TradedVolume"] == 0:
            counts["zero_volume"] += 1
        elif row["Currency"] not in currencies:
            counts["other_currency"] += 1
        elif tuple(row[name] for name in SOURCE_COLUMNS) in seen:
            counts["duplicate"] += 1
        else:
            seen.add(tuple(row[name] for name in SOURCE_COLUMNS))
            kept.append(position)
    return kept, counts


def reference_sharing(rows, trades):
    """Positions of the trades (of all, with their copies) that share ISIN and Time with
    another trade."""
    minutes = Counter((rows[i]["ISIN"], rows[i]["Time"]) for i in trades)
    return [i for i in trades if minutes[rows[i]["ISIN"], rows[i]["Time"]] > 1]


def reference_report(rows, kept, previous):
    """Per ISIN in text order: first StartPrice and last EndPrice by Time (same Time: source
    order), min, max, summed volume, and the % change to `previous` (a dict) rounded to 2."""
    by_isin = {}
    for position in sorted(kept, key=lambda i: rows[i]["Time"]):  # sorted() is stable
        by_isin.setdefault(rows[position]["ISIN"], []).append(rows[position])
    report = []
    for isin in sorted(by_isin):
        trades = by_isin[isin]
        close = trades[-1]["EndPrice"]
        before = previous.get(isin)
        report.append({
            "isin": isin, "date": DAY, "opening_price": trades[0]["StartPrice"],
            "closing_price": close,
            "minimum_price": min(trade["MinPrice"] for trade in trades),
            "maximum_price": max(trade["MaxPrice"] for trade in trades),
            "daily_traded_volume": sum(trade["TradedVolume"] for trade in trades),
            "change_prev_closing": None if not before else
            round((close - before) / before * 100, 2)})
    return report


# --- building source tables ---------------------------------------------------------------

def source_row(isin, time, prices=(10.0, 10.5, 9.5, 10.2), volume=100, **fields):
    """A source row as Python values of SOURCE_SCHEMA's types."""
    start, high, low, end = prices
    values = {"ISIN": isin, "Mnemonic": b"MNE", "SecurityDesc": b"SOME SHARE",
              "SecurityType": b"Common stock", "Currency": "EUR", "SecurityID": b"2504159",
              "Date": DAY.isoformat(), "Time": time, "StartPrice": start, "MaxPrice": high,
              "MinPrice": low, "EndPrice": end, "TradedVolume": volume, "NumberOfTrades": b"1"}
    values.update(fields)
    return values


def table_of(rows, chunks=1):
    """The rows as a source table of `chunks` record batches, as a day of hourly objects is."""
    if not rows:
        return pa.Table.from_batches([], schema=SOURCE_SCHEMA)
    bounds = np.linspace(0, len(rows), chunks + 1).astype(int)
    return pa.Table.from_batches([
        pa.RecordBatch.from_arrays([[row[name] for row in rows[start:end]]
                                    for name in SOURCE_COLUMNS], schema=SOURCE_SCHEMA)
        for start, end in zip(bounds[:-1], bounds[1:]) if end > start])


def random_isin(rng):
    """A random well-formed ISIN."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return (rng.choice(["DE", "US", "FR", "NL", "AT"])
            + "".join(rng.choice(letters + "0123456789") for _ in range(9))
            + rng.choice("0123456789"))


def random_day(seed, rows=500):
    """A day of `rows` source rows: 30 ISINs (first seen in an order unrelated to their text)
    in 12 times (many trades per minute, times given out of order), one row in five an exact
    copy of an earlier row and one in ten a copy with one column changed, some invalid,
    zero-volume and USD rows, and a few volumes beyond float64's 53-bit integers."""
    rng = random.Random(seed)
    isins = [random_isin(rng) for _ in range(30)] + ["de0005140008", "DE00051400"]
    times = ["09:00", "09:01", "09:02", "09:02:30", "10:15", "08:59", "17:30", "12:00",
             "23:59:59", "00:00", "9:05", "09:60"]
    made = []
    for _ in range(rows):
        draw = rng.random()
        if made and draw < 0.2:
            made.append(dict(rng.choice(made)))  # an exact copy
            continue
        if made and draw < 0.3:
            column = rng.choice(SOURCE_COLUMNS)
            changed = dict(rng.choice(made))
            changed[column] = random_day_value(rng, column, isins, times)
            made.append(changed)
            continue
        made.append({name: random_day_value(rng, name, isins[:-2] if rng.random() < 0.97
                                            else isins, times) for name in SOURCE_COLUMNS})
    return made


def random_day_value(rng, column, isins, times):
    """A random value of `column` for random_day (mostly valid, sometimes not)."""
    # pylint: disable=too-many-return-statements
    if column == "ISIN":
        return rng.choice(isins)
    if column == "Time":
        return rng.choice(times[:10] if rng.random() < 0.95 else times)
    if column == "Date":
        return DAY.isoformat() if rng.random() < 0.97 else "2021-05-06"
    if column == "Currency":
        return "EUR" if rng.random() < 0.85 else "USD"
    if column in PRICE_COLUMNS:
        return rng.choice([None, float("nan"), -1.0]) if rng.random() < 0.02 else \
            round(rng.uniform(0.5, 200.0), rng.choice([1, 2, 3]))
    if column == "TradedVolume":
        draw = rng.random()
        return (None if draw < 0.01 else 0 if draw < 0.1 else
                rng.choice([3, 1]) << 52 if draw < 0.12 else rng.randrange(1, 5000))
    return rng.choice([b"A", b"B", b"C"])  # Mnemonic, SecurityDesc, ... : only in duplicates


def select_as_the_job_does(table):
    """select_trades on the trade columns only, then again with the other columns of the rows
    NeedsAllColumns names (as etl does): (trades, counts, the rows named or None)."""
    narrow = table.select(list(TRADE_COLUMNS))
    try:
        return (*transform.select_trades(narrow, DAY, list(CURRENCIES)), None)
    except transform.NeedsAllColumns as needed:
        others = table.select(list(needed.columns)).take(needed.rows)
        return (*transform.select_trades(narrow, DAY, list(CURRENCIES), 0, others),
                needed.rows.to_pylist())


def as_counts(counts):
    """RowCounts as the reference's Counter."""
    return Counter({name: getattr(counts, name) for name in
                    ("invalid", "zero_volume", "other_currency", "duplicate")
                    if getattr(counts, name)})


def report_rows(trades, previous):
    """The day's report of `trades` as dicts, `previous` a dict of closes (or None)."""
    closes = None if previous is None else pa.table(
        {"isin": list(previous), "previous_close": list(previous.values())},
        schema=transform.CLOSES_SCHEMA)
    return transform.with_change_to_previous_close(transform.daily_summary(trades, DAY),
                                                   closes).to_pylist()


# --- the tests ----------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_random_days_equal_the_plain_python_reference(seed):
    rows = random_day(seed)
    table = table_of(rows, chunks=3)
    kept, expected_counts = reference_trades(rows)
    sharing = reference_sharing(rows, [i for i, row in enumerate(rows) if is_valid(row)
                                       and row["TradedVolume"] and row["Currency"] == "EUR"])
    narrow_trades, narrow_counts, named = select_as_the_job_does(table)
    assert named == (sharing or None)  # exactly the trades sharing a minute, no others
    for trades, counts in ((narrow_trades, narrow_counts),
                           transform.select_trades(table, DAY, list(CURRENCIES))):
        assert as_counts(counts) == expected_counts
        assert counts.rows_read == len(rows)
        # Date and Currency are checked, then dropped: the kept rows' other trade fields.
        assert trades.column_names == ["ISIN", "Time", *PRICE_COLUMNS, "TradedVolume"]
        wanted = [tuple(rows[i][name] for name in trades.column_names) for i in kept]
        assert list(zip(*(trades[name].to_pylist() for name in trades.column_names))) == wanted
        rng = random.Random(seed)
        isins = sorted({rows[i]["ISIN"] for i in kept})
        previous = {isin: rng.choice([0.0, 50.0, 99.99, 123.4]) for isin in isins[::2]}
        previous["XS0000000009"] = 12.0  # an ISIN that does not trade today
        assert report_rows(trades, previous) == reference_report(rows, kept, previous)
        assert report_rows(trades, None) == reference_report(rows, kept, {})
        assert transform.trade_hours(trades) == sorted({int(rows[i]["Time"][:2])
                                                        for i in kept})


def test_the_random_days_hold_what_they_are_meant_to():
    """The generator really makes the cases above: duplicates, minutes shared by several
    trades of one ISIN, ISINs first seen out of text order, huge volumes, every reason."""
    rows = random_day(0)
    kept, counts = reference_trades(rows)
    assert min(counts.values()) >= 3 and len(counts) == 4
    minutes = Counter((rows[i]["ISIN"], rows[i]["Time"]) for i in kept)
    assert max(minutes.values()) >= 3
    first_seen = list(dict.fromkeys(rows[i]["ISIN"] for i in kept))
    assert first_seen != sorted(first_seen)
    assert sum(rows[i]["TradedVolume"] >= 1 << 52 for i in kept) >= 2


@pytest.mark.parametrize("top, dtype", [(0, np.uint16), (255, np.uint16), (256, np.uint16),
                                        ((1 << 16) - 1, np.uint16), (1 << 16, np.uint32),
                                        ((1 << 32) - 1, np.uint32), (1 << 32, np.uint64)])
def test_small_codes_take_the_smallest_unsigned_type_that_holds_them(top, dtype):
    codes = np.array([top, 0, top // 2], np.uint64)
    small = transform._small_codes(codes)
    assert small.dtype == dtype
    assert small.tolist() == [top, 0, top // 2]  # the values themselves unchanged


def test_small_codes_of_nothing():
    assert transform._small_codes(np.array([], np.uint64)).dtype == np.uint16


def test_a_day_of_more_isins_than_16_bit_codes_hold_in_one_minute():
    """65,537 ISINs trading at 09:00: their codes need more than 16 bits, and no two trades
    share ISIN and Time, so the trade columns alone decide (no second read)."""
    rng = random.Random(7)
    isins = [f"DE{number:09d}{number % 10}" for number in range((1 << 16) + 1)]
    rng.shuffle(isins)
    rows = [source_row(isin, "09:00", (1.0, 3.0, 0.5, 2.0), 1) for isin in isins]
    narrow = table_of(rows).select(list(TRADE_COLUMNS))
    assert transform._minutes_are_unique(narrow)
    trades, counts = transform.select_trades(narrow, DAY, ["EUR"])  # no NeedsAllColumns
    assert (trades.num_rows, counts.duplicate) == (len(isins), 0)
    summary = transform.daily_summary(trades, DAY)
    assert summary["isin"].to_pylist() == sorted(isins)


def test_a_day_of_more_distinct_times_than_16_bit_codes_hold():
    """One ISIN traded in 65,540 distinct seconds, latest first in the source: opening and
    closing prices are those of 00:00:00 and of the latest second (18:12:19)."""
    count = (1 << 16) + 4
    times = [f"{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
             for second in range(count)]
    rows = [source_row("DE0005140008", time, (float(second), 1e6, 0.0, float(second)), 1)
            for second, time in reversed(list(enumerate(times)))]
    trades, _ = transform.select_trades(table_of(rows, chunks=2), DAY, ["EUR"])
    [row] = transform.daily_summary(trades, DAY).to_pylist()
    assert times[-1] == "18:12:19"
    assert (row["opening_price"], row["closing_price"], row["daily_traded_volume"]) == \
        (0.0, float(count - 1), count)


def test_many_trades_in_one_minute_keep_their_source_order():
    """40 trades of one ISIN at 09:00 between others at 08:00 and 10:00: the first of them in
    the source opens the minute, the last closes it (docs/CONTRACT.md: same Time, source
    order), with other ISINs' trades in the same minute interleaved."""
    rows = []
    for number in range(40):
        rows.append(source_row("DE0007164600", "09:00", (100.0 + number, 200.0, 1.0,
                                                         300.0 + number), 1))
        rows.append(source_row("DE0005140008", "09:00", (1.0 + number, 9.0, 0.1,
                                                         2.0 + number), 1))
    rows.append(source_row("DE0007164600", "10:00", (5.0, 5.0, 5.0, 5.0), 1))
    rows.insert(0, source_row("DE0005140008", "08:00", (7.0, 7.0, 7.0, 7.0), 1))
    trades, _ = transform.select_trades(table_of(rows), DAY, ["EUR"])
    summary = transform.daily_summary(trades, DAY).to_pylist()
    assert [(row["isin"], row["opening_price"], row["closing_price"]) for row in summary] == [
        ("DE0005140008", 7.0, 41.0), ("DE0007164600", 100.0, 5.0)]
    only_the_minute = transform.daily_summary(trades.filter(
        [time == "09:00" for time in trades["Time"].to_pylist()]), DAY).to_pylist()
    assert [(row["opening_price"], row["closing_price"]) for row in only_the_minute] == [
        (1.0, 41.0), (100.0, 339.0)]


def test_an_isin_under_two_dictionary_codes_is_one_report_row():
    """Dictionaries merged from several objects may name a value twice: B under codes 0 and 2,
    A under 1, and C (code 3) with no trade. Worked out by hand: B opens at 09:00 with the
    row at position 3 (StartPrice 4.0; 09:05 at position 0 is later) and closes at 09:30 with
    position 2 (EndPrice 30.0); min 0.5, max 9.0, volume 1 + 2 + 4 = 7. A: one trade."""
    isin = pa.DictionaryArray.from_arrays(pa.array([0, 1, 2, 0], pa.int32()),
                                          pa.array(["B", "A", "B", "C"]))
    trades = pa.table({
        "ISIN": isin,
        "Time": ["09:05", "10:00", "09:30", "09:00"],
        "StartPrice": [1.0, 2.0, 3.0, 4.0],
        "MaxPrice": [9.0, 2.0, 3.0, 4.0],
        "MinPrice": [1.0, 2.0, 0.5, 4.0],
        "EndPrice": [10.0, 20.0, 30.0, 40.0],
        "TradedVolume": pa.array([1, 5, 2, 4], pa.int64()),
    })
    assert transform.daily_summary(trades, DAY).to_pylist() == [
        {"isin": "A", "date": DAY, "opening_price": 2.0, "closing_price": 20.0,
         "minimum_price": 2.0, "maximum_price": 2.0, "daily_traded_volume": 5},
        {"isin": "B", "date": DAY, "opening_price": 4.0, "closing_price": 30.0,
         "minimum_price": 0.5, "maximum_price": 9.0, "daily_traded_volume": 7},
    ]


def test_volumes_beyond_53_bits_add_up_exactly():
    """3 * 2**52 + 2**52 + 1 = 2**54 + 1: int64 arithmetic (a float64 sum gives another
    number)."""
    rows = [source_row("DE0005140008", "09:00", volume=3 << 52),
            source_row("DE0005140008", "09:01", volume=1 << 52),
            source_row("DE0005140008", "09:02", volume=1)]
    trades, _ = transform.select_trades(table_of(rows), DAY, ["EUR"])
    [row] = transform.daily_summary(trades, DAY).to_pylist()
    assert row["daily_traded_volume"] == 18014398509481985 == (1 << 54) + 1


# The day's ISIN x Time key space fits the table of flags; 0: every key space is sorted.
BOTH_WAYS = pytest.mark.parametrize("direct_keys", [transform._MAX_DIRECT_KEYS, 0],
                                    ids=["flags", "sorted"])


@BOTH_WAYS
def test_a_shared_pair_of_codes_is_found_either_way(monkeypatch, direct_keys):
    """200 random sets of (ISIN code, Time code) pairs, up to 5 x 5 keys: a pair repeats
    exactly when the set of pairs is smaller than the list (counted with Python's set)."""
    monkeypatch.setattr(transform, "_MAX_DIRECT_KEYS", direct_keys)
    rng = random.Random(11)
    outcomes = set()
    for _ in range(200):
        isins, times, rows = rng.randrange(1, 6), rng.randrange(1, 6), rng.randrange(0, 12)
        pairs = [(rng.randrange(isins), rng.randrange(times)) for _ in range(rows)]
        isin_codes = np.array([isin for isin, _ in pairs], np.int32)
        time_codes = np.array([time for _, time in pairs], np.int32)
        expected = len(set(pairs)) < len(pairs)
        assert transform._any_pair_shares_a_key(isin_codes, time_codes, isins, times) \
            is expected
        outcomes.add(expected)
    assert outcomes == {True, False}  # both answers were asked for


@BOTH_WAYS
def test_which_rows_share_isin_and_time_with_another(monkeypatch, direct_keys):
    """Per row, worked out by hand: rows 1 and 4 share (B, 10:00), rows 2 and 5 (C, 09:00);
    row 0's minute (A, 09:00) is shared only with row 3, which is not among the rows
    considered."""
    monkeypatch.setattr(transform, "_MAX_DIRECT_KEYS", direct_keys)
    table = pa.table({"ISIN": ["A", "B", "C", "A", "B", "C", "A"],
                      "Time": ["09:00", "10:00", "09:00", "09:00", "10:00", "09:00", "10:00"]})
    assert transform._sharing_isin_and_time(table).to_pylist() == \
        [True, True, True, True, True, True, False]
    among = pa.chunked_array([[True, True, True], [False, True, True, True]])
    assert transform._sharing_isin_and_time(table, among).to_pylist() == \
        [False, True, True, False, True, True, False]
    assert transform._sharing_isin_and_time(table.slice(0, 3)) is None
    # The only shared minute is not the earliest (A, 09:00 sorts first).
    later = pa.table({"ISIN": ["A", "B", "B"], "Time": ["09:00", "10:00", "10:00"]})
    assert transform._sharing_isin_and_time(later).to_pylist() == [False, True, True]
    assert transform._sharing_isin_and_time(table.slice(0, 1)) is None


def test_only_trades_sharing_a_minute_with_another_trade_are_read_again():
    """Rows 0 and 2 are trades in one minute; row 3 is a trade whose ISIN and minute only a
    USD row (1) and a zero-volume row (4) share: NeedsAllColumns names rows 0 and 2 only."""
    rows = [source_row("DE0005140008", "09:00"),
            source_row("DE0007164600", "10:00", Currency="USD"),
            source_row("DE0005140008", "09:00", volume=7),
            source_row("DE0007164600", "10:00"),
            source_row("DE0007164600", "10:00", volume=0)]
    narrow = table_of(rows).select(list(TRADE_COLUMNS))
    with pytest.raises(transform.NeedsAllColumns) as needed:
        transform.select_trades(narrow, DAY, ["EUR"])
    assert needed.value.rows.to_pylist() == [0, 2]
    others = table_of(rows).select(list(needed.value.columns)).take(needed.value.rows)
    trades, counts = transform.select_trades(narrow, DAY, ["EUR"], 0, others)
    assert (trades.num_rows, counts.duplicate, counts.zero_volume, counts.other_currency) == \
        (3, 0, 1, 1)


def test_an_exact_copy_in_a_later_minute_than_the_first_trade_counts_once():
    rows = [source_row("DE0005140008", "09:00", volume=5),
            source_row("DE0007164600", "10:00", volume=100),
            source_row("DE0007164600", "10:00", volume=100)]
    trades, counts = transform.select_trades(table_of(rows), DAY, ["EUR"])
    assert (trades.num_rows, counts.duplicate) == (2, 1)
    assert [row["daily_traded_volume"] for row in
            transform.daily_summary(trades, DAY).to_pylist()] == [5, 100]


@pytest.mark.parametrize("time, hours", [("09:30", [9]), ("00:00", [0]), ("23:59:59", [23])])
def test_trade_hours_of_a_day_with_one_trade(time, hours):
    trades, _ = transform.select_trades(table_of([source_row("DE0005140008", time)]), DAY,
                                        ["EUR"])
    assert transform.trade_hours(trades) == hours
    assert transform.trade_hours(trades.slice(0, 0)) == []


def test_each_day_encodes_its_isin_and_time_values_once(monkeypatch):
    """select_trades' docstring: the day's ISIN and Time values are dictionary-encoded once and
    reused by the validity checks and the search for duplicates (a 2021 day has ~125k rows per
    hour object and ~3k ISINs: encoding is the costly part). A day with duplicates takes every
    path: two encodings, one per column, whatever the path."""
    encoded = []
    original = pc.dictionary_encode

    def counting(values, *args, **kwargs):
        encoded.append(len(values))
        return original(values, *args, **kwargs)
    monkeypatch.setattr(pc, "dictionary_encode", counting)  # the module transform uses
    rows = [source_row("DE0005140008", "09:00"), source_row("DE0005140008", "09:00"),
            source_row("DE0007164600", "10:00", volume=0)]
    trades, counts = transform.select_trades(table_of(rows, chunks=2), DAY, ["EUR"])
    assert (trades.num_rows, counts.duplicate, counts.zero_volume) == (1, 1, 1)
    assert encoded == [3, 3]
