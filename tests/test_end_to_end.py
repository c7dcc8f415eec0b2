"""run.py as a user runs it: on the bundled real sample, locally and against a real S3 server
(SeaweedFS on 127.0.0.1), compared with the independent pandas reference."""
from __future__ import annotations

import datetime as dt
import os
import random
import stat
import uuid
from pathlib import Path

import pytest

from testkit.paths import REPO
from testkit.processes import kill_at_stage, run_job
from testkit.reference import read_all_rows, reference_report
from testkit.sample import (FIRST, LAST, SAMPLE_DATES, assert_same_report, local_report,
                            meta_dates, s3_report, sample_config)
from testkit.s3servers import upload_folder
from testkit.sourcedata import bar, write_day, write_no_trading_day
from testkit.targets import META_KEY, s3_objects

@pytest.fixture(scope="module")
def expected(sample_dir):
    """report1 of the sample computed by the pandas reference, from all rows at once."""
    return reference_report(sample_dir, FIRST, LAST)


def test_sample_report_equals_independent_reference(tmp_path, sample_dir, expected):
    target = tmp_path / "out"
    config = sample_config(tmp_path / "c.yml", str(sample_dir), str(target))
    done = run_job("--config", str(config), "--to", str(LAST))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.splitlines()[-1] == f"report objects under {target}/report1/"
    report = local_report(target)
    assert_same_report(report, expected)
    assert str(report["date"].dtype) == "object" and report["daily_traded_volume"].dtype == "int64"
    # The summary is the last log line, with counts from the raw rows computed here.
    rows = read_all_rows(sample_dir)
    rows = rows[(rows["Date"] >= str(FIRST)) & (rows["Date"] <= str(LAST))]
    summary = done.stdout.splitlines()[-2]
    assert f"dates processed=8 ({FIRST}..{LAST}), rows read={len(rows)}," in summary
    assert f"zero_volume={(rows['TradedVolume'] == 0).sum()} " in summary
    assert f"report rows={len(expected)}, " in summary
    meta = (target / META_KEY).read_text()
    assert meta_dates(meta) == [str(day) for day in SAMPLE_DATES]


def test_second_run_processes_nothing_and_writes_nothing(tmp_path, sample_dir):
    target = tmp_path / "out"
    config = sample_config(tmp_path / "c.yml", str(sample_dir), str(target))
    assert run_job("--config", str(config), "--to", str(LAST)).returncode == 0
    before = {path: (path.stat().st_mtime_ns, path.read_bytes())
              for path in target.rglob("*") if path.is_file()}
    again = run_job("--config", str(config), "--to", str(LAST))
    assert again.returncode == 0
    assert "dates processed=0," in again.stdout
    assert {path: (path.stat().st_mtime_ns, path.read_bytes())
            for path in target.rglob("*") if path.is_file()} == before


def write_two_weeks(root: Path) -> list[dt.date]:
    """Two weeks (2021-05-03..16) of seeded random trading with Ascension Day (13th) closed."""
    rng = random.Random(20210503)
    isins = [f"DE000{n:06d}{n % 10}" for n in range(40)]
    price = {isin: rng.uniform(5, 200) for isin in isins}
    days = [dt.date(2021, 5, 3) + dt.timedelta(days=n) for n in range(14)]
    for day in days:
        if day.weekday() >= 5 or day == dt.date(2021, 5, 13):
            write_no_trading_day(root, day)
            continue
        bars = []
        for isin in rng.sample(isins, 30):
            for minute in sorted(rng.sample(range(7 * 60, 15 * 60 + 30), 4)):
                start = round(price[isin], 2)
                price[isin] *= rng.uniform(0.98, 1.02)
                bars.append(bar(isin, f"{minute // 60:02d}:{minute % 60:02d}", start,
                                round(price[isin], 2), rng.randint(1, 500)))
        write_day(root, day, bars)
    return days


def test_one_run_over_two_weeks_equals_two_weekly_runs(tmp_path):
    source = tmp_path / "source"
    days = write_two_weeks(source)
    whole, weekly = tmp_path / "whole", tmp_path / "weekly"
    whole_config = sample_config(tmp_path / "w.yml", str(source), str(whole),
                                first_date=str(days[0]))
    weekly_config = sample_config(tmp_path / "k.yml", str(source), str(weekly),
                                 first_date=str(days[0]))
    assert run_job("--config", str(whole_config), "--to", str(days[-1])).returncode == 0
    assert run_job("--config", str(weekly_config), "--to", str(days[6])).returncode == 0
    assert run_job("--config", str(weekly_config), "--to", str(days[-1])).returncode == 0
    one_run, two_runs = local_report(whole), local_report(weekly)
    assert_same_report(two_runs, one_run)
    assert_same_report(one_run, reference_report(source, days[0], days[-1]))
    # The second weekly run's Monday compared with the first week's Friday.
    monday = one_run[one_run["date"] == dt.date(2021, 5, 10)]
    assert monday["change_prev_closing_%"].notna().sum() > 0
    assert meta_dates((whole / META_KEY).read_text()) == \
        meta_dates((weekly / META_KEY).read_text()) == [str(day) for day in days]


