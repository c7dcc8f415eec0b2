"""XetraETL on hand-made days in local folders: look-back, batch invariance, job control."""
import datetime as dt

import boto3
import pandas as pd
import pyarrow as pa
import pytest
from moto import mock_aws

from testkit.config import job_config
from testkit.localetl import make_etl, report_of
from testkit.paths import CONFIGS
from testkit.reference import reference_report
from testkit.sourcedata import (BASE, ONE_COLUMN_DIFFERS, Bar, bar, row, rows_csv, write_day,
                                write_no_trading_day)
from xetra import formats, jobcontrol, transform
from xetra.config import DEFAULT_COLUMNS, ReportSettings, config_from_mapping
from xetra.errors import JobStateError, LockHeldError, SourceFormatError, StorageError
from xetra.formats import SOURCE_COLUMNS
from xetra.etl import PreviousTradingDays, RunSummary, SourceReader, XetraETL
from xetra.formats import deserialise_table
from xetra.jobcontrol import RunLock, unlisted_warning
from xetra.meta import MetaEntry, MetaProcess
from xetra.s3 import S3BucketConnector
from xetra.storage import LocalStorage

D = dt.date
FRIDAY, SATURDAY, SUNDAY, MONDAY = D(2021, 5, 7), D(2021, 5, 8), D(2021, 5, 9), D(2021, 5, 10)
SAP, BMW, ZERO, NEW = "DE0007164600", "DE0005190003", "DE000A1EWWW0", "DE000ENER6Y0"


@pytest.fixture
def folders(tmp_path):
    """Source and target folders."""
    return tmp_path / "source", tmp_path / "target"


def write_weekend_case(source):
    """Friday: SAP closes 100, BMW 50, ZERO 0; weekend header-only; Monday: SAP, ZERO, NEW."""
    write_day(source, FRIDAY, [bar(SAP, "09:00", 99.0, 101.0, 10),
                               bar(SAP, "15:29", 101.0, 100.0, 5),
                               bar(BMW, "10:00", 50.0, 50.0, 1),
                               bar(ZERO, "11:00", 0.0, 0.0, 1)])
    write_no_trading_day(source, SATURDAY)
    write_no_trading_day(source, SUNDAY)
    write_day(source, MONDAY, [bar(SAP, "07:00", 100.0, 104.0, 20),
                               bar(SAP, "19:30", 1.0, 1.0, 0),
                               bar(ZERO, "08:00", 1.0, 2.0, 3),
                               bar(NEW, "09:00", 7.0, 8.0, 4)],
              missing_hours=(3, 22))


def test_monday_compares_with_friday_even_when_run_alone(folders, pool):
    write_weekend_case(folders[0])
    etl = make_etl(folders, pool, first_date="2021-05-10")
    summary = etl.etl_report1(MONDAY, MONDAY)
    assert summary.processed == [MONDAY]
    rows = {row["isin"]: row for row in report_of(folders[1], MONDAY)}
    assert set(rows) == {SAP, ZERO, NEW}
    # SAP: Friday's last trade closed at 100.0, Monday closes 104.0 (the 19:30 row is no trade).
    assert rows[SAP]["closing_price_eur"] == 104.0
    assert rows[SAP]["change_prev_closing_%"] == 4.0
    assert rows[ZERO]["change_prev_closing_%"] is None    # Friday's close was 0
    assert rows[NEW]["change_prev_closing_%"] is None     # did not trade on Friday
    assert summary.counts.zero_volume == 1 and summary.report_rows == 3


def test_day_after_holiday_and_lookback_limit(folders, pool):
    thursday, easter_tuesday = D(2021, 4, 1), D(2021, 4, 6)
    write_day(folders[0], thursday, [bar(SAP, "09:00", 10.0, 20.0, 1)])
    for day in (D(2021, 4, 2), D(2021, 4, 3), D(2021, 4, 4), D(2021, 4, 5)):
        write_no_trading_day(folders[0], day)
    write_day(folders[0], easter_tuesday, [bar(SAP, "09:00", 20.0, 25.0, 1)])
    write_day(folders[0], D(2021, 4, 17), [bar(SAP, "09:00", 25.0, 30.0, 1)])
    etl = make_etl(folders, pool, first_date="2021-04-06")
    summary = etl.etl_report1(easter_tuesday, D(2021, 4, 17))
    assert report_of(folders[1], easter_tuesday)[0]["change_prev_closing_%"] == 25.0
    # 11 days after Easter Tuesday: beyond the 10-day look-back, so no comparison.
    assert report_of(folders[1], D(2021, 4, 17))[0]["change_prev_closing_%"] is None
    # No objects at all, years ago: not recorded, not skipped, overdue (exit 4 in the CLI).
    assert D(2021, 4, 7) in summary.overdue and not summary.waiting


