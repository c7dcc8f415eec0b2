"""The AWS Lambda entry: `lambda_handler(event, context)` runs the same job as run.py.

- Configuration: the YAML file named by the environment variable XETRA_CONFIG, a path in the
  image or an `s3://bucket/key` URL (read with the function's role; a local S3 server through
  boto3's own AWS_ENDPOINT_URL_S3).
- Event: optional "from" and "to" (YYYY-MM-DD), as run.py's --from and --to; `{}` is the
  weekly run (the earliest date missing from the meta file up to yesterday in Berlin).
- Deadline: before each date the run asks how much time the invocation has left; below
  XETRA_DEADLINE_MARGIN_SECONDS (default 60) it takes no new date, commits the ones done and
  answers with the dates left, so the next invocation continues from the meta file.
- Exit statuses become the answer: 0 returns a result; a held lock (3) and a failed run (1,
  e.g. S3 trouble) are retried inside the invocation with back-off while the time allows, then
  raised; a configuration error (2) and overdue source data (4) are raised at once. Every
  raised error counts in the function's Errors metric; overdue data also logs OVERDUE_MARKER,
  which the template's metric filter turns into its own alarm.
"""
from __future__ import annotations

import io
import logging
import os
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

from xetra import cli
from xetra.config import parse_date
from xetra.errors import ConfigError, LockHeldError, OverdueData, XetraError

logger = logging.getLogger(__name__)

ENV_CONFIG = "XETRA_CONFIG"
ENV_MARGIN = "XETRA_DEADLINE_MARGIN_SECONDS"
ENV_RETRY_WAIT_SECONDS = "XETRA_RETRY_WAIT_SECONDS"
DEFAULT_MARGIN_SECONDS = 60.0
# Back-off between attempts after exit 1 or 3, while the invocation's time allows. With a
# 15-minute function timeout and the Lambda config's shorter lock TTL (see deploy/aws), the
# waits outlast the lock of an invocation that was killed.
DEFAULT_RETRY_WAITS = (30.0, 60.0, 120.0, 240.0)
EXIT_OVERDUE = OverdueData.exit_status  # source data that should have arrived and has not
OVERDUE_MARKER = "XETRA_OVERDUE_SOURCE_DATA"
RETRIED_STATUSES = frozenset({XetraError.exit_status, LockHeldError.exit_status})


class LambdaContext(Protocol):  # pylint: disable=too-few-public-methods
    """The part of the Lambda context object the handler uses."""

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until the invocation is stopped."""


class JobError(RuntimeError):
    """The job ended with a non-zero exit status; the message is its one-line error."""

    status = XetraError.exit_status


class ConfigurationError(JobError):
    """Exit 2: a setting, the event or XETRA_CONFIG is wrong; no retry can fix it."""

    status = ConfigError.exit_status


class RunFailed(JobError):
    """Exit 1: the run failed (storage, source format, meta file) after every attempt."""

    status = XetraError.exit_status


class LockHeld(JobError):
    """Exit 3: another run held the lock through every attempt."""

    status = LockHeldError.exit_status


class OverdueSourceData(JobError):
    """Exit 4: source data that should be there by now is missing; not retried."""

    status = EXIT_OVERDUE


ERRORS = {cls.status: cls for cls in (ConfigurationError, RunFailed, LockHeld,
                                      OverdueSourceData)}


@dataclass(frozen=True)
class HandlerSettings:
    """The handler's environment variables, validated."""

    config: str
    margin_seconds: float = DEFAULT_MARGIN_SECONDS
    retry_waits: tuple[float, ...] = DEFAULT_RETRY_WAITS

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "HandlerSettings":
        """Read XETRA_CONFIG, XETRA_DEADLINE_MARGIN_SECONDS and XETRA_RETRY_WAIT_SECONDS."""
        config = environ.get(ENV_CONFIG, "").strip()
        if not config:
            raise ConfigurationError(f"{ENV_CONFIG}: not set (a config path or an "
                                     f"s3://bucket/key URL)")
        margin = _number(environ, ENV_MARGIN, str(DEFAULT_MARGIN_SECONDS))
        waits_text = environ.get(ENV_RETRY_WAIT_SECONDS, ",".join(map(str, DEFAULT_RETRY_WAITS)))
        try:
            waits = tuple(float(part) for part in waits_text.split(",") if part.strip())
        except ValueError as exc:
            raise ConfigurationError(f"{ENV_RETRY_WAIT_SECONDS}: expected comma-separated seconds, "
                                     f"got {waits_text!r}") from exc
        if any(wait < 0 for wait in waits):
            raise ConfigurationError(f"{ENV_RETRY_WAIT_SECONDS}: negative wait in {waits_text!r}")
        return cls(config, margin, waits)


