"""The streaming job (day by day, next day read ahead) equals a read-everything-at-once path."""
import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pyarrow as pa
import pytest

from benchmarks import synthetic
from tests.builders import HEADER, Bar, bar, write_day
from tests.reference import COLUMNS, reference_report
from tests.test_formats import REAL_2022_ROW
from tests.test_etl import make_etl, report_of
from xetra import cli, formats, jobcontrol, transform
from xetra.errors import SourceFormatError, StorageError
from xetra.formats import deserialise_table
from xetra.jobcontrol import RunLock

FIRST, LAST = dt.date(2021, 3, 24), dt.date(2021, 4, 9)  # Easter, DST, weekends


@pytest.fixture(name="pool")
def pool_fixture():
    """The read pool."""
    with ThreadPoolExecutor(4) as executor:
        yield executor


def test_synthetic_weeks_equal_the_all_at_once_pandas_reference(repo_root, tmp_path, pool):
    source, target = tmp_path / "source", tmp_path / "target"
    synthetic.generate(source, FIRST - dt.timedelta(days=3), LAST, isins=120,
                       rows_per_day=3000, seed=11)
    etl = make_etl(repo_root, (source, target), pool, first_date=str(FIRST))
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


def test_a_bad_next_day_fails_only_at_its_turn(repo_root, tmp_path, pool):
    source, target = tmp_path / "source", tmp_path / "target"
    day1, day2 = dt.date(2021, 5, 10), dt.date(2021, 5, 11)
    write_day(source, day1, [bar("DE0007164600", "09:00", 10.0, 11.0, 5)])
    write_day(source, day2, [bar("DE0007164600", "09:00", 11.0, 12.0, 5)])
    (source / "2021-05-11" / "2021-05-11_BINS_XETR12.csv").write_bytes(b"")
    etl = make_etl(repo_root, (source, target), pool, first_date="2021-05-10")
    with pytest.raises(SourceFormatError, match="2021-05-11_BINS_XETR12.csv: empty object"):
        etl.etl_report1(day1, day2)
    # The first day was read ahead of nothing and committed before the second day's error.
    assert etl.meta.load().dates == {day1}
    assert report_of(target, day1)[0]["closing_price_eur"] == 11.0
    assert not (target / "report1" / "xetra_report1_2021-05-11.parquet").exists()


def test_every_day_is_read_once(repo_root, tmp_path, pool):
    source, target = tmp_path / "source", tmp_path / "target"
    days = [dt.date(2021, 5, 10) + dt.timedelta(days=i) for i in range(3)]
    for number, day in enumerate(days):
        write_day(source, day, [bar("DE0007164600", "09:00", 10.0, 10.0 + number, 5)])
    etl = make_etl(repo_root, (source, target), pool, first_date="2021-05-10")
    listed = []
    original = etl.reader.store.list_objects
    etl.reader.store.list_objects = lambda prefix: listed.append(prefix) or original(prefix)
    etl.etl_report1(days[0], days[-1])
    # The look-back of the first day reads the ten days before it, each once; no day twice.
    assert sorted(listed) == sorted({f"{d}/" for d in
                                     [days[0] - dt.timedelta(days=b) for b in range(1, 11)]
                                     + days})
    assert report_of(target, days[2])[0]["change_prev_closing_%"] == 9.09  # (12 - 11) / 11


def test_same_minute_check_finds_what_a_plain_count_finds():
    def trades(rows):
        return pa.table({"ISIN": [r[0] for r in rows], "Time": [r[1] for r in rows]})
    unique = [("DE0007164600", "09:00"), ("DE0007164600", "09:01"), ("DE0005190003", "09:00"),
              ("DE0005190003", "23:59"), ("DE0005190003", "00:00")]
    repeated = unique + [("DE0005190003", "09:00")]
    for rows in (unique, repeated, unique[:1], []):
        plain = not pd.DataFrame(rows, columns=["ISIN", "Time"]).duplicated().any()
        assert transform._minutes_are_unique(trades(rows)) is plain  # pylint: disable=W0212


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


