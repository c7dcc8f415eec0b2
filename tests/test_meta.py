"""MetaProcess (the meta file) and RunLock, on the local store."""
import datetime as dt
import json
import os
import threading

import pytest

from xetra.config import MetaSettings
from xetra.dates import date_range, yesterday
from xetra.errors import LockHeldError, MetaFileError, PreconditionFailed, StorageError
from xetra.jobcontrol import (GlobalLock, RunLock, SliceLock, live_slice_locks, slice_lock_key,
                             slice_lock_prefix)
from xetra.meta import MetaEntry, MetaProcess, MetaSnapshot
from xetra.storage import LocalStorage, etag_of

KEY = "meta/report1/xetra_report1_meta_file.csv"
D = dt.date


@pytest.fixture
def store(tmp_path):
    """A local target folder."""
    return LocalStorage(tmp_path, create=True)


@pytest.fixture
def meta(store):
    """The MetaProcess with the default key."""
    return MetaProcess(store, MetaSettings())


def test_no_meta_file_means_no_dates(meta):
    snapshot = meta.load()
    assert snapshot.entries == {} and snapshot.etag is None
    assert meta.pending_dates(snapshot, D(2021, 5, 7), D(2021, 5, 9)) == \
        [D(2021, 5, 7), D(2021, 5, 8), D(2021, 5, 9)]


def test_old_two_column_meta_file_is_read_and_kept(store, meta):
    store.put_bytes(KEY, b"source_date,datetime_of_processing\n"
                         b"2021-05-07,2021-05-10 08:00:01\n2021-05-08,2021-05-10T08:00:02\n")
    snapshot = meta.load()
    assert snapshot.dates == {D(2021, 5, 7), D(2021, 5, 8)}
    assert meta.pending_dates(snapshot, D(2021, 5, 6), D(2021, 5, 9)) == \
        [D(2021, 5, 6), D(2021, 5, 9)]
    meta.record([MetaEntry(D(2021, 5, 9), "2021-05-11T00:00:00+00:00", "r/x.parquet", "3")])
    assert store.get_bytes(KEY).decode().splitlines() == [
        "source_date,datetime_of_processing,report_key,report_rows,previous_trading_day,"
        "recomputed_at,hourly_objects,missing_hours,status,reason",
        "2021-05-07,2021-05-10 08:00:01,,,,,,,,",
        "2021-05-08,2021-05-10T08:00:02,,,,,,,,",
        "2021-05-09,2021-05-11T00:00:00+00:00,r/x.parquet,3,,,,,,",
    ]


@pytest.mark.parametrize("content, problem", [
    (b"", "empty, not even a header"),
    (b"\xff\xfe\x00garbage", "not a UTF-8 CSV"),
    (b"date,when\n2021-05-07,2021-05-10\n", "lacks column(s) source_date, "
                                            "datetime_of_processing"),
    (b"source_date,datetime_of_processing\n2021-13-07,2021-05-10\n",
     "line 2: bad source_date '2021-13-07'"),
    (b"source_date,datetime_of_processing\n20210507,2021-05-10\n",
     "line 2: bad source_date '20210507'"),
    (b"source_date,datetime_of_processing\n2021-05-07,yesterday\n",
     "line 2: bad datetime_of_processing 'yesterday'"),
    (b"source_date,datetime_of_processing,note,note\n2021-05-07,2021-05-10,a,b\n",
     "header column 'note' appears twice"),
    (b"source_date,datetime_of_processing\n2021-05-07\n", "line 2 has 1 fields, the header 2"),
])
def test_corrupt_meta_file_stops_with_repair_hint_and_is_not_touched(store, meta, content,
                                                                      problem):
    store.put_bytes(KEY, content)
    with pytest.raises(MetaFileError) as error:
        meta.load()
    message = str(error.value)
    assert problem in message and KEY in message and "repair or restore it" in message
    with pytest.raises(MetaFileError):
        meta.record([MetaEntry(D(2021, 5, 9), "2021-05-11T00:00:00+00:00")])
    assert store.get_bytes(KEY) == content


