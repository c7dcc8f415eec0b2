"""Throttling and server errors between the job and a real S3 server (moto on 127.0.0.1).

A fault-injecting proxy answers chosen requests with 503 SlowDown, 500 InternalError, a reset
connection or silence beyond the read timeout. botocore's retry mode (s3.retry_mode,
s3.max_attempts = 3 in the test config) must ride out two failures of a request; a fault that
persists must fail the run with one line naming the object, leaving the target as it was.
"""
from __future__ import annotations

import pytest

from testkit.faultproxy import KINDS, Fault, FaultProxy
from testkit.jobs import Job
from testkit.targets import LOCK_KEY, META_KEY, fill, new_bucket, report_key
from testkit.threedays import D1, D2, D3, assert_converged, three_days


pytestmark = pytest.mark.s3server


@pytest.fixture
def proxy(motoserver):
    """A fault proxy in front of the session's moto server."""
    with FaultProxy(motoserver.endpoint_url, hang_seconds=2.5) as running:
        yield running


@pytest.fixture
def job(motoserver, proxy, tmp_path) -> Job:
    """The three-day source and an empty target, both reached through the proxy."""
    source = new_bucket(motoserver, "src")
    fill(source, three_days())
    return Job(tmp_path, source, new_bucket(motoserver, "tgt"), proxy.endpoint_url,
               env=motoserver.env())


def where(job: Job, op: str) -> str:
    """The part of the request path the fault matches: one source object of D2 (GET), the
    listing of D2's source objects (LIST: its month's, as the source index lists), the report
    object of D2 (PUT)."""
    return {"GET": f"{job.source.name}/{D2}/{D2}_BINS_XETR09.csv",
            "LIST": f"{job.source.name}?list-type=2&prefix={D2[:7]}&",
            "PUT": f"{job.target.name}/{report_key(D2)}"}[op]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("op", ["GET", "LIST", "PUT"])
def test_transient_fault_is_retried_and_the_run_succeeds(job, proxy, op, kind):
    """Two failures of one request, then success: the run completes as if nothing happened."""
    fault = proxy.inject(Fault(op, kind, where(job, op), times=2))
    result = job.run("--to", D3)
    assert result.code == 0, result
    assert fault.hits == 2
    # The third attempt reached the server: the request was sent 3 times in all.
    assert sum(1 for seen_op, path in proxy.requests
               if seen_op == op and where(job, op) in path) == 3
    assert_converged(job.target, [D1, D2, D3])


@pytest.mark.parametrize("path", [META_KEY, LOCK_KEY])
def test_throttled_meta_and_lock_writes_are_retried(job, proxy, path):
    """Conditional PUTs (meta file If-Match/If-None-Match, lock) survive SlowDown too."""
    fault = proxy.inject(Fault("PUT", "slowdown", f"{job.target.name}/{path}", times=2))
    result = job.run("--to", D3)
    assert result.code == 0, result
    assert fault.hits == 2
    assert_converged(job.target, [D1, D2, D3])


def test_adaptive_retry_mode_rides_out_throttling(job, proxy):
    """s3.retry_mode: adaptive (client-side rate limiting) also retries SlowDown."""
    job.config["s3"]["retry_mode"] = "adaptive"
    job.write()
    fault = proxy.inject(Fault("GET", "slowdown", where(job, "GET"), times=2))
    assert job.run("--to", D3).code == 0
    assert fault.hits == 2
    assert_converged(job.target, [D1, D2, D3])


PERSISTENT_MESSAGES = {
    "slowdown": "SlowDown Please reduce your request rate.",
    "internal": "InternalError We encountered an internal error.",
    "reset": "ConnectionClosedError",
    "timeout": "ReadTimeoutError",
}
ACTIONS = {"GET": "cannot read", "LIST": "cannot list", "PUT": "cannot write"}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("op", ["GET", "LIST", "PUT"])
def test_persistent_fault_fails_clearly_and_leaves_the_target_as_it_was(job, proxy, op, kind):
    """Every attempt fails: exit 1, one stderr line naming the object, target unchanged."""
    job.config["s3"]["max_attempts"] = 2  # one retry is enough to show that it persists
    job.write()
    assert job.run("--to", D1).code == 0
    before = job.target.objects()
    assert sorted(before) == [META_KEY, report_key(D1)]
    fault = proxy.inject(Fault(op, kind, where(job, op), times=None))
    result = job.run("--to", D3)
    assert result.code == 1, result
    assert fault.hits == 2  # s3.max_attempts, the first attempt included
    lines = result.err.splitlines()
    assert len(lines) == 1
    object_url = {"GET": f"s3://{job.source.name}/{D2}/{D2}_BINS_XETR09.csv",
                  "LIST": f"s3://{job.source.name}/{D2[:7]}",  # its month
                  "PUT": f"s3://{job.target.name}/{report_key(D2)}"}[op]
    assert lines[0].startswith(f"xetra: run failed: {ACTIONS[op]} {object_url}: ")
    assert PERSISTENT_MESSAGES[kind] in lines[0]
    assert job.target.objects() == before  # meta bytes, report objects, no lock left
    proxy.clear()
    assert job.run("--to", D3).code == 0  # and the next run, the fault gone, catches up
    assert_converged(job.target, [D1, D2, D3])


def test_meta_write_failing_for_good_removes_the_new_report_object(job, proxy):
    """The report of D2 is written, then the meta update fails every attempt: the run removes
    the report it could not record, so the report prefix is as it was (D1 only)."""
    assert job.run("--to", D1).code == 0
    before = job.target.objects()
    fault = proxy.inject(Fault("PUT", "internal", f"{job.target.name}/{META_KEY}", times=None))
    result = job.run("--to", D3)
    assert result.code == 1, result
    assert fault.hits == 3
    assert result.err.startswith(f"xetra: run failed: cannot write "
                                 f"s3://{job.target.name}/{META_KEY}: InternalError")
    assert job.target.objects() == before
    proxy.clear()
    assert job.run("--to", D3).code == 0
    assert_converged(job.target, [D1, D2, D3])
