"""Dates that queue up while a commit is under way are committed together (GroupCommitter):
one meta update for the group, every date recorded only after its report object is written,
and a failure in a group records the dates before it and nothing after it."""
import csv
import gc
import datetime as dt
import io
import threading
import weakref

import pytest

from testkit.localetl import make_etl
from testkit.sourcedata import bar, write_day, write_no_trading_day
from xetra.errors import SourceFormatError, StorageError
from xetra.storage import LocalStorage

D = dt.date
DAYS = [D(2021, 5, 10), D(2021, 5, 11), D(2021, 5, 12), D(2021, 5, 13), D(2021, 5, 14)]
SATURDAY = D(2021, 5, 15)
SAP = "DE0007164600"


@pytest.fixture
def folders(tmp_path):
    """Five trading days (SAP closes 100, 101, ...) and a Saturday without trades."""
    source = tmp_path / "source"
    for offset, day in enumerate(DAYS):
        write_day(source, day, [bar(SAP, "09:00", 99.0, 100.0 + offset, offset + 1)])
    write_no_trading_day(source, SATURDAY)
    return source, tmp_path / "target"


def listed(target, key):
    """The meta file's rows by date (as text)."""
    return {row["source_date"]: row for row in
            csv.DictReader(io.StringIO(LocalStorage(target).get_bytes(key).decode()))}


def report_key(day):
    """The report object's key of a date."""
    return f"report1/xetra_report1_{day}.parquet"


class SlowFirstMetaWrite:  # pylint: disable=too-few-public-methods
    """The first meta-file write waits until `count` dates have been queued behind it (or 5 s):
    the dates computed meanwhile queue up, as behind a slow remote write."""

    def __init__(self, monkeypatch, meta_key, reports_first=()):
        self.meta_key = meta_key
        self.contents: list[bytes] = []
        self.missing_reports: list[str] = []
        self.release = threading.Event()
        put = LocalStorage.put_bytes
        watcher = self

        def put_bytes(store, key, data, **condition):
            if key == meta_key:
                rows = list(csv.DictReader(io.StringIO(data.decode())))
                # Recorded only once written: every report key the new file names exists.
                watcher.missing_reports.extend(
                    row["report_key"] for row in rows
                    if row["report_key"] and store.get_versioned(row["report_key"]) is None)
                if not watcher.contents:
                    watcher.release.wait(5)
                watcher.contents.append(data)
            elif key in reports_first:
                reports_first[key]()
            return put(store, key, data, **condition)

        monkeypatch.setattr(LocalStorage, "put_bytes", put_bytes)


def queue_behind_first(etl, watcher, queued):
    """Let the first meta write go once `queued` more dates have been submitted."""
    submitted = []
    original = etl.compute

    def compute(day, source):
        result = original(day, source)
        submitted.append(day)
        if len(submitted) > queued:
            watcher.release.set()
        return result

    etl.compute = compute


def test_dates_queued_behind_a_slow_commit_go_in_one_meta_update(folders, pool, monkeypatch):
    etl = make_etl(folders, pool, first_date="2021-05-10")
    watcher = SlowFirstMetaWrite(monkeypatch, etl.config.meta.key)
    queue_behind_first(etl, watcher, 5)
    summary = etl.etl_report1(DAYS[0], SATURDAY)
    assert summary.processed == [*DAYS, SATURDAY]
    assert etl.meta.updates == len(watcher.contents) == 2  # Monday; then the five others
    assert not watcher.missing_reports
    rows = listed(folders[1], etl.config.meta.key)
    assert sorted(rows) == [str(day) for day in [*DAYS, SATURDAY]]
    assert rows[str(DAYS[4])]["previous_trading_day"] == str(DAYS[3])
    assert rows[str(SATURDAY)]["report_key"] == ""
    for day in DAYS:
        assert LocalStorage(folders[1]).get_versioned(report_key(day)) is not None


def test_a_failed_report_write_records_the_dates_before_it_and_nothing_after(
        folders, pool, monkeypatch, caplog):
    etl = make_etl(folders, pool, first_date="2021-05-10")

    def fail():
        raise StorageError("cannot write: disk full")

    watcher = SlowFirstMetaWrite(monkeypatch, etl.config.meta.key,
                                 {report_key(DAYS[2]): fail})
    queue_behind_first(etl, watcher, 4)
    with pytest.raises(StorageError, match="disk full"):
        etl.etl_report1(DAYS[0], DAYS[4])
    rows = listed(folders[1], etl.config.meta.key)
    assert sorted(rows) == [str(DAYS[0]), str(DAYS[1])]
    target = LocalStorage(folders[1])
    assert [info.key for info in target.list_objects("report1/")] == \
        [report_key(DAYS[0]), report_key(DAYS[1])]
    assert f"removing report object {target.describe(report_key(DAYS[3]))}: its date could " \
        "not be recorded" in caplog.text
    assert not watcher.missing_reports