def test_batch_invariance_one_run_equals_day_by_day(folders, pool, tmp_path):
    write_weekend_case(folders[0])
    make_etl(folders, pool, first_date="2021-05-07").etl_report1(FRIDAY, MONDAY)
    other_target = tmp_path / "target2"
    for day in (MONDAY, FRIDAY, SATURDAY, SUNDAY):  # even in reverse order, one at a time
        make_etl((folders[0], other_target), pool,
                 first_date="2021-05-07").etl_report1(day, day)
    reference = reference_report(folders[0], FRIDAY, MONDAY)  # pandas, all rows at once
    for day in (FRIDAY, MONDAY):
        assert report_of(folders[1], day) == report_of(other_target, day)
        wanted = reference[reference["date"] == day]
        assert [tuple(item.values()) for item in report_of(folders[1], day)] == [
            tuple(None if pd.isna(value) else value for value in values)
            for values in wanted.itertuples(index=False)]
    assert not (other_target / "report1" / "xetra_report1_2021-05-08.parquet").exists()


def test_rerun_processes_nothing_and_weekend_is_recorded_without_object(folders, pool):
    write_weekend_case(folders[0])
    etl = make_etl(folders, pool, first_date="2021-05-07")
    first = etl.etl_report1(FRIDAY, MONDAY)
    assert first.processed == [FRIDAY, SATURDAY, SUNDAY, MONDAY]
    assert first.report_keys == ["report1/xetra_report1_2021-05-07.parquet",
                                 "report1/xetra_report1_2021-05-10.parquet"]
    before = {path: path.stat().st_mtime_ns for path in folders[1].rglob("*")}
    second = etl.etl_report1(FRIDAY, MONDAY)
    assert not second.processed and second.report_rows == 0
    assert {path: path.stat().st_mtime_ns for path in folders[1].rglob("*")} == before
    entries = MetaProcess(LocalStorage(folders[1]), etl.config.meta).load().entries
    assert entries[SATURDAY].report_key == "" and entries[SATURDAY].report_rows == "0"
    assert entries[FRIDAY].report_rows == "3"


def test_header_only_hours_are_not_read_and_minute_objects_are_ignored(folders, pool, monkeypatch):
    write_weekend_case(folders[0])
    minute_object = folders[0] / "2021-05-11" / "2021-05-11_BINS_XETR0901.csv"
    minute_object.parent.mkdir()
    minute_object.write_text("whatever")
    etl = make_etl(folders, pool, first_date="2021-05-07")
    read = []
    original = SourceReader.read_object
    monkeypatch.setattr(SourceReader, "read_object",
                        lambda self, key, *columns: read.append(key) or original(self, key,
                                                                                 *columns))
    summary = etl.etl_report1(MONDAY, D(2021, 5, 11))
    # Monday has 3 hours with rows (07, 08, 09; 19 holds only a zero-volume row);
    # the look-back reads Friday's 4 hours with rows (09, 10, 11, 15).
    assert sorted(key.rsplit("_", 1)[1] for key in read) == sorted(
        ["XETR07.csv", "XETR08.csv", "XETR09.csv", "XETR19.csv",
         "XETR09.csv", "XETR10.csv", "XETR11.csv", "XETR15.csv"])
    # Only a per-minute object: not complete yet (and, years later, overdue).
    assert summary.overdue == [D(2021, 5, 11)]


def test_unlisted_report_objects_are_named_and_kept(folders, pool):
    write_weekend_case(folders[0])
    etl = make_etl(folders, pool, first_date="2021-05-07")
    target = LocalStorage(folders[1])
    target.put_bytes("report1/xetra_report1_2021-05-06.parquet", b"another job's report")
    target.put_bytes("report1/xetra_report1_2021-05-07.parquet", b"a killed run's report")
    target.put_bytes("report1/someone_elses_file.parquet", b"keep")
    assert etl.control.unlisted(etl.meta.load()) == [D(2021, 5, 6), FRIDAY]
    etl.etl_report1(FRIDAY, FRIDAY)
    keys = [info.key for info in target.list_objects("report1/")]
    assert keys == ["report1/someone_elses_file.parquet",
                    "report1/xetra_report1_2021-05-06.parquet",
                    "report1/xetra_report1_2021-05-07.parquet"]
    assert target.get_bytes("report1/xetra_report1_2021-05-06.parquet") == \
        b"another job's report"
    assert report_of(folders[1], FRIDAY)  # the processed date's object was written again
    assert etl.control.unlisted(etl.meta.load()) == [D(2021, 5, 6)]
    assert unlisted_warning([D(2021, 5, 6)]).startswith(
        "1 report object(s) of dates the meta file does not list (2021-05-06): left as they are")


