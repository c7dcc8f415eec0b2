"""What a user would otherwise pick, computing the same report1 over a local source folder.

Each peer runs as its own process (so its peak RSS is its own). DuckDB and polars write one
parquet file with the report's default column names, sorted by (date, isin), with their own
writers; the floors (pyarrow, fetch) write their count (rows, bytes) as text:

    python -m benchmarks.peers duckdb|polars|pyarrow SOURCE_DIR OUT_FILE FIRST LAST
    python -m benchmarks.peers duckdb|polars|fetch SOURCE_DIR OUT FIRST LAST --endpoint URL

With `--endpoint` (an S3 endpoint, e.g. the remote-S3 proxy; credentials from the environment)
the peers read the same objects from the bucket `--bucket` instead of the folder (which only
names them): DuckDB through its httpfs extension, LOADed from the PyPI package
`duckdb-extension-httpfs` (benchmarks/make_duckdb_httpfs_venv.sh), polars through its own object
store, and `fetch` only GETs every object, `--concurrency` at a time (the floor of any job that
reads them).

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Remote:
    """Where the peers read from instead of the folder: an S3 endpoint and bucket."""

    endpoint: str
    bucket: str

    @property
    def host(self) -> str:
        """HOST:PORT of the endpoint."""
        return self.endpoint.split("://", 1)[-1].rstrip("/")

    def url(self, key: str) -> str:
        """The s3:// URL of `key`."""
        return f"s3://{self.bucket}/{key}"


def _non_empty_files(source: Path, remote: Remote | None = None) -> list[str]:
    """Hourly objects holding rows (header-only ones are skipped by size, as the job does):
    paths below `source`, or with `remote` the s3:// URLs of the same keys."""
    paths = sorted(path for path in source.glob(GLOB)
                   if path.stat().st_size not in HEADER_ONLY_SIZES)
    if remote is None:
        return [str(path) for path in paths]
    return [remote.url(path.relative_to(source).as_posix()) for path in paths]


def _credentials() -> tuple[str, str, str]:
    """Access key, secret key and region from the environment (as boto3 reads them)."""
    return (os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"],
            os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))


def _duckdb_httpfs(connection, remote: Remote) -> None:
    """LOAD httpfs from the PyPI package by path (no download) and point it at `remote`."""
    import duckdb_extension_httpfs  # pylint: disable=import-outside-toplevel,import-error
    folder = Path(duckdb_extension_httpfs.__path__[0])
    extension = next(folder.rglob("httpfs.duckdb_extension"))
    connection.execute("SET autoinstall_known_extensions = false")
    connection.execute(f"LOAD '{extension}'")
    key, secret, region = _credentials()
    connection.execute(f"CREATE SECRET bench (TYPE s3, KEY_ID '{key}', SECRET '{secret}', "
                       f"REGION '{region}', ENDPOINT '{remote.host}', URL_STYLE 'path', "
                       f"USE_SSL false)")


def run_duckdb(source: Path, out: Path, first: dt.date, last: dt.date,
               remote: Remote | None = None) -> int:
    """report1 by one DuckDB SQL query; returns its row count."""
    import duckdb  # pylint: disable=import-outside-toplevel
    connection = duckdb.connect()
    if remote is not None:
        _duckdb_httpfs(connection, remote)
    out.parent.mkdir(parents=True, exist_ok=True)
    # DuckDB's own parquet writer, as its user would: no pyarrow import (~0.15 s of a week).
    target = str(out).replace("'", "''")
    (rows,) = connection.execute(f"COPY ({DUCKDB_QUERY}) TO '{target}' (FORMAT parquet)",
                                 [_non_empty_files(source, remote), LOOKBACK_DAYS, first,
                                  last]).fetchone()
    return rows


def run_polars(source: Path, out: Path, first: dt.date, last: dt.date,
               remote: Remote | None = None) -> int:
    """report1 by one polars lazy query; returns its row count."""
    import polars as pl  # pylint: disable=import-outside-toplevel
    schema = {"ISIN": pl.String, "Mnemonic": pl.String, "SecurityDesc": pl.String,
              "SecurityType": pl.String, "Currency": pl.String, "SecurityID": pl.String,
              "Date": pl.Date, "Time": pl.String, "StartPrice": pl.Float64,
              "MaxPrice": pl.Float64, "MinPrice": pl.Float64, "EndPrice": pl.Float64,
              "TradedVolume": pl.Int64, "NumberOfTrades": pl.Int64}
    prices = ["StartPrice", "EndPrice", "MinPrice", "MaxPrice"]
    options = None
    if remote is not None:
        key, secret, region = _credentials()
        options = {"aws_endpoint_url": remote.endpoint, "aws_access_key_id": key,
                   "aws_secret_access_key": secret, "aws_region": region,
                   "aws_allow_http": "true"}
    trades = (pl.scan_csv(_non_empty_files(source, remote), schema=schema,
                          storage_options=options)
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
    frame = report.collect()
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(out)  # polars' own writer, as its user would: no pyarrow import
    return frame.height


def run_pyarrow(source: Path, out: Path, _first: dt.date, _last: dt.date,
                _remote: Remote | None = None) -> int:
    """Only parse every non-empty CSV with pyarrow's defaults (type inference, all columns)."""
    import pyarrow.csv as pacsv  # pylint: disable=import-outside-toplevel
    rows = 0
    for path in _non_empty_files(source):
        rows += pacsv.read_csv(path).num_rows
    _write_count(rows, out)
    return rows


def run_fetch(source: Path, out: Path, _first: dt.date, _last: dt.date,
              remote: Remote | None = None, concurrency: int = 8) -> int:
    """GET every non-empty object from `remote`, `concurrency` at a time, and parse nothing:
    the fetch floor. Writes and returns the number of bytes read."""
    import boto3  # pylint: disable=import-outside-toplevel
    from botocore.config import Config  # pylint: disable=import-outside-toplevel
    if remote is None:
        raise SystemExit("fetch needs --endpoint")
    client = boto3.client("s3", endpoint_url=remote.endpoint,
                          config=Config(max_pool_connections=concurrency))
    keys = [url.split("/", 3)[3] for url in _non_empty_files(source, remote)]

    def get(key: str) -> int:
        return len(client.get_object(Bucket=remote.bucket, Key=key)["Body"].read())

    with ThreadPoolExecutor(concurrency) as pool:
        total = sum(pool.map(get, keys))
    _write_count(total, out)
    return total


def _write_count(count: int, out: Path) -> None:
    """A floor's result, as text: no parquet writer (nor, for fetch, pyarrow) in its time."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"{count}\n", encoding="utf-8")


PEERS = {"duckdb": run_duckdb, "polars": run_polars, "pyarrow": run_pyarrow,
         "fetch": run_fetch}


def main(argv: list[str] | None = None) -> None:
    """Command line: run one peer."""
    parser = argparse.ArgumentParser(description="Run one peer of the xetra job.")
    parser.add_argument("peer", choices=sorted(PEERS))
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("first", type=dt.date.fromisoformat)
    parser.add_argument("last", type=dt.date.fromisoformat)
    parser.add_argument("--endpoint", help="read from this S3 endpoint instead of the folder")
    parser.add_argument("--bucket", default="bench-source")
    args = parser.parse_args(argv)
    remote = Remote(args.endpoint, args.bucket) if args.endpoint else None
    rows = PEERS[args.peer](args.source, args.out, args.first, args.last, remote)
    os.write(1, f"{args.peer}: {rows} rows\n".encode())


if __name__ == "__main__":
    main()
