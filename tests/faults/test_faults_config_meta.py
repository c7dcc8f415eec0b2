"""Bad configuration fails before any write, naming the setting; a corrupt meta file stops
the job with repair instructions and is never rewritten."""
from __future__ import annotations

import pytest

from testkit.jobs import Job
from testkit.s3servers import free_port
from testkit.targets import META_KEY, Folder, fill, new_bucket
from testkit.threedays import D1, D3, three_days


CONFIG_ERRORS = [
    # (config changes, extra args, message on stderr after "xetra: configuration error: ")
    ({"job.bogus": 1}, [], "job.bogus: unknown key"),
    ({"surprise": {}}, [], "surprise: unknown key"),
    ({"job.max_concurrent_reads": "eight"}, [], "job.max_concurrent_reads: expected int, "
                                                 "got str 'eight'"),
    ({"job.skip_bad_objects": "yes"}, [], "job.skip_bad_objects: expected bool"),
    ({"s3.max_attempts": 0}, [], "s3.max_attempts: must be greater than 0"),
    ({"s3.retry_mode": "eager"}, [], "s3.retry_mode: expected one of standard, adaptive"),
    ({"job.first_date": "2017-02-30"}, [], "job.first_date: not a valid date: '2017-02-30'"),
    ({"job.first_date": "26.06.2017"}, [], "job.first_date: expected a date YYYY-MM-DD"),
    ({}, ["--to", "2017-13-01"], "--to: not a valid date"),
    ({}, ["--from", D3, "--to", D1], f"--from: {D3} is after the end date {D1}"),
    ({}, ["--to", "2999-01-01"], "--to: 2999-01-01 is not over yet in Europe/Berlin"),
    ({"report.format": "xlsx"}, [], "report.format: unknown format 'xlsx'"),
    ({"source.endpoint_url": "127.0.0.1:9000"}, [], "source.endpoint_url: expected "
                                                    "http(s)://host:port"),
]


@pytest.mark.parametrize("changes, args, message", CONFIG_ERRORS,
                         ids=[case[2].split(":")[0] + str(i) for i, case in
                              enumerate(CONFIG_ERRORS)])
def test_config_error_exit_2_before_any_write(local_job, changes, args, message):
    """Exit 2, one line naming the setting, and the target folder is not even created."""
    for dotted, value in changes.items():
        local_job.set_key(dotted, value)
    result = local_job.run(*args) if args else local_job.run("--to", D3)
    assert result.code == 2, result
    assert result.err.startswith(f"xetra: configuration error: {message}")
    assert result.err.count("\n") == 1
    assert not local_job.target.root.exists()


def test_target_equal_to_source_is_rejected(local_job):
    """The report must never be written into the source."""
    local_job.set_key("target.url", local_job.source.url + "/")
    result = local_job.run("--to", D3)
    assert result.code == 2
    assert result.err.startswith("xetra: configuration error: target.url: must differ from "
                                 "source.url")
    assert sorted(local_job.source.objects()) == sorted(three_days())


@pytest.mark.s3server
def test_bucket_that_does_not_exist(moto_job):
    """Exit 1 naming the bucket and the section, before any write."""
    moto_job.set_key("target.url", "s3://xetra-no-such-bucket/")
    result = moto_job.run("--to", D3)
    assert result.code == 1
    assert result.err == ("xetra: run failed: bucket xetra-no-such-bucket does not exist "
                          "(s3://xetra-no-such-bucket/) (check the target settings)\n")


@pytest.mark.s3server
def test_endpoint_refusing_connections(local_job, motoserver):
    """Nothing listens on the endpoint: exit 1 naming the endpoint and the section."""
    local_job.env = motoserver.env()  # credentials are there; the endpoint is not
    endpoint = f"http://127.0.0.1:{free_port()}"
    local_job.set_key("source.url", "s3://xetra-src/")
    local_job.set_key("source.endpoint_url", endpoint)
    local_job.set_key("s3.max_attempts", 2)
    result = local_job.run("--to", D3)
    assert result.code == 1
    assert result.err == (f"xetra: run failed: cannot access s3://xetra-src/: cannot connect to "
                          f"the S3 endpoint {endpoint} (EndpointConnectionError) "
                          f"(check the source settings)\n")
    assert not local_job.target.root.exists()


