"""Seeded, realistic synthetic Xetra source data in the bucket layout (vectorised, no per-row
Python).

What it reproduces of the real bucket (docs/CONTRACT.md §1): one folder per calendar date with 24
hourly objects `YYYY-MM-DD/YYYY-MM-DD_BINS_XETRHH.csv`; weekends and German exchange holidays
hold only header-only objects (136 bytes); hours outside the session are header-only too, and
now and then one of them is missing altogether; `SecurityDesc` values with a comma are quoted
(the newer format quotes only fields that need it); a few instruments trade in USD, GBP, SEK or
CNY; zero-volume rows sit outside the session (04:00 and 19:30 UTC in summer, an hour later in
winter); liquidity is heavy-tailed, so many ISINs trade only a few minutes a day or not at all.
With the defaults a trading day has about 125k rows of about 3,000 ISINs, as in 2021.

    python -m testkit.synthetic OUT_DIR --from 2021-03-01 --to 2021-03-31
"""
from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from testkit.sourcedata import HEADER_ONLY

SESSION_MINUTES = 510  # 09:00 to 17:30 Frankfurt time
OTHER_CURRENCIES = ("USD", "GBP", "SEK", "CNY")
SECURITY_TYPES = ("Common stock", "ETF", "ETC", "ETN", "Other")
_COUNTRIES = ("DE", "DE", "DE", "IE", "LU", "US", "FR", "NL", "DK", "CH", "GB", "AT")
_WORDS = ("ALLIANZ", "SIEMENS", "VANG.FTSE", "ISHS", "XTR.MSCI", "DEUTSCHE", "BAY.MOTOREN",
          "NOVO-NORDISK", "ENCAVIS", "FUCHS", "WITR", "INSTONE", "LYXOR", "AMUNDI", "INVESCO",
          "COMMERZBANK", "BASF", "INFINEON", "VOLKSW.", "HEIDELB.", "SAP", "ADIDAS")
_SUFFIXES = ("AG NA O.N.", "INH. O.N.", "VZO NA ON", "U.ETF DLD", "SE NA O.N.", "ETP 2062",
             "REG. SHS", "NAM.B DK-,20", "EO-,10", "DL-,01")
_SUFFIX_WEIGHTS = (0.15, 0.15, 0.15, 0.15, 0.15, 0.1, 0.07, 0.03, 0.03, 0.02)  # 8 % with a comma
BERLIN = ZoneInfo("Europe/Berlin")


@dataclass(frozen=True)
class Universe:
    """The instruments of a synthetic market: static fields and liquidity, one entry per ISIN."""

    isin: np.ndarray            # str
    mnemonic: np.ndarray        # str
    desc_csv: np.ndarray        # str, already CSV-quoted when it holds a comma
    security_type: np.ndarray   # str
    currency: np.ndarray        # str
    security_id: np.ndarray     # int64
    base_price: np.ndarray      # float64
    minute_probability: np.ndarray  # float64: chance of a bar in any session minute


def easter_sunday(year: int) -> dt.date:
    """Easter Sunday (Gregorian), by the anonymous Gregorian algorithm."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l = (32 + 2 * e + 2 * i - h - k) % 7  # noqa: E741 - the algorithm's own name
    m = (a + 11 * h + 22 * l) // 451
    month, day = divmod(h + l - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


def exchange_holidays(year: int) -> set[dt.date]:
    """Xetra's trading holidays: New Year, Good Friday, Easter Monday, 1 May, 24-26 and 31 Dec."""
    easter = easter_sunday(year)
    return {dt.date(year, 1, 1), easter - dt.timedelta(days=2), easter + dt.timedelta(days=1),
            dt.date(year, 5, 1), dt.date(year, 12, 24), dt.date(year, 12, 25),
            dt.date(year, 12, 26), dt.date(year, 12, 31)}


def is_trading_day(day: dt.date) -> bool:
    """True on weekdays that are not exchange holidays."""
    return day.weekday() < 5 and day not in exchange_holidays(day.year)


def session_start_utc(day: dt.date) -> int:
    """Minutes after midnight UTC at which the 09:00 Frankfurt session opens that day."""
    offset = dt.datetime(day.year, day.month, day.day, 12, tzinfo=BERLIN).utcoffset()
    return 9 * 60 - int(offset.total_seconds()) // 60


