"""The two adapters behind one interface: LocalStorage and S3BucketConnector (moto's mock_aws)."""
import datetime as dt
import fcntl
import os
import stat
import threading

import boto3
import pyarrow as pa
import pytest
from moto import mock_aws

from testkit.sourcedata import bar, csv_bytes
from xetra.config import S3ClientSettings, StorageLocation
from xetra.errors import ObjectNotFound, PreconditionFailed, StorageError
from xetra.formats import deserialise_table, parse_source_csv, serialise_table
from xetra import storage
from xetra.s3 import S3BucketConnector
from xetra.storage import LocalStorage, ObjectInfo, etag_of

DAY = dt.date(2021, 5, 7)


@pytest.fixture
def s3_store(aws_env):  # pylint: disable=unused-argument
    """An S3BucketConnector on a moto bucket, with the prefix 'pre/'."""
    with mock_aws():
        boto3.client("s3", region_name="eu-central-1").create_bucket(
            Bucket="xetra-test", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
        yield S3BucketConnector(StorageLocation("s3://xetra-test/pre", region="eu-central-1"),
                                S3ClientSettings(max_attempts=2))


@pytest.fixture
def local_store(tmp_path):
    """A LocalStorage rooted in a fresh folder."""
    store = LocalStorage(tmp_path / "root", create=True)
    store.check_access()
    return store


@pytest.fixture(params=["local", "s3"])
def store(request):
    """Each adapter in turn: the tests below hold for both."""
    return request.getfixturevalue(f"{request.param}_store")


def test_put_get_list_delete(store):
    store.put_bytes("2021-05-07/b.csv", b"bb")
    store.put_bytes("2021-05-07/a.csv", b"a")
    store.put_bytes("2021-05-08/c.csv", b"ccc")
    assert store.list_objects("2021-05-07/") == [ObjectInfo("2021-05-07/a.csv", 1),
                                                  ObjectInfo("2021-05-07/b.csv", 2)]
    assert store.list_objects("2021-05-0") == [ObjectInfo("2021-05-07/a.csv", 1),
                                               ObjectInfo("2021-05-07/b.csv", 2),
                                               ObjectInfo("2021-05-08/c.csv", 3)]
    assert store.list_objects("2022/") == []
    assert store.get_bytes("2021-05-08/c.csv") == b"ccc"
    store.delete("2021-05-08/c.csv")
    store.delete("2021-05-08/c.csv")  # deleting a missing object is fine
    with pytest.raises(ObjectNotFound, match="2021-05-08/c.csv"):
        store.get_bytes("2021-05-08/c.csv")
    assert store.get_versioned("2021-05-08/c.csv") is None


def test_conditional_writes(store):
    etag = store.put_bytes("meta.csv", b"v1", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put_bytes("meta.csv", b"v1bis", if_none_match=True)
    current = store.get_versioned("meta.csv")
    assert current.data == b"v1" and current.etag == etag
    new_etag = store.put_bytes("meta.csv", b"v2", if_match=etag)
    with pytest.raises(PreconditionFailed):
        store.put_bytes("meta.csv", b"v3", if_match=etag)  # stale ETag
    assert store.get_versioned("meta.csv").etag == new_etag
    store.delete("meta.csv")
    with pytest.raises(PreconditionFailed):
        store.put_bytes("meta.csv", b"v4", if_match=new_etag)  # gone since it was read
    assert store.get_versioned("meta.csv") is None


def test_csv_and_parquet_bytes_round_trip(store):
    store.put_bytes("2021-05-07/2021-05-07_BINS_XETR09.csv",
                    csv_bytes(DAY, [bar("DE0005140008", "09:00", 1.0, 2.0, 3)]))
    parsed = parse_source_csv(store.get_bytes("2021-05-07/2021-05-07_BINS_XETR09.csv"), "k")
    assert parsed.table["EndPrice"].to_pylist() == [2.0]
    table = pa.table({"isin": ["DE0005140008"], "volume": pa.array([3], pa.int64())})
    store.put_bytes("report1/r.parquet", serialise_table(table, "parquet"))
    assert deserialise_table(store.get_bytes("report1/r.parquet"), "parquet").equals(table)


def test_s3_pagination_over_more_than_1000_keys(s3_store):
    client = s3_store.client
    for number in range(1105):
        client.put_object(Bucket="xetra-test", Key=f"pre/many/{number:05d}", Body=b"")
    client.put_object(Bucket="xetra-test", Key="elsewhere/x", Body=b"")
    listed = s3_store.list_objects("many/")
    assert len(listed) == 1105
    assert listed[0] == ObjectInfo("many/00000", 0) and listed[-1].key == "many/01104"


def test_s3_describe_and_check_access(s3_store):
    assert s3_store.describe("k.csv") == "s3://xetra-test/pre/k.csv"
    s3_store.check_access()
    missing = S3BucketConnector(StorageLocation("s3://no-such-bucket-xetra", region="eu-central-1"))
    with pytest.raises(StorageError, match="bucket no-such-bucket-xetra does not exist"):
        missing.check_access()
    with pytest.raises(StorageError, match="bucket no-such-bucket-xetra does not exist"):
        missing.list_objects("")
    with pytest.raises(StorageError, match="s3://no-such-bucket-xetra/k: bucket"):
        missing.put_bytes("k", b"x")


@pytest.mark.usefixtures("aws_env")
def test_s3_unreachable_endpoint_is_one_clear_line():
    store = S3BucketConnector(
        StorageLocation("s3://xetra-test", endpoint_url="http://127.0.0.1:9", region="us-east-1"),
        S3ClientSettings(max_attempts=1, connect_timeout=1, read_timeout=1))
    with pytest.raises(StorageError, match="cannot connect to the S3 endpoint") as error:
        store.get_bytes("k")
    assert "\n" not in str(error.value)


def test_s3_missing_credentials_named(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = S3BucketConnector(StorageLocation("s3://private-bucket", region="eu-central-1",
                                              endpoint_url="http://127.0.0.1:9"),
                              S3ClientSettings(max_attempts=1))
    with pytest.raises(StorageError, match="no AWS credentials found"):
        store.get_bytes("k")


def test_local_storage_rejects_escaping_keys_and_missing_folder(tmp_path, local_store):
    with pytest.raises(StorageError, match="escapes the folder"):
        local_store.get_bytes("../outside.txt")
    with pytest.raises(StorageError, match="escapes the folder"):
        local_store.put_bytes("/etc/passwd", b"x")
    with pytest.raises(StorageError, match="does not exist"):
        LocalStorage(tmp_path / "missing").check_access()
    assert local_store.describe() == str((tmp_path / "root").resolve())


def test_local_storage_writes_atomically_with_md5_etag(local_store):
    etag = local_store.put_bytes("a/b/c.bin", b"hello")
    assert etag == "5d41402abc4b2a76b9719d911017c592" == etag_of(b"hello")
    folder = local_store.root / "a" / "b"
    assert [path.name for path in folder.iterdir()] == ["c.bin"]  # no temporary file left


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o027, 0o640)],
                         ids=["umask022", "umask077", "umask027"])
