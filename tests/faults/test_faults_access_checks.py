"""The source and target buckets are checked at once; what the user is told stays in order."""
from __future__ import annotations

import pytest

from testkit.threedays import D3


@pytest.mark.s3server
def test_both_buckets_missing_names_the_source(moto_job):
    """Both checks fail: the one line names the source, as when they ran one after the other."""
    moto_job.set_key("source.url", "s3://xetra-no-source/")
    moto_job.set_key("target.url", "s3://xetra-no-target/")
    result = moto_job.run("--to", D3)
    assert result.code == 1
    assert result.err == ("xetra: run failed: bucket xetra-no-source does not exist "
                          "(s3://xetra-no-source/) (check the source settings)\n")


@pytest.mark.s3server
def test_source_reachable_target_missing_names_the_target(moto_job):
    """Only the target fails: its own error, and nothing is written to the source."""
    before = sorted(moto_job.source.objects())
    moto_job.set_key("target.url", "s3://xetra-no-target/")
    result = moto_job.run("--to", D3)
    assert result.code == 1
    assert result.err == ("xetra: run failed: bucket xetra-no-target does not exist "
                          "(s3://xetra-no-target/) (check the target settings)\n")
    assert sorted(moto_job.source.objects()) == before