def make_universe(isins: int, rows_per_day: int, seed: int) -> Universe:
    """`isins` instruments whose liquidity adds up to about `rows_per_day` bars a trading day."""
    rng = np.random.default_rng([seed, 0])
    country = rng.choice(np.array(_COUNTRIES), isins)
    body = rng.choice(np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")), (isins, 9))
    check = rng.integers(0, 10, isins).astype(str)
    isin = np.char.add(np.char.add(country, np.array(["".join(row) for row in body])), check)
    isin = np.unique(isin)  # unique, and in a stable order
    n = isin.size
    letters = rng.choice(np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")), (n, 4))
    mnemonic = np.array(["".join(row[: 2 + i % 3]) for i, row in enumerate(letters)])
    desc = np.char.add(np.char.add(rng.choice(np.array(_WORDS), n), " "),
                       rng.choice(np.array(_SUFFIXES), n, p=_SUFFIX_WEIGHTS))
    desc_csv = np.where(np.char.find(desc, ",") >= 0, np.char.add(np.char.add('"', desc), '"'),
                        desc)
    currency = np.where(rng.random(n) < 0.012, rng.choice(np.array(OTHER_CURRENCIES), n), "EUR")
    # Heavy-tailed liquidity: a few instruments trade nearly every minute, most rarely.
    raw = np.exp(rng.normal(0.0, 2.0, n))
    probability = np.clip(raw / raw.mean() * rows_per_day / (n * SESSION_MINUTES), 0.0, 0.95)
    # Clipping the most liquid loses rows: spread the shortfall over the rest, twice is enough.
    for _ in range(2):
        short = rows_per_day / SESSION_MINUTES - probability.sum()
        free = probability < 0.95
        probability[free] *= 1 + short / probability[free].sum()
        probability = np.clip(probability, 0.0, 0.95)
    return Universe(
        isin=isin, mnemonic=mnemonic, desc_csv=desc_csv,
        security_type=rng.choice(np.array(SECURITY_TYPES), n, p=[0.45, 0.35, 0.08, 0.07, 0.05]),
        currency=currency, security_id=rng.integers(2_500_000, 7_000_000, n),
        base_price=np.round(np.exp(rng.normal(3.5, 1.3, n)), 2), minute_probability=probability)


def _text(values: np.ndarray) -> pa.Array:
    return pa.array(values.astype(object), pa.string())


def _price_text(values: np.ndarray) -> pa.Array:
    """Prices as the bucket writes them: shortest decimal, no trailing zeros."""
    return pc.cast(pa.array(values), pa.string())


@dataclass(frozen=True)
class DayRows:
    """A trading day's rows: the CSV line of each (with its newline) and its UTC hour."""

    lines: pa.Array  # string, one line per row in file order
    hours: np.ndarray  # int, the hour object each line belongs to
    isins: int  # instruments with at least one bar in the session

    @property
    def num_rows(self) -> int:
        """Rows of the day."""
        return len(self.lines)


def _bar_times(universe: Universe, day: dt.date,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """Minute (after midnight UTC) and instrument of every row; the first `bars` are trades."""
    n = universe.isin.size
    # One bar per (ISIN, minute) at most: drawing the whole matrix keeps it vectorised.
    traded = rng.random((SESSION_MINUTES, n), dtype=np.float32) < \
        universe.minute_probability.astype(np.float32)
    minute_index, instrument = np.nonzero(traded)
    start = session_start_utc(day)
    # Zero-volume rows outside the session: 2 % of instruments, at 04:00 and 19:30 summer time.
    quiet = np.sort(rng.choice(n, max(1, round(0.02 * n)), replace=False))
    minutes = np.concatenate([start + minute_index, np.full(quiet.size, start - 180),
                              np.full(quiet.size, start + SESSION_MINUTES + 240)])
    return minutes, np.concatenate([instrument, quiet, quiet]), minute_index.size


def _bar_values(universe: Universe, day: dt.date, instrument: np.ndarray, bars: int,
                rng: np.random.Generator) -> list[np.ndarray]:
    """StartPrice, MaxPrice, MinPrice, EndPrice, TradedVolume, NumberOfTrades of every row."""
    rows = instrument.size
    on_session = np.arange(rows) < bars
    day_level = universe.base_price * np.exp(rng.normal(0.0, 0.02, universe.isin.size) +
                                             0.01 * np.sin(day.toordinal() / 9.0))
    level = day_level[instrument] * np.exp(rng.normal(0.0, 0.004, rows))
    begin = np.round(level * np.exp(rng.normal(0.0, 0.001, rows)), 2)
    end = np.round(level * np.exp(rng.normal(0.0, 0.001, rows)), 2)
    high = np.maximum(np.maximum(begin, end), np.round(level * (1 + np.abs(
        rng.normal(0.0, 0.0008, rows))), 2))
    low = np.minimum(np.minimum(begin, end), np.round(level * (1 - np.abs(
        rng.normal(0.0, 0.0008, rows))), 2))
    volume = np.where(on_session, np.ceil(rng.pareto(1.2, rows) * 150).astype(np.int64) + 1, 0)
    trades = np.where(on_session, 1 + (volume > 200) * rng.integers(0, 12, rows), 0)
    # Off-session rows repeat a close with equal prices, as the bucket has them.
    for prices in (begin, end, high, low):
        prices[~on_session] = np.round(day_level[instrument[~on_session]], 2)
    return [begin, high, low, end, volume, trades]


def day_rows(universe: Universe, day: dt.date, seed: int) -> DayRows:
    """The rows of one trading day: session bars plus zero-volume off-session rows."""
    rng = np.random.default_rng([seed, day.toordinal()])
    minutes, instrument, bars = _bar_times(universe, day, rng)
    values = _bar_values(universe, day, instrument, bars, rng)
    hour = minutes // 60
    time_text = np.char.add(np.char.add(np.char.zfill((hour % 24).astype(str), 2), ":"),
                            np.char.zfill((minutes % 60).astype(str), 2))
    static = [universe.isin, universe.mnemonic, universe.desc_csv, universe.security_type,
              universe.currency]
    columns = [pc.take(_text(column), pa.array(instrument)) for column in static]
    columns += [pc.cast(pa.array(universe.security_id[instrument]), pa.string()),
                pa.array(np.full(instrument.size, day.isoformat()).astype(object), pa.string()),
                _text(time_text)]
    columns += [_price_text(prices) for prices in values[:4]]
    columns += [pc.cast(pa.array(values[4]), pa.string()),
                pc.binary_join_element_wise(pc.cast(pa.array(values[5]), pa.string()), "\n", "")]
    lines = pc.binary_join_element_wise(*columns, ",")
    order = np.lexsort((instrument, minutes))  # file order: by minute, then instrument
    return DayRows(lines=pc.take(lines, pa.array(order)), hours=hour[order],
                   isins=np.unique(instrument[:bars]).size)


def _concatenated(lines: pa.Array) -> bytes:
    """The lines of a string array joined, straight from its data buffer."""
    lines = pa.concat_arrays([lines]) if lines.offset else lines
    offsets = np.frombuffer(lines.buffers()[1], np.int32, len(lines) + 1)
    data = lines.buffers()[2]
    return data.to_pybytes()[offsets[0]:offsets[-1]] if len(lines) else b""


@dataclass
class GeneratedDay:
    """What was written for one date."""

    day: dt.date
    rows: int
    isins: int
    objects: int
    bytes_written: int


def write_day(root: Path, universe: Universe, day: dt.date, seed: int) -> GeneratedDay:
    """Write one date's hourly objects below `root`; returns what was written."""
    folder = root / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, day.toordinal(), 1])
    rows = day_rows(universe, day, seed) if is_trading_day(day) else None
    # Now and then one empty hour's object is missing altogether (docs/CONTRACT.md §1).
    missing = int(rng.integers(0, 24)) if rng.random() < 0.15 else -1
    objects = written = 0
    for hour in range(24):
        if rows is not None:
            in_hour = np.flatnonzero(rows.hours == hour)
            body = _concatenated(rows.lines.take(pa.array(in_hour))) if in_hour.size else b""
        else:
            body = b""
        if hour == missing and not body:
            continue
        data = HEADER_ONLY + body
        (folder / f"{day.isoformat()}_BINS_XETR{hour:02d}.csv").write_bytes(data)
        objects += 1
        written += len(data)
    if rows is None:
        return GeneratedDay(day, 0, 0, objects, written)
    return GeneratedDay(day, rows.num_rows, rows.isins, objects, written)


def generate(root: Path, first: dt.date, last: dt.date, *, isins: int = 3400,
             rows_per_day: int = 125_000, seed: int = 2021) -> list[GeneratedDay]:
    """Write every calendar date from `first` to `last` (inclusive) below `root`."""
    universe = make_universe(isins, rows_per_day, seed)
    days = []
    day = first
    while day <= last:
        days.append(write_day(Path(root), universe, day, seed))
        day += dt.timedelta(days=1)
    return days


def main(argv: list[str] | None = None) -> None:
    """Command line: write synthetic data for a date range."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--from", dest="first", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--to", dest="last", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--isins", type=int, default=3400)
    parser.add_argument("--rows-per-day", type=int, default=125_000)
    parser.add_argument("--seed", type=int, default=2021)
    args = parser.parse_args(argv)
    days = generate(args.out, args.first, args.last, isins=args.isins,
                    rows_per_day=args.rows_per_day, seed=args.seed)
    trading = [d for d in days if d.rows]
    print(f"{len(days)} dates ({len(trading)} trading), {sum(d.rows for d in days)} rows, "
          f"{sum(d.bytes_written for d in days) / 1e6:.1f} MB in {args.out}")


if __name__ == "__main__":
    main()
