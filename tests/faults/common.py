"""Hand-made data, test configurations and checks shared by the fault suite.

The data set is three dates of a few rows each, so every expected report value is worked out
by hand in THREE_DAYS_REPORT (see the comments there), not computed by the code under test.
"""
from __future__ import annotations

import csv
import io
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterable

import pandas as pd
import yaml

from tests.s3servers import S3Server

REPO = Path(__file__).resolve().parents[2]
HEADER = ("ISIN,Mnemonic,SecurityDesc,SecurityType,Currency,SecurityID,Date,Time,"
          "StartPrice,MaxPrice,MinPrice,EndPrice,TradedVolume,NumberOfTrades")
COLUMNS = tuple(HEADER.split(","))
HEADER_ONLY = (HEADER + "\n").encode()  # 136 bytes, as in the real data

# Real ISINs (Deutsche Bank, SAP, Allianz): they pass the ISIN check.
ISIN_A, ISIN_B, ISIN_C = "DE0005140008", "DE0007164600", "DE0008404005"
D1, D2, D3 = "2017-06-26", "2017-06-27", "2017-06-28"
META_KEY = "meta/report1/xetra_report1_meta_file.csv"
LOCK_KEY = "meta/report1/xetra_report1.lock"


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


def csv_bytes(rows: Iterable[dict[str, str]], columns: Iterable[str] = COLUMNS,
              newline: str = "\n") -> bytes:
    """An hourly object: header and rows in `columns` order."""
    columns = list(columns)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=newline)
    writer.writerow(columns)
    for item in rows:
        writer.writerow([item.get(name, "") for name in columns])
    return out.getvalue().encode()


def hourly_key(day: str, hour: int) -> str:
    """The source key of an hourly object."""
    return f"{day}/{day}_BINS_XETR{hour:02d}.csv"


def three_days() -> dict[str, bytes]:
    """The small source used by most fault tests: D1..D3, with header-only hours between."""
    return {
        hourly_key(D1, 8): HEADER_ONLY,
        hourly_key(D1, 9): csv_bytes([row(ISIN_A, D1, "09:00", (10, 11, 9, 10.5), 100),
                                      row(ISIN_B, D1, "09:00", (50, 51, 49, 50), 10)]),
        hourly_key(D1, 10): csv_bytes([row(ISIN_A, D1, "10:00", (10.5, 12, 10, 11), 200)]),
        hourly_key(D2, 9): csv_bytes([row(ISIN_A, D2, "09:05", (11, 11.5, 10.8, 11.2), 50),
                                      row(ISIN_B, D2, "09:05", (50, 55, 50, 55), 20)]),
        hourly_key(D2, 10): HEADER_ONLY,
        hourly_key(D3, 11): csv_bytes([row(ISIN_A, D3, "11:00", (11, 11, 11, 11), 5)]),
    }


# Expected report1 rows, by hand:
#  D1 A: open 10 (09:00), close 11 (10:00), min 9, max 12, volume 100+200; no trading day in
#        the 10 days before -> change null.  D1 B: single row, change null.
#  D2 A: close 11.2 vs 11 -> (11.2-11)/11*100 = 1.8181.. -> 1.82.  D2 B: 55 vs 50 -> 10.0.
#  D3 A: close 11 vs 11.2 -> -0.2/11.2*100 = -1.7857.. -> -1.79.
THREE_DAYS_REPORT = {
    D1: [(ISIN_A, 10.0, 11.0, 9.0, 12.0, 300, None), (ISIN_B, 50.0, 50.0, 49.0, 51.0, 10, None)],
    D2: [(ISIN_A, 11.0, 11.2, 10.8, 11.5, 50, 1.82), (ISIN_B, 50.0, 55.0, 50.0, 55.0, 20, 10.0)],
    D3: [(ISIN_A, 11.0, 11.0, 11.0, 11.0, 5, -1.79)],
}


def report_key(day: str) -> str:
    """The report object key of a date under the default settings."""
    return f"report1/xetra_report1_{day}.parquet"


def config_dict(source_url: str, target_url: str, log_file: Path,
                endpoint_url: str | None = None, **sections) -> dict:
    """A job configuration for tests: fast retries and timeouts, log lines to `log_file`.

    `sections` maps a section name to keys merged into it (e.g. job={"skip_bad_objects": True}).
    """
    config = {
        "source": {"url": source_url}, "target": {"url": target_url},
        "job": {"first_date": D1, "max_concurrent_reads": 2},
        "meta": {"lock_ttl_seconds": 60},
        "s3": {"retry_mode": "standard", "max_attempts": 3, "connect_timeout": 1,
               "read_timeout": 1},
        "logging": {
            "version": 1, "disable_existing_loggers": False,
            "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: "
                                               "%(message)s"}},
            "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log_file),
                                  "formatter": "plain"}},
            "root": {"level": "INFO", "handlers": ["file"]},
            "loggers": {"botocore": {"level": "WARNING"}},
        },
    }
    if endpoint_url is not None:
        for side in ("source", "target"):
            config[side].update(endpoint_url=endpoint_url, region="us-east-1")
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    return config


