"""A second, deliberately plain implementation of report1 in pandas, to check the job against.

It reads every CSV of a folder at once, with none of the job's code: if both agree on real
data, the job's streaming, look-back and typing are right.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

COLUMNS = ["isin", "date", "opening_price_eur", "closing_price_eur", "minimum_price_eur",
           "maximum_price_eur", "daily_traded_volume", "change_prev_closing_%"]


def read_all_rows(folder: Path) -> pd.DataFrame:
    """Every row of every hourly CSV below `folder`, as text and numbers."""
    frames = [pd.read_csv(path, dtype={"ISIN": str, "Currency": str, "Date": str, "Time": str})
              for path in sorted(folder.glob("*/*_BINS_XETR??.csv"))]
    return pd.concat(frames, ignore_index=True)


def reference_report(folder: Path, first: dt.date, last: dt.date,
                     lookback_days: int = 10) -> pd.DataFrame:
    """report1 for dates `first`..`last` computed from all rows in `folder` in one go."""
    rows = read_all_rows(folder).drop_duplicates()
    trades = rows[(rows["TradedVolume"] > 0) & (rows["Currency"] == "EUR")]
    trades = trades.dropna(subset=["StartPrice", "EndPrice", "MinPrice", "MaxPrice"])
    trades = trades.sort_values("Time", kind="stable")
    daily = trades.groupby(["ISIN", "Date"], sort=True).agg(
        opening_price_eur=("StartPrice", "first"), closing_price_eur=("EndPrice", "last"),
        minimum_price_eur=("MinPrice", "min"), maximum_price_eur=("MaxPrice", "max"),
        daily_traded_volume=("TradedVolume", "sum")).reset_index()
    daily["date"] = pd.to_datetime(daily["Date"]).dt.date
    trading_days = sorted(set(daily["date"]))
    closes = {(row.ISIN, row.date): row.closing_price_eur for row in daily.itertuples()}

    def previous_trading_day(day: dt.date) -> dt.date | None:
        earlier = [d for d in trading_days if d < day and (day - d).days <= lookback_days]
        return earlier[-1] if earlier else None

    changes = []
    for row in daily.itertuples():
        previous_day = previous_trading_day(row.date)
        previous = closes.get((row.ISIN, previous_day)) if previous_day else None
        if previous is None or previous == 0:
            changes.append(None)
        else:
            changes.append(round((row.closing_price_eur - previous) / previous * 100, 2))
    daily["change_prev_closing_%"] = pd.array(changes, dtype="Float64")
    daily = daily.rename(columns={"ISIN": "isin"})
    wanted = daily[(daily["date"] >= first) & (daily["date"] <= last)]
    return wanted[COLUMNS].sort_values(["date", "isin"]).reset_index(drop=True)
