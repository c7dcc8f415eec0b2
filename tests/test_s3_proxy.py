"""The remote-S3 proxy of the benchmark: it delays each request by the round trip set, caps a
connection's bandwidth, and passes every byte unchanged."""
from __future__ import annotations

import hashlib
import os
import statistics
import time

import boto3
import pytest
from botocore.config import Config

from benchmarks.s3_proxy import CHUNK, latency_proxy, upstream_of
from testkit.s3servers import ACCESS_KEY, SECRET_KEY
from xetra.config import StorageLocation
from xetra.errors import PreconditionFailed
from xetra.s3 import S3BucketConnector


def client_for(endpoint: str):
    """A boto3 client with one pooled connection, so the handshake is paid once."""
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                        config=Config(max_pool_connections=1, retries={"max_attempts": 1}))


def median_get_seconds(client, key: str, times: int = 7) -> float:
    """Median seconds of a GET of `key` (after one warm-up GET that opens the connection)."""
    client.get_object(Bucket="proxy", Key=key)["Body"].read()
    seconds = []
    for _ in range(times):
        started = time.perf_counter()
        client.get_object(Bucket="proxy", Key=key)["Body"].read()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


@pytest.fixture(name="bucket")
def bucket_fixture(motoserver):
    """A bucket with a small object and a 3 MB object of random bytes."""
    client = motoserver.client()
    client.create_bucket(Bucket="proxy")
    big = os.urandom(3_000_000)
    client.put_object(Bucket="proxy", Key="small.csv", Body=b"ISIN,Date\nDE0001,2021-03-01\n")
    client.put_object(Bucket="proxy", Key="big.bin", Body=big)
    yield motoserver, big
    for key in ("small.csv", "big.bin", "up.bin"):
        client.delete_object(Bucket="proxy", Key=key)
    client.delete_bucket(Bucket="proxy")


def test_each_request_costs_the_round_trip_set(bucket):
    """A small GET through a 40 ms proxy takes at least 40 ms more than directly, and at most
    two round trips more (moto's server closes each connection: a new one costs one more)."""
    server, _ = bucket
    direct = median_get_seconds(client_for(server.endpoint_url), "small.csv")
    with latency_proxy(server.endpoint_url, delay_ms=40, mbps=0) as (url, proxy):
        delayed = median_get_seconds(client_for(url), "small.csv")
        assert proxy.stats.connections >= 1
    assert delayed - direct >= 0.040
    assert delayed - direct < 2 * 0.040 + 0.030


def test_bytes_pass_unchanged_both_ways(bucket):
    """A 3 MB random object reads back byte for byte through the proxy, and one written
    through it arrives unchanged (MD5 compared with the bytes sent, not with the proxy's)."""
    server, big = bucket
    with latency_proxy(server.endpoint_url, delay_ms=5, mbps=0) as (url, proxy):
        client = client_for(url)
        body = client.get_object(Bucket="proxy", Key="big.bin")["Body"].read()
        client.put_object(Bucket="proxy", Key="up.bin", Body=big[::-1])
        assert proxy.stats.downstream_bytes > 3_000_000
        assert proxy.stats.upstream_bytes > 3_000_000
    assert hashlib.md5(body).hexdigest() == hashlib.md5(big).hexdigest()
    stored = server.client().get_object(Bucket="proxy", Key="up.bin")["Body"].read()
    assert stored == big[::-1]


def test_bandwidth_is_capped_per_connection(bucket):
    """3 MB at 10 MB/s takes at least 0.3 s (less the first chunk, which is not paced)."""
    server, big = bucket
    with latency_proxy(server.endpoint_url, delay_ms=0, mbps=10) as (url, _):
        client = client_for(url)
        client.get_object(Bucket="proxy", Key="small.csv")["Body"].read()
        started = time.perf_counter()
        client.get_object(Bucket="proxy", Key="big.bin")["Body"].read()
        seconds = time.perf_counter() - started
    assert seconds >= (len(big) - CHUNK) / 10e6


def test_only_loopback_upstreams():
    """The proxy refuses to forward anywhere but 127.0.0.1 / localhost."""
    assert upstream_of("http://127.0.0.1:8333") == ("127.0.0.1", 8333)
    with pytest.raises(ValueError, match="loopback"):
        upstream_of("http://s3.eu-central-1.amazonaws.com:80")


def test_the_jobs_puts_cost_one_round_trip_not_two(bucket, aws_env):  # pylint: disable=unused-argument
    """The job's connector sends a PUT's body with its headers (no `Expect: 100-continue`,
    which waits one round trip for the server's go-ahead): through a 40 ms proxy its PUT is
    at least one round trip faster than a plain boto3 client's, and the object lands intact;
    a conditional PUT refused still gives PreconditionFailed."""
    server, _ = bucket
    body = os.urandom(50_000)
    with latency_proxy(server.endpoint_url, delay_ms=40, mbps=0) as (url, _):
        connector = S3BucketConnector(StorageLocation("s3://proxy", endpoint_url=url,
                                                      region="us-east-1"))
        sent_headers = []
        connector.client.meta.events.register(
            "before-send.s3.PutObject", lambda request, **_: sent_headers.append(request.headers))
        plain = client_for(url)
        job_seconds, plain_seconds = [], []
        for _ in range(5):
            started = time.perf_counter()
            connector.put_bytes("put-job.bin", body)
            job_seconds.append(time.perf_counter() - started)
            started = time.perf_counter()
            plain.put_object(Bucket="proxy", Key="put-plain.bin", Body=body)
            plain_seconds.append(time.perf_counter() - started)
        with pytest.raises(PreconditionFailed):
            connector.put_bytes("put-job.bin", b"again", if_none_match=True)
    assert all("Expect" not in headers for headers in sent_headers) and sent_headers
    assert statistics.median(plain_seconds) - statistics.median(job_seconds) >= 0.035
    stored = server.client().get_object(Bucket="proxy", Key="put-job.bin")["Body"].read()
    assert stored == body
    for key in ("put-job.bin", "put-plain.bin"):
        server.client().delete_object(Bucket="proxy", Key=key)
