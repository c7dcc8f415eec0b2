"""Fixtures of the fault suite: a job on local folders and a job on buckets of a real server."""
from __future__ import annotations

import uuid

import pytest

from tests.faults.common import Bucket, Folder, Job, fill, three_days


@pytest.fixture
def local_job(tmp_path) -> Job:
    """The three-day source in a local folder, an empty local target."""
    source = Folder(tmp_path / "source")
    fill(source, three_days())
    return Job(tmp_path, source, Folder(tmp_path / "target"))


def new_bucket(server, role: str) -> Bucket:
    """A fresh bucket on `server` (the server is shared by the whole session)."""
    return Bucket(server, f"xetra-{role}-{uuid.uuid4().hex[:10]}")


@pytest.fixture
def moto_job(motoserver, tmp_path) -> Job:
    """The three-day source in a bucket of the moto server, an empty target bucket."""
    source = new_bucket(motoserver, "src")
    fill(source, three_days())
    return Job(tmp_path, source, new_bucket(motoserver, "tgt"), motoserver.endpoint_url,
               env=motoserver.env())
