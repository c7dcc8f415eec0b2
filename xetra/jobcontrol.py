"""Job control: how every date of a target is processed exactly once.

The story, in the order of this module:

- The meta file (xetra.meta.MetaProcess) lists the dates that are done. A run processes the
  dates of its range the file does not list, oldest first.
- Each date's report object has a key derived from the date alone (ReportObjects), so a rerun
  overwrites rather than adds. A date is committed report object first, then its meta entry
  (a conditional write). A run killed in between leaves an *orphan*: a report object of a
  date the meta file does not list. The next run removes orphans before it works, and
  `--verify` reports them.
- A run works under a lock object (RunLock): created with If-None-Match, expiring after
  `meta.lock_ttl_seconds`, refreshed while the run works, released at the end. A lock whose
  owner died on this host and PID namespace is taken over at once.
- Which runs may work at once. Only orphan removal makes two runs unsafe together:
  processing a date twice rewrites the same deterministic report object with the same rows,
  and the meta file keeps the first entry, but a run that removes the "orphan" report object
  of a date another live run has just written and not yet recorded would leave a meta entry
  without its object. So the weekly run takes the global lock (GlobalLock) and removes
  orphans of every date: it must not run while any backfill slice is live; a backfill slice
  takes a lock of its own range (SliceLock) and removes orphans of its own dates only: it must
  not run while the weekly run is live, nor while another live slice overlaps its range
  (slices of one plan never overlap; two backfills of the same dates might). Each side first
  writes its own lock object, then looks for the others' (write, then read): with S3's
  read-after-write consistency at least one of two runs starting together sees the other and
  stops (exit 3, nothing written); both may stop, none both proceed. Argo retries the
  stopped one. A killed run's lock blocks the same dates until it expires.
- JobControl puts these together for a run (`claim`) and for `--verify`.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import re
import socket
import time
import uuid
from contextlib import contextmanager
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from xetra import formats
from xetra.config import AppConfig, MetaSettings, ReportSettings
from xetra.dates import date_range, utc_now_iso
from xetra.errors import LockHeldError, PreconditionFailed, StorageError
from xetra.meta import MetaEntry, MetaProcess, MetaSnapshot
from xetra.storage import ObjectStore

logger = logging.getLogger(__name__)

_SLICE_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})_(\d{4}-\d{2}-\d{2})")


class ReportObjects:
    """The report objects of a target: their keys by date, writing, listing, row counts."""

    def __init__(self, target: ObjectStore, settings: ReportSettings):
        self.target = target
        self.settings = settings
        self.key_pattern = re.compile(
            rf"{re.escape(settings.prefix + settings.name)}_(\d{{4}}-\d{{2}}-\d{{2}})\."
            rf"{re.escape(settings.format)}")

    def key(self, day: dt.date) -> str:
        """The deterministic key of a date's report object, so a rerun overwrites, never adds."""
        settings = self.settings
        return f"{settings.prefix}{settings.name}_{day.isoformat()}.{settings.format}"

    def describe(self, key: str) -> str:
        """Where the object is, for messages."""
        return self.target.describe(key)

    def write(self, day: dt.date, table: pa.Table) -> str:
        """Serialise the date's report table in the configured format and write it; its key."""
        key = self.key(day)
        self.target.put_bytes(key, formats.serialise_table(table, self.settings.format))
        return key

    def by_date(self) -> dict[dt.date, str]:
        """The report objects in the target, by date (other files under the prefix ignored)."""
        found = {}
        for info in self.target.list_objects(self.settings.prefix):
            match = self.key_pattern.fullmatch(info.key)
            if match:
                found[dt.date.fromisoformat(match.group(1))] = info.key
        return found

    def row_count(self, key: str) -> int:
        """The number of rows of a report object; ObjectNotFound, or pyarrow's ArrowInvalid or
        OSError when it is not a readable object of the configured format."""
        data = self.target.get_bytes(key)
        if self.settings.format == "parquet":
            # The footer only: pq.read_table would start the dataset machinery for a count.
            return pq.ParquetFile(io.BytesIO(data)).metadata.num_rows
        return formats.deserialise_table(data, self.settings.format).num_rows


def _process_namespace() -> str:
    """Host name and PID namespace: where a PID means the same process."""
    try:
        namespace = os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        namespace = "?"
    return f"{socket.gethostname()}:{namespace}"