def test_a_held_lock_stops_the_run_before_any_write(folders, pool):
    write_weekend_case(folders[0])
    etl = make_etl(folders, pool, first_date="2021-05-07")
    other = RunLock(LocalStorage(folders[1], create=True), etl.config.meta.lock_key, 600)
    other.acquire()
    with pytest.raises(LockHeldError):
        etl.etl_report1(FRIDAY, MONDAY)
    assert [info.key for info in LocalStorage(folders[1]).list_objects("")] == \
        [etl.config.meta.lock_key]


def test_bad_object_stops_or_is_skipped_by_config(folders, pool):
    write_weekend_case(folders[0])
    bad_key = folders[0] / "2021-05-10" / "2021-05-10_BINS_XETR12.csv"
    bad_key.write_bytes(b"")
    etl = make_etl(folders, pool, first_date="2021-05-07")
    with pytest.raises(SourceFormatError, match="2021-05-10_BINS_XETR12.csv: empty object"):
        etl.etl_report1(MONDAY, MONDAY)
    assert not (folders[1] / "report1").exists()
    assert MONDAY not in etl.meta.load().dates
    skipping = make_etl(folders, pool, first_date="2021-05-07", skip_bad_objects=True)
    summary = skipping.etl_report1(MONDAY, MONDAY)
    assert summary.skipped_objects == ["2021-05-10/2021-05-10_BINS_XETR12.csv"]
    assert "skipped bad objects: 2021-05-10/2021-05-10_BINS_XETR12.csv" in summary.line()
    assert len(report_of(folders[1], MONDAY)) == 3


def test_plan_lists_pending_dates(folders, pool):
    write_weekend_case(folders[0])
    etl = make_etl(folders, pool, first_date="2021-05-07")
    etl.meta.record([MetaEntry(SATURDAY, "2021-05-11T00:00:00+00:00")])
    assert etl.plan(FRIDAY, MONDAY) == [FRIDAY, SUNDAY, MONDAY]


def test_reader_lists_only_hourly_objects(tmp_path, pool):
    write_day(tmp_path, FRIDAY, [bar(SAP, "09:00", 1.0, 1.0, 1)], hours=range(8, 11))
    (tmp_path / "2021-05-07" / "2021-05-07_BINS_XETR0900.csv").write_text("minute")
    (tmp_path / "2021-05-07" / "notes.txt").write_text("other")
    reader = SourceReader(LocalStorage(tmp_path), pool, skip_bad_objects=False)
    assert [info.key for info in reader.hourly_objects(FRIDAY)] == [
        f"2021-05-07/2021-05-07_BINS_XETR{hour:02d}.csv" for hour in (8, 9, 10)]
    assert reader.read_day(D(2021, 5, 8)) is None
    assert reader.read_day(FRIDAY).table.num_rows == 1


def test_previous_trading_days_reads_each_day_at_most_once():
    loaded = []

    def load(day):
        loaded.append(day)
        return "closes-of-thursday" if day == D(2021, 4, 1) else None

    history = PreviousTradingDays(load, lookback_days=10)
    assert history.closes_before(D(2021, 4, 6)) == "closes-of-thursday"
    assert history.closes_before(D(2021, 4, 5)) == "closes-of-thursday"
    assert loaded == [D(2021, 4, 5), D(2021, 4, 4), D(2021, 4, 3), D(2021, 4, 2), D(2021, 4, 1)]
    history.remember(D(2021, 4, 6), "closes-of-tuesday")
    assert history.closes_before(D(2021, 4, 7)) == "closes-of-tuesday"


