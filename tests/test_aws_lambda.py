"""lambda_handler in-process against real S3 servers on 127.0.0.1: moto's server and SeaweedFS.

The config is read from an s3:// URL (XETRA_CONFIG, boto3 reaching the server through
AWS_ENDPOINT_URL_S3), the sample from one bucket, reports and meta file written to another;
report rows are compared with the independent pandas reference (tests/reference.py).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit.paths import REPO
from testkit.reference import reference_report
from testkit.s3servers import S3Server, upload_folder
from testkit.sample import FIRST, LAST, assert_same_report, meta_dates, s3_report, sample_config
from testkit.targets import META_KEY, s3_objects
from xetra import aws_lambda
from xetra.jobcontrol import RunLock
from xetra.storage import LocalStorage


SAMPLE_DATES = ["2017-06-27", "2017-06-28", "2017-06-29", "2017-06-30", "2017-07-01",
                "2017-07-02", "2017-07-03", "2017-07-04"]
RANGE = {"from": "2017-06-27", "to": "2017-07-04"}


class Context:
    """A Lambda context whose clock runs out after `dates` checks (None: plenty of time).

    The handler asks for the remaining time once before each date, so `dates=2` is an
    invocation whose deadline comes after two dates.
    """

    def __init__(self, dates: int | None = None, margin_ms: int = 60_000):
        self.dates = dates
        self.margin_ms = margin_ms
        self.calls = 0

    def get_remaining_time_in_millis(self) -> int:
        """Well above the margin until `dates` calls have been made, then below it."""
        self.calls += 1
        if self.dates is None or self.calls <= self.dates:
            return self.margin_ms + 600_000
        return self.margin_ms - 1


@pytest.fixture(params=[pytest.param("moto", marks=pytest.mark.s3server),
                        pytest.param("seaweedfs", marks=pytest.mark.s3server)])
def server(request) -> S3Server:
    """Each test runs against moto's server and against SeaweedFS."""
    return request.getfixturevalue("motoserver" if request.param == "moto" else "seaweed")


@dataclass(frozen=True)
class Deployment:
    """What a test's function sees: a client, its buckets and its config (local and in S3)."""

    client: Any
    target: str
    config: Path
    config_bucket: str

    def upload_config(self) -> None:
        """Put the (changed) local config where XETRA_CONFIG points."""
        self.client.upload_file(str(self.config), self.config_bucket, "lambda/xetra.yml")


@pytest.fixture(scope="module")
def sources() -> dict[str, str]:
    """The sample's bucket per server: uploaded once, only read by the tests."""
    return {}


@pytest.fixture
def deployment(server, sources, sample_dir, tmp_path, monkeypatch) -> Deployment:
    """Buckets (source with the sample, target, config), the config in S3, the environment."""
    client = server.client()
    suffix = uuid.uuid4().hex[:8]
    if server.endpoint_url not in sources:
        sources[server.endpoint_url] = f"lsrc-{suffix}"
        client.create_bucket(Bucket=sources[server.endpoint_url])
        upload_folder(server, sources[server.endpoint_url], sample_dir)
    source, target, configs = sources[server.endpoint_url], f"ldst-{suffix}", f"lcfg-{suffix}"
    for bucket in (target, configs):
        client.create_bucket(Bucket=bucket)
    config = sample_config(tmp_path / "xetra.yml", f"s3://{source}/", f"s3://{target}/",
                          server.endpoint_url)
    setup = Deployment(client, target, config, configs)
    setup.upload_config()
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", server.endpoint_url)
    monkeypatch.setenv(aws_lambda.ENV_CONFIG, f"s3://{configs}/lambda/xetra.yml")
    monkeypatch.setenv(aws_lambda.ENV_MARGIN, "60")
    return setup


def recorded(client, bucket: str) -> list[str]:
    """The dates of the target's meta file, in file order."""
    body = client.get_object(Bucket=bucket, Key=META_KEY)["Body"].read().decode()
    return meta_dates(body)


def test_normal_run_then_nothing_to_do(deployment, sample_dir):
    client, target = deployment.client, deployment.target

    result = aws_lambda.lambda_handler(dict(RANGE), Context())

    assert (result["status"], result["deadline_reached"], result["dates_left"],
            result["attempts"]) == ("ok", False, [], 1)
    assert result["output"] == f"report objects under s3://{target}/report1/"
    assert recorded(client, target) == SAMPLE_DATES
    assert_same_report(s3_report(client, target), reference_report(sample_dir, FIRST, LAST))

    before = s3_objects(client, target)
    again = aws_lambda.lambda_handler(dict(RANGE), Context())
    assert (again["deadline_reached"], again["dates_left"]) == (False, [])
    assert s3_objects(client, target) == before  # not one byte rewritten


