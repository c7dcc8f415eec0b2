"""The bundled real sample as the end-to-end tests use it: its reported range, a config for
it, and its report read back and compared with the independent reference."""
from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from testkit.config import job_config, write_config
from testkit.paths import CONFIGS

FIRST, LAST = dt.date(2017, 6, 27), dt.date(2017, 7, 4)
SAMPLE_DATES = [FIRST + dt.timedelta(days=n) for n in range((LAST - FIRST).days + 1)]


def sample_config(path: Path, source: str, target: str, endpoint: str | None = None,
                  **job) -> Path:
    """The sample config with absolute locations (and an S3 endpoint when given)."""
    sections = {"job": job}
    if endpoint:
        sections["s3"] = {"max_attempts": 2, "connect_timeout": 2, "read_timeout": 10}
    return write_config(path, job_config(source, target, base=CONFIGS / "xetra_sample.yml",
                                         endpoint_url=endpoint, **sections))


def local_report(target: Path) -> pd.DataFrame:
    """Every report object under target/report1 as one frame, sorted by (date, isin)."""
    frames = [pq.read_table(path).to_pandas() for path in sorted(target.glob("report1/*"))]
    return pd.concat(frames).sort_values(["date", "isin"]).reset_index(drop=True)


def s3_report(client, bucket: str) -> pd.DataFrame:
    """Every report object in the bucket's report1/ prefix as one frame."""
    listing = client.list_objects_v2(Bucket=bucket, Prefix="report1/").get("Contents", [])
    frames = [pq.read_table(io.BytesIO(client.get_object(Bucket=bucket, Key=item["Key"])
                                       ["Body"].read())).to_pandas() for item in listing]
    return pd.concat(frames).sort_values(["date", "isin"]).reset_index(drop=True)


def assert_same_report(actual: pd.DataFrame, wanted: pd.DataFrame) -> None:
    """Equal rows; the % change may differ only at an exact rounding tie (CONTRACT.md §2.2)."""
    assert list(actual.columns) == list(wanted.columns)
    assert len(actual) == len(wanted)
    for column in wanted.columns:
        if column == "change_prev_closing_%":
            got, want = actual[column].astype("Float64"), wanted[column].astype("Float64")
            assert (got.isna() == want.isna()).all()
            assert ((got - want).abs().fillna(0) <= 0.0100001).all()
            assert ((got - want).abs().fillna(0) < 1e-12).mean() > 0.999
        else:
            assert list(actual[column]) == list(wanted[column]), column


def meta_dates(text: str) -> list[str]:
    """The source_date column of a meta file."""
    return [line.split(",")[0] for line in text.splitlines()[1:]]