def test_record_never_duplicates_a_date(meta):
    meta.record([MetaEntry(D(2021, 5, 7), "2021-05-10T00:00:00+00:00", "k1", "1")])
    snapshot = meta.record([MetaEntry(D(2021, 5, 7), "2021-05-11T00:00:00+00:00", "k2", "2"),
                            MetaEntry(D(2021, 5, 6), "2021-05-11T00:00:00+00:00", "", "0")])
    assert snapshot.entries[D(2021, 5, 7)].report_key == "k1"
    assert [entry.source_date for entry in meta.load().entries.values()] == \
        [D(2021, 5, 6), D(2021, 5, 7)]


def test_record_retries_when_another_writer_got_in_between(store, meta, monkeypatch):
    original_put = store.put_bytes
    calls = []

    def put_with_interference(key, data, **condition):
        calls.append(condition)
        if len(calls) == 1:  # another run records a date just before our conditional write
            original_put(key, MetaProcess.serialise(
                [MetaEntry(D(2021, 5, 3), "2021-05-10T00:00:00+00:00")]))
        return original_put(key, data, **condition)

    monkeypatch.setattr(store, "put_bytes", put_with_interference)
    meta.record([MetaEntry(D(2021, 5, 4), "2021-05-10T00:00:01+00:00")])
    assert meta.load().dates == {D(2021, 5, 3), D(2021, 5, 4)}
    assert calls[0] == {"if_none_match": True, "if_match": None}
    assert calls[1]["if_match"] is not None


def test_record_gives_up_clearly_when_the_file_keeps_changing(meta, monkeypatch):
    def always_changed(*_args, **_kwargs):
        raise PreconditionFailed("changed")

    monkeypatch.setattr(meta.store, "put_bytes", always_changed)
    monkeypatch.setattr("xetra.meta.time.sleep", lambda _seconds: None)
    with pytest.raises(StorageError, match="kept changing during 60 attempts"):
        meta.record([MetaEntry(D(2021, 5, 4), "2021-05-10T00:00:01+00:00")])


def test_concurrent_recorders_lose_no_update(store):
    days = date_range(D(2021, 1, 1), D(2021, 1, 16))

    def record(day):
        MetaProcess(store, MetaSettings()).record([MetaEntry(day, "2021-02-01T00:00:00+00:00")])

    threads = [threading.Thread(target=record, args=(day,)) for day in days]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(MetaProcess(store, MetaSettings()).load().dates) == days


def test_yesterday_is_in_berlin_time():
    # 23:30 UTC on 2021-05-09 is already 01:30 on 2021-05-10 in Berlin (CEST, UTC+2).
    late_utc = dt.datetime(2021, 5, 9, 23, 30, tzinfo=dt.timezone.utc)
    assert yesterday("Europe/Berlin", late_utc) == D(2021, 5, 9)
    assert yesterday("UTC", late_utc) == D(2021, 5, 8)
    assert date_range(D(2021, 5, 9), D(2021, 5, 8)) == []


def test_snapshot_dates_are_the_dates_of_the_file(meta):
    """The dates a meta file lists (written out by hand), whatever their order in the file."""
    meta.store.put_bytes(KEY, (
        "source_date,datetime_of_processing\n"
        "2021-05-10,2021-05-11T00:00:00+00:00\n"
        "2021-05-07,2021-05-11T00:00:00+00:00\n"
        "2021-05-08,2021-05-11T00:00:00+00:00\n").encode())
    assert meta.load().dates == {D(2021, 5, 7), D(2021, 5, 8), D(2021, 5, 10)}
    assert MetaSnapshot({}, None).dates == set()


