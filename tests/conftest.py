"""Shared fixtures: the bundled sample, the repository root, and real S3 servers on 127.0.0.1."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.s3servers import S3Server, moto_server, seaweedfs

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root."""
    return REPO


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The bundled real Xetra sample, in the bucket layout."""
    return SAMPLE


@pytest.fixture(scope="session")
def seaweed() -> S3Server:
    """One SeaweedFS server for the whole test session."""
    with seaweedfs() as server:
        yield server


@pytest.fixture(scope="session")
def motoserver() -> S3Server:
    """One moto server for the whole test session."""
    with moto_server() as server:
        yield server


def run_job(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO,
            timeout: float = 240, script: Path = REPO / "run.py") -> subprocess.CompletedProcess:
    """Run `python run.py ARGS` (or another script) as a subprocess, as a user would."""
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(autouse=True)
def restore_logging():
    """Tests that apply a logging config must not leave handlers on closed streams."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def aws_env(monkeypatch):
    """Fake credentials so boto3's chain finds some and nothing leaves the process."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