def test_summary_line_names_everything():
    summary = RunSummary(processed=[FRIDAY, MONDAY], report_rows=5, seconds=1.234,
                         report_keys=["a", "b", "c"], waiting=[D(2021, 5, 11)],
                         recomputed=[D(2021, 5, 11), D(2021, 5, 12)],
                         overdue=[D(2021, 5, 3), D(2021, 5, 4), D(2021, 5, 6)],
                         skipped_objects=["x.csv"], max_wait_days=3)
    summary.counts.rows_read, summary.counts.invalid = 10, 2
    assert summary.line() == (
        "run summary: dates processed=2 (2021-05-07..2021-05-10), recomputed=2 "
        "(2021-05-11..2021-05-12 (2 dates)), rows read=10, rows dropped: "
        "invalid=2 zero_volume=0 other_currency=0 duplicate=0, report rows=5, "
        "report keys=a .. c (3 objects), seconds=1.23; overdue: 2021-05-03..2021-05-04 "
        "(2 dates), 2021-05-06; waiting: 2021-05-11; skipped bad objects: x.csv")
    assert str(summary.overdue_error()) == (
        "overdue source data: 2021-05-03..2021-05-04 (2 dates), 2021-05-06 have no hourly "
        "objects more than 3 days after the date (job.max_wait_days); record a date that "
        "will never have data with --accept-missing DATE --reason TEXT")
    assert "dates processed=0," in RunSummary().line()
    assert RunSummary().overdue_error() is None


@pytest.mark.usefixtures("aws_env")
def test_extract_transform_load_and_meta_on_s3(tmp_path, pool):
    write_weekend_case(tmp_path)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        for bucket in ("xetra-source", "xetra-target"):
            client.create_bucket(Bucket=bucket)
        for path in sorted(tmp_path.rglob("*.csv")):
            client.upload_file(str(path), "xetra-source", path.relative_to(tmp_path).as_posix())
        raw = job_config("s3://xetra-source/", "s3://xetra-target/",
                         base=CONFIGS / "xetra_report1.yml")
        for side in ("source", "target"):
            raw[side]["region"] = "us-east-1"
        config = config_from_mapping(raw)
        source = S3BucketConnector(config.source, config.s3)
        target = S3BucketConnector(config.target, config.s3)
        etl = XetraETL(source, target, config, pool)
        friday = etl.extract(FRIDAY)
        assert friday.table.num_rows == 4 and friday.malformed_rows == 0
        assert etl.extract(D(2021, 5, 11)) is None
        report, counts = etl.transform(FRIDAY, friday)
        assert report["closing_price"].to_pylist() == [50.0, 100.0, 0.0]  # BMW, SAP, ZERO
        assert counts.rows_read == 4 and counts.dropped == 0
        assert etl.load(FRIDAY, etl.encode(report)) == "report1/xetra_report1_2021-05-07.parquet"
        assert etl.encode(transform.empty_report()) is None
        assert etl.load(SATURDAY, None) == ""
        summary = etl.etl_report1(FRIDAY, MONDAY)
        assert summary.processed == [FRIDAY, SATURDAY, SUNDAY, MONDAY]
        monday = deserialise_table(target.get_bytes("report1/xetra_report1_2021-05-10.parquet"),
                                   "parquet").to_pylist()
        assert [(row["isin"], row["change_prev_closing_%"]) for row in monday] == \
            [(SAP, 4.0), (ZERO, None), (NEW, None)]
        meta = target.get_bytes(config.meta.key).decode().splitlines()
        assert [line.split(",")[0] for line in meta] == [
            "source_date", "2021-05-07", "2021-05-08", "2021-05-09", "2021-05-10"]
        assert target.get_versioned(config.meta.lock_key) is None  # released


def test_lock_is_refreshed_once_a_quarter_of_its_expiry_has_passed(tmp_path, pool, monkeypatch):
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
    etl = make_etl((source, target), pool, first_date="2021-05-10")
    etl.etl_report1(days[0], days[-1])
    # Readings: lock taken 100, after each day 200, 300, 400 (> 100 + 225 s: refresh, new
    # mark 500), 600; ttl 900 s, so one refresh in four days, not one per day.
    assert refreshes == ["meta/report1/xetra_report1.lock"]
    assert etl.meta.load().dates == set(days)
    fast = make_etl((tmp_path / "source", tmp_path / "target2"), pool,
                    first_date="2021-05-10")
    monkeypatch.undo()
    refreshes.clear()
    monkeypatch.setattr(RunLock, "refresh", lambda self: refreshes.append(self.key))
    fast.etl_report1(days[0], days[-1])
    assert not refreshes  # four quick days: the lock is far from expiring


