"""Helpers of the backfill tests: small multi-week data, configs, and reading a target back."""
from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from benchmarks.backfill_data import make_dataset

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
# The sample's small real days as weekdays, its real weekend as weekends: 2018-01-01 (a Monday)
# .. 2018-01-21 is 15 weekdays and 3 weekends of real rows with rewritten dates.
SMALL_TRADING_DAYS = tuple(SAMPLE / f"2017-06-{day}" for day in (26, 27, 28, 29, 30))
SMALL_WEEKEND = (SAMPLE / "2017-07-01", SAMPLE / "2017-07-02")
FIRST = dt.date(2018, 1, 1)


def make_small_source(folder: Path, weekdays: int = 15) -> dt.date:
    """Write the small data set under `folder`; returns its last date."""
    last, _ = make_dataset(folder, FIRST, weekdays, SMALL_TRADING_DAYS, SMALL_WEEKEND)
    return last


def write_config(path: Path, source: str, target: str, endpoint: str | None = None,
                 lock_ttl_seconds: int = 900) -> Path:
    """A job config for `source` -> `target` (local paths or s3:// on `endpoint`)."""
    def location(url: str) -> dict:
        if url.startswith("s3://"):
            return {"url": url, "endpoint_url": endpoint, "region": "us-east-1"}
        return {"url": url}
    config = {
        "source": location(source), "target": location(target),
        "job": {"first_date": FIRST.isoformat()},
        "meta": {"lock_ttl_seconds": lock_ttl_seconds},
        "s3": {"max_attempts": 3, "connect_timeout": 5, "read_timeout": 30},
        "logging": {"version": 1, "disable_existing_loggers": False,
                    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(message)s"}},
                    "handlers": {"console": {"class": "logging.StreamHandler",
                                             "formatter": "plain",
                                             "stream": "ext://sys.stdout"}},
                    "root": {"level": "INFO", "handlers": ["console"]}},
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def meta_rows(data: bytes) -> list[tuple[str, str, str]]:
    """(source_date, report_key, report_rows) of every meta file row, in file order."""
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    return [(row["source_date"], row["report_key"], row["report_rows"]) for row in rows]


def report_table(objects: dict[str, bytes]) -> pa.Table:
    """All report objects (key -> parquet bytes) as one table sorted by (date, isin)."""
    tables = [pq.ParquetFile(io.BytesIO(data)).read() for _, data in sorted(objects.items())]
    return pa.concat_tables(tables).sort_by([("date", "ascending"), ("isin", "ascending")])


def local_objects(root: Path, prefix: str) -> dict[str, bytes]:
    """Every file under `root`/`prefix` by key."""
    return {path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted((root / prefix).rglob("*")) if path.is_file()}


def s3_objects(client, bucket: str, prefix: str) -> dict[str, bytes]:
    """Every object of `bucket` under `prefix` by key."""
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = client.get_object(Bucket=bucket,
                                                   Key=item["Key"])["Body"].read()
    return found
