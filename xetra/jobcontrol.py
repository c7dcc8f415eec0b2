"""Job control: how every date of a target is processed exactly once, whatever order its data
arrives in.

The story, in the order of this module:

- The meta file (xetra.meta.MetaProcess) lists the dates that are done (and gaps an operator
  accepted). A run processes the dates of its range the file does not list and whose source
  has hourly objects, oldest first; then the dates of its range whose report compares with
  a day that is no longer their previous trading day (stale: a late date has been recorded
  since, xetra.catchup), computed again under the same key.
- Each date's report object has a key derived from the date alone (ReportObjects), so a rerun
  overwrites rather than adds. A date is committed report object first, then its meta entry
  (a conditional write; dates that queued up behind a commit share one, xetra.etl's
  GroupCommitter). A run killed in between leaves a report object of a date the meta
  file does not list, which the next run that processes the date writes again; a killed
  recompute leaves the date stale, so the next run computes it again.
- A run never deletes or overwrites the report object of a date it does not process: objects
  of dates the meta file does not list (a killed run's, another job's sharing the report
  prefix, dates of a meta file restored from a backup) are named in one warning and by
  `--verify`, never removed (docs/CONTRACT.md §4.6).
- A run works under a lock object (RunLock): created with If-None-Match, expiring after
  `meta.lock_ttl_seconds`, refreshed while the run works, released at the end. A lock whose
  owner died on this host and PID namespace is taken over at once.
- Which runs may work at once. The weekly run takes the global lock (GlobalLock) and works on
  its whole range, stale dates included: it must not run while any backfill slice is live; a
  backfill slice takes a lock of its own range (SliceLock) and works on its own dates only:
  it must not run while the weekly run is live, nor while another live slice overlaps its
  range (slices of one plan never overlap; two backfills of the same dates might). Each side
  first writes its own lock object, then looks for the others' (write, then read): with S3's
  read-after-write consistency at least one of two runs starting together sees the other and
  stops (exit 3, nothing written); both may stop, none both proceed. Argo retries the
  stopped one. A killed run's lock blocks the same dates until it expires.
- JobControl puts these together for a run (`claim`), for `--accept-missing` and for
  `--verify`.
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
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import Callable, Iterator

import pyarrow as pa

from xetra import formats
from xetra.catchup import ACCEPTED_MISSING, StaleDate, stale_dates
from xetra.config import AppConfig, MetaSettings, ReportSettings
from xetra.dates import date_range, utc_now_iso
from xetra.errors import (JobStateError, LockHeldError, PreconditionFailed, StorageError,
                          XetraError)
from xetra.meta import MetaEntry, MetaProcess, MetaSnapshot
from xetra.progress import format_dates
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

    def encode(self, table: pa.Table) -> bytes:
        """A report table as the bytes of its object, in the configured format."""
        return formats.serialise_table(table, self.settings.format)

    def write(self, day: dt.date, data: bytes) -> str:
        """Write the date's report object (bytes from `encode`); its key."""
        key = self.key(day)
        self.target.put_bytes(key, data)
        return key

    def remove(self, day: dt.date) -> str:
        """Delete the date's report object (only for a date the run processes); its key."""
        key = self.key(day)
        self.target.delete(key)
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
            pq = formats.parquet()
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
        self.written_at = 0.0  # time.monotonic() of the last write of the lock that succeeded

    def _content(self) -> bytes:
        expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=self.ttl_seconds)
        return json.dumps({"owner": self.owner, "acquired_at": utc_now_iso(),
                           "expires_at": expires.isoformat(timespec="seconds")}).encode()

    def acquire(self) -> None:
        """Take the lock (`take`), then stop if a run it excludes is live (`check_others`)."""
        self.take()
        self.check_others()

    def check_others(self) -> None:
        """After `take`: release and raise LockHeldError when a run this one must not work
        beside holds a lock of its own (none for a plain RunLock)."""

    def take(self) -> None:
        """Take the lock, or take over an expired one; LockHeldError when a live run has it."""
        try:
            self._written(self.store.put_bytes(self.key, self._content(), if_none_match=True))
            return
        except PreconditionFailed:
            pass
        current = self.store.get_versioned(self.key)
        if current is None:  # released in between: try once more from the start
            self._written(self._put_once(if_none_match=True))
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
        self._written(self._put_once(if_match=current.etag))

    def _written(self, etag: str) -> None:
        self.etag = etag
        self.written_at = time.monotonic()

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
            self._written(self.store.put_bytes(self.key, self._content(), if_match=self.etag))
        except PreconditionFailed as exc:
            raise LockHeldError(f"lost the lock {self.store.describe(self.key)} to another "
                                f"run; stopping") from exc

    def release(self) -> None:
        """Remove the lock if it is still ours: a DELETE conditional on the lock's ETag (S3
        refuses it with 412 when the object changed; a server that ignores the condition
        deletes). Within half the expiry since this run last wrote the lock, no other run can
        have taken it over (a live run's lock is taken over only once expired), so the DELETE
        goes without reading the lock first: one round trip at the end of every run. Later,
        the lock is read first and left alone unless its ETag is still ours."""
        if self.etag is None:
            return
        try:
            if time.monotonic() - self.written_at >= self.ttl_seconds / 2:
                current = self.store.get_versioned(self.key)
                if current is None or current.etag != self.etag:
                    return
            self.store.delete(self.key, if_match=self.etag)
        except PreconditionFailed:
            logger.info("lock %s is no longer this run's; left as it is",
                        self.store.describe(self.key))
        finally:
            self.etag = None

    @contextmanager
    def released_on_exit(self) -> Iterator[None]:
        """Release the lock when the block ends. When the block is failing already, a failed
        release is logged rather than raised, so the run stops with the block's own error."""
        try:
            yield
        except BaseException:
            try:
                self.release()
            except StorageError as exc:
                logger.warning("could not remove the lock %s (%s); it expires by itself",
                               self.store.describe(self.key), exc)
            raise
        self.release()


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

    def check_others(self) -> None:
        """Stop if any backfill slice holds a live lock."""
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

    def check_others(self) -> None:
        """Stop if the weekly run or an overlapping slice is live."""
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
    """A run's hold on its range: the dates to process, the dates with report objects the
    meta file does not list, and the lock kept alive meanwhile."""

    def __init__(self, dates: list[dt.date], lock: RunLock | None = None,
                 unlisted: set[dt.date] | None = None):
        self.dates = dates
        self.lock = lock
        self.unlisted = unlisted or set()
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