def test_lock_is_refreshed_once_a_quarter_of_its_expiry_has_passed(repo_root, tmp_path, pool,
                                                                   monkeypatch):
    source, target = tmp_path / "source", tmp_path / "target"
    days = [dt.date(2021, 5, 10) + dt.timedelta(days=i) for i in range(4)]
    for day in days:
        write_day(source, day, [bar("DE0007164600", "09:00", 10.0, 11.0, 5)])
    refreshes = []
    monkeypatch.setattr(RunLock, "refresh", lambda self: refreshes.append(self.key))

    class Clock:  # pylint: disable=too-few-public-methods
        """Job control's clock: every reading is 100 s after the one before."""
        now = 0.0

        @classmethod
        def monotonic(cls) -> float:
            """The next reading."""
            cls.now += 100
            return cls.now
    monkeypatch.setattr(jobcontrol, "time", Clock)
    etl = make_etl(repo_root, (source, target), pool, first_date="2021-05-10")
    etl.etl_report1(days[0], days[-1])
    # Readings: lock taken 100, after each day 200, 300, 400 (> 100 + 225 s: refresh, new
    # mark 500), 600; ttl 900 s, so one refresh in four days, not one per day.
    assert refreshes == ["meta/report1/xetra_report1.lock"]
    assert etl.meta.load().dates == set(days)
    fast = make_etl(repo_root, (tmp_path / "source", tmp_path / "target2"), pool,
                    first_date="2021-05-10")
    monkeypatch.undo()
    refreshes.clear()
    monkeypatch.setattr(RunLock, "refresh", lambda self: refreshes.append(self.key))
    fast.etl_report1(days[0], days[-1])
    assert not refreshes  # four quick days: the lock is far from expiring


def test_parsing_only_the_trade_columns_keeps_every_row_and_count():
    rows = [REAL_2022_ROW, "DE0007164600,SAP,x,Common stock,EUR,1,2022-04-07,15:20,abc,1,1,1,5,1",
            "DE0007164600,SAP,too,few,fields"]
    data = (HEADER + "\n" + "\n".join(rows) + "\n").encode()
    full = formats.parse_source_csv(data, "k.csv")
    narrow = formats.parse_source_csv(data, "k.csv", formats.TRADE_COLUMNS)
    assert narrow.table.column_names == ["ISIN", "Currency", "Date", "Time", "StartPrice",
                                         "MaxPrice", "MinPrice", "EndPrice", "TradedVolume"]
    assert (narrow.rows_read, narrow.malformed_rows) == (full.rows_read, full.malformed_rows) \
        == (3, 1)
    # "abc" is no price: the tolerant path nulls it in the narrow read as in the full one.
    assert narrow.table["StartPrice"].to_pylist() == [110.1, None]
    assert narrow.table.equals(full.table.select(narrow.table.column_names))
    assert formats.empty_source_table(formats.TRADE_COLUMNS).schema == narrow.table.schema


def test_same_minute_trades_are_told_apart_with_all_columns(repo_root, tmp_path, pool):
    source, target = tmp_path / "source", tmp_path / "target"
    day = dt.date(2021, 5, 10)
    sap = "DE0007164600"
    # 09:00 twice exactly (counts once), and 09:01 twice with different descriptions (both).
    write_day(source, day, [bar(sap, "09:00", 10.0, 11.0, 5), bar(sap, "09:00", 10.0, 11.0, 5),
                            Bar(sap, "09:01", "11", "13", "11", "12", "7", desc="A"),
                            Bar(sap, "09:01", "11", "13", "11", "12", "7", desc="B")])
    etl = make_etl(repo_root, (source, target), pool, first_date="2021-05-10")
    narrow = etl.extract(day)
    assert "SecurityDesc" not in narrow.table.column_names
    with pytest.raises(transform.NeedsAllColumns, match="SecurityDesc"):
        transform.select_trades(narrow.table, day, ["EUR"])
    summary = etl.etl_report1(day, day)
    assert (summary.counts.rows_read, summary.counts.duplicate) == (4, 1)
    row = report_of(target, day)[0]
    assert (row["opening_price_eur"], row["closing_price_eur"], row["maximum_price_eur"],
            row["daily_traded_volume"]) == (10.0, 12.0, 13.0, 5 + 7 + 7)


def test_a_failed_write_stops_the_run_and_later_days_are_not_committed(repo_root, tmp_path,
                                                                       pool):
    source, target = tmp_path / "source", tmp_path / "target"
    days = [dt.date(2021, 5, 10) + dt.timedelta(days=i) for i in range(4)]
    for day in days:
        write_day(source, day, [bar("DE0007164600", "09:00", 10.0, 11.0, 5)])
    etl = make_etl(repo_root, (source, target), pool, first_date="2021-05-10")
    original = etl.load

    def load(day, report):
        if day == days[1]:
            raise StorageError(f"cannot write report of {day}: disk full")
        return original(day, report)
    etl.load = load
    with pytest.raises(StorageError, match="2021-05-11: disk full"):
        etl.etl_report1(days[0], days[-1])
    assert etl.meta.load().dates == {days[0]}
    assert sorted(p.name for p in (target / "report1").iterdir()) == \
        ["xetra_report1_2021-05-10.parquet"]  # at most the failed day's own write is lost


def test_time_order_is_a_stable_sort_of_the_time_strings():
    times = ["09:01", "08:59", "09:01", "23:00", "00:00", "08:59", "09:01"]
    chunked = pa.chunked_array([times[:3], times[3:]])
    expected = sorted(range(len(times)), key=lambda i: times[i])  # Python's sort is stable
    assert transform._time_order(chunked).to_pylist() == expected  # pylint: disable=W0212