def test_local_storage_files_honour_the_umask(local_store, umask, mode):
    """New and replaced objects get 0o666 less the umask, as any tool's files do (mkstemp's
    0o600 would hide the report from other users and services on the machine)."""
    table = pa.table({"isin": ["DE0007164600"], "daily_traded_volume": [3]})
    previous = os.umask(umask)
    try:
        local_store.put_bytes("meta/m.csv", b"a", if_none_match=True)
        local_store.put_bytes("meta/m.csv", b"b", if_match=etag_of(b"a"))
        local_store.put_bytes("report1/r.parquet", serialise_table(table, "parquet"))
    finally:
        os.umask(previous)
    for key in ("meta/m.csv", "report1/r.parquet"):
        assert stat.S_IMODE((local_store.root / key).stat().st_mode) == mode, key


def test_local_storage_fsyncs_the_file_then_the_folder_after_the_rename(local_store,
                                                                        monkeypatch):
    """Durability: the data reaches the disk before the rename, the rename before put returns."""
    target = local_store.root / "meta" / "m.csv"
    synced = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        kind = "folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        synced.append((kind, target.exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    local_store.put_bytes("meta/m.csv", b"a")
    assert synced == [("file", False), ("folder", True)]


def test_local_describe_keeps_a_folder_slash(local_store):
    root = str(local_store.root)
    assert local_store.describe("report1/") == f"{root}/report1/"
    assert local_store.describe("report1/a.csv") == f"{root}/report1/a.csv"


def test_local_check_access_creates_nested_folders_once_and_names_a_failure(tmp_path):
    nested = LocalStorage(tmp_path / "x" / "y", create=True)
    nested.check_access()
    nested.check_access()  # already there: fine
    assert (tmp_path / "x" / "y").is_dir()
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StorageError) as error:
        LocalStorage(tmp_path / "file" / "sub", create=True).check_access()
    assert str(error.value) == f"cannot create folder {tmp_path / 'file' / 'sub'}: " \
                               "Not a directory"


def test_local_absolute_key_inside_the_root_is_refused(local_store):
    local_store.put_bytes("a.txt", b"x")
    with pytest.raises(StorageError, match="escapes the folder"):
        local_store.get_bytes(str(local_store.root / "a.txt"))
    for prefix in ("../outside/", "a/../../outside/", "a/../../"):
        with pytest.raises(StorageError, match="escapes the folder"):
            local_store.list_objects(prefix)


