"""The application layer: which dates a run processes, in which order, and how it commits."""
from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import pyarrow as pa

from xetra import transform
from xetra.config import AppConfig
from xetra.formats import (SOURCE_COLUMNS, TRADE_COLUMNS, ParsedSource, SourceFormatError,
                           empty_source_table)
from xetra.locks import GlobalLock, SliceLock
from xetra.meta import MetaEntry, MetaProcess, MetaSnapshot, date_range, utc_now_iso
from xetra.storage import ObjectStore, StorageError
from xetra.transform import RowCounts

logger = logging.getLogger(__name__)

# A header-only object is this many bytes (LF or CRLF line end): no need to GET it.
HEADER_ONLY_SIZES = frozenset({136, 137})
# Days read (and their trades selected) ahead of the one being summarised and written: two
# keep both cores busy (~10 % faster than one on a month, for ~60 MB more at peak).
READ_AHEAD_DAYS = 2


@dataclass
class DaySource:
    """The source rows of one date, as read from its hourly objects."""

    table: pa.Table
    malformed_rows: int
    skipped_objects: list[str] = field(default_factory=list)
    # Its trades and counts once selected; the read-ahead then drops `table` to save memory.
    selected: tuple[pa.Table, RowCounts] | None = None


@dataclass
class RunSummary:
    """What a run did; its `line()` is the last log line of the run."""

    processed: list[dt.date] = field(default_factory=list)
    waiting: list[dt.date] = field(default_factory=list)
    # Pending dates not started because the run's deadline came (see etl_report1 should_stop).
    left: list[dt.date] = field(default_factory=list)
    counts: RowCounts = field(default_factory=RowCounts)
    report_rows: int = 0
    report_keys: list[str] = field(default_factory=list)
    skipped_objects: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        """One line: dates, rows read, rows dropped by reason, report rows, keys, seconds."""
        if self.processed:
            dates = f"{len(self.processed)} ({self.processed[0]}..{self.processed[-1]})"
        else:
            dates = "0"
        keys = ", ".join(self.report_keys) if len(self.report_keys) <= 2 else \
            f"{self.report_keys[0]} .. {self.report_keys[-1]} ({len(self.report_keys)} objects)"
        waiting = f"; waiting for source data: {', '.join(map(str, self.waiting))}" \
            if self.waiting else ""
        left = f"; deadline reached, dates left for the next run: {len(self.left)} " \
            f"({self.left[0]}..{self.left[-1]})" if self.left else ""
        skipped = f"; skipped bad objects: {', '.join(self.skipped_objects)}" \
            if self.skipped_objects else ""
        counts = self.counts
        return (f"run summary: dates processed={dates}, rows read={counts.rows_read}, "
                f"rows dropped: invalid={counts.invalid} zero_volume={counts.zero_volume} "
                f"other_currency={counts.other_currency} duplicate={counts.duplicate}, "
                f"report rows={self.report_rows}, report keys={keys or 'none'}, "
                f"seconds={self.seconds:.2f}{waiting}{left}{skipped}")


