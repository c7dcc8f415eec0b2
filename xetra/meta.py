"""The meta file: which dates are done, read and validated, updated without losing an update."""
from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import random
import time
from dataclasses import dataclass, replace
from typing import Iterable

from xetra.config import MetaSettings
from xetra.dates import date_range
from xetra.errors import MetaFileError, PreconditionFailed, StorageError
from xetra.storage import ObjectStore

logger = logging.getLogger(__name__)

# The job's columns: the two every tool writes, where the report is, how the date was computed
# (xetra.catchup), how complete its source looked, and operator-accepted gaps. A column of
# another tool or of the user (e.g. `note`) is kept, after these, when the job rewrites the file.
META_COLUMNS = ("source_date", "datetime_of_processing", "report_key", "report_rows",
                "previous_trading_day", "recomputed_at", "hourly_objects", "missing_hours",
                "status", "reason")
REQUIRED_META_COLUMNS = META_COLUMNS[:2]
# Parallel backfill slices contend for the meta file: with full-jitter backoff capped at 2 s,
# 60 attempts give a writer about a minute before it gives up (and Argo retries the slice).
_MAX_WRITE_ATTEMPTS = 60


@dataclass(frozen=True)
class MetaEntry:  # pylint: disable=too-many-instance-attributes
    """One date of the meta file: when it was processed, into which report object, how many
    rows, the previous trading day it was compared with (xetra.catchup), when it was last
    computed again, how many hourly objects it had and which session hours lacked trades;
    or, with `status` accepted_missing, an operator's record that it will never have data.
    `extra` holds the values of columns the job does not know, as read."""

    source_date: dt.date
    datetime_of_processing: str
    report_key: str = ""
    report_rows: str = ""
    previous_trading_day: str = ""
    recomputed_at: str = ""
    hourly_objects: str = ""
    missing_hours: str = ""
    status: str = ""
    reason: str = ""
    extra: tuple[tuple[str, str], ...] = ()

    def fields(self) -> list[str]:
        """The values of the job's columns, in META_COLUMNS order."""
        return [self.source_date.isoformat(), *(getattr(self, name) for name in META_COLUMNS[1:])]


@dataclass(frozen=True)
class MetaSnapshot:
    """The meta file as read, with the ETag a conditional update must match, and the names of
    the columns the job does not know (kept when it rewrites the file)."""

    entries: dict[dt.date, MetaEntry]
    etag: str | None
    extra_columns: tuple[str, ...] = ()

    @property
    def dates(self) -> set[dt.date]:
        """The dates already processed."""
        return set(self.entries)


def _as_utc(timestamp: str) -> dt.datetime:
    """A datetime_of_processing as an aware datetime (no zone: UTC, docs/CONTRACT.md §4.1)."""
    value = dt.datetime.fromisoformat(timestamp)
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


