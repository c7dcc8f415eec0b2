"""The entrypoint in-process: arguments, date window, exit codes, one-line errors."""
import datetime as dt
import io
import json
import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from testkit.arrival import expected_rows
from xetra import cli
from xetra.config import load_config
from xetra.errors import ConfigError

SAMPLE_CONFIG = "configs/xetra_sample.yml"


def call(*argv):
    """cli.run with captured stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    status = cli.run(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def in_repo(repo_root, monkeypatch):
    """The sample config's relative paths are relative to the repository root."""
    monkeypatch.chdir(repo_root)


def test_date_window_defaults_and_checks(repo_root):
    config = load_config(repo_root / SAMPLE_CONFIG)
    monday_evening_utc = dt.datetime(2021, 5, 10, 21, 0, tzinfo=dt.timezone.utc)
    assert cli.date_window(config, None, None, monday_evening_utc) == \
        (dt.date(2017, 6, 27), dt.date(2021, 5, 9))
    assert cli.date_window(config, "2021-05-03", "2021-05-07", monday_evening_utc) == \
        (dt.date(2021, 5, 3), dt.date(2021, 5, 7))
    with pytest.raises(ConfigError, match="--to: 2021-05-10 is not over yet in Europe/Berlin"):
        cli.date_window(config, None, "2021-05-10", monday_evening_utc)
    with pytest.raises(ConfigError, match="--from: 2021-05-08 is after the end date 2021-05-07"):
        cli.date_window(config, "2021-05-08", "2021-05-07", monday_evening_utc)
    with pytest.raises(ConfigError, match="job.first_date: 2017-06-27 is after the end date"):
        cli.date_window(config, None, "2017-06-26", monday_evening_utc)


def test_dry_run_prints_pending_dates_and_writes_nothing(tmp_path):
    target = tmp_path / "never-created"
    status, out, err = call("--config", SAMPLE_CONFIG, "--to", "2017-06-30", "--target",
                            str(target), "--dry-run")
    assert (status, err) == (0, "")
    assert out.split() == ["2017-06-27", "2017-06-28", "2017-06-29", "2017-06-30"]
    assert not target.exists()


def test_run_then_nothing_to_do(tmp_path):
    target = tmp_path / "out"
    args = ("--config", SAMPLE_CONFIG, "--from", "2017-06-29", "--to", "2017-06-30",
            "--target", str(target))
    status, out, _ = call(*args)
    assert status == 0 and out == f"report objects under {target}/report1/\n"
    files = sorted(path for path in target.rglob("*") if path.is_file())
    assert [path.relative_to(target).as_posix() for path in files] == [
        "meta/report1/xetra_report1_meta_file.csv",
        "report1/xetra_report1_2017-06-29.parquet", "report1/xetra_report1_2017-06-30.parquet"]
    before = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in files}
    report = pq.read_table(target / "report1" / "xetra_report1_2017-06-30.parquet")
    wanted = expected_rows("2017-06-30", "2017-06-30")["2017-06-30"]  # the pandas reference
    assert report.column("isin").to_pylist() == list(wanted["isin"])
    assert report.column("daily_traded_volume").to_pylist() == \
        list(wanted["daily_traded_volume"])
    assert call(*args, "--dry-run")[1] == ""
    assert call(*args)[0] == 0  # the second run: nothing to do, nothing written
    assert {path: (path.read_bytes(), path.stat().st_mtime_ns)
            for path in target.rglob("*") if path.is_file()} == before
    assert pq.read_table(target / "report1" / "xetra_report1_2017-06-30.parquet").equals(report)


@pytest.mark.parametrize("args, status, message", [
    (["--to", "2017-13-01"], 2, "xetra: configuration error: --to: not a valid date"),
    (["--from", "2017-07-04", "--to", "2017-07-01"], 2, "--from: 2017-07-04 is after"),
    (["--to", "2999-01-01"], 2, "--to: 2999-01-01 is not over yet"),
    (["--source", "data/nowhere", "--to", "2017-07-01"], 1,
     "xetra: run failed: folder /work/main/data/nowhere does not exist"),
])
def test_failures_are_one_line_on_stderr_with_exit_status(args, status, message, repo_root):
    got_status, out, err = call("--config", SAMPLE_CONFIG, *args)
    assert got_status == status and out == ""
    assert err.count("\n") == 1 and message.replace("/work/main", str(repo_root)) in err