def test_same_minute_trades_are_told_apart_with_all_columns(tmp_path, pool):
    source, target = tmp_path / "source", tmp_path / "target"
    day = dt.date(2021, 5, 10)
    sap = "DE0007164600"
    # 09:00 twice exactly (counts once), and 09:01 twice with different descriptions (both).
    write_day(source, day, [bar(sap, "09:00", 10.0, 11.0, 5), bar(sap, "09:00", 10.0, 11.0, 5),
                            Bar(sap, "09:01", "11", "13", "11", "12", "7", desc="A"),
                            Bar(sap, "09:01", "11", "13", "11", "12", "7", desc="B")])
    etl = make_etl((source, target), pool, first_date="2021-05-10")
    narrow = etl.extract(day)
    assert "SecurityDesc" not in narrow.table.column_names
    with pytest.raises(transform.NeedsAllColumns, match="SecurityDesc"):
        transform.select_trades(narrow.table, day, ["EUR"])
    summary = etl.etl_report1(day, day)
    assert (summary.counts.rows_read, summary.counts.duplicate) == (4, 1)
    row = report_of(target, day)[0]
    assert (row["opening_price_eur"], row["closing_price_eur"], row["maximum_price_eur"],
            row["daily_traded_volume"]) == (10.0, 12.0, 13.0, 5 + 7 + 7)


def etl_with_currencies(folders, pool, first_date, currencies):
    """An XetraETL from folders[0] to folders[1] whose trades are in `currencies`."""
    raw = job_config(str(folders[0]), str(folders[1]), base=CONFIGS / "xetra_report1.yml",
                     job={"first_date": first_date}, report={"currencies": currencies})
    return XetraETL(LocalStorage(folders[0]), LocalStorage(folders[1], create=True),
                    config_from_mapping(raw), pool)


@pytest.mark.parametrize("column", sorted(ONE_COLUMN_DIFFERS))
def test_rows_differing_in_one_column_both_reach_the_report(folders, pool, column):
    """The job's own path (a narrow parse, then the other columns read again for the rows
    sharing ISIN and Time): two rows equal but in `column` are both trades, an exact copy
    of either counts once; volumes and prices worked out by hand (testkit/sourcedata.py)."""
    value, wanted, invalid = ONE_COLUMN_DIFFERS[column]
    other = {**BASE, column: value}
    folder = folders[0] / "2021-05-07"
    folder.mkdir(parents=True)
    (folder / "2021-05-07_BINS_XETR09.csv").write_bytes(rows_csv([BASE, other, BASE]))
    (folder / "2021-05-07_BINS_XETR10.csv").write_bytes(rows_csv([other]))
    etl = etl_with_currencies(folders, pool, "2021-05-07", ["EUR", "USD"])
    summary = etl.etl_report1(FRIDAY, FRIDAY)
    assert (summary.counts.rows_read, summary.counts.invalid, summary.counts.duplicate) == \
        (4, 2 * invalid, 2 - invalid)
    assert {item["isin"]: (item["daily_traded_volume"], item["minimum_price_eur"],
                           item["maximum_price_eur"], item["opening_price_eur"],
                           item["closing_price_eur"])
            for item in report_of(folders[1], FRIDAY)} == wanted


def test_meta_write_that_landed_but_failed_keeps_the_report(folders, pool, monkeypatch):
    """The meta file's write reaches storage, then the call fails (a lost response): the
    meta file lists the date, so its report must stay (README: removed "unless a re-read
    meta file lists the date"); the rerun has nothing to do and the report is intact."""
    write_weekend_case(folders[0])
    etl = make_etl(folders, pool, first_date="2021-05-07")
    meta_key = etl.config.meta.key
    original = LocalStorage.put_bytes
    failed = []

    def lands_then_fails(self, key, data, **conditions):
        etag = original(self, key, data, **conditions)
        if key == meta_key and not failed:
            failed.append(key)
            raise StorageError(f"connection reset after writing {key}")
        return etag

    monkeypatch.setattr(LocalStorage, "put_bytes", lands_then_fails)
    with pytest.raises(StorageError, match="connection reset"):
        etl.etl_report1(FRIDAY, FRIDAY)
    assert failed == [meta_key]
    assert FRIDAY in MetaProcess(LocalStorage(folders[1]), etl.config.meta).load().entries
    # Friday by hand: SAP 99 -> 100 (10 + 5), BMW 50 (1), ZERO 0 (1).
    wanted = [(BMW, 50.0, 50.0, 1), (SAP, 99.0, 100.0, 15), (ZERO, 0.0, 0.0, 1)]

    def friday():
        return [(item["isin"], item["opening_price_eur"], item["closing_price_eur"],
                 item["daily_traded_volume"]) for item in report_of(folders[1], FRIDAY)]

    assert friday() == wanted
    report = folders[1] / "report1" / "xetra_report1_2021-05-07.parquet"
    before = report.read_bytes()
    again = make_etl(folders, pool, first_date="2021-05-07").etl_report1(FRIDAY, FRIDAY)
    assert not again.processed and not again.report_keys
    assert report.read_bytes() == before and friday() == wanted


