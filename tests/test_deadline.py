"""The run's deadline: `--max-seconds` and a caller's `should_stop` (the Lambda's remaining time).

Before each date the run asks whether to stop; when it must, it takes no new date, commits the
ones done, lists the rest in the summary line, and the next run continues from the meta file.
"""
from __future__ import annotations

import io
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from xetra import cli

SAMPLE_CONFIG = "configs/xetra_sample.yml"
SAMPLE_DATES = ["2017-06-27", "2017-06-28", "2017-06-29", "2017-06-30", "2017-07-01",
                "2017-07-02", "2017-07-03", "2017-07-04"]


@pytest.fixture(autouse=True)
def in_repo(repo_root, monkeypatch):
    """The sample config's relative paths are relative to the repository root."""
    monkeypatch.chdir(repo_root)


def call(*argv: str, should_stop=None) -> tuple[int, str, str]:
    """cli.run with captured stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    status = cli.run(list(argv), stdout=out, stderr=err, should_stop=should_stop)
    return status, out.getvalue(), err.getvalue()


def recorded_dates(target: Path) -> list[str]:
    """The dates in the meta file, in file order."""
    meta = target / "meta" / "report1" / "xetra_report1_meta_file.csv"
    return [line.split(",")[0] for line in meta.read_text(encoding="utf-8").splitlines()[1:]]


class StopAfter:
    """A should_stop that lets `dates` dates start, then says stop; counts its calls."""

    def __init__(self, dates: int):
        self.dates = dates
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls > self.dates


def test_stop_after_two_dates_commits_them_and_the_next_run_continues(tmp_path, capsys):
    target = tmp_path / "out"
    stop = StopAfter(2)
    status, _, err = call("--config", SAMPLE_CONFIG, "--to", "2017-07-04", "--target",
                          str(target), should_stop=stop)
    assert (status, err, stop.calls) == (0, "", 3)
    assert recorded_dates(target) == SAMPLE_DATES[:2]
    # The sample config logs to stdout.
    summary = [line for line in capsys.readouterr().out.splitlines() if "run summary" in line][-1]
    assert "dates processed=2 (2017-06-27..2017-06-28)" in summary
    assert "dates left for the next run: 2017-06-29..2017-07-04 (6 dates)" in summary
    _, pending, _ = call("--config", SAMPLE_CONFIG, "--to", "2017-07-04", "--target",
                         str(target), "--dry-run")
    assert pending.split() == SAMPLE_DATES[2:]

    assert call("--config", SAMPLE_CONFIG, "--to", "2017-07-04", "--target", str(target))[0] == 0
    assert recorded_dates(target) == SAMPLE_DATES
    # Same rows as one uninterrupted run (the look-back reads the source, not the last run).
    whole = tmp_path / "whole"
    assert call("--config", SAMPLE_CONFIG, "--to", "2017-07-04", "--target", str(whole))[0] == 0
    for day in ("2017-06-28", "2017-06-29"):
        name = f"report1/xetra_report1_{day}.parquet"
        assert pq.read_table(target / name).equals(pq.read_table(whole / name)), day


def test_max_seconds_already_over_takes_no_date(tmp_path):
    target = tmp_path / "out"
    status, _, err = call("--config", SAMPLE_CONFIG, "--to", "2017-06-30", "--target",
                          str(target), "--max-seconds", "1e-9")
    assert (status, err) == (0, "")
    assert not (target / "meta" / "report1" / "xetra_report1_meta_file.csv").exists()
    assert [p.name for p in target.rglob("*.parquet")] == []


def test_max_seconds_generous_changes_nothing(tmp_path):
    target = tmp_path / "out"
    assert call("--config", SAMPLE_CONFIG, "--to", "2017-06-30", "--target", str(target),
                "--max-seconds", "3600")[0] == 0
    assert recorded_dates(target) == SAMPLE_DATES[:4]


@pytest.mark.parametrize("value", ["0", "-5"])
def test_max_seconds_must_be_positive(tmp_path, value):
    status, _, err = call("--config", SAMPLE_CONFIG, "--to", "2017-06-30", "--target",
                          str(tmp_path / "out"), "--max-seconds", value)
    assert status == 2
    assert err == f"xetra: configuration error: --max-seconds: {float(value)} is not a " \
        "positive number\n"
