"""The run's control plane in few round trips (issue 16, remote S3): the meta file read once
before and once under the lock, the reads under the lock at once, the lock released by one
conditional DELETE; and none of it weaker than before."""
import datetime as dt
import json
import logging
import threading
import time

import pytest

from testkit.localetl import make_etl
from testkit.s3servers import empty_bucket
from testkit.sourcedata import bar, write_day, write_no_trading_day
from xetra.config import MetaSettings, StorageLocation
from xetra.errors import LockHeldError, PreconditionFailed
from xetra.jobcontrol import GlobalLock, RunLock, slice_lock_key, slice_lock_prefix
from xetra.s3 import S3BucketConnector
from xetra.storage import LocalStorage

D = dt.date
FRIDAY, SATURDAY, MONDAY = D(2021, 5, 7), D(2021, 5, 8), D(2021, 5, 10)
SAP = "DE0007164600"
SETTINGS = MetaSettings()


@pytest.fixture
def folders(tmp_path):
    """Source (Friday, Saturday without trades, Monday) and target folders."""
    source = tmp_path / "source"
    write_day(source, FRIDAY, [bar(SAP, "09:00", 99.0, 100.0, 10)])
    write_no_trading_day(source, SATURDAY)
    write_day(source, MONDAY, [bar(SAP, "09:00", 100.0, 104.0, 20)])
    return source, tmp_path / "target"


class Calls:
    """The target's calls that are round trips on S3, in order, as (method, key)."""

    def __init__(self, monkeypatch, root):
        self.seen: list[tuple[str, str]] = []
        self.root = root.resolve()
        self.inside = threading.local()  # LocalStorage's own reads inside a conditional write
        for name in ("get_versioned", "list_objects", "put_bytes", "delete"):
            monkeypatch.setattr(LocalStorage, name, self._wrap(getattr(LocalStorage, name), name))

    def _wrap(self, method, name):
        calls = self

        def wrapped(store, key, *args, **kwargs):
            if store.root == calls.root and not getattr(calls.inside, "busy", False):
                calls.seen.append((name, key))
            calls.inside.busy = True
            try:
                return method(store, key, *args, **kwargs)
            finally:
                calls.inside.busy = False
        return wrapped

    def count(self, name, key):
        """How often `name` was called on `key`."""
        return self.seen.count((name, key))


def test_a_run_reads_the_meta_file_twice_lists_once_and_releases_without_reading(
        folders, pool, monkeypatch):
    etl = make_etl(folders, pool, first_date="2021-05-07")
    calls = Calls(monkeypatch, folders[1])
    summary = etl.etl_report1(FRIDAY, MONDAY)
    assert summary.processed == [FRIDAY, SATURDAY, MONDAY]
    meta, lock = etl.config.meta.key, etl.config.meta.lock_key
    assert calls.count("get_versioned", meta) == 2  # before the lock, and under it
    assert calls.count("list_objects", "report1/") == 1  # under the lock
    assert calls.count("list_objects", slice_lock_prefix(etl.config.meta)) == 1
    assert calls.count("get_versioned", lock) == 0
    assert calls.count("put_bytes", lock) == 1 and calls.count("delete", lock) == 1
    assert not (folders[1] / lock).exists()


def test_the_reads_under_the_lock_go_at_once(folders, pool, monkeypatch):
    """The meta file, the report listing and the slice locks are read after the lock's PUT
    and before any of them is answered: a barrier of three that serial reads would break."""
    etl = make_etl(folders, pool, first_date="2021-05-07")
    barrier = threading.Barrier(3, timeout=5)
    locked = threading.Event()
    put, get, listing = LocalStorage.put_bytes, LocalStorage.get_versioned, \
        LocalStorage.list_objects
    meta, lock = etl.config.meta.key, etl.config.meta.lock_key
    waited = []

    def wait_once(key):
        if locked.is_set() and key not in waited:
            waited.append(key)
            barrier.wait()

    def put_bytes(store, key, data, **condition):
        etag = put(store, key, data, **condition)
        if key == lock:
            locked.set()
        return etag

    def get_versioned(store, key):
        if key == meta:
            wait_once(key)
        return get(store, key)

    def list_objects(store, prefix):
        if prefix in ("report1/", slice_lock_prefix(etl.config.meta)):
            wait_once(prefix)
        return listing(store, prefix)

    monkeypatch.setattr(LocalStorage, "put_bytes", put_bytes)
    monkeypatch.setattr(LocalStorage, "get_versioned", get_versioned)
    monkeypatch.setattr(LocalStorage, "list_objects", list_objects)
    assert etl.etl_report1(FRIDAY, MONDAY).processed == [FRIDAY, SATURDAY, MONDAY]
    assert sorted(waited) == sorted([meta, "report1/", slice_lock_prefix(etl.config.meta)])


