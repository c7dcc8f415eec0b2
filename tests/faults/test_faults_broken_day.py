"""A date whose rows are (nearly) all invalid is not a day without trades: the run stops with
one line naming the date, the share of invalid rows and the most common reason, and records
nothing for it. Times with seconds (HH:MM:SS) are read, not lost.

Expected messages and report values are written by hand.
"""
from __future__ import annotations

import pytest
from testkit.threedays import (D1, D2, D3, ISIN_A, ISIN_B, ISIN_C, THREE_DAYS_REPORT,
                               assert_converged, three_days)
from testkit.targets import META_KEY, Folder, fill, meta_rows, new_bucket, report_key
from testkit.jobs import Job
from testkit.sourcedata import hourly_key, row, rows_csv


# D2's two rows (ISIN_A and ISIN_B at 09:05) as a changed format would write them.
D2_ROWS = (
    (ISIN_A, (11, 11.5, 10.8, 11.2), 50),
    (ISIN_B, (50, 55, 50, 55), 20),
)


def d2_object(**changed: str) -> bytes:
    """D2's 09 object with the fields in `changed` replaced in both rows."""
    return rows_csv([row(isin, D2, "09:05", prices, volume, **changed)
                      for isin, prices, volume in D2_ROWS])


BROKEN_FORMATS = {
    # changed fields, the most common reason as the message states it
    "date_format": (d2_object(Date="27.06.2017"),
                    f"Date is not {D2}, the date its object is filed under"),
    "decimal_comma": (d2_object(StartPrice="11,0", MaxPrice="11,5", MinPrice="10,8",
                                EndPrice="11,2"),
                      "StartPrice is missing, not a number or negative"),
    "semicolons": (rows_csv([]) + f"{ISIN_A};MNE;X;Common stock;EUR;1;{D2};09:05;11;11.5;"
                   f"10.8;11.2;50;1\n{ISIN_B};MNE;X;Common stock;EUR;1;{D2};09:05;50;55;50;"
                   f"55;20;1\n".encode(), "wrong number of fields"),
    "time_as_hhmm_without_colon": (d2_object(Time="0905"), "Time is not HH:MM or HH:MM:SS"),
    # An unbalanced quote swallows the rest of the object into one malformed row: each of its
    # lines counts as an invalid row (2), not 1 of 1 with the other row silently lost.
    "stray_quote": (d2_object().replace(b"SOME SHARE", b'"SOME SHARE', 1),
                    "wrong number of fields"),
}


def broken_d2_job(tmp_path, kind: str, **sections) -> Job:
    """The three days with D2's rows in a broken format, on local folders."""
    source = Folder(tmp_path / "source")
    fill(source, {**three_days(), hourly_key(D2, 9): BROKEN_FORMATS[kind][0]})
    return Job(tmp_path, source, Folder(tmp_path / "target"), **sections)


def expected_error(invalid: int, rows: int, share: str, reason: str, reason_rows: int,
                   day: str = D2, setting: float = 0.5) -> str:
    """The one stderr line of a broken day, by hand."""
    return (f"xetra: run failed: {day}: {invalid} of {rows} rows invalid ({share}; most common: "
            f"{reason}: {reason_rows} rows), more than job.max_invalid_share {setting} allows "
            f"(has the source format changed?); nothing recorded for {day}\n")


def check_stops_and_records_nothing(job: Job, error: str) -> None:
    """Exit 1 with `error`; D1 (before the broken date) stays committed, nothing of D2 and D3;
    once D2's objects are repaired, the next run gives the report worked out by hand."""
    result = job.run("--to", D3)
    assert result.code == 1, result
    assert result.err == error
    objects = job.target.objects()
    assert [r["source_date"] for r in meta_rows(objects[META_KEY])] == [D1]
    assert report_key(D2) not in objects and report_key(D3) not in objects
    again = job.run("--to", D3)  # still broken: still stops, still records nothing
    assert (again.code, again.err) == (1, error)
    fill(job.source, {hourly_key(D2, 9): three_days()[hourly_key(D2, 9)]})
    repaired = job.run("--to", D3)
    assert repaired.code == 0, repaired
    assert_converged(job.target, [D1, D2, D3])


@pytest.mark.parametrize("kind", list(BROKEN_FORMATS))
def test_a_day_in_a_changed_format_stops_the_run_and_records_nothing(tmp_path, kind):
    """Both rows of D2 invalid: 2 of 2 (100.0%), the reason each broken format gives."""
    job = broken_d2_job(tmp_path, kind)
    check_stops_and_records_nothing(job, expected_error(2, 2, "100.0%", BROKEN_FORMATS[kind][1],
                                                        2))


def test_skip_bad_objects_does_not_skip_a_broken_day(tmp_path):
    """The objects are CSVs of the Xetra header: not bad objects, so not skipped."""
    job = broken_d2_job(tmp_path, "date_format", job={"skip_bad_objects": True})
    check_stops_and_records_nothing(job, expected_error(
        2, 2, "100.0%", f"Date is not {D2}, the date its object is filed under", 2))


@pytest.mark.s3server
def test_a_broken_day_on_s3_records_nothing(tmp_path, motoserver):
    """The same on buckets of a real S3 server."""
    source, target = new_bucket(motoserver, "src"), new_bucket(motoserver, "tgt")
    fill(source, {**three_days(), hourly_key(D2, 9): BROKEN_FORMATS["decimal_comma"][0]})
    job = Job(tmp_path, source, target, motoserver.endpoint_url, env=motoserver.env())
    check_stops_and_records_nothing(job, expected_error(
        2, 2, "100.0%", "StartPrice is missing, not a number or negative", 2))


