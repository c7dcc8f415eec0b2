"""Meta files written by other tools: a date listed twice (the course's reference job appends
on reruns) collapses to its earliest processing, columns the job does not know are kept when
it rewrites the file, and what it cannot read still stops it."""
from __future__ import annotations

import csv
import io

import pytest

from testkit.jobs import Job
from testkit.targets import META_KEY, Folder, fill
from testkit.threedays import D1, D2, D3, three_days


def meta_table(data: bytes) -> list[list[str]]:
    """The meta file as rows of fields, header first (csv module, independent of the job)."""
    return list(csv.reader(io.StringIO(data.decode("utf-8"))))


def job_with_meta(tmp_path, meta: str) -> Job:
    """The three-day source, and a target whose meta file is `meta`."""
    job = Job(tmp_path, Folder(tmp_path / "source"), Folder(tmp_path / "target"))
    fill(job.source, three_days())
    job.target.put(META_KEY, meta.encode())
    return job


@pytest.mark.parametrize("meta,kept", [
    # The reference job's format: appended on every rerun.
    (f"source_date,datetime_of_processing\n{D1},2017-06-27 06:00:05.123456\n"
     f"{D1},2017-06-28 06:00:01.000001\n", "2017-06-27 06:00:05.123456"),
    # Three times, earliest last, one with a zone.
    (f"source_date,datetime_of_processing\n{D1},2017-06-29T06:00:00\n"
     f"{D1},2017-06-28T06:00:00+00:00\n{D1},2017-06-27T09:00:00+02:00\n",
     "2017-06-27T09:00:00+02:00"),
    # Identical lines.
    (f"source_date,datetime_of_processing\n{D1},2017-06-27T06:00:00\n"
     f"{D1},2017-06-27T06:00:00\n", "2017-06-27T06:00:00"),
])
def test_a_date_listed_twice_collapses_to_the_earliest(tmp_path, meta, kept):
    job = job_with_meta(tmp_path, meta)
    done = job.run("--to", D3)
    assert done.code == 0, done
    assert done.summary.startswith(f"dates processed=2 ({D2}..{D3})")
    warned = [line for line in done.log.splitlines() if "listed" in line and "WARNING" in line]
    assert len(warned) == 1 and "meta file" in warned[0]
    assert f" lists {D1} {meta.count(D1)} times" in warned[0]
    assert "keeping the earliest" in warned[0]
    table = meta_table(job.target.objects()[META_KEY])
    assert [row[0] for row in table[1:]] == [D1, D2, D3]
    assert table[1][1] == kept


def test_dry_run_reads_a_date_listed_twice(tmp_path):
    job = job_with_meta(tmp_path, f"source_date,datetime_of_processing\n{D1},2017-06-27\n"
                                  f"{D1},2017-06-28\n")
    done = job.run("--to", D3, "--dry-run")
    assert done.code == 0 and done.out == f"{D2}\n{D3}\n"


@pytest.mark.parametrize("header,row", [
    ("source_date,datetime_of_processing,note", f"{D1},2017-06-27T06:00:00,first try"),
    ("note,source_date,datetime_of_processing", f"\"a, b\",{D1},2017-06-27T06:00:00"),
    ("source_date,owner,datetime_of_processing,ticket", f"{D1},ops,2017-06-27T06:00:00,T-1"),
])
def test_unknown_columns_are_kept(tmp_path, header, row):
    job = job_with_meta(tmp_path, f"{header}\n{row}\n")
    assert job.run("--to", D3).code == 0
    table = meta_table(job.target.objects()[META_KEY])
    extra = [name for name in header.split(",")
             if name not in ("source_date", "datetime_of_processing")]
    original = dict(zip(header.split(","), next(csv.reader([row]))))
    assert table[0][-len(extra):] == extra          # after the job's own columns, in order
    rows = {line[0]: dict(zip(table[0], line)) for line in table[1:]}
    assert [rows[D1][name] for name in extra] == [original[name] for name in extra]
    assert [rows[D2][name] for name in extra] == [""] * len(extra)
    assert rows[D1]["datetime_of_processing"] == "2017-06-27T06:00:00"


def test_unknown_columns_survive_a_recompute(tmp_path):
    job = Job(tmp_path, Folder(tmp_path / "source"), Folder(tmp_path / "target"))
    fill(job.source, {k: v for k, v in three_days().items() if not k.startswith(D2)})
    job.config["job"]["max_wait_days"] = 36500  # D2 waits: no alarm here
    job.write()
    assert job.run("--to", D3).code == 0
    data = job.target.objects()[META_KEY].decode()
    lines = data.splitlines()
    lines = [lines[0] + ",note"] + [line + ",checked" for line in lines[1:]]
    job.target.put(META_KEY, ("\n".join(lines) + "\n").encode())
    fill(job.source, three_days())
    done = job.run("--to", D3)
    assert done.code == 0 and f"recomputed=1 ({D3})" in done.summary
    table = meta_table(job.target.objects()[META_KEY])
    rows = {line[0]: dict(zip(table[0], line)) for line in table[1:]}
    assert (rows[D1]["note"], rows[D2]["note"], rows[D3]["note"]) == ("checked", "", "checked")
    assert rows[D3]["previous_trading_day"] == D2 and rows[D3]["recomputed_at"]


@pytest.mark.parametrize("meta,problem", [
    ("source_date,datetime_of_processing,note,note\n", "column 'note' appears twice"),
    (f"source_date,datetime_of_processing\n{D1},yesterday\n", "bad datetime_of_processing"),
    (f"source_date,datetime_of_processing\n{D1},2017-06-27\n2017-06-31,2017-06-27\n",
     "bad source_date"),
])
def test_what_cannot_be_read_still_stops_the_job(tmp_path, meta, problem):
    job = job_with_meta(tmp_path, meta)
    done = job.run("--to", D3)
    assert done.code == 1 and problem in done.err, done
    assert job.target.objects()[META_KEY] == meta.encode()