def _died_here(owner: str) -> bool:
    """True when the lock's owner ran on this host and PID namespace and is gone (killed),
    so a rerun on the same machine need not wait for the lock to expire."""
    where, _, rest = owner.rpartition(":")[0].rpartition(":")
    if where != _process_namespace() or not rest.isdigit():
        return False
    try:
        os.kill(int(rest), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class RunLock:
    """A lock object with an expiry, created with If-None-Match so that only one run works.

    A crashed run's lock expires after `ttl_seconds`; a live run refreshes it as it goes.
    """

    def __init__(self, store: ObjectStore, key: str, ttl_seconds: int):
        self.store = store
        self.key = key
        self.ttl_seconds = ttl_seconds
        self.owner = f"{_process_namespace()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.etag: str | None = None

    def _content(self) -> bytes:
        expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=self.ttl_seconds)
        return json.dumps({"owner": self.owner, "acquired_at": utc_now_iso(),
                           "expires_at": expires.isoformat(timespec="seconds")}).encode()

    def acquire(self) -> None:
        """Take the lock, or take over an expired one; LockHeldError when a live run has it."""
        try:
            self.etag = self.store.put_bytes(self.key, self._content(), if_none_match=True)
            return
        except PreconditionFailed:
            pass
        current = self.store.get_versioned(self.key)
        if current is None:  # released in between: try once more from the start
            self.etag = self._put_once(if_none_match=True)
            return
        holder = self._describe_holder(current.data)
        if not holder["expired"]:
            raise LockHeldError(
                f"another run ({holder['owner']}) holds the lock "
                f"{self.store.describe(self.key)} until {holder['expires_at']}; "
                f"this run stops without writing (if that run is dead, rerun after the lock "
                f"expires, or delete the lock object)")
        logger.warning("taking over expired lock of %s (expired %s)", holder["owner"],
                       holder["expires_at"])
        self.etag = self._put_once(if_match=current.etag)

    def _put_once(self, **condition) -> str:
        try:
            return self.store.put_bytes(self.key, self._content(), **condition)
        except PreconditionFailed as exc:
            raise LockHeldError(f"another run took the lock {self.store.describe(self.key)} "
                                f"at the same moment; this run stops without writing") from exc

    def _describe_holder(self, data: bytes) -> dict:
        try:
            content = json.loads(data)
            expires = dt.datetime.fromisoformat(content["expires_at"])
            owner = str(content.get("owner", "unknown"))
        except (ValueError, KeyError, TypeError):
            # An unreadable lock is treated as expired: it cannot belong to a live run of ours.
            return {"owner": "unknown", "expires_at": "unreadable", "expired": True}
        expired = expires <= dt.datetime.now(dt.timezone.utc) or _died_here(owner)
        return {"owner": owner, "expires_at": expires.isoformat(), "expired": expired}

    def live_holder(self) -> str | None:
        """Who holds this lock, if it exists and has not expired (read only), else None."""
        current = self.store.get_versioned(self.key)
        if current is None:
            return None
        holder = self._describe_holder(current.data)
        return None if holder["expired"] else f"{holder['owner']} until {holder['expires_at']}"

    def refresh(self) -> None:
        """Extend the expiry; LockHeldError if another run took the lock over meanwhile."""
        try:
            self.etag = self.store.put_bytes(self.key, self._content(), if_match=self.etag)
        except PreconditionFailed as exc:
            raise LockHeldError(f"lost the lock {self.store.describe(self.key)} to another "
                                f"run; stopping") from exc

    def release(self) -> None:
        """Remove the lock if it is still ours."""
        current = self.store.get_versioned(self.key)
        if current is not None and current.etag == self.etag:
            self.store.delete(self.key)
        self.etag = None


def slice_lock_prefix(settings: MetaSettings) -> str:
    """Where the slices' lock objects live, beside the global lock."""
    return f"{settings.lock_key}.slices/"


def slice_lock_key(settings: MetaSettings, first: dt.date, last: dt.date) -> str:
    """The lock object of the slice `first`..`last`."""
    return f"{slice_lock_prefix(settings)}{first.isoformat()}_{last.isoformat()}"


def live_slice_locks(store: ObjectStore, settings: MetaSettings
                     ) -> list[tuple[dt.date, dt.date, str]]:
    """(first, last, holder) of every slice lock that is held and not expired."""
    live = []
    prefix = slice_lock_prefix(settings)
    for info in store.list_objects(prefix):
        match = _SLICE_NAME.fullmatch(info.key[len(prefix):])
        if not match:
            continue
        holder = RunLock(store, info.key, settings.lock_ttl_seconds).live_holder()
        if holder is not None:
            live.append((dt.date.fromisoformat(match.group(1)),
                         dt.date.fromisoformat(match.group(2)), holder))
    return live


class GlobalLock(RunLock):
    """The weekly run's lock: the global RunLock, given up when a backfill slice is live."""

    def __init__(self, store: ObjectStore, settings: MetaSettings):
        super().__init__(store, settings.lock_key, settings.lock_ttl_seconds)
        self.settings = settings

    def acquire(self) -> None:
        """Take the global lock, then stop if any backfill slice holds a live lock."""
        super().acquire()
        live = live_slice_locks(self.store, self.settings)
        if live:
            self.release()
            first, last, holder = live[0]
            raise LockHeldError(
                f"a backfill slice {first}..{last} ({holder}) is running on this target "
                f"({len(live)} live slice lock(s) under "
                f"{self.store.describe(slice_lock_prefix(self.settings))}); this run stops "
                f"without writing")


