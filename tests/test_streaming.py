"""The streaming job (day by day, next day read ahead) equals a read-everything-at-once path."""
import datetime as dt

import pyarrow as pa
import pytest

from testkit import synthetic
from testkit.localetl import make_etl, report_of
from testkit.reference import COLUMNS, reference_report
from testkit.sourcedata import bar, write_day
from xetra.errors import SourceFormatError, StorageError
from xetra.formats import deserialise_table

FIRST, LAST = dt.date(2021, 3, 24), dt.date(2021, 4, 9)  # Easter, DST, weekends


def test_synthetic_weeks_equal_the_all_at_once_pandas_reference(tmp_path, pool):
    source, target = tmp_path / "source", tmp_path / "target"
    synthetic.generate(source, FIRST - dt.timedelta(days=3), LAST, isins=120,
                       rows_per_day=3000, seed=11)
    etl = make_etl((source, target), pool, first_date=str(FIRST))
    summary = etl.etl_report1(FIRST, LAST)
    assert summary.processed == [FIRST + dt.timedelta(days=i) for i in range(17)]
    written = sorted((target / "report1").glob("*.parquet"))
    job = pa.concat_tables([deserialise_table(p.read_bytes(), "parquet") for p in written])
    job = job.to_pandas().astype({"change_prev_closing_%": "Float64"})
    expected = reference_report(source, FIRST, LAST)
    assert len(job) == len(expected) > 1000
    assert job["change_prev_closing_%"].notna().sum() > 900  # the look-back really worked
    for name in COLUMNS:
        assert job[name].tolist() == expected[name].tolist(), name
    assert summary.counts.zero_volume > 0 and summary.counts.other_currency > 0


def test_a_bad_next_day_fails_only_at_its_turn(tmp_path, pool):
    source, target = tmp_path / "source", tmp_path / "target"
    day1, day2 = dt.date(2021, 5, 10), dt.date(2021, 5, 11)
    write_day(source, day1, [bar("DE0007164600", "09:00", 10.0, 11.0, 5)])
    write_day(source, day2, [bar("DE0007164600", "09:00", 11.0, 12.0, 5)])
    (source / "2021-05-11" / "2021-05-11_BINS_XETR12.csv").write_bytes(b"")
    etl = make_etl((source, target), pool, first_date="2021-05-10")
    with pytest.raises(SourceFormatError, match="2021-05-11_BINS_XETR12.csv: empty object"):
        etl.etl_report1(day1, day2)
    # The first day was read ahead of nothing and committed before the second day's error.
    assert etl.meta.load().dates == {day1}
    assert report_of(target, day1)[0]["closing_price_eur"] == 11.0
    assert not (target / "report1" / "xetra_report1_2021-05-11.parquet").exists()


def test_every_day_is_read_once(tmp_path, pool):
    source, target = tmp_path / "source", tmp_path / "target"
    days = [dt.date(2021, 5, 10) + dt.timedelta(days=i) for i in range(3)]
    for number, day in enumerate(days):
        write_day(source, day, [bar("DE0007164600", "09:00", 10.0, 10.0 + number, 5)])
    etl = make_etl((source, target), pool, first_date="2021-05-10")
    listed = []
    original = etl.reader.store.list_objects
    etl.reader.store.list_objects = lambda prefix: listed.append(prefix) or original(prefix)
    etl.etl_report1(days[0], days[-1])
    # The look-back of the first day reads the ten days before it (April and May): the
    # source index lists each month once (issue 13), so no day is listed twice; and a month
    # without any folder in the root listing (April here) is not listed at all.
    assert listed == ["2021-05"]
    assert report_of(target, days[2])[0]["change_prev_closing_%"] == 9.09  # (12 - 11) / 11


def test_a_failed_write_stops_the_run_and_later_days_are_not_committed(tmp_path, pool):
    source, target = tmp_path / "source", tmp_path / "target"
    days = [dt.date(2021, 5, 10) + dt.timedelta(days=i) for i in range(4)]
    for day in days:
        write_day(source, day, [bar("DE0007164600", "09:00", 10.0, 11.0, 5)])
    etl = make_etl((source, target), pool, first_date="2021-05-10")
    original = etl.load

    def load(day, data, *claim):
        if day == days[1]:
            raise StorageError(f"cannot write report of {day}: disk full")
        return original(day, data, *claim)
    etl.load = load
    with pytest.raises(StorageError, match="2021-05-11: disk full"):
        etl.etl_report1(days[0], days[-1])
    assert etl.meta.load().dates == {days[0]}
    assert sorted(p.name for p in (target / "report1").iterdir()) == \
        ["xetra_report1_2021-05-10.parquet"]  # at most the failed day's own write is lost