def write_config(path: Path, config: dict) -> Path:
    """Write `config` as YAML and return the path."""
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def run_subprocess(args: list[str], env: dict[str, str] | None = None, wrapper: Path | None = None,
                   other_pod: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the job (or `wrapper`, which runs it) as a separate process, as a pod would;
    `other_pod` runs it in a PID namespace of its own, as a container elsewhere is seen."""
    script = wrapper or REPO / "run.py"
    command = [sys.executable, str(script), *args]
    if other_pod:
        # A shell as the namespace's PID 1, so the job is an ordinary process SIGKILL can stop.
        command = ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c",
                   '"$@"; exit $?', "sh", *command]
    full_env = {key: value for key, value in os.environ.items()
                if not key.startswith("AWS_") and key != "XETRA_KILL_AT"}
    full_env.update(env or {})
    full_env["PYTHONPATH"] = str(REPO)
    return subprocess.run(command, cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def meta_rows(data: bytes) -> list[dict[str, str]]:
    """The meta file's rows, read with the csv module (independently of xetra.meta)."""
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def report_values(data: bytes) -> list[tuple]:
    """A report object's rows as (isin, open, close, min, max, volume, change), by pandas."""
    frame = pd.read_parquet(io.BytesIO(data))
    assert list(frame.columns) == ["isin", "date", "opening_price_eur", "closing_price_eur",
                                   "minimum_price_eur", "maximum_price_eur",
                                   "daily_traded_volume", "change_prev_closing_%"]
    values = []
    for item in frame.itertuples(index=False):
        change = item[7]
        values.append((item[0], item[2], item[3], item[4], item[5], int(item[6]),
                       None if change is None or (isinstance(change, float)
                                                  and math.isnan(change)) else change))
    return values


def assert_report(data: bytes, expected: list[tuple]) -> None:
    """A report object holds exactly `expected` rows (prices to 1e-9, change exactly)."""
    actual = report_values(data)
    assert [r[0] for r in actual] == [e[0] for e in expected]
    for got, want in zip(actual, expected):
        assert all(math.isclose(g, w, rel_tol=1e-12)
                   for g, w in zip(got[1:5], want[1:5])), (got, want)
        assert got[5] == want[5]
        assert got[6] == want[6], (got, want)


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

    def objects(self) -> dict[str, bytes]:
        """Every object (temporary files of interrupted writes included) by key."""
        if not self.root.exists():
            return {}
        return {path.relative_to(self.root).as_posix(): path.read_bytes()
                for path in sorted(self.root.rglob("*")) if path.is_file()}


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

    def objects(self) -> dict[str, bytes]:
        """Every object by key."""
        found = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name):
            for item in page.get("Contents", []):
                found[item["Key"]] = self.client.get_object(
                    Bucket=self.name, Key=item["Key"])["Body"].read()
        return found


def fill(store: Folder | Bucket, objects: dict[str, bytes]) -> None:
    """Put every object of `objects` into `store`."""
    for key, data in objects.items():
        store.put(key, data)


def assert_converged(target: Folder | Bucket, dates: Iterable[str],
                     expected: dict[str, list[tuple]] | None = None) -> None:
    """The target holds exactly one report object per processed date with trades, with the
    expected rows, a meta file listing each date exactly once, and nothing else (no lock,
    no orphan, no temporary file)."""
    expected = THREE_DAYS_REPORT if expected is None else expected
    dates = sorted(dates)
    objects = target.objects()
    listed = [item["source_date"] for item in meta_rows(objects[META_KEY])]
    assert listed == dates, f"meta file lists {listed}, expected each of {dates} once"
    with_trades = [day for day in dates if expected.get(day)]
    assert sorted(objects) == sorted([META_KEY] + [report_key(day) for day in with_trades])
    for day in with_trades:
        assert_report(objects[report_key(day)], expected[day])


class JobResult:
    """Exit status, stdout, stderr and the log lines of one run."""

    def __init__(self, code: int, out: str, err: str, log: str):
        self.code = code
        self.out = out
        self.err = err
        self.log = log

    @property
    def summary(self) -> str:
        """The run summary line (the last log line of a successful run)."""
        lines = [line for line in self.log.splitlines() if "run summary:" in line]
        assert lines, f"no run summary in the log:\n{self.log}"
        return lines[-1].split("run summary: ", 1)[1]

    def __repr__(self) -> str:
        return f"JobResult(code={self.code}, err={self.err!r}, log=...{self.log[-600:]!r})"


class Job:
    """A configured job on a source and target; runs it in-process or as a process."""

    def __init__(self, tmp: Path, source: Folder | Bucket, target: Folder | Bucket,
                 endpoint_url: str | None = None, env: dict[str, str] | None = None,
                 **sections):
        self.tmp = tmp
        self.source = source
        self.target = target
        self.env = env or {}
        self.log_file = tmp / "job.log"
        self.config = config_dict(source.url, target.url, self.log_file, endpoint_url,
                                  **sections)
        self.config_path = tmp / "job.yml"
        self.write()

    def write(self) -> Path:
        """(Re)write the configuration file after changing `self.config`."""
        return write_config(self.config_path, self.config)

    def _log_since(self, offset: int) -> str:
        if not self.log_file.exists():
            return ""
        return self.log_file.read_bytes()[offset:].decode("utf-8", "replace")

    def run(self, *args: str) -> JobResult:
        """Run the job in this process through the CLI (what run.py does)."""
        from xetra import cli  # pylint: disable=import-outside-toplevel
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        out, err = io.StringIO(), io.StringIO()
        saved = {key: os.environ.get(key) for key in self.env}
        os.environ.update(self.env)
        try:
            code = cli.run(["--config", str(self.config_path), *args], stdout=out, stderr=err)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        return JobResult(code, out.getvalue(), err.getvalue(), self._log_since(offset))

    def run_process(self, *args: str, wrapper: Path | None = None,
                    env: dict[str, str] | None = None, other_pod: bool = False) -> JobResult:
        """Run the job as a separate process (optionally through a fault-injecting wrapper)."""
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        done = run_subprocess(["--config", str(self.config_path), *args],
                              env={**self.env, **(env or {})}, wrapper=wrapper,
                              other_pod=other_pod)
        return JobResult(done.returncode, done.stdout, done.stderr, self._log_since(offset))