def meta_write_never_lands(monkeypatch, meta_key):
    """Make every local write of the meta file fail; returns the real `put_bytes`."""
    original = LocalStorage.put_bytes

    def never_lands(self, key, data, **conditions):
        if key == meta_key:
            raise StorageError(f"cannot write {key}")
        return original(self, key, data, **conditions)

    monkeypatch.setattr(LocalStorage, "put_bytes", never_lands)
    return original


def test_meta_write_that_fails_for_good_removes_the_report(folders, pool, monkeypatch,
                                                           caplog):
    """The counterpart: the write never lands, so the date is not listed and its report is
    removed (exactly once: no report without its meta entry); the rerun processes it."""
    write_weekend_case(folders[0])
    etl = make_etl(folders, pool, first_date="2021-05-07")
    original = meta_write_never_lands(monkeypatch, etl.config.meta.key)
    with pytest.raises(StorageError, match="cannot write"):
        etl.etl_report1(FRIDAY, FRIDAY)
    report = folders[1] / "report1" / "xetra_report1_2021-05-07.parquet"
    assert not report.exists()
    assert f"removing report object {report}: its date could not be recorded" in \
        [record.getMessage() for record in caplog.records]
    monkeypatch.setattr(LocalStorage, "put_bytes", original)
    assert make_etl(folders, pool, first_date="2021-05-07").etl_report1(
        FRIDAY, FRIDAY).processed == [FRIDAY]
    assert [item["daily_traded_volume"] for item in report_of(folders[1], FRIDAY)] == [1, 15, 1]


@pytest.mark.parametrize("column", SOURCE_COLUMNS)
def test_header_lacking_any_column_is_a_bad_object(folders, pool, column):
    """An hourly object whose header lacks `column` (any of the 14, also one the report does
    not read) stops the run with one line naming the object and the column; with
    skip_bad_objects it is skipped and the date's other objects are reported."""
    write_day(folders[0], FRIDAY, [bar(SAP, "09:00", 99.0, 101.0, 10),
                                   bar(SAP, "15:29", 101.0, 100.0, 5)])
    # Two rows sharing ISIN and Time, so the columns the report does not use are read too.
    rows = [row(BMW, "2021-05-07", "12:00", (50, 51, 49, 50), 3),
            row(BMW, "2021-05-07", "12:00", (50, 52, 49, 51), 4, SecurityDesc="OTHER")]
    bad = folders[0] / "2021-05-07" / "2021-05-07_BINS_XETR12.csv"
    bad.write_bytes(rows_csv(rows, [name for name in SOURCE_COLUMNS if name != column]))
    etl = make_etl(folders, pool, first_date="2021-05-07")
    with pytest.raises(SourceFormatError) as error:
        etl.etl_report1(FRIDAY, FRIDAY)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{bad}: ")
    assert f"header lacks required column(s) {column}" in message
    assert FRIDAY not in etl.meta.load().entries
    skipping = make_etl(folders, pool, first_date="2021-05-07", skip_bad_objects=True)
    summary = skipping.etl_report1(FRIDAY, FRIDAY)
    assert summary.skipped_objects == ["2021-05-07/2021-05-07_BINS_XETR12.csv"]
    assert [(item["isin"], item["opening_price_eur"], item["closing_price_eur"],
             item["daily_traded_volume"]) for item in report_of(folders[1], FRIDAY)] == \
        [(SAP, 99.0, 100.0, 15)]


@pytest.mark.parametrize("size, read", [(136, False), (137, False), (135, True), (138, True)])
def test_only_objects_of_a_header_only_size_are_skipped_unread(folders, pool, size, read):
    """A header-only hour is 136 bytes (137 with CRLF) in the bucket: an object of that size
    is skipped without a GET, whatever it holds; one byte less or more is read (this one is
    not a CSV, so reading it is an error)."""
    write_day(folders[0], FRIDAY, [bar(SAP, "09:00", 99.0, 101.0, 10)], hours=range(9, 10))
    odd = folders[0] / "2021-05-07" / "2021-05-07_BINS_XETR11.csv"
    odd.write_bytes(b"\x00" * size)
    etl = make_etl(folders, pool, first_date="2021-05-07")
    if read:
        with pytest.raises(SourceFormatError, match="2021-05-07_BINS_XETR11.csv: "):
            etl.etl_report1(FRIDAY, FRIDAY)
    else:
        assert etl.etl_report1(FRIDAY, FRIDAY).processed == [FRIDAY]
        assert [item["daily_traded_volume"] for item in report_of(folders[1], FRIDAY)] == [10]