def private_bucket_job(tmp_path, seaweed) -> Job:
    """Source and target buckets on SeaweedFS, which enforces SigV4 with the test keys."""
    source = new_bucket(seaweed, "src")
    fill(source, three_days())
    return Job(tmp_path, source, new_bucket(seaweed, "tgt"), seaweed.endpoint_url)


NO_CREDENTIALS = {"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent",
                  "AWS_EC2_METADATA_DISABLED": "true", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.mark.s3server
def test_missing_and_wrong_credentials_for_a_private_bucket(tmp_path, seaweed):
    """No credentials at all, or unknown ones: exit 1 saying so, nothing written."""
    job = private_bucket_job(tmp_path, seaweed)
    missing = job.run_process("--to", D3, env=NO_CREDENTIALS)
    assert missing.code == 1, missing
    assert missing.err == (f"xetra: run failed: cannot access {job.source.url}: no AWS "
                           f"credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a "
                           f"profile or a role, or source.unsigned for a public bucket) "
                           f"(check the source settings)\n")
    wrong = job.run_process("--to", D3, env={**NO_CREDENTIALS,
                                             "AWS_ACCESS_KEY_ID": "AKIAUNKNOWNKEY000000",
                                             "AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    assert wrong.code == 1, wrong
    assert wrong.err.startswith(f"xetra: run failed: cannot access {job.source.url}: ")
    assert "access denied" in wrong.err or "403" in wrong.err
    assert job.target.objects() == {}


# Meta files that must stop the job, with the problem named in the message.
CORRUPT_META = {
    "not_csv": (b"\x89PNG\r\n\x1a\n\xff\xfe", "not a UTF-8 CSV"),
    "wrong_header": (b"date,processed_at\n2017-06-26,2017-07-01T00:00:00+00:00\n",
                     "lacks column(s) source_date, datetime_of_processing"),
    "bad_date": (b"source_date,datetime_of_processing\n2017-06-31,2017-07-01T00:00:00+00:00\n",
                 "line 2: bad source_date '2017-06-31'"),
    "duplicate_column": (b"source_date,datetime_of_processing,source_date\n"
                         b"2017-06-26,2017-07-01T00:00:00+00:00,2017-06-27\n",
                         "header column 'source_date' appears twice"),
    "empty": (b"", "empty, not even a header"),
    "ragged": (b"source_date,datetime_of_processing\n2017-06-26\n", "line 2 has 1 fields"),
}


@pytest.mark.parametrize("kind", list(CORRUPT_META))
def test_corrupt_meta_file_stops_the_job_and_is_never_rewritten(tmp_path, kind):
    """Exit 1 naming the meta file, the problem and how to repair; the bytes are unchanged,
    no report is written or removed (an orphan check must not trust a corrupt meta file)."""
    source = Folder(tmp_path / "source")
    fill(source, three_days())
    target = Folder(tmp_path / "target")
    data, problem = CORRUPT_META[kind]
    # A report object of a date the corrupt file might list: it must survive.
    fill(target, {META_KEY: data, "report1/xetra_report1_2017-06-26.parquet": b"keep me"})
    before = target.objects()
    job = Job(tmp_path, source, target)
    for args in (["--to", D3], ["--to", D3, "--dry-run"]):
        result = job.run(*args)
        assert result.code == 1, result
        assert result.err.startswith(f"xetra: run failed: meta file {target.root}/{META_KEY}: ")
        assert problem in result.err
        assert "repair or restore it by hand" in result.err
        assert result.err.count("\n") == 1
        assert target.objects() == before