def test_deadline_after_two_dates_then_the_next_invocation_continues(deployment, sample_dir):
    client, target = deployment.client, deployment.target
    first_context = Context(dates=2)

    first = aws_lambda.lambda_handler(dict(RANGE), first_context)

    assert first["status"] == "ok" and first["deadline_reached"] is True
    assert first["dates_left"] == SAMPLE_DATES[2:]
    assert recorded(client, target) == SAMPLE_DATES[:2]
    keys = {item["Key"] for item in client.list_objects_v2(Bucket=target)["Contents"]}
    assert keys == {META_KEY, "report1/xetra_report1_2017-06-27.parquet",
                    "report1/xetra_report1_2017-06-28.parquet"}
    assert first_context.calls == 3  # two dates taken, the third refused

    second = aws_lambda.lambda_handler(dict(RANGE), Context())

    assert (second["deadline_reached"], second["dates_left"]) == (False, [])
    assert recorded(client, target) == SAMPLE_DATES
    assert_same_report(s3_report(client, target), reference_report(sample_dir, FIRST, LAST))


def test_default_range_is_the_weekly_run(deployment, sample_dir):
    """No from/to: from the first date up to yesterday. The sample's two dates are processed;
    the years after them have no source objects, so the invocation ends in the overdue alarm
    (exit 4), raised after the work is committed."""
    client, target = deployment.client, deployment.target
    raw = yaml.safe_load(deployment.config.read_text())
    raw["job"]["first_date"] = "2017-07-03"
    deployment.config.write_text(yaml.safe_dump(raw))
    deployment.upload_config()

    with pytest.raises(aws_lambda.OverdueSourceData,
                       match=r"overdue source data: 2017-07-05\.\.\d{4}-\d{2}-\d{2} \("):
        aws_lambda.lambda_handler({}, Context(dates=5))

    assert recorded(client, target) == SAMPLE_DATES[-2:]  # 2017-07-03 and -04
    assert_same_report(s3_report(client, target),
                       reference_report(sample_dir, LAST.replace(day=3), LAST))


def test_configuration_error_raises_once_and_writes_nothing(deployment, tmp_path):
    client, target = deployment.client, deployment.target
    raw = yaml.safe_load(deployment.config.read_text())
    raw["report"]["format"] = "xlsx"
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump(raw))
    sleeps: list[float] = []

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(aws_lambda.ENV_CONFIG, str(bad))  # a path in the image works too
        with pytest.raises(aws_lambda.ConfigurationError) as raised:
            aws_lambda.lambda_handler(dict(RANGE), Context(), sleep=sleeps.append)

    assert str(raised.value).startswith("configuration error: report.format: unknown format "
                                        "'xlsx'")
    assert raised.value.status == 2 and not sleeps  # not retried
    assert client.list_objects_v2(Bucket=target).get("KeyCount") == 0


@pytest.mark.parametrize("config,message", [
    ("s3://{bucket}/lambda/missing.yml", "XETRA_CONFIG: cannot read s3://{bucket}/lambda/"
                                         "missing.yml: NoSuchKey"),
    ("s3://{bucket}/", "XETRA_CONFIG: expected s3://bucket/key, got 's3://{bucket}/'"),
    ("", "XETRA_CONFIG: not set (a config path or an s3://bucket/key URL)"),
], ids=["missing-object", "no-key", "unset"])
def test_config_location_errors_name_the_variable(deployment, monkeypatch, config, message):
    client, target, bucket = deployment.client, deployment.target, deployment.config_bucket
    monkeypatch.setenv(aws_lambda.ENV_CONFIG, config.format(bucket=bucket))
    with pytest.raises(aws_lambda.ConfigurationError) as raised:
        aws_lambda.lambda_handler(dict(RANGE), Context())
    assert str(raised.value) == message.format(bucket=bucket)
    assert client.list_objects_v2(Bucket=target).get("KeyCount") == 0


