"""Hand-made Xetra source data: the header, rows, hourly objects and days in the bucket layout.

Two row builders, for two kinds of test: a `Bar` writes its fields as given, unquoted, so a
test can put any text (bad prices, a pre-quoted description) into a line; `row` gives a source
row as a mapping, which `rows_csv` writes with the csv module in any column order.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from xetra.formats import SOURCE_COLUMNS

HEADER = ",".join(SOURCE_COLUMNS)
HEADER_ONLY = (HEADER + "\n").encode()  # 136 bytes: an hour without trades, as in the bucket


def hourly_key(day: str, hour: int) -> str:
    """The source key of an hourly object."""
    return f"{day}/{day}_BINS_XETR{hour:02d}.csv"


@dataclass(frozen=True)
class Bar:
    """One minute bar; prices are given as text so tests can also write bad values."""

    isin: str
    time: str
    start: str
    maximum: str
    minimum: str
    end: str
    volume: str
    currency: str = "EUR"
    desc: str = '"TEST AG, INH."'
    day: str | None = None  # defaults to the day the bar is filed under

    def line(self, day: dt.date) -> str:
        """The CSV line of this bar on `day`."""
        return ",".join([self.isin, "TST", self.desc, "Common stock", self.currency, "123456",
                         self.day or day.isoformat(), self.time, self.start, self.maximum,
                         self.minimum, self.end, self.volume, "1"])


def bar(isin: str, time: str, start: float, end: float, volume: int, *,
        minimum: float | None = None, maximum: float | None = None,
        currency: str = "EUR") -> Bar:
    """A valid bar; min and max default to the lower and higher of start and end."""
    low = min(start, end) if minimum is None else minimum
    high = max(start, end) if maximum is None else maximum
    return Bar(isin, time, str(start), str(high), str(low), str(end), str(volume), currency)


def csv_bytes(day: dt.date, bars: list[Bar], line_end: str = "\n") -> bytes:
    """A whole hourly object: header plus the bars' lines."""
    return line_end.join([HEADER, *(b.line(day) for b in bars)]).encode() + line_end.encode()


def write_day(root: Path, day: dt.date, bars: list[Bar], hours: range = range(24),
              missing_hours: tuple[int, ...] = ()) -> None:
    """Write a day in the bucket layout: each bar into the object of its UTC hour, every other
    hour header-only (136 bytes), `missing_hours` not at all."""
    folder = root / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    for hour in hours:
        if hour in missing_hours:
            continue
        in_hour = [b for b in bars if int(b.time[:2]) == hour]
        (folder / f"{day.isoformat()}_BINS_XETR{hour:02d}.csv").write_bytes(
            csv_bytes(day, in_hour))


def write_no_trading_day(root: Path, day: dt.date) -> None:
    """A weekend or holiday as the bucket has it: 24 header-only objects."""
    write_day(root, day, [])


def row(isin: str, day: str, time: str, prices: tuple, volume, **fields: str) -> dict[str, str]:
    """One source row as a mapping of column name to text; `prices` is (start, max, min, end)
    and `fields` override other columns (e.g. Currency="USD")."""
    start, high, low, end = prices
    values = {"ISIN": isin, "Mnemonic": "MNE", "SecurityDesc": "SOME SHARE",
              "SecurityType": "Common stock", "Currency": "EUR", "SecurityID": "2504159",
              "Date": day, "Time": time, "StartPrice": str(start), "MaxPrice": str(high),
              "MinPrice": str(low), "EndPrice": str(end), "TradedVolume": str(volume),
              "NumberOfTrades": "1"}
    values.update(fields)
    return values


def rows_csv(rows: Iterable[dict[str, str]], columns: Iterable[str] = SOURCE_COLUMNS,
             newline: str = "\n") -> bytes:
    """An hourly object: header and rows in `columns` order, written by the csv module."""
    columns = list(columns)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=newline)
    writer.writerow(columns)
    for item in rows:
        writer.writerow([item.get(name, "") for name in columns])
    return out.getvalue().encode()


# Rows that differ in exactly one source column, for the duplicate tests (docs/CONTRACT.md
# section 2.8: only rows equal in all 14 fields are duplicates).
BASE = row("DE0007164600", "2021-05-07", "09:00", ("10.0", "10.5", "9.5", "10.2"), 100)
# Per source column: a value that differs from BASE's in that column only, with the report
# that BASE plus that row gives, worked out by hand: {isin: (volume, min, max, open, close)}
# and the rows counted invalid. Both rows are trades (EUR and USD are the currencies here)
# except with another Date, which makes the row invalid.
ONE_COLUMN_DIFFERS = {
    "ISIN": ("DE0005190003", {"DE0005190003": (100, 9.5, 10.5, 10.0, 10.2),
                              "DE0007164600": (100, 9.5, 10.5, 10.0, 10.2)}, 0),
    "Mnemonic": ("OTHR", {"DE0007164600": (200, 9.5, 10.5, 10.0, 10.2)}, 0),
    "SecurityDesc": ("SOME SHARE, PREF.", {"DE0007164600": (200, 9.5, 10.5, 10.0, 10.2)}, 0),
    "SecurityType": ("ETF", {"DE0007164600": (200, 9.5, 10.5, 10.0, 10.2)}, 0),
    "Currency": ("USD", {"DE0007164600": (200, 9.5, 10.5, 10.0, 10.2)}, 0),
    "SecurityID": ("2504160", {"DE0007164600": (200, 9.5, 10.5, 10.0, 10.2)}, 0),
    "Date": ("2021-05-06", {"DE0007164600": (100, 9.5, 10.5, 10.0, 10.2)}, 1),
    "Time": ("09:01", {"DE0007164600": (200, 9.5, 10.5, 10.0, 10.2)}, 0),
    "StartPrice": ("10.1", {"DE0007164600": (200, 9.5, 10.5, 10.0, 10.2)}, 0),
    "MaxPrice": ("10.7", {"DE0007164600": (200, 9.5, 10.7, 10.0, 10.2)}, 0),
    "MinPrice": ("9.4", {"DE0007164600": (200, 9.4, 10.5, 10.0, 10.2)}, 0),
    "EndPrice": ("10.3", {"DE0007164600": (200, 9.5, 10.5, 10.0, 10.3)}, 0),
    "TradedVolume": ("40", {"DE0007164600": (140, 9.5, 10.5, 10.0, 10.2)}, 0),
    "NumberOfTrades": ("2", {"DE0007164600": (200, 9.5, 10.5, 10.0, 10.2)}, 0),
}