def test_lock_is_exclusive_until_released(store):
    first = RunLock(store, "meta/lock", 60)
    second = RunLock(store, "meta/lock", 60)
    first.acquire()
    with pytest.raises(LockHeldError, match=r"another run \(.*\) holds the lock .*meta/lock"):
        second.acquire()
    first.refresh()
    first.release()
    second.acquire()
    assert json.loads(store.get_bytes("meta/lock"))["owner"] == second.owner
    second.release()
    assert store.get_versioned("meta/lock") is None


def test_expired_or_unreadable_lock_is_taken_over(store):
    crashed = RunLock(store, "meta/lock", 1)
    crashed.etag = store.put_bytes("meta/lock", json.dumps(
        {"owner": "crashed", "expires_at": "2020-01-01T00:00:00+00:00"}).encode())
    successor = RunLock(store, "meta/lock", 60)
    successor.acquire()
    assert json.loads(store.get_bytes("meta/lock"))["owner"] == successor.owner
    with pytest.raises(LockHeldError, match="lost the lock"):
        crashed.refresh()
    crashed.release()  # not ours any more: must not remove it
    assert store.get_versioned("meta/lock") is not None
    store.put_bytes("meta/lock", b"not json")
    RunLock(store, "meta/lock", 60).acquire()


def test_lock_race_loser_gets_clear_error(store, monkeypatch):
    lock = RunLock(store, "meta/lock", 60)
    store.put_bytes("meta/lock", json.dumps(
        {"owner": "old", "expires_at": "2020-01-01T00:00:00+00:00"}).encode())
    original_put = store.put_bytes

    def someone_else_first(key, data, **condition):
        if condition.get("if_match"):
            original_put(key, b'{"owner": "faster", "expires_at": "2999-01-01T00:00:00+00:00"}')
        return original_put(key, data, **condition)

    monkeypatch.setattr(store, "put_bytes", someone_else_first)
    with pytest.raises(LockHeldError, match="at the same moment"):
        lock.acquire()


def test_lock_of_a_killed_process_on_this_machine_is_taken_over_at_once(store):
    crashed = RunLock(store, "meta/lock", 600)
    owner_parts = crashed.owner.split(":")
    owner_parts[-2] = "4194304"  # above Linux's pid_max: no such process
    store.put_bytes("meta/lock", json.dumps(
        {"owner": ":".join(owner_parts), "expires_at": "2999-01-01T00:00:00+00:00"}).encode())
    RunLock(store, "meta/lock", 600).acquire()
    other_host = {"owner": "elsewhere:4026531836:4194304:abc",
                  "expires_at": "2999-01-01T00:00:00+00:00"}
    store.put_bytes("meta/lock", json.dumps(other_host).encode())
    with pytest.raises(LockHeldError, match="elsewhere"):
        RunLock(store, "meta/lock", 600).acquire()


def test_a_corrupt_meta_file_message_in_full(store, meta):
    store.put_bytes(KEY, b"source_date,datetime_of_processing\n2021-05-07,yesterday\n")
    with pytest.raises(MetaFileError) as error:
        meta.load()
    assert str(error.value) == (
        f"meta file {store.root}/{KEY}: line 2: bad datetime_of_processing 'yesterday'; "
        "repair or restore it by hand (one row per processed date, columns "
        "source_date,datetime_of_processing), the job never rewrites it")


def test_header_blanks_blank_lines_and_other_columns_are_read_and_kept(store, meta):
    store.put_bytes(KEY, b"\xef\xbb\xbf source_date , datetime_of_processing ,note\n"
                         b"2021-05-07 , 2021-05-10T00:00:00 ,checked\n\n"
                         b"2021-05-08,2021-05-10T00:00:00,\n")
    snapshot = meta.load()
    assert snapshot.extra_columns == ("note",)
    assert snapshot.entries[D(2021, 5, 7)] == MetaEntry(
        D(2021, 5, 7), "2021-05-10T00:00:00", extra=(("note", "checked"),))
    assert snapshot.entries[D(2021, 5, 8)].extra == (("note", ""),)
    meta.record([MetaEntry(D(2021, 5, 9), "2021-05-11T00:00:00+00:00", "r/x.parquet", "3")])
    lines = store.get_bytes(KEY).decode().splitlines()
    assert lines[0].endswith(",status,reason,note")
    assert lines[1:] == ["2021-05-07,2021-05-10T00:00:00,,,,,,,,,checked",
                         "2021-05-08,2021-05-10T00:00:00,,,,,,,,,",
                         "2021-05-09,2021-05-11T00:00:00+00:00,r/x.parquet,3,,,,,,,"]


