"""Stores as a test sees them, and reading a target back (meta file, report objects) with
none of the job's code: the csv module, pyarrow and pandas."""
from __future__ import annotations

import csv
import io
import math
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from testkit.s3servers import S3Server

# The target layout under the default settings.
META_KEY = "meta/report1/xetra_report1_meta_file.csv"
LOCK_KEY = "meta/report1/xetra_report1.lock"
REPORT_COLUMNS = ["isin", "date", "opening_price_eur", "closing_price_eur", "minimum_price_eur",
                  "maximum_price_eur", "daily_traded_volume", "change_prev_closing_%"]


def report_key(day: str) -> str:
    """The report object key of a date under the default settings."""
    return f"report1/xetra_report1_{day}.parquet"


class Folder:
    """A local folder standing in for a bucket, as the test sees it."""

    def __init__(self, root: Path):
        self.root = root
        self.url = str(root)

    def put(self, key: str, data: bytes) -> None:
        """Create or replace an object."""
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def objects(self, prefix: str = "") -> dict[str, bytes]:
        """Every object under `prefix` (temporary files of interrupted writes included) by
        key."""
        return local_objects(self.root, prefix)


class Bucket:
    """A bucket on a test S3 server, as the test sees it (its own client, no proxy)."""

    def __init__(self, server: S3Server, name: str):
        self.server = server
        self.name = name
        self.client = server.client()
        self.client.create_bucket(Bucket=name)
        self.url = f"s3://{name}/"

    def put(self, key: str, data: bytes) -> None:
        """Create or replace an object."""
        self.client.put_object(Bucket=self.name, Key=key, Body=data)

    def objects(self, prefix: str = "") -> dict[str, bytes]:
        """Every object under `prefix` by key."""
        return s3_objects(self.client, self.name, prefix)


def new_bucket(server: S3Server, role: str) -> Bucket:
    """A fresh bucket on `server` (the server is shared by the whole session)."""
    return Bucket(server, f"xetra-{role}-{uuid.uuid4().hex[:10]}")


def fill(store: Folder | Bucket, objects: dict[str, bytes]) -> None:
    """Put every object of `objects` into `store`."""
    for key, data in objects.items():
        store.put(key, data)


def local_objects(root: Path, prefix: str = "") -> dict[str, bytes]:
    """Every file under `root`/`prefix` by key (relative to `root`)."""
    if not (root / prefix).exists():
        return {}
    return {path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted((root / prefix).rglob("*")) if path.is_file()}


def s3_objects(client, bucket: str, prefix: str = "") -> dict[str, bytes]:
    """Every object of `bucket` under `prefix` by key."""
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = client.get_object(Bucket=bucket,
                                                   Key=item["Key"])["Body"].read()
    return found


def meta_rows(data: bytes) -> list[dict[str, str]]:
    """The meta file's rows, read with the csv module (independently of xetra.meta)."""
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def meta_records(data: bytes) -> list[tuple[str, str, str]]:
    """(source_date, report_key, report_rows) of every meta file row, in file order: the rows
    without their processing time, so that two runs' meta files compare equal."""
    return [(row["source_date"], row["report_key"], row["report_rows"])
            for row in meta_rows(data)]


def report_table(objects: dict[str, bytes]) -> pa.Table:
    """All report objects (key -> parquet bytes) as one table sorted by (date, isin)."""
    tables = [pq.ParquetFile(io.BytesIO(data)).read() for _, data in sorted(objects.items())]
    return pa.concat_tables(tables).sort_by([("date", "ascending"), ("isin", "ascending")])


def report_values(data: bytes) -> list[tuple]:
    """A report object's rows as (isin, open, close, min, max, volume, change), by pandas."""
    frame = pd.read_parquet(io.BytesIO(data))
    assert list(frame.columns) == REPORT_COLUMNS
    values = []
    for item in frame.itertuples(index=False):
        change = item[7]
        values.append((item[0], item[2], item[3], item[4], item[5], int(item[6]),
                       None if change is None or (isinstance(change, float)
                                                  and math.isnan(change)) else change))
    return values


def assert_report(data: bytes, expected: list[tuple]) -> None:
    """A report object holds exactly `expected` rows (prices to 1e-12, change exactly)."""
    actual = report_values(data)
    assert [r[0] for r in actual] == [e[0] for e in expected]
    for got, want in zip(actual, expected):
        assert all(math.isclose(g, w, rel_tol=1e-12)
                   for g, w in zip(got[1:5], want[1:5])), (got, want)
        assert got[5] == want[5]
        assert got[6] == want[6], (got, want)