def test_local_list_objects_by_any_prefix_without_temporary_files(local_store):
    for key in ("x/y/z1.csv", "x/y/z/w.csv", "x/yy.csv", "x/y/.tmp-0123abcd", "top.csv"):
        (local_store.root / key).parent.mkdir(parents=True, exist_ok=True)
        (local_store.root / key).write_bytes(b"12345")
    assert local_store.list_objects("x/y/z") == [ObjectInfo("x/y/z/w.csv", 5),
                                                 ObjectInfo("x/y/z1.csv", 5)]
    assert [info.key for info in local_store.list_objects("x/y/")] == ["x/y/z/w.csv",
                                                                      "x/y/z1.csv"]
    assert [info.key for info in local_store.list_objects("")] == [
        "top.csv", "x/y/z/w.csv", "x/y/z1.csv", "x/yy.csv"]


def test_local_list_folders_of_the_root_and_of_a_prefix(local_store):
    for key in ("a/b/c.csv", "a/d/e.csv", "f/g.csv", "top.csv"):
        local_store.put_bytes(key, b"1")
    assert local_store.list_folders() == ["a", "f"]
    assert local_store.list_folders("a/") == ["b", "d"]
    assert local_store.list_folders("missing/") == []


def test_local_read_and_write_errors_name_the_path(local_store):
    local_store.put_bytes("d/x.csv", b"1")
    root = local_store.root
    with pytest.raises(StorageError) as error:
        local_store.get_bytes("d")
    assert str(error.value) == f"cannot read {root}/d: Is a directory"
    with pytest.raises(StorageError) as error:
        local_store.put_bytes("d", b"2")
    assert str(error.value) == f"cannot write {root}/d: Is a directory"


def test_local_precondition_failures_name_the_path(local_store):
    local_store.put_bytes("meta/m.csv", b"a")
    where = f"{local_store.root}/meta/m.csv"
    with pytest.raises(PreconditionFailed) as error:
        local_store.put_bytes("meta/m.csv", b"b", if_none_match=True)
    assert str(error.value) == f"{where} already exists"
    with pytest.raises(PreconditionFailed) as error:
        local_store.put_bytes("meta/m.csv", b"b", if_match=etag_of(b"not a"))
    assert str(error.value) == f"{where} changed since it was read"
    assert local_store.get_bytes("meta/m.csv") == b"a"


def test_local_put_removes_temporary_files_a_killed_writer_left(local_store):
    stale = local_store.root / "meta" / ".tmp-00112233deadbeef"
    stale.parent.mkdir()
    stale.write_bytes(b"half a meta file")
    local_store.put_bytes("meta/m.csv", b"a")
    assert sorted(path.name for path in stale.parent.iterdir()) == ["m.csv"]


def test_new_temp_file_never_opens_an_existing_file(tmp_path, monkeypatch):
    """A name already taken (two random names alike) is skipped, never written into."""
    (tmp_path / ".tmp-aaaa").write_bytes(b"another writer's")
    names = iter(["aaaa", "bbbb"])
    monkeypatch.setattr(storage.secrets, "token_hex", lambda _size: next(names))
    handle, path = storage.new_temp_file(tmp_path)
    os.close(handle)
    assert path == tmp_path / ".tmp-bbbb"
    assert (tmp_path / ".tmp-aaaa").read_bytes() == b"another writer's"


def test_local_conditional_delete_waits_for_the_folder_lock_and_names_the_file(tmp_path,
                                                                              monkeypatch):
    """The ETag is compared under the folder's exclusive lock (the one conditional writes
    take): a delete waits while another process holds even a shared lock, and then sees the
    object as that holder left it. An OS error names the file; no descriptor is left open."""
    store = LocalStorage(tmp_path, create=True)
    etag = store.put_bytes("meta/lock", b"ours")
    folder = os.open(tmp_path / "meta", os.O_RDONLY)
    fcntl.flock(folder, fcntl.LOCK_SH)
    outcome = []

    def delete():
        try:
            store.delete("meta/lock", if_match=etag)
            outcome.append("deleted")
        except PreconditionFailed as exc:
            outcome.append(str(exc))

    worker = threading.Thread(target=delete)
    worker.start()
    worker.join(0.3)
    assert worker.is_alive() and not outcome  # waiting for the lock
    (tmp_path / "meta" / "lock").write_bytes(b"taken over meanwhile")
    fcntl.flock(folder, fcntl.LOCK_UN)
    os.close(folder)
    worker.join(10)
    assert outcome == [f"{tmp_path}/meta/lock changed since it was written"]
    assert store.get_bytes("meta/lock") == b"taken over meanwhile"

    etag = store.put_bytes("meta/lock", b"ours again")
    descriptors = len(os.listdir("/proc/self/fd"))

    def refuse(path, missing_ok=False):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(storage.Path, "unlink", refuse)
    with pytest.raises(StorageError) as error:
        store.delete("meta/lock", if_match=etag)
    assert str(error.value) == f"cannot delete {tmp_path}/meta/lock: Permission denied"
    assert len(os.listdir("/proc/self/fd")) == descriptors
    monkeypatch.undo()
    assert store.get_bytes("meta/lock") == b"ours again"