def test_a_date_listed_twice_keeps_the_earliest_processing_in_utc(store, meta, caplog):
    # 02:00 in UTC+2 is 00:00 UTC: earlier than 01:00 UTC (no zone), though later as text.
    store.put_bytes(KEY, b"source_date,datetime_of_processing,report_key\n"
                         b"2021-05-07,2021-05-10T01:00:00,second\n"
                         b"2021-05-07,2021-05-10T02:00:00+02:00,first\n"
                         b"2021-05-08,2021-05-10T01:00:00,only\n")
    with caplog.at_level("WARNING", logger="xetra.meta"):
        entries = meta.load().entries
        meta.load()  # warned once per process, not per read
    assert entries[D(2021, 5, 7)].report_key == "first"
    assert entries[D(2021, 5, 8)].report_key == "only"
    assert [record.getMessage() for record in caplog.records] == [
        f"meta file {store.root}/{KEY} lists 2021-05-07 2 times (listed on lines 2, 3); "
        "keeping the earliest processing (line 3, 2021-05-10T02:00:00+02:00); the next "
        "update writes it once"]


def test_a_recompute_updates_the_entry_but_keeps_first_processing_and_user_columns(store,
                                                                                   meta):
    store.put_bytes(KEY, b"source_date,datetime_of_processing,report_rows,note\n"
                         b"2021-05-07,2021-05-10T00:00:00,3,checked\n")
    meta.record([MetaEntry(D(2021, 5, 7), "2021-05-12T00:00:00+00:00", "k", "4",
                           recomputed_at="2021-05-12T00:00:00+00:00")])
    entry = meta.load().entries[D(2021, 5, 7)]
    assert (entry.datetime_of_processing, entry.report_rows, entry.recomputed_at,
            entry.extra) == ("2021-05-10T00:00:00", "4", "2021-05-12T00:00:00+00:00",
                             (("note", "checked"),))


def lose_first_write(put_bytes):
    """Wrap `put_bytes` so that its first call loses a race (412) and later calls go through."""
    lost = []

    def lose_once(key, data, **condition):
        if not lost:
            lost.append(key)
            raise PreconditionFailed("changed")
        return put_bytes(key, data, **condition)

    return lose_once


def test_contention_figures_count_updates_and_lost_races(meta, monkeypatch):
    assert meta.contention_line() == \
        "meta file updates=0 conflicts_412=0 update_seconds=0.00 (0.000 s per update)"
    clock = iter([10.0, 10.5, 20.0, 20.25])  # start and end of each update
    monkeypatch.setattr("xetra.meta.time.monotonic", lambda: next(clock))
    monkeypatch.setattr("xetra.meta.time.sleep", lambda _seconds: None)
    monkeypatch.setattr(meta.store, "put_bytes", lose_first_write(meta.store.put_bytes))
    meta.record([MetaEntry(D(2021, 5, 4), "2021-05-10T00:00:01+00:00")])
    meta.record([MetaEntry(D(2021, 5, 5), "2021-05-10T00:00:01+00:00")])
    assert meta.contention_line() == \
        "meta file updates=2 conflicts_412=1 update_seconds=0.75 (0.375 s per update)"


