"""Overdue data is an alarm (exit 4), waiting data is logged once as ranges, an operator can
accept a gap, and a day with hours missing inside the session is flagged."""
from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import pytest

from testkit.arrival import (SMALL_WEEK, assert_complete, deliver, listed_dates, meta_by_date,
                             sample_objects)
from testkit.jobs import Job
from testkit.targets import META_KEY, Bucket, Folder, assert_report, fill, meta_rows, report_key
from testkit.threedays import D1, D2, D3, ISIN_A, three_days

REASON = "exchange closed (test)"


def today_in_berlin() -> dt.date:
    """Today where the job's default time zone is."""
    return dt.datetime.now(ZoneInfo("Europe/Berlin")).date()


def age(day: str) -> int:
    """Days since `day`, as the job counts them."""
    return (today_in_berlin() - dt.date.fromisoformat(day)).days


def without(objects: dict[str, bytes], *days: str) -> dict[str, bytes]:
    """The objects except those of `days`."""
    return {key: data for key, data in objects.items() if key.split("/")[0] not in days}


def check_overdue_date(job: Job) -> None:
    """D2 has no objects and is years old: D1 and D3 are processed, then exit 4 naming D2."""
    fill(job.source, without(three_days(), D2))
    done = job.run("--to", D3)
    assert done.code == 4, done
    assert done.err.count("\n") == 1
    assert done.err == (f"xetra: overdue source data: {D2} has no hourly objects more than "
                        f"3 days after the date (job.max_wait_days); record a date that will "
                        f"never have data with --accept-missing DATE --reason TEXT\n")
    assert done.summary.startswith(f"dates processed=2 ({D1}..{D3})")
    assert f"overdue: {D2}" in done.summary
    objects = job.target.objects()
    assert sorted(objects) == sorted([META_KEY, report_key(D1), report_key(D3)])
    assert listed_dates(objects) == [D1, D3]
    # Nothing else changes: a second run does nothing but raise the same alarm.
    again = job.run("--to", D3)
    assert again.code == 4 and again.err == done.err
    assert job.target.objects() == objects
    assert "no hourly source objects yet" not in again.log


def local(tmp_path) -> Job:
    """A job on two empty local folders."""
    return Job(tmp_path, Folder(tmp_path / "source"), Folder(tmp_path / "target"))


def on_s3(tmp_path, server) -> Job:
    """A job on two fresh buckets of `server`."""
    suffix = uuid.uuid4().hex[:8]
    return Job(tmp_path, Bucket(server, f"overdue-src-{suffix}"),
               Bucket(server, f"overdue-tgt-{suffix}"), server.endpoint_url, env=server.env())


def test_overdue_date_exits_4_local(tmp_path):
    check_overdue_date(local(tmp_path))


@pytest.mark.s3server
def test_overdue_date_exits_4_s3(motoserver, tmp_path):
    check_overdue_date(on_s3(tmp_path, motoserver))


def test_thousands_of_overdue_dates_are_one_range(tmp_path):
    """The sample config without --to: every date after the sample is overdue but the last
    three, which are waiting: one range each, never a line per date."""
    job = local(tmp_path)
    deliver(job.source, SMALL_WEEK)
    done = job.run()
    assert done.code == 4, done
    yesterday = today_in_berlin() - dt.timedelta(days=1)
    last_overdue = today_in_berlin() - dt.timedelta(days=4)
    count = (last_overdue - dt.date(2017, 7, 1)).days + 1
    overdue = f"2017-07-01..{last_overdue} ({count:,} dates)"
    waiting = f"{last_overdue + dt.timedelta(days=1)}..{yesterday} (3 dates)"
    assert done.err.startswith(f"xetra: overdue source data: {overdue} have no hourly objects")
    assert done.err.count("\n") == 1 and len(done.err) < 400
    assert f"overdue: {overdue}" in done.summary and f"waiting: {waiting}" in done.summary
    assert len(done.summary) < 600
    assert len(done.log.splitlines()) < 20, done.log
    assert sum(waiting in line for line in done.log.splitlines()) == 2  # its line + summary


@pytest.mark.parametrize("case", ["both_waiting", "one_overdue"])
def test_waiting_within_max_wait_days(tmp_path, case):
    """max_wait_days set around the dates' age: the boundary is exact (more than N days)."""
    job = local(tmp_path)
    fill(job.source, without(three_days(), D2, D3))
    job.config["job"]["max_wait_days"] = age(D2) if case == "both_waiting" else age(D3)
    job.write()
    done = job.run("--to", D3)
    if case == "both_waiting":
        assert done.code == 0, done
        assert done.err == ""
        assert done.summary.endswith(f"waiting: {D2}..{D3} (2 dates)")
        assert sum(f"{D2}..{D3} (2 dates)" in line for line in done.log.splitlines()) == 2
    else:
        assert done.code == 4, done
        assert done.err.startswith(f"xetra: overdue source data: {D2} has no hourly objects")
        assert f"overdue: {D2}; waiting: {D3}" in done.summary
    assert listed_dates(job.target.objects()) == [D1]