def local_deployment(tmp_path: Path, monkeypatch) -> tuple[Path, RunLock]:
    """XETRA_CONFIG as a path in the image: the sample folder into a local target, whose
    run lock another run holds."""
    config = sample_config(tmp_path / "xetra.yml", str(REPO / "data" / "sample"),
                          str(tmp_path / "out"))
    monkeypatch.setenv(aws_lambda.ENV_CONFIG, str(config))
    monkeypatch.setenv(aws_lambda.ENV_RETRY_WAIT_SECONDS, "30,60,120")
    other = RunLock(LocalStorage(tmp_path / "out", create=True),
                    "meta/report1/xetra_report1.lock", 600)
    other.acquire()
    return tmp_path / "out", other


def test_held_lock_is_retried_with_back_off_until_free(tmp_path, monkeypatch):
    target, other = local_deployment(tmp_path, monkeypatch)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            other.release()  # the other run ends during the second wait

    result = aws_lambda.lambda_handler({"to": "2017-06-28"}, Context(), sleep=sleep)

    assert (result["attempts"], waits) == (3, [30.0, 60.0])
    assert sorted(p.name for p in (target / "report1").iterdir()) == [
        "xetra_report1_2017-06-27.parquet", "xetra_report1_2017-06-28.parquet"]


def test_held_lock_raises_when_the_waits_are_used_up(tmp_path, monkeypatch):
    target, _ = local_deployment(tmp_path, monkeypatch)
    waits: list[float] = []
    with pytest.raises(aws_lambda.LockHeld, match="lock"):
        aws_lambda.lambda_handler({"to": "2017-06-28"}, Context(), sleep=waits.append)
    assert waits == [30.0, 60.0, 120.0]
    assert not (target / "report1").exists()


def test_held_lock_is_not_waited_for_past_the_deadline(tmp_path, monkeypatch):
    """Less time left than the next wait: raise now, so the invocation is not cut off."""
    local_deployment(tmp_path, monkeypatch)
    waits: list[float] = []
    context = Context()
    context.get_remaining_time_in_millis = lambda: 60_000 + 45_000  # 45 s above the margin
    with pytest.raises(aws_lambda.LockHeld):
        aws_lambda.lambda_handler({"to": "2017-06-28"}, context, sleep=waits.append)
    assert waits == [30.0]


@pytest.mark.parametrize("event,message", [
    ({"from": "2017-13-01"}, "configuration error: event.from: not a valid date"),
    ({"to": 20170628}, "configuration error: event.to: expected a date YYYY-MM-DD"),
    (["2017-06-28"], "configuration error: event: expected a JSON object"),
], ids=["bad-date", "number", "list"])
def test_bad_event_is_a_configuration_error(tmp_path, monkeypatch, event, message):
    target, _ = local_deployment(tmp_path, monkeypatch)
    with pytest.raises(aws_lambda.ConfigurationError) as raised:
        aws_lambda.lambda_handler(event, Context(), sleep=pytest.fail)
    assert str(raised.value).startswith(message.removeprefix("configuration error: "))
    assert [p.name for p in target.rglob("*.parquet")] == []


@pytest.mark.parametrize("status,error", [(2, aws_lambda.ConfigurationError),
                                          (4, aws_lambda.OverdueSourceData)])
def test_statuses_not_retried(tmp_path, monkeypatch, caplog, status, error):
    """Config error and overdue data raise at the first attempt; overdue logs its marker."""
    local_deployment(tmp_path, monkeypatch)
    monkeypatch.setattr(aws_lambda, "run_job",
                        lambda argv, stop: (status, "", f"xetra: status {status} here\n"))
    with pytest.raises(error, match=f"^status {status} here$"):
        aws_lambda.lambda_handler({}, Context(), sleep=pytest.fail)
    marked = [r for r in caplog.records if aws_lambda.OVERDUE_MARKER in r.getMessage()]
    assert len(marked) == (1 if status == 4 else 0)


@pytest.mark.parametrize("name,value,message", [
    (aws_lambda.ENV_MARGIN, "soon", "XETRA_DEADLINE_MARGIN_SECONDS: expected a number"),
    (aws_lambda.ENV_MARGIN, "-1", "XETRA_DEADLINE_MARGIN_SECONDS: must not be negative"),
    (aws_lambda.ENV_RETRY_WAIT_SECONDS, "30,x", "XETRA_RETRY_WAIT_SECONDS: expected comma"),
    (aws_lambda.ENV_RETRY_WAIT_SECONDS, "30,-2", "XETRA_RETRY_WAIT_SECONDS: negative wait"),
])
def test_bad_handler_settings_are_named(name, value, message):
    with pytest.raises(aws_lambda.ConfigurationError, match=message):
        aws_lambda.HandlerSettings.from_environ({aws_lambda.ENV_CONFIG: "x.yml", name: value})
