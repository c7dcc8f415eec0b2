"""MetaProcess.record starts from the version it last read or wrote (one GET less per date)
and still loses no update when another writer, or an operator, changed the file meanwhile."""
import csv
import datetime as dt
import io

from xetra.config import MetaSettings
from xetra.meta import MetaEntry, MetaProcess
from xetra.storage import LocalStorage

KEY = MetaSettings().key
WHEN = "2021-05-10T18:00:00+00:00"


class CountingStore(LocalStorage):
    """A local store that counts the meta file's reads (not the check inside a write)."""

    meta_reads = 0
    _writing = False

    def get_versioned(self, key):
        """Count, then read."""
        if key == KEY and not self._writing:
            self.meta_reads += 1
        return super().get_versioned(key)

    def put_bytes(self, key, data, *, if_none_match=False, if_match=None):
        """Write; the local store's own ETag check is not a read of the caller's."""
        self._writing = True
        try:
            return super().put_bytes(key, data, if_none_match=if_none_match, if_match=if_match)
        finally:
            self._writing = False


def dates_in_file(store) -> list[str]:
    """The source_date column of the meta file, read with the csv module."""
    return [row["source_date"] for row in
            csv.DictReader(io.StringIO(store.get_bytes(KEY).decode("utf-8")))]


def test_consecutive_updates_read_the_file_once(tmp_path):
    store = CountingStore(tmp_path, create=True)
    meta = MetaProcess(store, MetaSettings())
    for day in (3, 4, 5, 6, 7):
        meta.record([MetaEntry(dt.date(2021, 5, day), WHEN)])
    assert store.meta_reads == 1
    assert meta.updates == 5 and meta.conflicts == 0
    assert dates_in_file(store) == ["2021-05-03", "2021-05-04", "2021-05-05", "2021-05-06",
                                    "2021-05-07"]


def test_another_writer_in_between_costs_one_conflict_and_loses_nothing(tmp_path):
    store = CountingStore(tmp_path, create=True)
    ours, theirs = MetaProcess(store, MetaSettings()), MetaProcess(store, MetaSettings())
    ours.record([MetaEntry(dt.date(2021, 5, 3), WHEN)])
    theirs.record([MetaEntry(dt.date(2021, 6, 1), WHEN)])
    ours.record([MetaEntry(dt.date(2021, 5, 4), WHEN)])
    assert ours.conflicts == 1  # its known version was refused, the retry re-read the file
    assert dates_in_file(store) == ["2021-05-03", "2021-05-04", "2021-06-01"]


def test_an_operators_edit_in_between_is_kept(tmp_path):
    store = CountingStore(tmp_path, create=True)
    meta = MetaProcess(store, MetaSettings())
    meta.record([MetaEntry(dt.date(2021, 5, 3), WHEN)])
    edited = store.get_bytes(KEY) + b"2021-04-30," + WHEN.encode() + b"," * 8 + b"\n"
    store.put_bytes(KEY, edited)  # by hand, not through `meta`
    meta.record([MetaEntry(dt.date(2021, 5, 4), WHEN)])
    assert dates_in_file(store) == ["2021-04-30", "2021-05-03", "2021-05-04"]
    assert store.meta_reads == 2


def test_a_deleted_file_is_written_anew_with_the_new_date_only(tmp_path):
    store = CountingStore(tmp_path, create=True)
    meta = MetaProcess(store, MetaSettings())
    meta.record([MetaEntry(dt.date(2021, 5, 3), WHEN)])
    store.delete(KEY)
    meta.record([MetaEntry(dt.date(2021, 5, 4), WHEN)])
    assert dates_in_file(store) == ["2021-05-04"]


def test_current_reads_only_when_nothing_is_known(tmp_path):
    store = CountingStore(tmp_path, create=True)
    store.put_bytes(KEY, b"source_date,datetime_of_processing\n2021-05-03," + WHEN.encode()
                    + b"\n")
    meta = MetaProcess(store, MetaSettings())
    assert sorted(meta.current().entries) == [dt.date(2021, 5, 3)]
    assert store.meta_reads == 1
    meta.record([MetaEntry(dt.date(2021, 5, 4), WHEN)])
    store.delete(KEY)  # unseen by `current`, which reports what this process last wrote
    assert sorted(meta.current().entries) == [dt.date(2021, 5, 3), dt.date(2021, 5, 4)]
    assert store.meta_reads == 1