def test_retries_back_off_with_full_jitter_capped_at_two_seconds(meta, monkeypatch):
    def always_changed(*_args, **_kwargs):
        raise PreconditionFailed("changed")

    ceilings = []
    monkeypatch.setattr(meta.store, "put_bytes", always_changed)
    monkeypatch.setattr("xetra.meta.time.sleep", lambda _seconds: None)
    monkeypatch.setattr("xetra.meta.random.uniform",
                        lambda low, high: ceilings.append((low, high)) or 0.0)
    with pytest.raises(StorageError) as error:
        meta.record([MetaEntry(D(2021, 5, 4), "2021-05-10T00:00:01+00:00")])
    assert str(error.value) == (f"cannot update meta file {meta.store.root}/{KEY}: it kept "
                                "changing during 60 attempts")
    assert ceilings[:6] == [(0, 0.1), (0, 0.2), (0, 0.4), (0, 0.8), (0, 1.6), (0, 2.0)]
    assert len(ceilings) == 60 and set(ceilings[5:]) == {(0, 2.0)}
    assert meta.conflicts == 60 and meta.updates == 0


def test_lock_content_names_owner_and_expiry(store):
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    lock = RunLock(store, "meta/lock", 600)
    lock.acquire()
    content = json.loads(store.get_bytes("meta/lock"))
    after = dt.datetime.now(dt.timezone.utc)
    assert sorted(content) == ["acquired_at", "expires_at", "owner"]
    assert content["owner"] == lock.owner and lock.owner.split(":")[-2] == str(os.getpid())
    expires = dt.datetime.fromisoformat(content["expires_at"])
    assert before + dt.timedelta(seconds=600) <= expires <= after + dt.timedelta(seconds=600)
    assert before <= dt.datetime.fromisoformat(content["acquired_at"]) <= after
    assert RunLock(store, "meta/lock", 600).live_holder() == \
        f"{lock.owner} until {expires.isoformat()}"
    lock.release()
    assert RunLock(store, "meta/lock", 600).live_holder() is None


def test_a_held_lock_error_in_full(store):
    store.put_bytes("meta/lock", b'{"owner": "host:1:2:abc", "expires_at": '
                                 b'"2999-01-01T00:00:00+00:00"}')
    with pytest.raises(LockHeldError) as error:
        RunLock(store, "meta/lock", 60).acquire()
    assert str(error.value) == (
        f"another run (host:1:2:abc) holds the lock {store.root}/meta/lock until "
        "2999-01-01T00:00:00+00:00; this run stops without writing (if that run is dead, "
        "rerun after the lock expires, or delete the lock object)")
    # An expired lock is no live holder; one without an owner is "unknown".
    store.put_bytes("meta/lock", b'{"expires_at": "2999-01-01T00:00:00+00:00"}')
    assert RunLock(store, "meta/lock", 60).live_holder() == \
        "unknown until 2999-01-01T00:00:00+00:00"
    store.put_bytes("meta/lock", b'{"owner": "x", "expires_at": "2000-01-01T00:00:00+00:00"}')
    assert RunLock(store, "meta/lock", 60).live_holder() is None


def test_a_lock_released_in_between_is_taken_at_once(store, monkeypatch):
    lock = RunLock(store, "meta/lock", 60)
    original_put = store.put_bytes
    calls = []

    def exists_then_gone(key, data, **condition):
        calls.append(condition)
        if len(calls) == 1:
            raise PreconditionFailed("exists")  # ... and is deleted before we read it
        return original_put(key, data, **condition)

    monkeypatch.setattr(store, "put_bytes", exists_then_gone)
    lock.acquire()
    assert calls == [{"if_none_match": True}, {"if_none_match": True}]
    assert json.loads(store.get_bytes("meta/lock"))["owner"] == lock.owner


