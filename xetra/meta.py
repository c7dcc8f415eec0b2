"""The meta file: which dates are done, read and validated, updated without losing an update."""
from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import random
import time
from dataclasses import dataclass
from typing import Iterable

from xetra.config import MetaSettings
from xetra.dates import date_range
from xetra.errors import MetaFileError, PreconditionFailed, StorageError
from xetra.storage import ObjectStore

logger = logging.getLogger(__name__)

META_COLUMNS = ("source_date", "datetime_of_processing", "report_key", "report_rows")
REQUIRED_META_COLUMNS = META_COLUMNS[:2]
# Parallel backfill slices contend for the meta file: with full-jitter backoff capped at 2 s,
# 60 attempts give a writer about a minute before it gives up (and Argo retries the slice).
_MAX_WRITE_ATTEMPTS = 60


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


class MetaProcess:
    """Reads, validates and updates the meta file that records which dates are done."""

    def __init__(self, store: ObjectStore, settings: MetaSettings):
        self.store = store
        self.key = settings.key
        # Contention figures of this process's updates (412s lost, seconds spent waiting).
        self.updates = 0
        self.conflicts = 0
        self.update_seconds = 0.0

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
        except ValueError as exc:
            raise self._fail(f"line {line_number}: bad source_date {value!r}") from exc

    def _check_timestamp(self, value: str, line_number: int) -> None:
        try:
            dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise self._fail(f"line {line_number}: bad datetime_of_processing "
                             f"{value!r}") from exc

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