def d1_with_invalid_rows(invalid: int) -> dict[str, bytes]:
    """The three days, D1 with `invalid` extra rows of ISIN_C whose Date is another day's."""
    objects = three_days()
    objects[hourly_key(D1, 11)] = rows_csv([row(ISIN_C, "2017-06-25", "11:00", (1, 1, 1, 1), 1)
                                            for _ in range(invalid)])
    return objects


@pytest.mark.parametrize("invalid, setting, stops", [
    (1, None, False),   # 1 of 4 = 25.0% <= 0.5 (default)
    (3, None, False),   # 3 of 6 = 50.0%: not more than 0.5
    (4, None, True),    # 4 of 7 = 57.1% > 0.5
    (1, 0.2, True),     # 25.0% > 0.2
    (1, 0.25, False),   # 25.0% is not more than 0.25
    (3, 1.0, False),    # 1.0: never stop
])
def test_the_tolerated_share_of_invalid_rows(tmp_path, invalid, setting, stops):
    """D1 has 3 valid rows plus `invalid` invalid ones. Above the share: stop, naming it;
    at or below it: the day is processed and a warning names the share and the reason."""
    source = Folder(tmp_path / "source")
    fill(source, d1_with_invalid_rows(invalid))
    sections = {} if setting is None else {"job": {"max_invalid_share": setting}}
    job = Job(tmp_path, source, Folder(tmp_path / "target"), **sections)
    result = job.run("--to", D3)
    rows = 3 + invalid
    share = f"{invalid / rows:.1%}"
    reason = f"Date is not {D1}, the date its object is filed under"
    if stops:
        assert result.code == 1, result
        assert result.err == expected_error(invalid, rows, share, reason, invalid, D1,
                                            0.5 if setting is None else setting)
        assert job.target.objects().get(META_KEY) is None
        return
    assert result.code == 0, result
    warning = (f"{D1}: {invalid} of {rows} rows invalid ({share}; most common: {reason}: "
               f"{invalid} rows)")
    assert [line for line in result.log.splitlines()
            if " WARNING xetra" in line and line.endswith(warning)], result.log
    assert f"rows dropped: invalid={invalid} " in result.summary
    assert_converged(job.target, [D1, D2, D3])


def with_seconds(objects: dict[str, bytes]) -> dict[str, bytes]:
    """Every Time HH:MM written as HH:MM:00."""
    return {key: data.replace(b",09:00,", b",09:00:00,").replace(b",10:00,", b",10:00:00,")
            .replace(b",09:05,", b",09:05:00,").replace(b",11:00,", b",11:00:00,")
            for key, data in objects.items()}


def test_times_with_seconds_are_read(tmp_path):
    """Every time as HH:MM:SS: the same report as HH:MM (THREE_DAYS_REPORT)."""
    source = Folder(tmp_path / "source")
    objects = with_seconds(three_days())
    assert b":00:00," in objects[hourly_key(D1, 9)]
    fill(source, objects)
    job = Job(tmp_path, source, Folder(tmp_path / "target"))
    result = job.run("--to", D3)
    assert result.code == 0, result
    assert "invalid=0 " in result.summary
    assert_converged(job.target, [D1, D2, D3])


def test_seconds_decide_the_opening_and_the_closing(tmp_path):
    """D1 of ISIN_A in mixed forms: 10:00:30 (end 12), 10:00 (start 9.5), 10:00:05 (end 11),
    09:59:59 (start 9). By time: 09:59:59 < 10:00 < 10:00:05 < 10:00:30, so open 9 (09:59:59)
    and close 12 (10:00:30); min 8, max 13; volume 1+2+3+4 = 10."""
    source = Folder(tmp_path / "source")
    fill(source, {hourly_key(D1, 10): rows_csv([
        row(ISIN_A, D1, "10:00:30", (10, 13, 10, 12), 1),
        row(ISIN_A, D1, "10:00", (9.5, 10, 9.5, 10), 2),
        row(ISIN_A, D1, "10:00:05", (10, 11, 10, 11), 3),
        row(ISIN_A, D1, "09:59:59", (9, 9, 8, 9), 4)])})
    job = Job(tmp_path, source, Folder(tmp_path / "target"))
    result = job.run("--to", D1)
    assert result.code == 0, result
    assert_converged(job.target, [D1], {D1: [(ISIN_A, 9.0, 12.0, 8.0, 13.0, 10, None)]})


def test_the_broken_days_report_of_an_earlier_run_is_left_alone(tmp_path):
    """D2 processed while good; its source later replaced by a broken copy: a run over D2
    does nothing (the meta file lists it), so the good report stays as it was."""
    source = Folder(tmp_path / "source")
    fill(source, three_days())
    job = Job(tmp_path, source, Folder(tmp_path / "target"))
    assert job.run("--to", D3).code == 0
    fill(source, {hourly_key(D2, 9): BROKEN_FORMATS["date_format"][0]})
    again = job.run("--to", D3)
    assert again.code == 0, again
    assert_converged(job.target, [D1, D2, D3], THREE_DAYS_REPORT)