class SourceReader:
    """Reads the hourly CSV objects of one date with a bounded pool of concurrent GETs."""

    def __init__(self, store: ObjectStore, pool: ThreadPoolExecutor, skip_bad_objects: bool,
                 columns: Sequence[str] = TRADE_COLUMNS):
        self.store = store
        self.pool = pool
        self.skip_bad_objects = skip_bad_objects
        self.columns = tuple(columns)  # parsed by default: what the report needs

    def hourly_objects(self, day: dt.date):
        """The date's hourly objects (per-minute objects are not read), or [] if none yet."""
        pattern = re.compile(rf"{day.isoformat()}_BINS_XETR(\d\d)\.csv")
        return [info for info in self.store.list_objects(f"{day.isoformat()}/")
                if pattern.fullmatch(info.key.rsplit("/", 1)[-1])]

    def _read(self, key: str, columns: Sequence[str]) -> ParsedSource | str:
        try:
            return self.store.read_csv(key, columns)
        except SourceFormatError as exc:
            if not self.skip_bad_objects:
                raise
            logger.warning("skipping bad object: %s", exc)
            return str(exc)

    def read_day(self, day: dt.date, columns: Sequence[str] | None = None) -> DaySource | None:
        """All rows of the date in key order (the reader's columns unless given), or None
        when it has no hourly objects yet."""
        columns = self.columns if columns is None else tuple(columns)
        objects = self.hourly_objects(day)
        if not objects:
            return None
        with_rows = [info.key for info in objects if info.size not in HEADER_ONLY_SIZES]
        parsed = list(self.pool.map(self._read, with_rows, [columns] * len(with_rows)))
        tables = [item.table for item in parsed if isinstance(item, ParsedSource)]
        return DaySource(
            table=pa.concat_tables([empty_source_table(columns), *tables]),
            malformed_rows=sum(item.malformed_rows for item in parsed
                               if isinstance(item, ParsedSource)),
            skipped_objects=[key for key, item in zip(with_rows, parsed)
                             if not isinstance(item, ParsedSource)],
        )


class PreviousTradingDays:
    """Closing prices of the latest trading day seen, and the days known to have no trades.

    The look-back reads the source for days this run has not processed, so a date's rows
    are the same whether it is computed alone or within a longer run (batch invariance).
    """

    def __init__(self, load_closes: Callable[[dt.date], pa.Table | None], lookback_days: int):
        self.load_closes = load_closes
        self.lookback_days = lookback_days
        self.latest: tuple[dt.date, pa.Table] | None = None
        self.without_trades: set[dt.date] = set()

    def remember(self, day: dt.date, closes: pa.Table | None) -> None:
        """Record what processing `day` found: its closes, or None for no trades."""
        if closes is None:
            self.without_trades.add(day)
        elif self.latest is None or day > self.latest[0]:
            self.latest = (day, closes)

    def closes_before(self, day: dt.date) -> pa.Table | None:
        """Closes of the latest trading day before `day` within the look-back, else None."""
        for back in range(1, self.lookback_days + 1):
            candidate = day - dt.timedelta(days=back)
            if self.latest is not None and candidate == self.latest[0]:
                return self.latest[1]
            if candidate in self.without_trades:
                continue
            closes = self.load_closes(candidate)
            self.remember(candidate, closes)
            if closes is not None:
                return closes
        return None