def test_unlisted_warning_in_full():
    assert unlisted_warning([D(2021, 5, 7), D(2021, 5, 6), D(2021, 5, 10)]) == (
        "3 report object(s) of dates the meta file does not list (2021-05-06..2021-05-07 "
        "(2 dates), 2021-05-10): left as they are; a run that processes such a date replaces "
        "its object, and one that is not this job's is removed by hand (docs/CONTRACT.md, "
        "\"Report objects the meta file does not list\")")


@pytest.mark.parametrize("report_format", ["parquet", "csv"])
def test_report_objects_by_date_and_row_counts(tmp_path, report_format):
    store = LocalStorage(tmp_path, create=True)
    settings = ReportSettings(prefix="daily/", name="rep", format=report_format)
    objects = jobcontrol.ReportObjects(store, settings)
    table = transform.with_output_names(transform.empty_report(), DEFAULT_COLUMNS)
    assert objects.write(FRIDAY, objects.encode(table)) == f"daily/rep_2021-05-07.{report_format}"
    three = pa.table({"isin": [SAP, BMW, ZERO]})
    store.put_bytes(f"daily/rep_2021-05-10.{report_format}",
                    formats.serialise_table(three, report_format))
    other_format = "csv" if report_format == "parquet" else "parquet"
    for other in (f"daily/rep_2021-05-08.{other_format}",         # the other format
                  f"daily/rep_2021-05-08.{report_format}.bak",    # a copy
                  f"daily/other_2021-05-09.{report_format}",      # another name
                  f"daily/rep_2021-5-9.{report_format}",          # not a date
                  f"rep_2021-05-11.{report_format}",              # outside the prefix
                  f"daily/rep_2021-05-12.x{report_format}"):
        store.put_bytes(other, b"not a report")
    assert objects.by_date() == {FRIDAY: f"daily/rep_2021-05-07.{report_format}",
                                 MONDAY: f"daily/rep_2021-05-10.{report_format}"}
    assert objects.row_count(objects.key(FRIDAY)) == 0
    assert objects.row_count(objects.key(MONDAY)) == 3
    assert objects.remove(MONDAY) == f"daily/rep_2021-05-10.{report_format}"
    assert objects.by_date() == {FRIDAY: f"daily/rep_2021-05-07.{report_format}"}
    assert objects.describe("daily/x") == f"{store.root}/daily/x"


def test_keep_alive_refreshes_once_a_quarter_of_the_expiry_has_passed(monkeypatch):
    refreshed = []

    class Lock:  # pylint: disable=too-few-public-methods
        """A stand-in that counts refreshes."""
        ttl_seconds = 100

        def refresh(self):
            """Record when."""
            refreshed.append(clock[0])

    clock = [1000.0]
    monkeypatch.setattr("xetra.jobcontrol.time.monotonic", lambda: clock[0])
    claim = jobcontrol.Claim([FRIDAY], Lock())
    for now, count in ((1025.0, 0), (1025.5, 1), (1050.0, 1), (1050.6, 2)):
        clock[0] = now
        claim.keep_alive()
        assert len(refreshed) == count, now
    jobcontrol.Claim([FRIDAY]).keep_alive()  # no lock: nothing to do
    assert claim.unlisted == set() and claim.dates == [FRIDAY]


def test_accept_missing_records_only_dates_without_a_report(folders, pool, caplog):
    write_weekend_case(folders[0])
    etl = make_etl(folders, pool, first_date="2021-05-07")
    etl.etl_report1(FRIDAY, FRIDAY)
    tuesday, wednesday = D(2021, 5, 11), D(2021, 5, 12)
    caplog.clear()  # the run's own lines (logged at whatever level earlier tests left)
    with caplog.at_level("INFO", logger="xetra.jobcontrol"):
        added = etl.accept_missing([wednesday, tuesday, wednesday, MONDAY], "closed")
    assert added == [MONDAY, tuesday, wednesday]  # sorted, once each
    messages = [record.getMessage() for record in caplog.records
                if record.name == "xetra.jobcontrol"]
    assert messages == [  # Monday has 22 hourly objects (hours 03 and 22 missing)
        "2021-05-10 has 22 hourly source object(s); accepting it anyway: it will never be "
        "processed",
        "recorded as accepted missing (closed): 2021-05-10..2021-05-12 (3 dates)"]
    entries = etl.meta.load().entries
    assert [(day, entries[day].status, entries[day].reason) for day in added] == \
        [(day, "accepted_missing", "closed") for day in added]
    caplog.clear()
    with caplog.at_level("INFO", logger="xetra.jobcontrol"):
        assert not etl.accept_missing([tuesday], "other reason")
    assert [record.getMessage() for record in caplog.records
            if record.name == "xetra.jobcontrol"] == [
        "2021-05-11 is already recorded as accepted missing (closed)"]
    with pytest.raises(JobStateError) as error:
        etl.accept_missing([SATURDAY, FRIDAY], "closed")
    assert str(error.value) == ("--accept-missing: 2021-05-07 is already processed (3 report "
                                "rows); only a date without data can be accepted")
    assert SATURDAY not in etl.meta.load().entries  # nothing recorded when one is refused
    assert not (folders[1] / etl.config.meta.lock_key).exists()  # the lock is released


