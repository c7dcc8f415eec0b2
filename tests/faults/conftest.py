"""Fixtures of the fault suite: a job on local folders and a job on buckets of a real server."""
from __future__ import annotations

import pytest

from testkit.jobs import Job
from testkit.targets import Folder, fill, new_bucket
from testkit.threedays import three_days


@pytest.fixture
def local_job(tmp_path) -> Job:
    """The three-day source in a local folder, an empty local target."""
    source = Folder(tmp_path / "source")
    fill(source, three_days())
    return Job(tmp_path, source, Folder(tmp_path / "target"))


@pytest.fixture
def moto_job(motoserver, tmp_path) -> Job:
    """The three-day source in a bucket of the moto server, an empty target bucket."""
    source = new_bucket(motoserver, "src")
    fill(source, three_days())
    return Job(tmp_path, source, new_bucket(motoserver, "tgt"), motoserver.endpoint_url,
               env=motoserver.env())