# --- accepted gaps --------------------------------------------------------------------------

def check_accepted_gap(job: Job) -> None:
    """D2 will never have data: accepted, no alarm, D3 compares across it with D1."""
    fill(job.source, without(three_days(), D2))
    accepted = job.run("--accept-missing", D2, "--reason", REASON)
    assert accepted.code == 0, accepted
    rows = meta_rows(job.target.objects()[META_KEY])
    assert [(r["source_date"], r["status"], r["reason"]) for r in rows] == \
        [(D2, "accepted_missing", REASON)]
    dt.datetime.fromisoformat(rows[0]["datetime_of_processing"])  # a valid timestamp
    done = job.run("--to", D3)
    assert done.code == 0, done
    assert done.err == "" and "overdue" not in done.summary
    objects = job.target.objects()
    assert listed_dates(objects) == [D1, D2, D3]
    # By hand: D3 A closes at 11, D1 A at 11 (D2 is accepted, so D1 is the previous day).
    assert_report(objects[report_key(D3)], [(ISIN_A, 11.0, 11.0, 11.0, 11.0, 5, 0.0)])
    assert meta_by_date(objects)[D3]["previous_trading_day"] == D1
    assert report_key(D2) not in objects
    verify = job.run("--verify", "--from", D1, "--to", D3)
    assert verify.code == 0, verify
    assert f"accepted gaps: {D2} ({REASON})" in verify.log


def test_accepted_gap_local(tmp_path):
    check_accepted_gap(local(tmp_path))


@pytest.mark.s3server
def test_accepted_gap_s3(motoserver, tmp_path):
    check_accepted_gap(on_s3(tmp_path, motoserver))


def test_accepting_a_gap_after_later_dates_were_processed(tmp_path):
    """D3 was computed across the missing D2 already: accepting D2 changes nothing else."""
    job = local(tmp_path)
    fill(job.source, without(three_days(), D2))
    assert job.run("--to", D3).code == 4
    before = job.target.objects()
    assert job.run("--accept-missing", D2, "--reason", REASON).code == 0
    after = job.target.objects()
    assert {k: v for k, v in after.items() if k != META_KEY} == \
        {k: v for k, v in before.items() if k != META_KEY}
    done = job.run("--to", D3)
    assert done.code == 0 and done.summary.startswith("dates processed=0"), done
    assert "recomputed" not in done.summary


def test_data_appearing_for_an_accepted_date_is_warned_about_and_left(tmp_path):
    job = local(tmp_path)
    fill(job.source, without(three_days(), D2))
    assert job.run("--accept-missing", D2, "--reason", REASON).code == 0
    assert job.run("--to", D3).code == 0
    before = job.target.objects()
    fill(job.source, three_days())  # D2's objects appear after all
    done = job.run("--to", D3)
    assert done.code == 0, done
    assert f"{D2} is recorded as accepted missing ({REASON}) but now has hourly source " \
           f"objects; it stays accepted" in done.log
    assert job.target.objects() == before
    verify = job.run("--verify", "--from", D1, "--to", D3)
    assert verify.code == 0 and f"{D2} is recorded as accepted missing" in verify.log


@pytest.mark.parametrize("args,code,message", [
    ([D2], 2, "--reason: required with --accept-missing"),
    ([D2, "--reason", "  "], 2, "--reason: required with --accept-missing"),
    (["2017-02-30", "--reason", "x"], 2, "--accept-missing: not a valid date"),
    ([D1, "--reason", "x"], 1, f"--accept-missing: {D1} is already processed"),
])
def test_accept_missing_refuses_what_it_cannot_do(tmp_path, args, code, message):
    job = local(tmp_path)
    fill(job.source, three_days())
    assert job.run("--to", D1).code == 0
    before = job.target.objects()
    done = job.run("--accept-missing", *args)
    assert done.code == code, done
    assert message in done.err and done.err.count("\n") == 1
    assert job.target.objects() == before


def test_accept_missing_takes_the_lock(tmp_path):
    job = local(tmp_path)
    fill(job.source, without(three_days(), D2))
    lock = ('{"owner": "elsewhere:4026531836:1:abcd", "acquired_at": "2099-01-01T00:00:00+00:00",'
            ' "expires_at": "2099-01-01T00:00:00+00:00"}').encode()
    job.target.put("meta/report1/xetra_report1.lock", lock)
    done = job.run("--accept-missing", D2, "--reason", REASON)
    assert done.code == 3 and "holds the lock" in done.err
    assert META_KEY not in job.target.objects()