def test_a_report_that_cannot_be_removed_is_named_for_the_next_run(folders, pool, monkeypatch,
                                                                    caplog):
    """The meta write fails for good and so does the removal: the warning names the object,
    the error and the date whose next run replaces it; the meta error is the one raised."""
    write_weekend_case(folders[0])
    etl = make_etl(folders, pool, first_date="2021-05-07")
    original_delete = LocalStorage.delete

    def cannot_delete(self, key, **condition):
        if key.startswith("report1/"):
            raise StorageError(f"permission denied: {key}")
        original_delete(self, key, **condition)  # the lock is released as usual

    meta_write_never_lands(monkeypatch, etl.config.meta.key)
    monkeypatch.setattr(LocalStorage, "delete", cannot_delete)
    with pytest.raises(StorageError, match="cannot write"):
        etl.etl_report1(FRIDAY, FRIDAY)
    report = folders[1] / "report1" / "xetra_report1_2021-05-07.parquet"
    assert report.exists()
    assert (f"could not remove {report} (permission denied: "
            "report1/xetra_report1_2021-05-07.parquet); the next run that processes "
            "2021-05-07 replaces it") in caplog.text


def lock_removal_fails(monkeypatch, lock_key):
    """Make every local removal of the lock object fail."""
    original_delete = LocalStorage.delete

    def lock_stays(self, key, **condition):
        if key == lock_key:
            raise StorageError(f"permission denied: {key}")
        original_delete(self, key, **condition)

    monkeypatch.setattr(LocalStorage, "delete", lock_stays)


def test_a_lock_that_cannot_be_removed_does_not_hide_the_error_that_stopped_the_run(
        folders, pool, monkeypatch, caplog):
    """The meta write fails for good and then the lock's removal fails too: the run stops with
    the meta error, and the lock it leaves behind is named in a warning."""
    write_weekend_case(folders[0])
    etl = make_etl(folders, pool, first_date="2021-05-07")
    meta_write_never_lands(monkeypatch, etl.config.meta.key)
    lock_removal_fails(monkeypatch, etl.config.meta.lock_key)
    with pytest.raises(StorageError, match="cannot write") as raised:
        etl.etl_report1(FRIDAY, FRIDAY)
    assert "permission denied" not in str(raised.value)
    lock = folders[1] / etl.config.meta.lock_key
    assert lock.exists()
    assert (f"could not remove the lock {lock} (permission denied: "
            f"{etl.config.meta.lock_key}); it expires by itself") in caplog.text


def test_a_lock_that_cannot_be_removed_after_a_good_run_is_the_error(folders, pool,
                                                                      monkeypatch):
    """Without an earlier error, a failed removal of the lock is the run's error: the next
    run would otherwise wait for its expiry without anyone being told."""
    write_weekend_case(folders[0])
    etl = make_etl(folders, pool, first_date="2021-05-07")
    lock_removal_fails(monkeypatch, etl.config.meta.lock_key)
    with pytest.raises(StorageError, match="permission denied"):
        etl.etl_report1(FRIDAY, FRIDAY)
    assert FRIDAY in etl.meta.load().entries  # the date itself was committed


def test_accept_missing_refuses_a_date_an_older_meta_file_lists_without_rows(folders, pool):
    write_weekend_case(folders[0])
    etl = make_etl(folders, pool, first_date="2021-05-07")
    LocalStorage(folders[1]).put_bytes(etl.config.meta.key, b"source_date,datetime_of_processing"
                                                            b"\n2021-05-06,2021-05-07 08:00:00\n")
    with pytest.raises(JobStateError) as error:
        etl.accept_missing([D(2021, 5, 6)], "closed")
    assert str(error.value) == ("--accept-missing: 2021-05-06 is already processed; only a "
                                "date without data can be accepted")
