"""Shared fixtures: the bundled sample, the repository root, a read pool, and real S3 servers
on 127.0.0.1. Helpers live in testkit/, never here."""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from testkit.paths import REPO, SAMPLE
from testkit.s3servers import S3Server, moto_server, seaweedfs


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


@pytest.fixture(name="pool")
def pool_fixture():
    """The read pool of an XetraETL built in the test."""
    with ThreadPoolExecutor(4) as executor:
        yield executor


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
