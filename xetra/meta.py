"""Job control: the meta file of processed dates, and the lock that keeps runs apart."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import os
import random
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Iterable
from zoneinfo import ZoneInfo

from xetra.config import MetaSettings
from xetra.storage import ObjectStore, PreconditionFailed, StorageError

logger = logging.getLogger(__name__)

META_COLUMNS = ("source_date", "datetime_of_processing", "report_key", "report_rows")
REQUIRED_META_COLUMNS = META_COLUMNS[:2]
_MAX_WRITE_ATTEMPTS = 20


class MetaFileError(RuntimeError):
    """The meta file is corrupt; the job stops rather than rewrite history."""


class LockHeldError(RuntimeError):
    """Another run holds the job's lock."""


@dataclass(frozen=True)
class MetaEntry:
    """One processed date: when, into which report object, how many rows."""

    source_date: dt.date
    datetime_of_processing: str
    report_key: str = ""
    report_rows: str = ""


@dataclass(frozen=True)
class MetaSnapshot:
    """The meta file as read, with the ETag a conditional update must match."""

    entries: dict[dt.date, MetaEntry]
    etag: str | None

    @property
    def dates(self) -> set[dt.date]:
        """The dates already processed."""
        return set(self.entries)


def utc_now_iso() -> str:
    """The current time in UTC, ISO 8601 with seconds."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def yesterday(timezone: str, now: dt.datetime | None = None) -> dt.date:
    """The day before today in `timezone` (Europe/Berlin: the exchange's calendar day)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return now.astimezone(ZoneInfo(timezone)).date() - dt.timedelta(days=1)


def date_range(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every calendar day from `first` to `last`, both included."""
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


class MetaProcess:
    """Reads, validates and updates the meta file that records which dates are done."""

    def __init__(self, store: ObjectStore, settings: MetaSettings):
        self.store = store
        self.key = settings.key
        # Contention figures of this process's updates (412s lost, seconds spent waiting).
        self.updates = 0
        self.conflicts = 0
        self.update_seconds = 0.0

    def _fail(self, problem: str) -> MetaFileError:
        return MetaFileError(
            f"meta file {self.store.describe(self.key)}: {problem}; repair or restore it by "
            f"hand (one row per processed date, columns {','.join(REQUIRED_META_COLUMNS)}), "
            f"the job never rewrites it")

    def parse(self, data: bytes) -> dict[dt.date, MetaEntry]:
        """Validate the meta file's content and return its entries by date."""
        try:
            text = data.decode("utf-8-sig")
            rows = list(csv.reader(io.StringIO(text)))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise self._fail(f"not a UTF-8 CSV ({exc})") from None
        if not rows:
            raise self._fail("empty, not even a header")
        header = [name.strip() for name in rows[0]]
        missing = [name for name in REQUIRED_META_COLUMNS if name not in header]
        if missing:
            raise self._fail(f"header {rows[0]!r} lacks column(s) {', '.join(missing)}")
        position = {name: header.index(name) for name in META_COLUMNS if name in header}
        entries: dict[dt.date, MetaEntry] = {}
        for line_number, row in enumerate(rows[1:], start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise self._fail(f"line {line_number} has {len(row)} fields, "
                                 f"the header {len(header)}")
            values = {name: row[index].strip() for name, index in position.items()}
            day = self._parse_date(values["source_date"], line_number)
            if day in entries:
                raise self._fail(f"line {line_number}: date {day} is listed twice")
            self._check_timestamp(values["datetime_of_processing"], line_number)
            entries[day] = MetaEntry(day, values["datetime_of_processing"],
                                     values.get("report_key", ""), values.get("report_rows", ""))
        return entries

    def _parse_date(self, value: str, line_number: int) -> dt.date:
        try:
            if len(value) != 10:
                raise ValueError("expected YYYY-MM-DD")
            return dt.date.fromisoformat(value)
        except ValueError:
            raise self._fail(f"line {line_number}: bad source_date {value!r}") from None

    def _check_timestamp(self, value: str, line_number: int) -> None:
        try:
            dt.datetime.fromisoformat(value)
        except ValueError:
            raise self._fail(f"line {line_number}: bad datetime_of_processing "
                             f"{value!r}") from None

    @staticmethod
    def serialise(entries: Iterable[MetaEntry]) -> bytes:
        """The meta file's content, one row per date in date order."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(META_COLUMNS)
        for entry in sorted(entries, key=lambda e: e.source_date):
            writer.writerow([entry.source_date.isoformat(), entry.datetime_of_processing,
                             entry.report_key, entry.report_rows])
        return out.getvalue().encode("utf-8")

    def load(self) -> MetaSnapshot:
        """The meta file as it is now (no file yet: no dates)."""
        current = self.store.get_versioned(self.key)
        if current is None:
            return MetaSnapshot({}, None)
        return MetaSnapshot(self.parse(current.data), current.etag)

    @staticmethod
    def pending_dates(snapshot: MetaSnapshot, first: dt.date, last: dt.date) -> list[dt.date]:
        """Dates from `first` to `last` that the meta file does not list yet."""
        return [day for day in date_range(first, last) if day not in snapshot.entries]

    def record(self, new_entries: list[MetaEntry]) -> MetaSnapshot:
        """Add entries with a conditional write, re-reading and retrying when another run
        updated the file in between (optimistic concurrency: no update is ever lost)."""
        started = time.monotonic()
        for attempt in range(1, _MAX_WRITE_ATTEMPTS + 1):
            snapshot = self.load()
            merged = dict(snapshot.entries)
            for entry in new_entries:
                if entry.source_date in merged:
                    logger.warning("meta file already lists %s; keeping the existing entry",
                                   entry.source_date)
                    continue
                merged[entry.source_date] = entry
            data = self.serialise(merged.values())
            try:
                etag = self.store.put_bytes(self.key, data, if_none_match=snapshot.etag is None,
                                            if_match=snapshot.etag)
                self.updates += 1
                self.update_seconds += time.monotonic() - started
                return MetaSnapshot(merged, etag)
            except PreconditionFailed:
                self.conflicts += 1
                logger.info("meta file changed during update (attempt %d), retrying", attempt)
                # Full jitter: writers that lost together do not retry in lockstep.
                time.sleep(random.uniform(0, min(0.05 * 2 ** attempt, 2.0)))
        raise StorageError(f"cannot update meta file {self.store.describe(self.key)}: it kept "
                           f"changing during {_MAX_WRITE_ATTEMPTS} attempts")


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
        except PreconditionFailed:
            raise LockHeldError(f"another run took the lock {self.store.describe(self.key)} "
                                f"at the same moment; this run stops without writing") from None

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
        except PreconditionFailed:
            raise LockHeldError(f"lost the lock {self.store.describe(self.key)} to another "
                                f"run; stopping") from None

    def release(self) -> None:
        """Remove the lock if it is still ours."""
        current = self.store.get_versioned(self.key)
        if current is not None and current.etag == self.etag:
            self.store.delete(self.key)
        self.etag = None