def test_lost_lock_and_race_messages_in_full(store, monkeypatch):
    lock = RunLock(store, "meta/lock", 60)
    lock.acquire()
    store.put_bytes("meta/lock", b"taken over")
    with pytest.raises(LockHeldError) as error:
        lock.refresh()
    assert str(error.value) == f"lost the lock {store.root}/meta/lock to another run; stopping"

    def always_taken(*_args, **_kwargs):
        raise PreconditionFailed("taken")

    monkeypatch.setattr(store, "put_bytes", always_taken)
    with pytest.raises(LockHeldError) as error:
        RunLock(store, "meta/lock", 60).acquire()  # "taken over" is unreadable: expired
    assert str(error.value) == (f"another run took the lock {store.root}/meta/lock at the "
                                "same moment; this run stops without writing")


def test_a_lock_of_a_live_process_here_is_not_taken_over(store):
    alive = RunLock(store, "meta/lock", 600)  # this very process: alive
    store.put_bytes("meta/lock", json.dumps(
        {"owner": alive.owner, "expires_at": "2999-01-01T00:00:00+00:00"}).encode())
    with pytest.raises(LockHeldError):
        RunLock(store, "meta/lock", 600).acquire()
    host, namespace, _pid, tag = alive.owner.split(":")
    assert host and namespace and tag  # host:pid-namespace:pid:random
    store.put_bytes("meta/lock", json.dumps(
        {"owner": f"other-{host}:{namespace}:4194304:{tag}",
         "expires_at": "2999-01-01T00:00:00+00:00"}).encode())
    with pytest.raises(LockHeldError):  # another host's PID says nothing here
        RunLock(store, "meta/lock", 600).acquire()


@pytest.mark.parametrize("content, problem", [
    (b"", "empty, not even a header"),
    (b"date,when\n2021-05-07,2021-05-10\n",
     "header ['date', 'when'] lacks column(s) source_date, datetime_of_processing"),
])
def test_an_empty_or_headless_meta_file_message_in_full(store, meta, content, problem):
    store.put_bytes(KEY, content)
    with pytest.raises(MetaFileError) as error:
        meta.parse(content)
    assert str(error.value) == (
        f"meta file {store.root}/{KEY}: {problem}; repair or restore it by hand (one row per "
        "processed date, columns source_date,datetime_of_processing), the job never rewrites "
        "it")


def test_parse_gives_the_entries_by_date(meta):
    assert meta.parse(b"source_date,datetime_of_processing,report_rows\n"
                      b"2021-05-08,2021-05-10T00:00:00,7\n") == \
        {D(2021, 5, 8): MetaEntry(D(2021, 5, 8), "2021-05-10T00:00:00", report_rows="7")}


def test_a_date_listed_twice_at_the_same_time_keeps_the_first_line(meta):
    entries = meta.parse(b"source_date,datetime_of_processing,report_key\n"
                         b"2021-05-07,2021-05-10T00:00:00,a\n"
                         b"2021-05-07,2021-05-10T00:00:00,b\n")
    assert entries[D(2021, 5, 7)].report_key == "a"


def test_record_writes_lf_lines_returns_the_new_version_and_logs_what_it_does(store, meta,
                                                                             caplog):
    store.put_bytes(KEY, b"source_date,datetime_of_processing,note\n"
                         b"2021-05-07,2021-05-10T00:00:00,checked\n")
    store.put_bytes = lose_first_write(store.put_bytes)
    with caplog.at_level("INFO", logger="xetra.meta"):
        snapshot = meta.record([MetaEntry(D(2021, 5, 7), "2021-05-11T00:00:00+00:00"),
                                MetaEntry(D(2021, 5, 8), "2021-05-11T00:00:00+00:00")])
    data = store.get_bytes(KEY)
    assert b"\r" not in data and data.count(b"\n") == 3
    assert (snapshot.etag, snapshot.extra_columns, sorted(snapshot.entries)) == \
        (etag_of(data), ("note",), [D(2021, 5, 7), D(2021, 5, 8)])
    already = "meta file already lists 2021-05-07; keeping the existing entry"
    assert [record.getMessage() for record in caplog.records] == [  # merged on each attempt
        already, "meta file changed during update (attempt 1), retrying", already]


