"""The Docker image, built with scripts/build_image.sh and run with podman against SeaweedFS.

Marked `container` (deselected by default; .ci/steps/20-container.sh runs it): needs buildah,
podman, runc and mmdebstrap, root, and PyPI and Debian reachable for the build.
"""
from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest
import yaml

from testkit.config import job_config
from testkit.paths import CONFIGS, REPO
from testkit.s3servers import SECRET_KEY, S3Server, upload_folder

IMAGE = "localhost/xetra:containertest"
BUILD_DIR = Path(os.environ.get("XETRA_BUILD_DIR", REPO / ".build"))
TRADE_FIELDS = ["ISIN", "Date", "Time", "StartPrice", "EndPrice", "MinPrice", "MaxPrice",
                "TradedVolume"]

pytestmark = [pytest.mark.container, pytest.mark.timeout(1200)]

Podman = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(scope="module")
def podman() -> Podman:
    """Build the image with the project's script; return a podman runner on its storage."""
    env = {**os.environ, "IMAGE": IMAGE, "XETRA_BUILD_DIR": str(BUILD_DIR)}
    build = subprocess.run(["bash", str(REPO / "scripts" / "build_image.sh")], env=env,
                           capture_output=True, text=True, timeout=1100, check=False)
    assert build.returncode == 0, f"image build failed:\n{build.stderr[-4000:]}"
    for line in build.stderr.splitlines():  # base and build seconds, size: into the CI log
        if line.startswith("build_image:"):
            print(line)

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        command = ["podman", "--root", str(BUILD_DIR / "storage"), "--runroot",
                   str(BUILD_DIR / "run"), "--storage-driver", "vfs", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=False, env={**os.environ, "CONTAINERS_CONF": str(
                                  REPO / "scripts" / "containers.conf")})
    return run


def config_text(server: S3Server, source_bucket: str, target_bucket: str) -> str:
    """The sample config (its logging included), reading and writing buckets of the server."""
    return yaml.safe_dump(job_config(f"s3://{source_bucket}/", f"s3://{target_bucket}/",
                                     base=CONFIGS / "xetra_sample.yml",
                                     endpoint_url=server.endpoint_url))


def run_container(podman: Podman, server: S3Server, config: Path,
                  *args: str) -> subprocess.CompletedProcess:
    """`podman run` as a user would: host network, config mounted read-only, keys from env."""
    env_args = [arg for name, value in server.env().items() for arg in ("-e", f"{name}={value}")]
    return podman("run", "--rm", "--network", "host", "-v", f"{config}:/config/xetra.yml:ro",
                  *env_args, IMAGE, "--config", "/config/xetra.yml", *args)


def expected_by_date(sample: Path) -> dict[str, tuple[int, int]]:
    """Per date with trades: (report rows, total traded volume), by plain pandas."""
    expected = {}
    # 2017-06-26 is in the sample only as the look-back day of the first date, 2017-06-27.
    for folder in sorted(p for p in sample.iterdir() if p.is_dir() and p.name >= "2017-06-27"):
        frames = [pd.read_csv(path) for path in sorted(folder.glob("*.csv"))]
        rows = pd.concat(frames).drop_duplicates()
        for column in TRADE_FIELDS[3:]:
            rows[column] = pd.to_numeric(rows[column], errors="coerce")
        trades = rows.dropna(subset=TRADE_FIELDS)
        trades = trades[(trades["TradedVolume"] > 0) & (trades["Currency"] == "EUR")]
        if len(trades):
            expected[folder.name] = (trades["ISIN"].nunique(),
                                     int(trades["TradedVolume"].sum()))
    return expected


def test_image_runs_the_job_against_seaweedfs(podman: Podman, seaweed: S3Server,
                                              sample_dir: Path, tmp_path: Path) -> None:
    """The container reads the sample from one bucket and writes reports + meta file to another."""
    client = seaweed.client()
    for bucket in ("ct-source", "ct-target"):
        client.create_bucket(Bucket=bucket)
    assert upload_folder(seaweed, "ct-source", sample_dir) > 0
    config = tmp_path / "xetra.yml"
    config.write_text(config_text(seaweed, "ct-source", "ct-target"), encoding="utf-8")

    result = run_container(podman, seaweed, config, "--to", "2017-07-04")

    assert result.returncode == 0, result.stderr
    assert SECRET_KEY not in result.stdout + result.stderr
    assert "run summary: dates processed=8" in result.stdout
    expected = expected_by_date(sample_dir)
    keys = sorted(item["Key"] for item in
                  client.list_objects_v2(Bucket="ct-target")["Contents"])
    assert keys == sorted([f"report1/xetra_report1_{day}.parquet" for day in expected] +
                          ["meta/report1/xetra_report1_meta_file.csv"])
    for day, (rows, volume) in expected.items():
        body = client.get_object(Bucket="ct-target",
                                 Key=f"report1/xetra_report1_{day}.parquet")["Body"].read()
        report = pd.read_parquet(io.BytesIO(body))
        assert (len(report), int(report["daily_traded_volume"].sum())) == (rows, volume), day
    meta = pd.read_csv(io.BytesIO(client.get_object(
        Bucket="ct-target", Key="meta/report1/xetra_report1_meta_file.csv")["Body"].read()))
    assert sorted(meta["source_date"]) == [f"2017-06-{d}" for d in (27, 28, 29, 30)] + \
        [f"2017-07-0{d}" for d in (1, 2, 3, 4)]


def test_bad_config_exits_non_zero_with_a_clear_message(podman: Podman, seaweed: S3Server,
                                                        tmp_path: Path) -> None:
    """An unknown report format stops the container with exit 2, naming the key; no writes."""
    client = seaweed.client()
    client.create_bucket(Bucket="ct-bad-target")
    config = tmp_path / "xetra.yml"
    raw = yaml.safe_load(config_text(seaweed, "ct-source", "ct-bad-target"))
    raw["report"]["format"] = "xlsx"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")

    result = run_container(podman, seaweed, config, "--to", "2017-07-04")

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xetra: configuration error: report.format")
    assert "xlsx" in lines[0]
    assert client.list_objects_v2(Bucket="ct-bad-target").get("KeyCount") == 0


def test_image_is_lean_and_runs_as_non_root(podman: Podman) -> None:
    """User 10001, only the job's code in /app, no dev packages in the venv."""
    user = podman("run", "--rm", "--entrypoint", "id", IMAGE)
    assert user.stdout.split()[0] == "uid=10001(xetra)", user.stderr
    listing = podman("run", "--rm", "--entrypoint", "ls", IMAGE, "/app")
    assert listing.stdout.split() == ["run.py", "xetra"], listing.stderr
    probe = podman("run", "--rm", "--entrypoint", "python", IMAGE, "-c",
                   "import importlib.util as u; print([m for m in ('pandas', 'pytest', 'moto', "
                   "'pip', 'pipenv', 'boto3', 'pyarrow') if u.find_spec(m)])")
    assert probe.stdout.strip() == "['boto3', 'pyarrow']", probe.stderr