def unlisted_warning(days: list[dt.date]) -> str:
    """One line about report objects of dates the meta file does not list."""
    return (f"{len(days)} report object(s) of dates the meta file does not list "
            f"({format_dates(days)}): left as they are; a run that processes such a date "
            f"replaces its object, and one that is not this job's is removed by hand "
            f"(docs/CONTRACT.md, \"Report objects the meta file does not list\")")


class JobControl:
    """Exactly-once over one target: its meta file, its report objects, and the lock a run
    takes; used by the run (XetraETL), by --accept-missing and by --verify (RangeVerifier)."""

    def __init__(self, target: ObjectStore, config: AppConfig):
        self.target = target
        self.settings = config.meta
        self.job = config.job
        self.meta = MetaProcess(target, config.meta)
        self.reports = ReportObjects(target, config.report)

    def stale(self, snapshot: MetaSnapshot, first: dt.date, last: dt.date) -> list[StaleDate]:
        """The dates from `first` to `last` whose report compares with the wrong day."""
        return stale_dates(snapshot.entries, date_range(first, last), self.job.lookback_days,
                           self.job.first_date)

    def plan(self, first: dt.date, last: dt.date) -> list[dt.date]:
        """Dates from `first` to `last` not yet in the meta file, and the stale ones."""
        snapshot = self.meta.load()
        stale = [item.day for item in self.stale(snapshot, first, last)]
        return sorted({*self.meta.pending_dates(snapshot, first, last), *stale})

    def unlisted(self, snapshot: MetaSnapshot) -> list[dt.date]:
        """Dates with a report object that the meta file does not list (never removed)."""
        return sorted(day for day in self.reports.by_date() if day not in snapshot.entries)

    @contextmanager
    def claim(self, first: dt.date, last: dt.date, slice_only: bool = False,
              with_source: set[dt.date] | None = None,
              snapshot: MetaSnapshot | None = None) -> Iterator[Claim]:
        """Hold `first`..`last` for a run: take the lock the run needs and yield the pending
        dates (those in `with_source`, when given); the lock is released on leaving, whatever
        happens. Report objects of dates the meta file does not list are named in a warning.

        `slice_only`: a backfill slice, run beside other slices: it locks only its own
        dates. With nothing to do (no pending date with source, no stale date), no lock is
        taken and nothing is written. `snapshot`: the meta file as the caller has just read
        it (else read here), which decides whether a lock is needed at all.

        Round trips in series (each tens of ms on a remote S3): the lock's conditional PUT,
        then, at once, the others' locks, the meta file and the report listing, read again
        under the lock (another run may have finished meanwhile).
        """
        snapshot = snapshot or self.meta.load()

        def todo(snapshot: MetaSnapshot) -> list[dt.date]:
            return [day for day in self.meta.pending_dates(snapshot, first, last)
                    if with_source is None or day in with_source]

        if not todo(snapshot) and not self.stale(snapshot, first, last):
            self._warn_unlisted(snapshot, self.reports.by_date())
            logger.info("nothing to do: every date from %s to %s with source objects is in the "
                        "meta file", first, last)
            yield Claim([])
            return
        lock = SliceLock(self.target, self.settings, first, last) if slice_only \
            else GlobalLock(self.target, self.settings)
        try:
            lock.take()
        except LockHeldError:
            self._warn_unlisted(snapshot, self.reports.by_date())
            raise
        with lock.released_on_exit():
            with ThreadPoolExecutor(2, thread_name_prefix="xetra-claim") as side:
                meta_read, listing = side.submit(self.meta.load), side.submit(self.reports.by_date)
                try:
                    lock.check_others()  # meanwhile, in this thread
                except LockHeldError:
                    with suppress(XetraError):  # the run stops with the lock's error
                        self._warn_unlisted(meta_read.result(), listing.result())
                    raise
                snapshot = meta_read.result()
                unlisted = self._warn_unlisted(snapshot, listing.result())
            pending = todo(snapshot)
            logger.info("%d date(s) to process from %s to %s", len(pending), first, last)
            yield Claim(pending, lock, set(unlisted))

    @staticmethod
    def _warn_unlisted(snapshot: MetaSnapshot, reports: dict[dt.date, str]) -> list[dt.date]:
        """The dates with a report object the meta file does not list, named in a warning."""
        unlisted = sorted(day for day in reports if day not in snapshot.entries)
        if unlisted:
            logger.warning("%s", unlisted_warning(unlisted))
        return unlisted

    def record_group(self, entries: list[MetaEntry], recompute: bool = False) -> None:
        """Record the dates as done in one meta file update (a recompute: update their
        entries); their report objects must be written already.

        When the meta file cannot be updated, newly processed dates' report objects are
        removed unless the meta file lists the date after all (the write may have landed
        before the error), and the error is raised again; recomputed dates stay listed and
        stale, so their objects are left for the next run.
        """
        try:
            self.meta.record(entries)
        except StorageError:
            if not recompute:
                self.discard_unrecorded([(entry.source_date, entry.report_key)
                                         for entry in entries])
            raise

    def discard_unrecorded(self, written: list[tuple[dt.date, str]]) -> None:
        """Remove the report objects this run wrote (date, key) for dates it could not
        record, unless a fresh read of the meta file lists the date after all."""
        written = [(day, key) for day, key in written if key]
        if not written:
            return
        try:
            listed = self.meta.load().entries
        except StorageError as exc:
            for day, key in written:
                self._cannot_remove(day, key, exc)
            return
        for day, key in written:
            if day in listed:
                continue
            try:
                logger.warning("removing report object %s: its date could not be recorded",
                               self.target.describe(key))
                self.target.delete(key)
            except StorageError as exc:
                self._cannot_remove(day, key, exc)

    def _cannot_remove(self, day: dt.date, key: str, exc: StorageError) -> None:
        logger.warning("could not remove %s (%s); the next run that processes %s "
                       "replaces it", self.target.describe(key), exc, day)

    def accept_missing(self, days: list[dt.date], reason: str,
                       source_objects: Callable[[dt.date], int]) -> list[dt.date]:
        """Record `days` as accepted missing under the run lock; returns the dates added.

        JobStateError for a date that is already processed; a date that has source objects
        (`source_objects` counts them) is accepted with a warning: its data may be unusable.
        """
        lock = GlobalLock(self.target, self.settings)
        lock.acquire()
        with lock.released_on_exit():
            snapshot = self.meta.load()
            new = []
            for day in sorted(set(days)):
                entry = snapshot.entries.get(day)
                if entry is not None and entry.status == ACCEPTED_MISSING:
                    logger.info("%s is already recorded as accepted missing (%s)", day,
                                entry.reason)
                elif entry is not None:
                    rows = f" ({entry.report_rows} report rows)" if entry.report_rows else ""
                    raise JobStateError(f"--accept-missing: {day} is already processed{rows}; "
                                        f"only a date without data can be accepted")
                else:
                    count = source_objects(day)
                    if count:
                        logger.warning("%s has %d hourly source object(s); accepting it anyway: "
                                       "it will never be processed", day, count)
                    new.append(day)
            if new:
                self.meta.record([MetaEntry(day, utc_now_iso(), status=ACCEPTED_MISSING,
                                            reason=reason) for day in new])
                logger.info("recorded as accepted missing (%s): %s", reason, format_dates(new))
            return new