def test_taking_over_an_expired_or_unreadable_lock_is_logged(store, caplog):
    store.put_bytes("meta/lock", b'{"owner": "crashed", "expires_at": '
                                 b'"2020-01-01T00:00:00+00:00"}')
    with caplog.at_level("WARNING", logger="xetra.jobcontrol"):
        RunLock(store, "meta/lock", 60).acquire()
        store.put_bytes("meta/lock", b"not json")
        RunLock(store, "meta/lock", 60).acquire()
    assert [record.getMessage() for record in caplog.records] == [
        "taking over expired lock of crashed (expired 2020-01-01T00:00:00+00:00)",
        "taking over expired lock of unknown (expired unreadable)"]


def test_a_lock_whose_process_belongs_to_another_user_is_not_taken_over(store, monkeypatch):
    here = RunLock(store, "meta/lock", 600)
    host, namespace, _pid, tag = here.owner.split(":")
    store.put_bytes("meta/lock", json.dumps(
        {"owner": f"{host}:{namespace}:4194304:{tag}",
         "expires_at": "2999-01-01T00:00:00+00:00"}).encode())

    def not_permitted(_pid, _signal):
        raise PermissionError("not yours")

    monkeypatch.setattr("xetra.jobcontrol.os.kill", not_permitted)
    with pytest.raises(LockHeldError):
        RunLock(store, "meta/lock", 600).acquire()


def live_slice(store, first, last):
    """A live lock of the backfill slice first..last (held by some other process)."""
    key = slice_lock_key(MetaSettings(), first, last)
    store.put_bytes(key, json.dumps({"owner": "slicer", "expires_at":
                                     "2999-01-01T00:00:00+00:00"}).encode())
    return key


def test_live_slice_locks_skip_other_files_and_stop_the_weekly_run(store):
    prefix = slice_lock_prefix(MetaSettings())
    store.put_bytes(f"{prefix}0-not-a-slice", b"x")
    live_slice(store, D(2021, 1, 1), D(2021, 1, 31))
    store.put_bytes(f"{prefix}2021-02-01_2021-02-28", b'{"owner": "done", "expires_at": '
                                                      b'"2000-01-01T00:00:00+00:00"}')
    assert live_slice_locks(store, MetaSettings()) == [
        (D(2021, 1, 1), D(2021, 1, 31), "slicer until 2999-01-01T00:00:00+00:00")]
    with pytest.raises(LockHeldError) as error:
        GlobalLock(store, MetaSettings()).acquire()
    assert str(error.value) == (
        "a backfill slice 2021-01-01..2021-01-31 (slicer until 2999-01-01T00:00:00+00:00) is "
        f"running on this target (1 live slice lock(s) under {store.root}/{prefix}); this "
        "run stops without writing")
    assert store.get_versioned(MetaSettings().lock_key) is None  # given up again


@pytest.mark.parametrize("first, last, overlaps", [
    (D(2021, 1, 31), D(2021, 2, 5), True),     # shares the last day
    (D(2020, 12, 20), D(2021, 1, 1), True),    # shares the first day
    (D(2021, 2, 1), D(2021, 2, 5), False),     # the day after
    (D(2020, 12, 20), D(2020, 12, 31), False),  # the day before
])
def test_slices_sharing_even_one_day_exclude_each_other(store, first, last, overlaps):
    live_slice(store, D(2021, 1, 1), D(2021, 1, 31))
    lock = SliceLock(store, MetaSettings(), first, last)
    if overlaps:
        with pytest.raises(LockHeldError) as error:
            lock.acquire()
        assert str(error.value) == (
            "an overlapping backfill slice 2021-01-01..2021-01-31 (slicer until "
            f"2999-01-01T00:00:00+00:00) is running on this target; slice {first}..{last} "
            "stops without writing")
        assert store.get_versioned(lock.key) is None
    else:
        lock.acquire()
        lock.release()
