"""What a user would otherwise pick, computing the same report1 over a local source folder.

Each peer runs as its own process (so its peak RSS is its own) and writes one parquet file with
the report's default column names, sorted by (date, isin):

    python -m benchmarks.peers duckdb|polars|pyarrow SOURCE_DIR OUT_FILE FIRST LAST

The same rules as the job (docs/CONTRACT.md §2): exact duplicate rows count once; a trade has
TradedVolume > 0 and Currency EUR; open is the StartPrice of the earliest Time, close the
EndPrice of the latest; the previous trading day is the latest earlier date with any trade,
at most 10 calendar days back; change = round((close - prev) / prev * 100, 2) (half to even, as
Arrow's round), null when the
previous close is missing or 0. `pyarrow` only parses every non-empty CSV (the floor).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import warnings
from pathlib import Path

LOOKBACK_DAYS = 10
GLOB = "*/*_BINS_XETR[0-2][0-9].csv"
COLUMNS = ["isin", "date", "opening_price_eur", "closing_price_eur", "minimum_price_eur",
           "maximum_price_eur", "daily_traded_volume", "change_prev_closing_%"]
HEADER_ONLY_SIZES = (136, 137)

DUCKDB_QUERY = """
WITH src AS (
  SELECT DISTINCT * FROM read_csv(?, header = true, auto_detect = false, quote = '"',
    columns = {'ISIN': 'VARCHAR', 'Mnemonic': 'VARCHAR', 'SecurityDesc': 'VARCHAR',
               'SecurityType': 'VARCHAR', 'Currency': 'VARCHAR', 'SecurityID': 'VARCHAR',
               'Date': 'DATE', 'Time': 'VARCHAR', 'StartPrice': 'DOUBLE', 'MaxPrice': 'DOUBLE',
               'MinPrice': 'DOUBLE', 'EndPrice': 'DOUBLE', 'TradedVolume': 'BIGINT',
               'NumberOfTrades': 'BIGINT'})
), trades AS (
  SELECT * FROM src
  WHERE TradedVolume > 0 AND Currency = 'EUR' AND ISIN IS NOT NULL AND Time IS NOT NULL
    AND StartPrice IS NOT NULL AND EndPrice IS NOT NULL AND MinPrice IS NOT NULL
    AND MaxPrice IS NOT NULL
), daily AS (
  SELECT ISIN AS isin, Date AS date, arg_min(StartPrice, Time) AS opening_price_eur,
         arg_max(EndPrice, Time) AS closing_price_eur, min(MinPrice) AS minimum_price_eur,
         max(MaxPrice) AS maximum_price_eur,
         CAST(sum(TradedVolume) AS BIGINT) AS daily_traded_volume
  FROM trades GROUP BY ALL
), days AS (
  SELECT date, lag(date) OVER (ORDER BY date) AS previous
  FROM (SELECT DISTINCT date FROM daily)
), previous_day AS (
  SELECT date, CASE WHEN date - previous <= ? THEN previous END AS previous FROM days
)
SELECT d.isin, d.date, d.opening_price_eur, d.closing_price_eur, d.minimum_price_eur,
       d.maximum_price_eur, d.daily_traded_volume,
       round_even((d.closing_price_eur - p.closing_price_eur) / NULLIF(p.closing_price_eur, 0) * 100,
             2) AS "change_prev_closing_%"