def test_a_report_that_cannot_be_encoded_stops_the_group_there(folders, pool, monkeypatch):
    """Encoding (in the commit thread) fails for Wednesday, the second date of a group:
    Monday and Tuesday are written and recorded, nothing of Wednesday or after."""
    etl = make_etl(folders, pool, first_date="2021-05-10")
    watcher = SlowFirstMetaWrite(monkeypatch, etl.config.meta.key)
    queue_behind_first(etl, watcher, 4)
    encode, calls = etl.encode, []

    def encode_fails_for_wednesday(report):
        calls.append(report["closing_price"].to_pylist())
        if calls[-1] == [102.0]:  # Wednesday's SAP close (100 + 2)
            raise ValueError("cannot encode: broken column")
        return encode(report)

    etl.encode = encode_fails_for_wednesday
    with pytest.raises(ValueError, match="broken column"):
        etl.etl_report1(DAYS[0], DAYS[4])
    assert calls == [[100.0], [101.0], [102.0]]  # Monday alone, then Tuesday's group
    assert sorted(listed(folders[1], etl.config.meta.key)) == [str(DAYS[0]), str(DAYS[1])]
    assert [info.key for info in LocalStorage(folders[1]).list_objects("report1/")] == \
        [report_key(DAYS[0]), report_key(DAYS[1])]
    assert not watcher.missing_reports


def test_a_failed_group_meta_update_removes_the_groups_reports(folders, pool, monkeypatch):
    etl = make_etl(folders, pool, first_date="2021-05-10")
    watcher = SlowFirstMetaWrite(monkeypatch, etl.config.meta.key)
    queue_behind_first(etl, watcher, 4)
    record = etl.meta.record

    def second_update_fails(entries):
        if etl.meta.updates:
            raise StorageError("cannot update meta file: it kept changing")
        return record(entries)

    etl.meta.record = second_update_fails
    with pytest.raises(StorageError, match="kept changing"):
        etl.etl_report1(DAYS[0], DAYS[4])
    assert sorted(listed(folders[1], etl.config.meta.key)) == [str(DAYS[0])]
    assert [info.key for info in LocalStorage(folders[1]).list_objects("report1/")] == \
        [report_key(DAYS[0])]


def test_a_date_that_stops_the_run_comes_after_the_queued_dates_are_committed(
        folders, pool, monkeypatch):
    """Thursday's rows are all invalid: the dates before it, queued behind a slow commit,
    are all recorded before the run stops; nothing of Thursday or after."""
    (folders[0] / str(DAYS[3]) / f"{DAYS[3]}_BINS_XETR09.csv").write_text(
        "ISIN,Mnemonic\nnot,a trade\n")
    etl = make_etl(folders, pool, first_date="2021-05-10")
    watcher = SlowFirstMetaWrite(monkeypatch, etl.config.meta.key)
    queue_behind_first(etl, watcher, 2)
    with pytest.raises(SourceFormatError, match=str(DAYS[3])):
        etl.etl_report1(DAYS[0], DAYS[4])
    assert sorted(listed(folders[1], etl.config.meta.key)) == [str(day) for day in DAYS[:3]]
    assert [info.key for info in LocalStorage(folders[1]).list_objects("report1/")] == \
        [report_key(day) for day in DAYS[:3]]


def test_a_queued_date_holds_its_report_not_its_source_rows(folders, pool, monkeypatch):
    """Dates queued behind a slow commit keep only their report rows: the day's source rows
    are freed once it is computed, so a slow target does not pile up whole days in memory."""
    etl = make_etl(folders, pool, first_date="2021-05-10")
    watcher = SlowFirstMetaWrite(monkeypatch, etl.config.meta.key)
    sources, alive_when_last_computed = {}, []
    original = etl.compute

    def compute(day, source):
        sources[day] = weakref.ref(source)
        if day == SATURDAY:  # five dates are computed and queued behind Monday's meta write
            gc.collect()
            alive_when_last_computed.extend(earlier for earlier, ref in sources.items()
                                            if earlier != day and ref() is not None)
            watcher.release.set()
        return original(day, source)

    etl.compute = compute
    assert etl.etl_report1(DAYS[0], SATURDAY).processed == [*DAYS, SATURDAY]
    assert len(watcher.contents) == 2
    assert not alive_when_last_computed, f"source rows still held: {alive_when_last_computed}"