class XetraETL:
    """Extract the Xetra source of each pending date, transform it into report1, load it,
    and record the date in the meta file, one date at a time (exactly once per date)."""

    def __init__(self, source: ObjectStore, target: ObjectStore, config: AppConfig,
                 pool: ThreadPoolExecutor):
        self.config = config
        self.target = target
        self.reader = SourceReader(source, pool, config.job.skip_bad_objects)
        self.meta = MetaProcess(target, config.meta)
        self.history = PreviousTradingDays(self._closes_of, config.job.lookback_days)
        report = config.report
        self.report_key_pattern = re.compile(
            rf"{re.escape(report.prefix + report.name)}_(\d{{4}}-\d{{2}}-\d{{2}})\."
            rf"{re.escape(report.format)}")

    def report_key(self, day: dt.date) -> str:
        """The deterministic key of a date's report object, so a rerun overwrites, never adds."""
        report = self.config.report
        return f"{report.prefix}{report.name}_{day.isoformat()}.{report.format}"

    def extract(self, day: dt.date) -> DaySource | None:
        """The date's source rows, or None when none of its hourly objects exist yet."""
        return self.reader.read_day(day)

    def _trades(self, day: dt.date, source: DaySource) -> tuple[pa.Table, RowCounts]:
        if source.selected is None:
            currencies = self.config.report.currencies
            try:
                source.selected = transform.select_trades(source.table, day, currencies,
                                                          source.malformed_rows)
            except transform.NeedsAllColumns as exc:
                # Rare: read the day again with every column to find the exact duplicates.
                logger.info("%s: %s; reading its objects again with all columns", day, exc)
                full = self.reader.read_day(day, SOURCE_COLUMNS)
                if full is None:
                    raise SourceFormatError(f"{day}: hourly objects vanished while the day "
                                            f"was read") from None
                source.selected = transform.select_trades(full.table, day, currencies,
                                                          full.malformed_rows)
        return source.selected

    def _extract_and_select(self, day: dt.date) -> DaySource | None:
        """The date's source with its trades already selected (work for the read-ahead)."""
        source = self.extract(day)
        if source is not None:
            self._trades(day, source)
            source.table = empty_source_table(self.reader.columns)  # only trades needed now
        return source

    def _closes_of(self, day: dt.date) -> pa.Table | None:
        source = self.extract(day)
        if source is None:
            return None
        trades, _ = self._trades(day, source)
        if trades.num_rows == 0:
            return None
        return transform.closing_prices(transform.daily_summary(trades, day))

    def transform(self, day: dt.date, source: DaySource) -> tuple[pa.Table, RowCounts]:
        """report1 rows of the date (logical column names) and its row counts."""
        trades, counts = self._trades(day, source)
        if trades.num_rows == 0:
            self.history.remember(day, None)
            return transform.empty_report(), counts
        summary = transform.daily_summary(trades, day)
        report = transform.with_change_to_previous_close(
            summary, self.history.closes_before(day))
        self.history.remember(day, transform.closing_prices(summary))
        return report, counts

    def load(self, day: dt.date, report: pa.Table) -> str:
        """Write the date's report object; no object for a date without trades."""
        if report.num_rows == 0:
            return ""
        key = self.report_key(day)
        self.target.write_table(
            key, transform.with_output_names(report, self.config.report.columns),
            self.config.report.format)
        return key

    def orphans(self, snapshot: MetaSnapshot, scope: set[dt.date] | None = None) -> list[str]:
        """Report objects of dates the meta file does not list (left by a killed run).

        `scope` limits this to some dates, for runs that share the target with others.
        """
        found = []
        for info in self.target.list_objects(self.config.report.prefix):
            match = self.report_key_pattern.fullmatch(info.key)
            if match:
                day = dt.date.fromisoformat(match.group(1))
                if day not in snapshot.entries and (scope is None or day in scope):
                    found.append(info.key)
        return found

    def remove_orphans(self, snapshot: MetaSnapshot, scope: set[dt.date] | None = None) -> int:
        """Delete the orphans; returns how many."""
        orphans = self.orphans(snapshot, scope)
        for key in orphans:
            logger.warning("removing orphan report object %s (date not in meta file)",
                           self.target.describe(key))
            self.target.delete(key)
        return len(orphans)

    def plan(self, first: dt.date, last: dt.date) -> list[dt.date]:
        """Dates from `first` to `last` not yet in the meta file."""
        return self.meta.pending_dates(self.meta.load(), first, last)

    def etl_report1(self, first: dt.date, last: dt.date, slice_only: bool = False,
                    should_stop: Callable[[], bool] | None = None) -> RunSummary:
        """Process every pending date from `first` to `last` under the run lock.

        `slice_only`: a backfill slice, run beside other slices (see xetra.locks): it locks
        and cleans up only its own dates.
        `should_stop`: asked before each date; when it says True (a deadline) the run takes no
        new date, commits the ones done and lists the rest in `RunSummary.left`.
        """
        started = time.monotonic()
        summary = RunSummary()
        scope = set(date_range(first, last)) if slice_only else None
        snapshot = self.meta.load()
        if not self.meta.pending_dates(snapshot, first, last) and \
                not self.orphans(snapshot, scope):
            logger.info("nothing to do: every date from %s to %s is in the meta file", first,
                        last)
            summary.seconds = time.monotonic() - started
            return summary
        lock = SliceLock(self.target, self.config.meta, first, last) if slice_only \
            else GlobalLock(self.target, self.config.meta)
        lock.acquire()
        try:
            snapshot = self.meta.load()  # again: another run may have finished meanwhile
            self.remove_orphans(snapshot, scope)
            pending = self.meta.pending_dates(snapshot, first, last)
            logger.info("%d date(s) to process from %s to %s", len(pending), first, last)
            refreshed = time.monotonic()
            with ThreadPoolExecutor(1, thread_name_prefix="xetra-commit") as committer:
                committing: Future | None = None
                for index, (day, source) in enumerate(self._sources_ahead(pending)):
                    if should_stop is not None and should_stop():
                        summary.left = pending[index:]
                        logger.warning("deadline reached: %d date(s) left for the next run, "
                                       "from %s", len(summary.left), day)
                        break
                    committing = self._process_day(day, summary, source, committer, committing)
                    # A refresh is a conditional write (slow on some S3 servers): once a
                    # quarter of the expiry has passed is often enough to keep the lock alive.
                    if time.monotonic() - refreshed > self.config.meta.lock_ttl_seconds / 4:
                        lock.refresh()
                        refreshed = time.monotonic()
                if committing is not None:
                    committing.result()
        finally:
            lock.release()
        summary.seconds = time.monotonic() - started
        return summary

    def _discard_unrecorded(self, day: dt.date, key: str) -> None:
        """After a failed meta update, remove the date's new report object unless the meta
        file lists the date after all (the write may have landed before the error)."""
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

    def _sources_ahead(self, days: list[dt.date]) -> Iterator[tuple[dt.date, DaySource | None]]:
        """Each day with its source, while the next READ_AHEAD_DAYS days are being read.

        Reading, parsing and selecting the trades of the coming days (GETs, Arrow threads)
        overlap each other and the summary and writes of this one; at most READ_AHEAD_DAYS + 1
        days' rows are held. A read error surfaces when its day's turn comes, so every earlier
        day is committed first, as without read-ahead.
        """
        with ThreadPoolExecutor(READ_AHEAD_DAYS, thread_name_prefix="xetra-ahead") as ahead:
            upcoming = deque(ahead.submit(self._extract_and_select, day)
                             for day in days[:READ_AHEAD_DAYS])
            for index, day in enumerate(days):
                current = upcoming.popleft()
                if index + READ_AHEAD_DAYS < len(days):
                    upcoming.append(ahead.submit(self._extract_and_select,
                                                 days[index + READ_AHEAD_DAYS]))
                yield day, current.result()
                del current  # the day's rows are freed once it is done

    def _process_day(self, day: dt.date, summary: RunSummary, source: DaySource | None,
                     committer: ThreadPoolExecutor, previous: Future | None) -> Future | None:
        """Transform the day here and commit it (report, then meta entry) in `committer`.

        The writes of one day overlap the transform of the next: commits stay in date
        order, one at a time, and a failed commit stops the run before the next is started.
        Returns the day's pending commit (or `previous` when there is nothing to commit).
        """
        if source is None:
            logger.info("%s: no hourly source objects yet; left for a later run", day)
            summary.waiting.append(day)
            return previous
        report, counts = self.transform(day, source)

        def commit() -> None:
            key = self.load(day, report)
            try:
                self.meta.record([MetaEntry(day, utc_now_iso(), key, str(report.num_rows))])
            except StorageError:
                self._discard_unrecorded(day, key)
                raise
            logger.info("%s: %d rows read, %d rows dropped, %d report rows -> %s", day,
                        counts.rows_read, counts.dropped, report.num_rows, key or "no trades")
            summary.processed.append(day)
            summary.counts.add(counts)
            summary.report_rows += report.num_rows
            summary.skipped_objects.extend(source.skipped_objects)
            if key:
                summary.report_keys.append(key)

        if previous is not None:
            previous.result()  # raises the previous day's write error: stop before this one
        return committer.submit(commit)