FROM daily d JOIN previous_day pd USING (date)
LEFT JOIN daily p ON p.isin = d.isin AND p.date = pd.previous
WHERE d.date BETWEEN ? AND ?
ORDER BY d.date, d.isin
"""


def _non_empty_files(source: Path) -> list[str]:
    """Hourly objects holding rows (header-only ones are skipped by size, as the job does)."""
    return sorted(str(path) for path in source.glob(GLOB)
                  if path.stat().st_size not in HEADER_ONLY_SIZES)


def run_duckdb(source: Path, out: Path, first: dt.date, last: dt.date) -> int:
    """report1 by one DuckDB SQL query; returns its row count."""
    import duckdb  # pylint: disable=import-outside-toplevel
    connection = duckdb.connect()
    with warnings.catch_warnings():  # the extra copy it warns about is of the small result
        warnings.simplefilter("ignore")
        table = connection.execute(DUCKDB_QUERY, [_non_empty_files(source), LOOKBACK_DAYS,
                                                  first, last]).to_arrow_table()
    _write(table, out)
    return table.num_rows


def run_polars(source: Path, out: Path, first: dt.date, last: dt.date) -> int:
    """report1 by one polars lazy query; returns its row count."""
    import polars as pl  # pylint: disable=import-outside-toplevel
    schema = {"ISIN": pl.String, "Mnemonic": pl.String, "SecurityDesc": pl.String,
              "SecurityType": pl.String, "Currency": pl.String, "SecurityID": pl.String,
              "Date": pl.Date, "Time": pl.String, "StartPrice": pl.Float64,
              "MaxPrice": pl.Float64, "MinPrice": pl.Float64, "EndPrice": pl.Float64,
              "TradedVolume": pl.Int64, "NumberOfTrades": pl.Int64}
    prices = ["StartPrice", "EndPrice", "MinPrice", "MaxPrice"]
    trades = (pl.scan_csv(_non_empty_files(source), schema=schema)
              .unique(maintain_order=True)
              .filter((pl.col("TradedVolume") > 0) & (pl.col("Currency") == "EUR")
                      & pl.all_horizontal(pl.col(["ISIN", "Time", *prices]).is_not_null())))
    daily = (trades.sort("Time", maintain_order=True)
             .group_by(pl.col("ISIN").alias("isin"), pl.col("Date").alias("date"))
             .agg(pl.col("StartPrice").first().alias("opening_price_eur"),
                  pl.col("EndPrice").last().alias("closing_price_eur"),
                  pl.col("MinPrice").min().alias("minimum_price_eur"),
                  pl.col("MaxPrice").max().alias("maximum_price_eur"),
                  pl.col("TradedVolume").sum().cast(pl.Int64).alias("daily_traded_volume")))
    days = (daily.select("date").unique().sort("date")
            .with_columns(pl.col("date").shift(1).alias("previous"))
            .with_columns(pl.when((pl.col("date") - pl.col("previous")).dt.total_days()
                                  <= LOOKBACK_DAYS).then(pl.col("previous")).alias("previous")))
    previous = daily.select("isin", pl.col("date").alias("previous"),
                            pl.col("closing_price_eur").alias("previous_close"))
    report = (daily.join(days, on="date")
              .join(previous, on=["isin", "previous"], how="left")
              .filter(pl.col("date").is_between(first, last))
              .with_columns(
                  ((pl.col("closing_price_eur") - pl.col("previous_close"))
                   / pl.when(pl.col("previous_close") != 0).then(pl.col("previous_close"))
                   * 100).round(2).alias("change_prev_closing_%"))
              .select(COLUMNS).sort(["date", "isin"]))
    table = report.collect().to_arrow()
    _write(table, out)
    return table.num_rows


def run_pyarrow(source: Path, out: Path, _first: dt.date, _last: dt.date) -> int:
    """Only parse every non-empty CSV with pyarrow's defaults (type inference, all columns)."""
    import pyarrow as pa  # pylint: disable=import-outside-toplevel
    import pyarrow.csv as pacsv  # pylint: disable=import-outside-toplevel
    rows = 0
    for path in _non_empty_files(source):
        rows += pacsv.read_csv(path).num_rows
    _write(pa.table({"rows": [rows]}), out)
    return rows


def _write(table, out: Path) -> None:
    import pyarrow.parquet as pq  # pylint: disable=import-outside-toplevel
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)


PEERS = {"duckdb": run_duckdb, "polars": run_polars, "pyarrow": run_pyarrow}


def main(argv: list[str] | None = None) -> None:
    """Command line: run one peer."""
    parser = argparse.ArgumentParser(description="Run one peer of the xetra job.")
    parser.add_argument("peer", choices=sorted(PEERS))
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("first", type=dt.date.fromisoformat)
    parser.add_argument("last", type=dt.date.fromisoformat)
    args = parser.parse_args(argv)
    rows = PEERS[args.peer](args.source, args.out, args.first, args.last)
    os.write(1, f"{args.peer}: {rows} rows\n".encode())


if __name__ == "__main__":
    main()