def _number(environ: Mapping[str, str], name: str, default: str) -> float:
    text = environ.get(name, default)
    try:
        value = float(text)
    except ValueError as exc:
        raise ConfigurationError(f"{name}: expected a number of seconds, got {text!r}") \
            from exc
    if value < 0:
        raise ConfigurationError(f"{name}: must not be negative, got {text!r}")
    return value


class RemainingTime:
    """should_stop for the run: True once the invocation has less than the margin left."""

    def __init__(self, context: LambdaContext, margin_seconds: float):
        self.context = context
        self.margin_ms = margin_seconds * 1000
        self.reached = False

    def seconds_left(self) -> float:
        """Seconds before the margin is reached (negative when past it)."""
        return (self.context.get_remaining_time_in_millis() - self.margin_ms) / 1000

    def __call__(self) -> bool:
        if self.seconds_left() <= 0:
            self.reached = True
        return self.reached


def event_arguments(event: Any) -> list[str]:
    """--from/--to from the event's optional "from" and "to"; other keys are ignored
    (a scheduler may add its own)."""
    if event is None:
        return []
    if not isinstance(event, dict):
        raise ConfigurationError(f"event: expected a JSON object with optional \"from\" and "
                                 f"\"to\", got {type(event).__name__}")
    arguments = []
    for key, option in (("from", "--from"), ("to", "--to")):
        value = event.get(key)
        if value is None:
            continue
        try:
            parse_date(value, f"event.{key}")
        except ConfigError as exc:
            raise ConfigurationError(str(exc)) from exc
        arguments += [option, value]
    return arguments


def fetch_config(location: str, folder: Path) -> Path:
    """The config file: `location` itself, or the s3://bucket/key object copied into `folder`."""
    if not location.startswith("s3://"):
        return Path(location)
    bucket, _, key = location[len("s3://"):].partition("/")
    if not bucket or not key or key.endswith("/"):
        raise ConfigurationError(f"{ENV_CONFIG}: expected s3://bucket/key, got {location!r}")
    # Imported here, as in the CLI: boto3 costs a local-config invocation time for nothing.
    import boto3  # pylint: disable=import-outside-toplevel
    from botocore.exceptions import BotoCoreError, ClientError  # pylint: disable=C0415
    try:
        body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise ConfigurationError(f"{ENV_CONFIG}: cannot read {location}: {code}") from exc
    except BotoCoreError as exc:
        raise RunFailed(f"{ENV_CONFIG}: cannot read {location}: {exc}") from exc
    path = folder / "xetra.yml"
    path.write_bytes(body)
    return path


def run_job(argv: list[str], should_stop: Callable[[], bool]) -> tuple[int, str, str]:
    """cli.run with its stdout and stderr captured; (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    status = cli.run(argv, stdout=out, stderr=err, should_stop=should_stop)
    return status, out.getvalue(), err.getvalue()


def lambda_handler(event: Any, context: LambdaContext,
                   sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Run the job for the event's range (or the weekly default); see the module docstring.

    Returns {"status": "ok", "deadline_reached": bool, "dates_left": [...], "attempts": n,
    "output": "...", "peak_rss_mb": ...}; raises a JobError subclass for a non-zero status.
    """
    settings = HandlerSettings.from_environ(os.environ)
    arguments = event_arguments(event)
    remaining = RemainingTime(context, settings.margin_seconds)
    with tempfile.TemporaryDirectory(prefix="xetra-") as folder:
        config = fetch_config(settings.config, Path(folder))
        argv = ["--config", str(config), *arguments]
        attempts = 0
        while True:
            attempts += 1
            status, output, error = run_job(argv, remaining)
            if status == cli.EXIT_OK:
                break
            wait = settings.retry_waits[attempts - 1] \
                if attempts <= len(settings.retry_waits) else None
            message = error.strip().removeprefix("xetra: ") or f"exit status {status}"
            if status in RETRIED_STATUSES and wait is not None and \
                    not remaining.reached and remaining.seconds_left() > wait:
                logger.warning("attempt %d: %s; trying again in %.0f s", attempts, message,
                               wait)
                sleep(wait)
                continue
            if status == EXIT_OVERDUE:
                logger.error("%s: %s", OVERDUE_MARKER, message)
            raise ERRORS.get(status, JobError)(message)
        # What is left is what the meta file still lacks in the range (a read, no lock).
        _, pending, _ = run_job([*argv, "--dry-run"], remaining)
    result = {"status": "ok", "deadline_reached": remaining.reached,
              "dates_left": pending.split(), "attempts": attempts, "output": output.strip(),
              # The process's peak so far (Linux: KiB), to size the function's memory.
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    logger.info("lambda result: deadline_reached=%s dates_left=%d attempts=%d",
                result["deadline_reached"], len(result["dates_left"]), attempts)
    return result