class MetaProcess:
    """Reads, validates and updates the meta file that records which dates are done."""

    def __init__(self, store: ObjectStore, settings: MetaSettings):
        self.store = store
        self.key = settings.key
        # Contention figures of this process's updates (412s lost, seconds spent waiting).
        self.updates = 0
        self.conflicts = 0
        self.update_seconds = 0.0
        self._warned: set[str] = set()  # a file is read many times a run: warn once each
        # The version last read or written here: an update starts from it, not from a new
        # read (one round trip less per date); the conditional write still refuses it when
        # another writer got in between, and the retry then reads the file again.
        self._known: MetaSnapshot | None = None

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            logger.warning("%s", message)

    def contention_line(self) -> str:
        """How this process's updates went: updates, 412 conflicts, seconds spent."""
        per_update = self.update_seconds / self.updates if self.updates else 0.0
        return (f"meta file updates={self.updates} conflicts_412={self.conflicts} "
                f"update_seconds={self.update_seconds:.2f} ({per_update:.3f} s per update)")

    def _fail(self, problem: str) -> MetaFileError:
        return MetaFileError(
            f"meta file {self.store.describe(self.key)}: {problem}; repair or restore it by "
            f"hand (one row per processed date, columns {','.join(REQUIRED_META_COLUMNS)}), "
            f"the job never rewrites it")

    def parse(self, data: bytes) -> dict[dt.date, MetaEntry]:
        """Validate the meta file's content and return its entries by date."""
        return self.parse_with_columns(data)[0]

    def parse_with_columns(self, data: bytes
                           ) -> tuple[dict[dt.date, MetaEntry], tuple[str, ...]]:
        """The entries by date, and the names of the columns the job does not know.

        A date listed more than once (the course's reference job appends on reruns) is read
        as its earliest processing, with a warning; anything else it cannot read stops it.
        """
        try:
            text = data.decode("utf-8-sig")
            rows = list(csv.reader(io.StringIO(text)))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise self._fail(f"not a UTF-8 CSV ({exc})") from exc
        if not rows:
            raise self._fail("empty, not even a header")
        header = [name.strip() for name in rows[0]]
        missing = [name for name in REQUIRED_META_COLUMNS if name not in header]
        if missing:
            raise self._fail(f"header {rows[0]!r} lacks column(s) {', '.join(missing)}")
        twice = sorted({name for name in header if header.count(name) > 1})
        if twice:
            raise self._fail(f"header column {twice[0]!r} appears twice")
        extra_columns = tuple(name for name in header if name not in META_COLUMNS)
        listed: dict[dt.date, list[tuple[int, MetaEntry]]] = {}
        for line_number, row in enumerate(rows[1:], start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise self._fail(f"line {line_number} has {len(row)} fields, "
                                 f"the header {len(header)}")
            values = dict(zip(header, row))
            known = {name: values.get(name, "").strip() for name in META_COLUMNS}
            day = self._parse_date(known.pop("source_date"), line_number)
            self._check_timestamp(known["datetime_of_processing"], line_number)
            entry = MetaEntry(day, **known,
                              extra=tuple((name, values[name]) for name in extra_columns))
            listed.setdefault(day, []).append((line_number, entry))
        return {day: self._earliest(day, found) for day, found in listed.items()}, extra_columns

    def _earliest(self, day: dt.date, found: list[tuple[int, MetaEntry]]) -> MetaEntry:
        """The entry of the earliest processing among a date's lines (warned when several)."""
        line_number, entry = min(found, key=lambda item: (
            _as_utc(item[1].datetime_of_processing), item[0]))
        if len(found) > 1:
            lines = ", ".join(str(number) for number, _ in found)
            self._warn_once(f"meta file {self.store.describe(self.key)} lists {day} "
                            f"{len(found)} times (listed on lines {lines}); keeping the "
                            f"earliest processing (line {line_number}, "
                            f"{entry.datetime_of_processing}); the next update writes it once")
        return entry

    def _parse_date(self, value: str, line_number: int) -> dt.date:
        try:
            if len(value) != 10:
                raise ValueError("expected YYYY-MM-DD")
            return dt.date.fromisoformat(value)
        except ValueError as exc:
            raise self._fail(f"line {line_number}: bad source_date {value!r}") from exc

    def _check_timestamp(self, value: str, line_number: int) -> None:
        try:
            dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise self._fail(f"line {line_number}: bad datetime_of_processing "
                             f"{value!r}") from exc

    @staticmethod
    def serialise(entries: Iterable[MetaEntry], extra_columns: Iterable[str] = ()) -> bytes:
        """The meta file's content, one row per date in date order; the columns the job does
        not know come after its own, as they were read."""
        extra_columns = tuple(extra_columns)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*META_COLUMNS, *extra_columns])
        for entry in sorted(entries, key=lambda e: e.source_date):
            extra = dict(entry.extra)
            writer.writerow([*entry.fields(), *(extra.get(name, "") for name in extra_columns)])
        return out.getvalue().encode("utf-8")

    def load(self) -> MetaSnapshot:
        """The meta file as it is now (no file yet: no dates)."""
        current = self.store.get_versioned(self.key)
        if current is None:
            self._known = MetaSnapshot({}, None)
        else:
            entries, extra_columns = self.parse_with_columns(current.data)
            self._known = MetaSnapshot(entries, current.etag, extra_columns)
        return self._known

    def current(self) -> MetaSnapshot:
        """The version last read or written here, read when there is none: for what a run
        reports after its own updates (another writer's change since is not seen)."""
        return self._known if self._known is not None else self.load()

    @staticmethod
    def pending_dates(snapshot: MetaSnapshot, first: dt.date, last: dt.date) -> list[dt.date]:
        """Dates from `first` to `last` that the meta file does not list yet."""
        return [day for day in date_range(first, last) if day not in snapshot.entries]

    def record(self, new_entries: list[MetaEntry]) -> MetaSnapshot:
        """Add entries (and update those of recomputed dates) with a conditional write,
        re-reading and retrying when another run updated the file in between (optimistic
        concurrency: no update is ever lost)."""
        started = time.monotonic()
        for attempt in range(1, _MAX_WRITE_ATTEMPTS + 1):
            snapshot = self._known if attempt == 1 and self._known is not None else self.load()
            merged = dict(snapshot.entries)
            for entry in new_entries:
                existing = merged.get(entry.source_date)
                if existing is None:
                    merged[entry.source_date] = entry
                elif entry.recomputed_at and not existing.status:
                    # A recompute: first processing time and the user's columns stay.
                    merged[entry.source_date] = replace(
                        entry, datetime_of_processing=existing.datetime_of_processing,
                        extra=existing.extra)
                else:
                    logger.warning("meta file already lists %s; keeping the existing entry",
                                   entry.source_date)
            data = self.serialise(merged.values(), snapshot.extra_columns)
            try:
                etag = self.store.put_bytes(self.key, data, if_none_match=snapshot.etag is None,
                                            if_match=snapshot.etag)
                self.updates += 1
                self.update_seconds += time.monotonic() - started
                self._known = MetaSnapshot(merged, etag, snapshot.extra_columns)
                return self._known
            except PreconditionFailed:
                self.conflicts += 1
                logger.info("meta file changed during update (attempt %d), retrying", attempt)
                # Full jitter: writers that lost together do not retry in lockstep.
                time.sleep(random.uniform(0, min(0.05 * 2 ** attempt, 2.0)))
        raise StorageError(f"cannot update meta file {self.store.describe(self.key)}: it kept "
                           f"changing during {_MAX_WRITE_ATTEMPTS} attempts")
