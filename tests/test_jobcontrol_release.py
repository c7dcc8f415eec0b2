"""RunLock.release and released_on_exit, on a LocalStorage in a temporary folder: when the
release reads the lock first (half the expiry since the last write), and which error a run
stops with when the release fails too."""
import logging
import socket
import time

import pytest

from xetra import jobcontrol
from xetra.errors import JobStateError, StorageError
from xetra.jobcontrol import RunLock
from xetra.storage import LocalStorage

TTL = 600


class Recording(LocalStorage):
    """A LocalStorage that records its reads and deletes of keys, and can refuse deletes."""

    def __init__(self, root):
        super().__init__(root, create=True)
        self.seen: list[str] = []
        self.refuse_delete = False
        self.deleting = False  # LocalStorage's own read inside a conditional delete

    def get_versioned(self, key):
        if not self.deleting:
            self.seen.append("read")
        return super().get_versioned(key)

    def delete(self, key, *, if_match=None):
        self.seen.append("delete")
        if self.refuse_delete:
            raise StorageError(f"cannot delete {self.describe(key)}: permission denied")
        self.deleting = True
        try:
            super().delete(key, if_match=if_match)
        finally:
            self.deleting = False


@pytest.mark.parametrize("seconds_ago, calls", [
    (0.45 * TTL, ["delete"]),          # under half the expiry: no other run can hold it
    (0.55 * TTL, ["read", "delete"]),  # over it: read first
    (1.5 * TTL, ["read", "delete"]),
])
def test_the_release_reads_first_only_past_half_the_expiry(tmp_path, seconds_ago, calls):
    store = Recording(tmp_path)
    lock = RunLock(store, "meta/lock", TTL)
    lock.acquire()
    lock.written_at = time.monotonic() - seconds_ago
    store.seen.clear()
    lock.release()
    assert store.seen == calls
    assert store.get_versioned("meta/lock") is None
    assert lock.etag is None


def test_a_lock_taken_over_meanwhile_is_left_and_named(tmp_path, caplog):
    store = Recording(tmp_path)
    lock = RunLock(store, "meta/lock", TTL)
    lock.acquire()
    store.put_bytes("meta/lock", b"another run's")
    with caplog.at_level(logging.INFO, logger="xetra.jobcontrol"):
        lock.release()
    assert [record.getMessage() for record in caplog.records] == [
        f"lock {tmp_path}/meta/lock is no longer this run's; left as it is"]
    assert store.get_bytes("meta/lock") == b"another run's"
    assert lock.etag is None


def test_a_lock_never_taken_is_not_released(tmp_path):
    store = Recording(tmp_path)
    store.put_bytes("meta/lock", b"another run's")
    RunLock(store, "meta/lock", TTL).release()
    assert not store.seen
    assert store.get_bytes("meta/lock") == b"another run's"


def test_released_on_exit_after_a_block_that_ends_well(tmp_path):
    store = Recording(tmp_path)
    lock = RunLock(store, "meta/lock", TTL)
    lock.acquire()
    with lock.released_on_exit():
        assert store.get_versioned("meta/lock") is not None
    assert store.get_versioned("meta/lock") is None
    lock.acquire()
    store.refuse_delete = True
    with pytest.raises(StorageError, match="permission denied"):  # nothing else to report
        with lock.released_on_exit():
            pass


def test_released_on_exit_after_a_failing_block(tmp_path, caplog):
    """The lock goes when the block fails; when removing it fails too, the run stops with the
    block's own error and the lock's failure is a warning naming the lock."""
    store = Recording(tmp_path)
    lock = RunLock(store, "meta/lock", TTL)
    lock.acquire()
    with pytest.raises(JobStateError, match="the block's own"):
        with lock.released_on_exit():
            raise JobStateError("the block's own")
    assert store.get_versioned("meta/lock") is None
    lock.acquire()
    store.refuse_delete = True
    with caplog.at_level(logging.WARNING, logger="xetra.jobcontrol"):
        with pytest.raises(KeyboardInterrupt):
            with lock.released_on_exit():
                raise KeyboardInterrupt
    assert [record.getMessage() for record in caplog.records] == [
        f"could not remove the lock {tmp_path}/meta/lock (cannot delete {tmp_path}/meta/lock: "
        f"permission denied); it expires by itself"]
    assert store.get_versioned("meta/lock") is not None


def test_an_unreadable_pid_namespace_is_a_question_mark(monkeypatch):
    def unreadable(path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(jobcontrol.os, "readlink", unreadable)
    assert jobcontrol._process_namespace() == (  # pylint: disable=protected-access
        f"{socket.gethostname()}:?")