class SliceLock(RunLock):
    """A backfill slice's lock on its own dates: slices of disjoint ranges run together."""

    def __init__(self, store: ObjectStore, settings: MetaSettings, first: dt.date,
                 last: dt.date):
        super().__init__(store, slice_lock_key(settings, first, last),
                         settings.lock_ttl_seconds)
        self.settings = settings
        self.first = first
        self.last = last

    def acquire(self) -> None:
        """Take this slice's lock, then stop if the weekly run or an overlapping slice is live."""
        super().acquire()
        weekly = RunLock(self.store, self.settings.lock_key,
                         self.settings.lock_ttl_seconds).live_holder()
        overlapping = [(first, last, holder)
                       for first, last, holder in live_slice_locks(self.store, self.settings)
                       if first <= self.last and self.first <= last
                       and (first, last) != (self.first, self.last)]
        if weekly is None and not overlapping:
            return
        self.release()
        if weekly is not None:
            other = f"the run holding {self.store.describe(self.settings.lock_key)} ({weekly})"
        else:
            first, last, holder = overlapping[0]
            other = f"an overlapping backfill slice {first}..{last} ({holder})"
        raise LockHeldError(f"{other} is running on this target; slice {self.first}.."
                            f"{self.last} stops without writing")


class Claim:
    """A run's hold on its range: the dates to process, and the lock kept alive meanwhile."""

    def __init__(self, dates: list[dt.date], lock: RunLock | None = None):
        self.dates = dates
        self.lock = lock
        self.refreshed = time.monotonic()

    def keep_alive(self) -> None:
        """Refresh the lock once a quarter of its expiry has passed since the last refresh.

        A refresh is a conditional write (slow on some S3 servers): calling this after every
        date costs nothing, refreshing after every date would.
        """
        if self.lock is None or \
                time.monotonic() - self.refreshed <= self.lock.ttl_seconds / 4:
            return
        self.lock.refresh()
        self.refreshed = time.monotonic()


class JobControl:
    """Exactly-once over one target: its meta file, its report objects, and the lock a run
    takes; used by the run (XetraETL) and by --verify (RangeVerifier)."""

    def __init__(self, target: ObjectStore, config: AppConfig):
        self.target = target
        self.settings = config.meta
        self.meta = MetaProcess(target, config.meta)
        self.reports = ReportObjects(target, config.report)

    def pending(self, first: dt.date, last: dt.date) -> list[dt.date]:
        """Dates from `first` to `last` not yet in the meta file."""
        return self.meta.pending_dates(self.meta.load(), first, last)

    def orphans(self, snapshot: MetaSnapshot, scope: set[dt.date] | None = None) -> list[str]:
        """Report objects of dates the meta file does not list (left by a killed run).

        `scope` limits this to some dates, for runs that share the target with others.
        """
        return [key for day, key in self.reports.by_date().items()
                if day not in snapshot.entries and (scope is None or day in scope)]

    def remove_orphans(self, snapshot: MetaSnapshot, scope: set[dt.date] | None = None) -> int:
        """Delete the orphans; returns how many."""
        orphans = self.orphans(snapshot, scope)
        for key in orphans:
            logger.warning("removing orphan report object %s (date not in meta file)",
                           self.target.describe(key))
            self.target.delete(key)
        return len(orphans)

    @contextmanager
    def claim(self, first: dt.date, last: dt.date, slice_only: bool = False
              ) -> Iterator[Claim]:
        """Hold `first`..`last` for a run: take the lock the run needs, remove orphans, and
        yield the pending dates; the lock is released on leaving, whatever happens.

        `slice_only`: a backfill slice, run beside other slices: it locks and cleans up only
        its own dates. With nothing to do, no lock is taken and nothing is written.
        """
        scope = set(date_range(first, last)) if slice_only else None
        snapshot = self.meta.load()
        if not self.meta.pending_dates(snapshot, first, last) and \
                not self.orphans(snapshot, scope):
            logger.info("nothing to do: every date from %s to %s is in the meta file", first,
                        last)
            yield Claim([])
            return
        lock = SliceLock(self.target, self.settings, first, last) if slice_only \
            else GlobalLock(self.target, self.settings)
        lock.acquire()
        try:
            snapshot = self.meta.load()  # again: another run may have finished meanwhile
            self.remove_orphans(snapshot, scope)
            pending = self.meta.pending_dates(snapshot, first, last)
            logger.info("%d date(s) to process from %s to %s", len(pending), first, last)
            yield Claim(pending, lock)
        finally:
            lock.release()

    def record(self, day: dt.date, key: str, rows: int) -> None:
        """Record the date as done, with its report object's key ("" for none) and rows.

        When the meta file cannot be updated, the date's new report object is removed unless
        the meta file lists the date after all (the write may have landed before the error),
        and the error is raised again.
        """
        try:
            self.meta.record([MetaEntry(day, utc_now_iso(), key, str(rows))])
        except StorageError:
            self._discard_unrecorded(day, key)
            raise

    def _discard_unrecorded(self, day: dt.date, key: str) -> None:
        if not key:
            return
        try:
            if day not in self.meta.load().entries:
                logger.warning("removing report object %s: its date could not be recorded",
                               self.target.describe(key))
                self.target.delete(key)
        except StorageError as exc:
            logger.warning("could not remove %s (%s); the next run removes it as an orphan",
                           self.target.describe(key), exc)