def killed_then_rerun(config: Path, day: dt.date,
                      env: dict[str, str] | None = None) -> tuple[str, str]:
    """Kill the job as it is about to record `day` in the meta file (its report object
    written), then rerun it. The dates computed while an earlier commit was under way share
    `day`'s commit (xetra.etl.GroupCommitter): the killed run recorded the dates before that
    group, the rerun processes the rest. Checks both logs say so; returns them."""
    killed = run_job("--config", str(config), "--to", str(LAST),
                     env={**(env or {}), **kill_at_stage("report_written", str(day))})
    assert killed.returncode == -9, killed.stderr
    recorded = [other for other in SAMPLE_DATES if f"{other}: " in killed.stdout]
    assert recorded == SAMPLE_DATES[:len(recorded)] and day not in recorded
    rerun = run_job("--config", str(config), "--to", str(LAST), env=env)
    assert rerun.returncode == 0, rerun.stderr
    todo = SAMPLE_DATES[len(recorded):]
    assert f"dates processed={len(todo)} ({todo[0]}..{LAST})" in rerun.stdout
    return killed.stdout, rerun.stdout


def test_killed_between_report_and_meta_then_rerun_gives_each_date_once(tmp_path, sample_dir,
                                                                        expected):
    target = tmp_path / "out"
    config = sample_config(tmp_path / "c.yml", str(sample_dir), str(target))
    killed_then_rerun(config, dt.date(2017, 7, 3))
    assert_same_report(local_report(target), expected)
    assert meta_dates((target / META_KEY).read_text()) == [str(day) for day in SAMPLE_DATES]
    assert len(list(target.glob("report1/*"))) == 6  # one object per trading day
    assert not (target / "meta" / "report1" / "xetra_report1.lock").exists()


@pytest.fixture
def buckets(seaweed, sample_dir):
    """A source bucket holding the sample and an empty target bucket, on SeaweedFS."""
    client = seaweed.client()
    source, target = f"src-{uuid.uuid4().hex[:8]}", f"dst-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=source)
    client.create_bucket(Bucket=target)
    upload_folder(seaweed, source, sample_dir, prefix="xetra/")
    return client, source, target


@pytest.mark.s3server
def test_s3_run_rerun_and_kill_on_seaweedfs(tmp_path, seaweed, buckets, expected):
    client, source, target = buckets
    config = sample_config(tmp_path / "c.yml", f"s3://{source}/xetra/", f"s3://{target}/",
                          seaweed.endpoint_url)
    killed_then_rerun(config, dt.date(2017, 6, 30), env=seaweed.env())
    assert_same_report(s3_report(client, target), expected)
    state = s3_objects(client, target)
    assert meta_dates(state[META_KEY].decode()) == [str(day) for day in SAMPLE_DATES]
    assert sorted(state) == sorted([META_KEY] + [
        f"report1/xetra_report1_{day}.parquet" for day in SAMPLE_DATES
        if day.weekday() < 5])
    again = run_job("--config", str(config), "--to", str(LAST), env=seaweed.env())
    assert again.returncode == 0 and "dates processed=0," in again.stdout
    assert s3_objects(client, target) == state


@pytest.mark.s3server
def test_s3_failures_are_clear_and_change_nothing(tmp_path, seaweed, buckets):
    client, source, target = buckets
    client.put_object(Bucket=target, Key=META_KEY, Body=b"not,a,meta\nfile\n")
    before = s3_objects(client, target)
    config = sample_config(tmp_path / "c.yml", f"s3://{source}/xetra/", f"s3://{target}/",
                          seaweed.endpoint_url)
    cases = {
        "corrupt meta": (["--config", str(config)], 1,
                         f"meta file s3://{target}/{META_KEY}: header"),
        "missing bucket": (["--config", str(config), "--target", "s3://no-such-bucket-xetra/"],
                           1, "bucket no-such-bucket-xetra does not exist"),
        "bad config": (["--config", str(sample_config(
            tmp_path / "bad.yml", f"s3://{source}/xetra/", f"s3://{target}/",
            seaweed.endpoint_url, first_date="2017-02-30"))], 2,
            "job.first_date: not a valid date: '2017-02-30'"),
    }
    for name, (args, status, message) in cases.items():
        done = run_job(*args, "--to", str(LAST), env=seaweed.env())
        assert done.returncode == status, name
        assert done.stderr.count("\n") == 1 and message in done.stderr, (name, done.stderr)
    assert s3_objects(client, target) == before


def test_quick_start_sample_config_runs_from_the_repository(tmp_path):
    """The README's first command, into a copy of the repository's layout."""
    work = tmp_path / "checkout"
    (work / "configs").mkdir(parents=True)
    (work / "configs" / "xetra_sample.yml").write_text(
        (REPO / "configs" / "xetra_sample.yml").read_text())
    (work / "data").symlink_to(REPO / "data")
    done = run_job("--config", "configs/xetra_sample.yml", "--to", str(LAST), cwd=work)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(f"report objects under {work / 'output' / 'sample'}/report1/\n")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)],
                         ids=["umask022", "umask077"])
def test_report_and_meta_files_honour_the_umask(tmp_path, sample_dir, umask, mode):
    """A user's umask decides who may read the report, as for any file the user makes."""
    config = sample_config(tmp_path / "c.yml", str(sample_dir), str(tmp_path / "out"))
    previous = os.umask(umask)  # the job's process inherits it
    try:
        done = run_job("--config", str(config), "--to", str(LAST))
    finally:
        os.umask(previous)
    assert done.returncode == 0, done.stderr
    written = sorted(path for path in (tmp_path / "out").rglob("*") if path.is_file())
    assert len(written) == 7  # 6 report objects and the meta file
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in written} == \
        {path.name: mode for path in written}
