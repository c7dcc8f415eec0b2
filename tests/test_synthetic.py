"""The synthetic data generator: calendar, layout and row properties, checked with pandas."""
from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from testkit import synthetic
from testkit.sourcedata import HEADER

FIRST, LAST = dt.date(2021, 3, 24), dt.date(2021, 4, 7)  # spans Easter 2021 and the DST switch


@pytest.fixture(scope="module", name="generated")
def generated_fixture(tmp_path_factory) -> tuple[Path, list[synthetic.GeneratedDay]]:
    """A small market over two weeks."""
    root = tmp_path_factory.mktemp("synthetic")
    return root, synthetic.generate(root, FIRST, LAST, isins=80, rows_per_day=1500, seed=7)


def read_day(root: Path, day: dt.date) -> pd.DataFrame:
    """Every row of a date, read with pandas, with the hour of the object it came from."""
    frames = []
    for path in sorted((root / day.isoformat()).glob("*.csv")):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frames.append(frame.assign(hour=int(path.stem[-2:])))
    return pd.concat(frames, ignore_index=True)


def test_easter_and_holidays_match_the_published_dates():
    assert synthetic.easter_sunday(2021) == dt.date(2021, 4, 4)
    assert synthetic.easter_sunday(2019) == dt.date(2019, 4, 21)
    assert synthetic.easter_sunday(2022) == dt.date(2022, 4, 17)
    assert sorted(d for d in synthetic.exchange_holidays(2021) if d.month in (4, 5)) == [
        dt.date(2021, 4, 2), dt.date(2021, 4, 5), dt.date(2021, 5, 1)]
    assert not synthetic.is_trading_day(dt.date(2021, 4, 2))   # Good Friday
    assert not synthetic.is_trading_day(dt.date(2021, 3, 27))  # Saturday
    assert not synthetic.is_trading_day(dt.date(2021, 12, 24))
    assert synthetic.is_trading_day(dt.date(2021, 4, 6))


def test_session_opens_at_nine_frankfurt_time_in_utc():
    assert synthetic.session_start_utc(dt.date(2021, 3, 26)) == 8 * 60   # CET
    assert synthetic.session_start_utc(dt.date(2021, 3, 29)) == 7 * 60   # CEST


def test_every_calendar_date_has_its_hourly_objects(generated):
    root, days = generated
    assert [d.day for d in days] == [FIRST + dt.timedelta(days=i) for i in range(15)]
    for day in days:
        names = sorted(p.name for p in (root / day.day.isoformat()).iterdir())
        assert len(names) == day.objects
        assert day.objects in (23, 24)
        assert set(names) <= {f"{day.day}_BINS_XETR{h:02d}.csv" for h in range(24)}
    assert any(day.objects == 23 for day in days), "no hour is ever missing"


def test_days_without_trading_are_header_only_objects(generated):
    root, days = generated
    closed = [d.day for d in days if not synthetic.is_trading_day(d.day)]
    assert closed == [dt.date(2021, 3, 27), dt.date(2021, 3, 28), dt.date(2021, 4, 2),
                      dt.date(2021, 4, 3), dt.date(2021, 4, 4), dt.date(2021, 4, 5)]
    for day in closed:
        for path in (root / day.isoformat()).iterdir():
            assert path.read_bytes() == (HEADER + "\n").encode()
            assert path.stat().st_size == 136


def test_rows_are_well_formed_and_counted(generated):
    root, days = generated
    for day in days:
        rows = read_day(root, day.day)
        assert len(rows) == day.rows
        if not day.rows:
            continue
        assert (rows["Date"] == day.day.isoformat()).all()
        assert rows["Time"].str.fullmatch(r"([01]\d|2[0-3]):[0-5]\d").all()
        assert (rows["Time"].str[:2].astype(int) == rows["hour"]).all()  # filed by its hour
        assert rows["ISIN"].str.fullmatch(r"[A-Z]{2}[A-Z0-9]{9}\d").all()
        prices = rows[["StartPrice", "MaxPrice", "MinPrice", "EndPrice"]].astype(float)
        assert (prices["MinPrice"] <= prices[["StartPrice", "EndPrice"]].min(axis=1)).all()
        assert (prices["MaxPrice"] >= prices[["StartPrice", "EndPrice"]].max(axis=1)).all()
        assert (prices > 0).all().all()
        assert not rows.duplicated(["ISIN", "Time"]).any()


def test_quoted_commas_parse_to_fourteen_fields(generated):
    root, days = generated
    trading = [d.day for d in days if d.rows]
    lines = b"".join((root / trading[0].isoformat() / f"{trading[0]}_BINS_XETR{h:02d}.csv")
                     .read_bytes().split(b"\n", 1)[1] for h in range(7, 17)).decode()
    quoted = [line for line in lines.splitlines() if '"' in line]
    assert quoted, "no SecurityDesc with a comma"
    for fields in csv.reader(quoted):
        assert len(fields) == 14 and "," in fields[2]
    # Only fields that need it are quoted (the newer format).
    assert all(line.count('"') == 2 for line in quoted)


def test_off_session_rows_have_zero_volume_at_the_usual_times(generated):
    root, _ = generated
    for day in (dt.date(2021, 3, 26), dt.date(2021, 3, 30)):  # winter, then summer time
        rows = read_day(root, day)
        volume = rows["TradedVolume"].astype(int)
        start = synthetic.session_start_utc(day)
        minutes = rows["Time"].str[:2].astype(int) * 60 + rows["Time"].str[3:].astype(int)
        in_session = (minutes >= start) & (minutes < start + synthetic.SESSION_MINUTES)
        assert (volume[in_session] > 0).all()
        assert (volume[~in_session] == 0).all() and (~in_session).sum() > 0
        expected = {"04:00", "19:30"} if start == 7 * 60 else {"05:00", "20:30"}
        assert set(rows.loc[~in_session, "Time"]) == expected


def test_some_instruments_trade_in_other_currencies_and_many_are_illiquid(generated):
    root, _ = generated
    rows = read_day(root, dt.date(2021, 3, 30))
    currencies = set(rows["Currency"])
    assert "EUR" in currencies and currencies - {"EUR"} <= set(synthetic.OTHER_CURRENCIES)
    universe = synthetic.make_universe(80, 1500, 7)
    assert currencies - {"EUR"} == set(universe.currency) - {"EUR"}
    bars = rows[rows["TradedVolume"].astype(int) > 0].groupby("ISIN").size()
    assert bars.max() > 100 and (bars <= 3).sum() >= 5  # liquid and illiquid instruments


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    day = dt.date(2021, 3, 30)
    for seed, name in ((1, "a"), (1, "b"), (2, "c")):
        synthetic.generate(tmp_path / name, day, day, isins=30, rows_per_day=400, seed=seed)

    def content(name: str) -> bytes:
        return b"".join(p.read_bytes() for p in sorted((tmp_path / name).rglob("*.csv")))
    assert content("a") == content("b")
    assert content("a") != content("c")


def test_default_sizes_are_like_2021():
    universe = synthetic.make_universe(3400, 125_000, 2021)
    rows = synthetic.day_rows(universe, dt.date(2021, 3, 30), 2021)
    assert 115_000 <= rows.num_rows <= 135_000
    assert 2_700 <= rows.isins <= 3_300
    assert np.all(np.diff(rows.hours) >= 0)  # file order is time order
