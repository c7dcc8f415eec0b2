"""The end of a run: the process skips the interpreter's teardown (cli.end_without_teardown)
and still loses nothing: its exit status, every log line, all of stdout, and the threads it
started all reach their end."""
from __future__ import annotations

import datetime as dt
import io
import subprocess
import sys

import pytest

from testkit.config import job_config, write_config
from testkit.processes import job_env, run_job
from testkit.paths import CONFIGS, REPO
from testkit.sample import LAST
from xetra import cli


def config_with_log_file(tmp_path, sample_dir):
    """The sample config, logging to tmp_path/job.log instead of stdout."""
    return write_config(tmp_path / "c.yml", job_config(
        str(sample_dir), str(tmp_path / "out"), base=CONFIGS / "xetra_sample.yml",
        log_file=tmp_path / "job.log"))


def test_a_run_leaves_its_whole_log_file_stdout_and_status(tmp_path, sample_dir):
    config = config_with_log_file(tmp_path, sample_dir)
    done = run_job("--config", str(config), "--to", str(LAST))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"report objects under {tmp_path / 'out'}/report1/\n"
    lines = (tmp_path / "job.log").read_text().splitlines()
    assert "run summary: dates processed=8 " in lines[-1]
    assert len([line for line in lines if " INFO xetra.etl: 2017-" in line]) == 8


def test_a_failed_run_keeps_its_exit_status_and_error_line(tmp_path, sample_dir):
    """Three dates after the sample have no source and are long overdue: exit status 4, after
    the summary, with the error on stderr and in the log file."""
    config = config_with_log_file(tmp_path, sample_dir)
    done = run_job("--config", str(config), "--to", str(LAST + dt.timedelta(days=3)))
    assert done.returncode == 4, done.stderr
    assert done.stderr == "xetra: overdue source data: 2017-07-05..2017-07-07 (3 dates) have no " \
        "hourly objects more than 3 days after the date (job.max_wait_days); record a date " \
        "that will never have data with --accept-missing DATE --reason TEXT\n"
    last = (tmp_path / "job.log").read_text().splitlines()[-1]
    assert last.endswith("ERROR xetra: " + done.stderr[len("xetra: "):-1])


def test_threads_still_running_end_before_the_process_does(tmp_path, sample_dir):
    """A non-daemon thread still at work when the run returns is waited for, as the
    interpreter's own exit does; an exit handler registered before the run's end is not run
    (the process ends in end_without_teardown)."""
    config = config_with_log_file(tmp_path, sample_dir)
    late, early_handler = tmp_path / "late-thread", tmp_path / "early-handler"
    script = (
        "import atexit, pathlib, sys, threading, time\n"
        f"atexit.register(pathlib.Path({str(early_handler)!r}).write_text, 'ran')\n"
        "def late():\n"
        "    time.sleep(1.0)\n"
        f"    pathlib.Path({str(late)!r}).write_text('done')\n"
        "threading.Thread(target=late).start()\n"
        "from xetra import cli\n"
        f"sys.argv = ['run.py', '--config', {str(config)!r}, '--to', {str(LAST)!r}]\n"
        "cli.main()\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=job_env(),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert late.read_text() == "done"
    assert not early_handler.exists()
    assert "run summary: dates processed=8 " in (tmp_path / "job.log").read_text()


class FailingStream(io.StringIO):
    """stdout whose reader has gone: flush fails as on a closed pipe."""

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("status, failing, expected", [
    (0, False, 0), (4, False, 4), (0, True, 120), (4, True, 4)],
    ids=["ok", "status-kept", "closed-stdout", "closed-stdout-status-kept"])
def test_end_without_teardown_flushes_and_exits_with_the_status(monkeypatch, status, failing,
                                                                expected):
    """A stdout that cannot be flushed turns success into status 120, as Python's own exit
    does; a failure's status stays."""
    calls = []
    monkeypatch.setattr(cli.logging, "shutdown", lambda: calls.append("logging.shutdown"))
    monkeypatch.setattr(cli.sys, "stdout", FailingStream() if failing else io.StringIO())
    monkeypatch.setattr(cli.os, "_exit", calls.append)
    cli.end_without_teardown(status)
    assert calls == ["logging.shutdown", expected]
