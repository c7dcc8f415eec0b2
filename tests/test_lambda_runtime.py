"""The Lambda entry as Lambda starts it: `python -m awslambdaric xetra.aws_lambda.lambda_handler`
driven by the Runtime API stand-in (testkit/lambda_runtime.py) on 127.0.0.1.

Here with the project's interpreter and awslambdaric from deploy/aws/requirements-lambda.txt
(.ci/steps/40-aws.sh puts it on PYTHONPATH; it is no project dependency, as it has no wheels
for every platform a developer uses); tests/test_container.py does the same inside the image.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testkit.lambda_runtime import RuntimeApiStandIn
from testkit.paths import REPO
from testkit.sample import sample_config


def run_runtime(stand_in: RuntimeApiStandIn, config: Path) -> subprocess.Popen:
    """The runtime interface client, polling the stand-in, as Lambda's init starts it."""
    env = {**os.environ, "AWS_LAMBDA_RUNTIME_API": stand_in.address,
           "XETRA_CONFIG": str(config), "XETRA_DEADLINE_MARGIN_SECONDS": "30"}
    return subprocess.Popen([sys.executable, "-m", "awslambdaric",
                             "xetra.aws_lambda.lambda_handler"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.lambda_runtime
def test_runtime_client_takes_invocations_and_answers_them(tmp_path):
    config = sample_config(tmp_path / "xetra.yml", str(REPO / "data" / "sample"),
                          str(tmp_path / "out"))
    events = [{"from": "2017-06-27", "to": "2017-06-29"}, {"to": "2017-06-29"},
              {"from": "June"}]
    with RuntimeApiStandIn(list(events)) as stand_in:
        started = time.monotonic()
        process = run_runtime(stand_in, config)  # pylint: disable=consider-using-with
        try:
            answered = stand_in.wait_for_answers(120)
        finally:
            process.kill()
            log = process.communicate(timeout=30)[0]
    assert answered, log[-3000:]
    first, second, third = stand_in.answers_in_order()
    assert (first.kind, first.body["status"], first.body["dates_left"],
            first.body["deadline_reached"]) == ("response", "ok", [], False)
    assert first.body["output"] == f"report objects under {tmp_path / 'out'}/report1/"
    assert sorted(p.name for p in (tmp_path / "out" / "report1").iterdir()) == [
        f"xetra_report1_2017-06-{day}.parquet" for day in (27, 28, 29)]
    # The same warm process again: nothing left to do.
    assert (second.kind, second.body["dates_left"]) == ("response", [])
    assert (third.kind, third.body["errorType"]) == ("error", "ConfigurationError")
    assert third.body["errorMessage"].startswith("event.from: expected a date YYYY-MM-DD")
    assert "[ERROR] ConfigurationError: event.from" in log  # what CloudWatch Logs shows
    assert not stand_in.init_errors
    print(f"lambda entry with the project's interpreter: start to the first /next (init) "
          f"{stand_in.first_next_at - started:.2f} s; first invocation (3 dates) "
          f"{first.seconds:.2f} s; peak RSS {first.body['peak_rss_mb']} MB")