def test_the_first_meta_read_goes_with_the_folder_listing(folders, pool, monkeypatch):
    """The meta file's first read (before the lock) and the source's folder listing are both
    sent before either is answered: a barrier of two that serial calls would break."""
    etl = make_etl(folders, pool, first_date="2021-05-07")
    barrier = threading.Barrier(2, timeout=5)
    get, list_folders = LocalStorage.get_versioned, LocalStorage.list_folders
    meta, met = etl.config.meta.key, []

    def get_versioned(store, key):
        if key == meta and meta not in met:  # whichever of the two calls comes first
            met.append(key)
            barrier.wait()
        return get(store, key)

    def listed_with_the_meta_read(store, prefix=""):
        if store.root == folders[0].resolve() and "folders" not in met:
            met.append("folders")
            barrier.wait()
        return list_folders(store, prefix)

    monkeypatch.setattr(LocalStorage, "get_versioned", get_versioned)
    monkeypatch.setattr(LocalStorage, "list_folders", listed_with_the_meta_read)
    assert etl.etl_report1(FRIDAY, MONDAY).processed == [FRIDAY, SATURDAY, MONDAY]
    assert sorted(met) == sorted([meta, "folders"])


def test_a_run_stopped_by_a_held_lock_still_names_unlisted_reports(folders, pool, caplog):
    etl = make_etl(folders, pool, first_date="2021-05-07")
    target = LocalStorage(folders[1], create=True)
    target.put_bytes("report1/xetra_report1_2021-05-06.parquet", b"a killed run's report")
    RunLock(target, etl.config.meta.lock_key, 600).acquire()
    with pytest.raises(LockHeldError):
        etl.etl_report1(FRIDAY, MONDAY)
    assert "1 report object(s) of dates the meta file does not list (2021-05-06)" in caplog.text


def test_a_run_stopped_by_a_live_slice_still_names_unlisted_reports(folders, pool, caplog):
    etl = make_etl(folders, pool, first_date="2021-05-07")
    target = LocalStorage(folders[1], create=True)
    target.put_bytes("report1/xetra_report1_2021-05-06.parquet", b"a killed run's report")
    RunLock(target, slice_lock_key(etl.config.meta, D(2020, 1, 1), D(2020, 1, 31)),
            600).acquire()
    with pytest.raises(LockHeldError, match="a backfill slice 2020-01-01..2020-01-31"):
        etl.etl_report1(FRIDAY, MONDAY)
    assert "1 report object(s) of dates the meta file does not list (2021-05-06)" in caplog.text
    assert not target.get_versioned(etl.config.meta.lock_key)  # given up again
    assert not target.get_versioned(etl.config.meta.key)  # nothing written


def test_nothing_to_do_names_unlisted_reports_and_takes_no_lock(folders, pool, monkeypatch,
                                                                caplog):
    etl = make_etl(folders, pool, first_date="2021-05-07")
    etl.etl_report1(FRIDAY, MONDAY)
    LocalStorage(folders[1]).put_bytes("report1/xetra_report1_2021-05-06.parquet", b"other")
    calls = Calls(monkeypatch, folders[1])
    assert not etl.etl_report1(FRIDAY, MONDAY).processed
    assert "1 report object(s) of dates the meta file does not list (2021-05-06)" in caplog.text
    assert calls.count("put_bytes", etl.config.meta.lock_key) == 0
    assert calls.count("get_versioned", etl.config.meta.key) == 1