def test_accepting_twice_changes_nothing(tmp_path):
    job = local(tmp_path)
    fill(job.source, without(three_days(), D2))
    assert job.run("--accept-missing", D2, "--reason", REASON).code == 0
    before = job.target.objects()
    again = job.run("--accept-missing", D2, "--reason", "another reason")
    assert again.code == 0 and f"{D2} is already recorded as accepted missing" in again.log
    assert job.target.objects() == before


# --- incomplete days ----------------------------------------------------------------------

@pytest.mark.parametrize("dropped,header_only,expected", [
    ([11], [], "11"),          # an hour's object missing altogether
    ([10], [12], "10;12"),     # one missing, one present but empty
    ([], [], ""),              # the real 06-29 lacks hour 18 (after the session): fine
])
def test_hours_missing_inside_the_session_are_recorded_and_warned(tmp_path, dropped,
                                                                  header_only, expected):
    job = local(tmp_path)
    day = "2017-06-29"
    objects = sample_objects(SMALL_WEEK, {day: dropped})
    for hour in header_only:
        key = f"{day}/{day}_BINS_XETR{hour:02d}.csv"
        objects[key] = objects[key].split(b"\n", 1)[0] + b"\n"
    fill(job.source, objects)
    done = job.run("--to", SMALL_WEEK[-1])
    assert done.code == 0, done
    row = meta_by_date(job.target.objects())[day]
    assert row["hourly_objects"] == str(23 - len(dropped))  # the real day has 23 objects
    assert row["missing_hours"] == expected
    warned = [line for line in done.log.splitlines() if "WARNING" in line and day in line]
    if expected:
        hours = ", ".join(f"{int(h):02d}" for h in expected.split(";"))
        assert warned == [warned[0]] and f"{day}: no trades in hour(s) {hours} (UTC) " \
            f"between hours with trades: the day may be incomplete" in warned[0]
    else:
        assert warned == []
    others = meta_by_date(job.target.objects())
    assert [others[d]["hourly_objects"] for d in SMALL_WEEK if d != day] == ["24"] * 4


def test_every_processed_date_shows_its_position(tmp_path):
    job = local(tmp_path)
    deliver(job.source, SMALL_WEEK)
    done = job.run("--to", SMALL_WEEK[-1])
    lines = [line for line in done.log.splitlines() if "report rows ->" in line]
    assert [line.split("(date ")[1].split(",")[0] for line in lines] == \
        ["1/5", "2/5", "3/5", "4/5", "5/5"]
    assert lines[0].endswith("left)") and lines[-1].endswith("date 5/5, done)")
    assert_complete(job.target, SMALL_WEEK[0], SMALL_WEEK[-1])


def test_two_column_meta_file_keeps_working_with_new_columns(tmp_path):
    job = local(tmp_path)
    fill(job.source, three_days())
    job.target.put(META_KEY, f"source_date,datetime_of_processing\n{D1},2017-06-27T06:00:00\n"
                   .encode())
    done = job.run("--to", D3)
    assert done.code == 0 and done.summary.startswith(f"dates processed=2 ({D2}..{D3})")
    rows = meta_by_date(job.target.objects())
    assert rows[D1]["datetime_of_processing"] == "2017-06-27T06:00:00"
    assert rows[D1]["previous_trading_day"] == "" and rows[D1]["report_rows"] == ""
    assert rows[D2]["previous_trading_day"] == D1 and rows[D2]["report_rows"] == "2"
    # D1 was processed by an older tool: D2 is not stale although D1's rows are unknown.
    assert "recomputed" not in done.summary


@pytest.mark.parametrize("args,message", [
    (["--accept-missing", "2099-01-01", "--reason", "x"],
     "--accept-missing: 2099-01-01 is not over yet"),
    (["--to", D3, "--reason", "x"], "--reason: only with --accept-missing"),
])
def test_accept_missing_arguments_are_checked_before_any_io(tmp_path, args, message):
    job = local(tmp_path)
    done = job.run(*args)
    assert done.code == 2 and message in done.err, done
    assert not (tmp_path / "target").exists()


def test_accept_missing_is_a_mode_of_its_own(tmp_path):
    with pytest.raises(SystemExit):  # argparse: not allowed with --dry-run
        local(tmp_path).run("--accept-missing", D2, "--dry-run", "--reason", "x")


def test_a_stale_date_whose_source_is_gone_is_named_not_overdue(tmp_path):
    job = local(tmp_path)
    fill(job.source, without(three_days(), D2))
    assert job.run("--to", D3).code == 4
    fill(job.source, three_days())
    assert job.run("--to", D2).code == 0  # D2 processed; D3 outside the range: now stale
    for key in list(three_days()):
        if key.startswith(D3):
            (tmp_path / "source" / key).unlink()
    done = job.run("--to", D3)
    assert done.code == 0, done
    assert f"date {D3}: its report compares with {D1}, but the previous trading day is now " \
           f"{D2} (a date that arrived late); its hourly source objects are gone" in done.log
    assert "overdue" not in done.summary
