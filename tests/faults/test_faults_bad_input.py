"""Bad rows are dropped and counted by reason; bad objects stop the run (or are skipped)."""
from __future__ import annotations

import gzip

import pytest

from testkit.jobs import Job
from testkit.sourcedata import HEADER, hourly_key, row, rows_csv
from testkit.targets import META_KEY, Folder, fill, meta_rows, new_bucket, report_key
from testkit.threedays import D1, D2, D3, ISIN_A, ISIN_B, ISIN_C, assert_converged, three_days
from xetra.formats import SOURCE_COLUMNS


LONG_PRICE = "50." + "1" * 2000  # a price with two thousand decimals


def bad_rows_source() -> dict[str, bytes]:
    """One date, three hourly objects holding every kind of odd row (see the test)."""
    good_a = row(ISIN_A, D1, "09:00", (10, 11, 9, 10.5), 100)
    hour9 = rows_csv([
        good_a,
        row(ISIN_A, D1, "09:01", ("", 11, 9, 10), 7),            # empty field: invalid
        row(ISIN_A, D1, "09:02", ("abc", 11, 9, 10), 7),         # not a number: invalid
        row(ISIN_A, D1, "09:03", (10, 11, 9, 10), -5),           # negative volume: invalid
        row(ISIN_A, D1, "09:04", (10, 11, 9, 10), 0),            # zero volume
        row(ISIN_B, D1, "09:00", (LONG_PRICE, 51, 49, 50), 10),  # long decimals: a trade
        row(ISIN_C, D1, "09:00", (5, 5, 5, 5), 3, Currency="USD"),  # other currency
        good_a,                                                  # exact duplicate
        row(ISIN_B, D1, "09:30", (50, 50, 50, 50), 1, SecurityDesc="M_LLER"),
    ]).replace(b"M_LLER", b"M\xfcller")                           # latin-1 byte: a trade
    # BOM, CRLF, columns in reverse order and an unknown extra column.
    columns = list(reversed(SOURCE_COLUMNS)) + ["Extra"]
    hour10 = b"\xef\xbb\xbf" + rows_csv(
        [{**row(ISIN_A, D1, "10:00", (10.5, 12, 10, 11), 200), "Extra": "x"}], columns, "\r\n")
    # A truncated last line (no newline, cut inside the third field): invalid.
    hour11 = rows_csv([row(ISIN_B, D1, "11:00", (50, 52, 49, 51), 5)]) + \
        f"{ISIN_A},MNE,SOME SHA".encode()
    return {hourly_key(D1, 9): hour9, hourly_key(D1, 10): hour10, hourly_key(D1, 11): hour11}


def test_bad_rows_are_dropped_and_counted_by_reason(tmp_path):
    """12 data lines: 5 trades; dropped invalid 4 (empty, 'abc', -5, truncated), zero volume 1,
    other currency 1, duplicate 1. The report, by hand:
    A: 09:00 (10, 11, 9, 10.5, 100) and 10:00 (10.5, 12, 10, 11, 200) -> 10, 11, 9, 12, 300.
    B: 09:00 (50.11.., 51, 49, 50, 10), 09:30 (50 x4, 1), 11:00 (50, 52, 49, 51, 5)
       -> open 50.111.., close 51, min 49, max 52, volume 16."""
    source = Folder(tmp_path / "source")
    fill(source, bad_rows_source())
    job = Job(tmp_path, source, Folder(tmp_path / "target"))
    result = job.run("--to", D1)
    assert result.code == 0, result
    assert result.summary.startswith(
        f"dates processed=1 ({D1}..{D1}), rows read=12, rows dropped: invalid=4 zero_volume=1 "
        f"other_currency=1 duplicate=1, report rows=2, report keys={report_key(D1)}, ")
    assert_converged(job.target, [D1], {D1: [
        (ISIN_A, 10.0, 11.0, 9.0, 12.0, 300, None),
        (ISIN_B, float(LONG_PRICE), 51.0, 49.0, 52.0, 16, None)]})
    assert meta_rows(job.target.objects()[META_KEY])[0]["report_rows"] == "2"


BAD_OBJECTS = {
    "missing_column": (HEADER.replace(",TradedVolume", "").encode() + b"\n",
                       "header lacks required column(s) TradedVolume"),
    "not_csv": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00",
                "not a CSV (unreadable header line)"),
    "empty": (b"", "empty object (0 bytes), expected at least the CSV header"),
    "gzip": (gzip.compress(three_days()[hourly_key(D1, 9)]), "gzip-compressed data, not a CSV"),
}
BAD_KEY = hourly_key(D2, 11)


def bad_object_job(tmp_path, kind: str, skip: bool, server=None) -> Job:
    """The three-day source plus one bad object in D2."""
    if server is None:
        source, target, env, endpoint = (Folder(tmp_path / "source"),
                                         Folder(tmp_path / "target"), None, None)
    else:
        source, target, env, endpoint = (new_bucket(server, "src"), new_bucket(server, "tgt"),
                                         server.env(), server.endpoint_url)
    fill(source, {**three_days(), BAD_KEY: BAD_OBJECTS[kind][0]})
    return Job(tmp_path, source, target, endpoint, env=env, job={"skip_bad_objects": skip})


def check_bad_object(job: Job, kind: str) -> None:
    """Default: exit 1, one line naming the object and the problem; D1 (done before) stays,
    nothing of D2 or D3 is written. With job.skip_bad_objects: all dates done, object listed."""
    where = f"{job.source.url.rstrip('/')}/{BAD_KEY}"
    if not job.config["job"]["skip_bad_objects"]:
        result = job.run("--to", D3)
        assert result.code == 1, result
        assert result.err == f"xetra: run failed: {where}: {BAD_OBJECTS[kind][1]}\n"
        assert_converged(job.target, [D1])
        return
    result = job.run("--to", D3)
    assert result.code == 0, result
    assert result.summary.endswith(f"; skipped bad objects: {BAD_KEY}")
    assert f"skipping bad object: {where}: {BAD_OBJECTS[kind][1]}" in result.log
    assert_converged(job.target, [D1, D2, D3])


@pytest.mark.parametrize("skip", [False, True], ids=["stop", "skip"])
@pytest.mark.parametrize("kind", list(BAD_OBJECTS))
def test_bad_object_local(tmp_path, kind, skip):
    """Each bad object on local folders."""
    check_bad_object(bad_object_job(tmp_path, kind, skip), kind)


@pytest.mark.s3server
@pytest.mark.parametrize("skip", [False, True], ids=["stop", "skip"])
def test_bad_object_s3(tmp_path, motoserver, skip):
    """A gzip object named .csv in a bucket on a real S3 server."""
    check_bad_object(bad_object_job(tmp_path, "gzip", skip, motoserver), "gzip")