def test_held_lock_exit_status_3(tmp_path):
    target = tmp_path / "out"
    lock = target / "meta" / "report1" / "xetra_report1.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"owner": "other-pod:1", "expires_at": "2999-01-01T00:00:00"
                                                                      "+00:00"}))
    status, _, err = call("--config", SAMPLE_CONFIG, "--to", "2017-06-28", "--target",
                          str(target))
    assert status == 3
    assert "another run (other-pod:1) holds the lock" in err and err.count("\n") == 1
    assert sorted(path.name for path in target.rglob("*") if path.is_file()) == \
        ["xetra_report1.lock"]


def test_corrupt_meta_file_exit_status_1_and_untouched(tmp_path):
    target = tmp_path / "out"
    meta = target / "meta" / "report1" / "xetra_report1_meta_file.csv"
    meta.parent.mkdir(parents=True)
    meta.write_bytes(b"garbage\n")
    status, _, err = call("--config", SAMPLE_CONFIG, "--to", "2017-06-28", "--target",
                          str(target))
    assert status == 1 and "lacks column(s) source_date" in err
    assert meta.read_bytes() == b"garbage\n"
    assert not (target / "report1").exists()


def test_a_failure_shows_one_line_and_logs_its_cause_at_debug(tmp_path):
    records = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    job_logger = logging.getLogger("xetra")
    level = job_logger.level
    job_logger.addHandler(handler)
    job_logger.setLevel(logging.DEBUG)
    plan_file = tmp_path / "no-such-folder" / "plan.json"
    try:
        status, out, err = call("--config", SAMPLE_CONFIG, "--to", "2017-06-28", "--target",
                                str(tmp_path / "out"), "--plan", "--plan-file", str(plan_file))
    finally:
        job_logger.removeHandler(handler)
        job_logger.setLevel(level)
    assert (status, out) == (1, "")
    assert err == f"xetra: run failed: cannot write --plan-file {plan_file}: " \
        f"No such file or directory\n"
    with_traceback = [record for record in records if record.exc_info]
    assert [record.levelno for record in with_traceback] == [logging.DEBUG]
    raised = with_traceback[0].exc_info[1]
    assert isinstance(raised.__cause__, FileNotFoundError)  # what the OS said, kept
    assert raised.__cause__.filename == str(plan_file)


def test_open_store_picks_the_adapter(repo_root):
    config = load_config(repo_root / "configs" / "xetra_report1.yml")
    assert type(cli.open_store(config.source, config, create=False)).__name__ == \
        "S3BucketConnector"
    local = config.with_locations("data/sample", None)
    assert type(cli.open_store(local.source, local, create=False)).__name__ == "LocalStorage"


def test_source_and_target_clients_come_from_one_session(repo_root, monkeypatch):
    """A second boto3 Session would load botocore's model again (~0.2 s of a run's start)."""
    from xetra import s3  # pylint: disable=import-outside-toplevel
    sessions = []
    real = s3.new_session
    monkeypatch.setattr(s3, "new_session", lambda: sessions.append(real()) or sessions[-1])
    config = load_config(repo_root / "configs" / "xetra_report1.yml")
    config = config.with_locations(None, "s3://some-target/reports/")
    source, target = cli.open_stores(config, create_target=True)
    assert len(sessions) == 1
    assert (source.bucket_name, target.bucket_name) == (config.source.bucket, "some-target")
    assert source.client.meta.config.signature_version != \
        target.client.meta.config.signature_version  # the public source stays unsigned
    local = config.with_locations(None, "out")
    assert type(cli.open_stores(local, create_target=False)[1]).__name__ == "LocalStorage"
    assert len(sessions) == 2  # one S3 location: its client's own session


def test_lean_memory_pool_is_jemalloc_unless_the_build_lacks_it(monkeypatch):
    before = pa.default_memory_pool()
    try:
        def missing():
            raise NotImplementedError("built without jemalloc")
        monkeypatch.setattr(pa, "jemalloc_memory_pool", missing)
        cli.use_lean_memory_pool()
        assert pa.default_memory_pool().backend_name == before.backend_name
        monkeypatch.undo()
        cli.use_lean_memory_pool()
        assert pa.default_memory_pool().backend_name == "jemalloc"
    finally:
        pa.set_memory_pool(before)