def test_release_soon_after_the_last_write_deletes_without_reading(tmp_path, monkeypatch):
    store = LocalStorage(tmp_path, create=True)
    calls = Calls(monkeypatch, tmp_path)
    lock = GlobalLock(store, SETTINGS)
    lock.acquire()
    lock.release()
    assert calls.count("get_versioned", SETTINGS.lock_key) == 0
    assert calls.count("delete", SETTINGS.lock_key) == 1
    assert store.get_versioned(SETTINGS.lock_key) is None
    lock.release()  # twice: nothing more
    assert calls.count("delete", SETTINGS.lock_key) == 1


def test_a_lock_replaced_meanwhile_is_left_to_its_new_owner(tmp_path, caplog):
    """Removed by hand while the run worked and taken by another run: the release's DELETE is
    conditional on this run's ETag, so the other run's lock stays."""
    store = LocalStorage(tmp_path, create=True)
    ours, theirs = RunLock(store, "meta/lock", 600), RunLock(store, "meta/lock", 600)
    ours.acquire()
    store.delete("meta/lock")
    theirs.acquire()
    with caplog.at_level(logging.INFO, logger="xetra.jobcontrol"):
        ours.release()
    assert json.loads(store.get_bytes("meta/lock"))["owner"] == theirs.owner
    assert "is no longer this run's; left as it is" in caplog.text


def test_late_in_the_expiry_the_release_reads_the_lock_first(tmp_path, monkeypatch):
    store = LocalStorage(tmp_path, create=True)
    calls = Calls(monkeypatch, tmp_path)
    lock = RunLock(store, "meta/lock", 600)
    lock.acquire()
    lock.written_at = time.monotonic() - 300  # half the expiry ago
    lock.release()
    assert calls.seen[-2:] == [("get_versioned", "meta/lock"), ("delete", "meta/lock")]
    assert store.get_versioned("meta/lock") is None
    crashed = RunLock(store, "meta/lock", 600)
    crashed.acquire()
    crashed.written_at -= 300
    store.put_bytes("meta/lock", b"taken over")
    crashed.release()  # read first: not ours, not even tried
    assert store.get_bytes("meta/lock") == b"taken over"
    assert calls.seen[-1] == ("get_versioned", "meta/lock")


def test_a_refresh_restarts_the_half_expiry(tmp_path, monkeypatch):
    store = LocalStorage(tmp_path, create=True)
    lock = RunLock(store, "meta/lock", 600)
    lock.acquire()
    lock.written_at -= 400
    lock.refresh()
    calls = Calls(monkeypatch, tmp_path)
    lock.release()
    assert calls.seen == [("delete", "meta/lock")]


def test_local_conditional_delete(tmp_path):
    store = LocalStorage(tmp_path, create=True)
    etag = store.put_bytes("a/k", b"1")
    with pytest.raises(PreconditionFailed, match="changed since it was written"):
        store.delete("a/k", if_match="other")
    assert store.get_bytes("a/k") == b"1"
    store.delete("a/k", if_match=etag)
    assert store.get_versioned("a/k") is None
    store.delete("a/k", if_match=etag)  # gone already: fine
    store.delete("nowhere/k", if_match=etag)  # not even its folder


@pytest.mark.s3server
@pytest.mark.parametrize("server_name", ["motoserver", "seaweed"])
def test_s3_conditional_delete_on_real_servers(server_name, request):
    """moto and SeaweedFS honour If-Match on DELETE as AWS does (since 2025-09): a 412 for
    another ETag; a missing object is gone either way (AWS and moto 404, SeaweedFS 412)."""
    server = request.getfixturevalue(server_name)
    client = server.client()
    try:
        client.create_bucket(Bucket="xetra-release")
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    empty_bucket(server, "xetra-release")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in server.env().items():
            patch.setenv(name, value)
        connector = S3BucketConnector(StorageLocation("s3://xetra-release/p/",
                                                      endpoint_url=server.endpoint_url))
        lock = RunLock(connector, "meta/lock", 600)
        lock.acquire()
        other = connector.put_bytes("meta/other", b"x")
        with pytest.raises(PreconditionFailed):
            connector.delete("meta/lock", if_match=other)
        assert connector.get_versioned("meta/lock") is not None
        lock.release()
        assert connector.get_versioned("meta/lock") is None
        lock.acquire()
        connector.delete("meta/lock")
        connector.put_bytes("meta/lock", b"someone else's")
        lock.release()  # refused: stays
        assert connector.get_bytes("meta/lock") == b"someone else's"
