"""The application layer: which dates a run processes, in which order, and how it commits."""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator, Sequence
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from xetra import formats, transform
from xetra.catchup import (ACCEPTED_MISSING, StaleDate, missing_session_hours,
                           previous_day_text, split_overdue)
from xetra.config import AppConfig
from xetra.dates import utc_now_iso
from xetra.errors import NeedsAllColumns, OverdueData, SourceFormatError, TooManyInvalidRows
from xetra.formats import (HEADER_ONLY_SIZES, SOURCE_COLUMNS, TRADE_COLUMNS, ParsedSource,
                           empty_source_table)
from xetra.jobcontrol import Claim, JobControl
from xetra.meta import MetaEntry, MetaProcess, MetaSnapshot
from xetra.progress import Progress, format_dates
from xetra.source_index import SourceIndex
from xetra.storage import ObjectStore
from xetra.transform import RowCounts

logger = logging.getLogger(__name__)

# Days read (and their trades selected) ahead of the one being summarised and written: two
# keep both cores busy (~10 % faster than one on a month, for ~60 MB more at peak). Three
# were no faster locally, and through the 30 ms proxy 0.95x in one interleaved set and 1.01x
# in the next (benchmarks/README.md, issue 13), for ~25 MB more on six months: not taken.
READ_AHEAD_DAYS = 2


@dataclass
class DaySource:
    """The source rows of one date, as read from its hourly objects."""

    table: pa.Table
    malformed_rows: int
    skipped_objects: list[str] = field(default_factory=list)
    hourly_objects: int = 0
    # The objects `table` was read from, in its row order: (key, rows of the object in it).
    objects: list[tuple[str, int]] = field(default_factory=list)
    # Its trades and counts once selected; the read-ahead then drops `table` to save memory.
    selected: tuple[pa.Table, RowCounts] | None = None


@dataclass
class RunSummary:  # pylint: disable=too-many-instance-attributes
    """What a run did; its `line()` is the last log line of the run."""

    processed: list[dt.date] = field(default_factory=list)
    recomputed: list[dt.date] = field(default_factory=list)
    overdue: list[dt.date] = field(default_factory=list)
    waiting: list[dt.date] = field(default_factory=list)
    # Dates not started because the run's deadline came (see etl_report1's should_stop).
    left: list[dt.date] = field(default_factory=list)
    counts: RowCounts = field(default_factory=RowCounts)
    report_rows: int = 0
    report_keys: list[str] = field(default_factory=list)
    skipped_objects: list[str] = field(default_factory=list)
    seconds: float = 0.0
    max_wait_days: int = 0

    def line(self) -> str:
        """One line: dates, rows read, rows dropped by reason, report rows, keys, seconds;
        then the dates recomputed, overdue and waiting, as ranges."""
        if self.processed:
            dates = f"{len(self.processed)} ({self.processed[0]}..{self.processed[-1]})"
        else:
            dates = "0"
        if self.recomputed:
            dates += f", recomputed={len(self.recomputed)} ({format_dates(self.recomputed)})"
        keys = ", ".join(self.report_keys) if len(self.report_keys) <= 2 else \
            f"{self.report_keys[0]} .. {self.report_keys[-1]} ({len(self.report_keys)} objects)"
        tail = "".join(f"; {name}: {text}" for name, text in (
            ("overdue", format_dates(self.overdue)), ("waiting", format_dates(self.waiting)),
            ("deadline reached, dates left for the next run", format_dates(self.left)),
            ("skipped bad objects", ", ".join(self.skipped_objects))) if text)
        counts = self.counts
        return (f"run summary: dates processed={dates}, rows read={counts.rows_read}, "
                f"rows dropped: invalid={counts.invalid} zero_volume={counts.zero_volume} "
                f"other_currency={counts.other_currency} duplicate={counts.duplicate}, "
                f"report rows={self.report_rows}, report keys={keys or 'none'}, "
                f"seconds={self.seconds:.2f}{tail}")

    def overdue_error(self) -> OverdueData | None:
        """The alarm for the overdue dates, as one line; None when there are none."""
        if not self.overdue:
            return None
        verb = "has" if len(self.overdue) == 1 else "have"
        days = "day" if self.max_wait_days == 1 else "days"
        return OverdueData(f"overdue source data: {format_dates(self.overdue)} {verb} no hourly "
                           f"objects more than {self.max_wait_days} {days} after the date "
                           f"(job.max_wait_days); record a date that will never have data with "
                           f"--accept-missing DATE --reason TEXT")


class SourceReader:
    """Reads the hourly CSV objects of one date with a bounded pool of concurrent GETs."""

    def __init__(self, store: ObjectStore, pool: ThreadPoolExecutor, skip_bad_objects: bool,
                 columns: Sequence[str] = TRADE_COLUMNS):
        self.store = store
        self.pool = pool
        self.skip_bad_objects = skip_bad_objects
        self.columns = tuple(columns)  # parsed by default: what the report needs
        self.index = SourceIndex(store)  # a month per LIST, not a date (issue 13)

    def hourly_objects(self, day: dt.date):
        """The date's own hourly objects (formats.is_hourly_object), or [] if none yet."""
        return [info for info in self.index.objects(day)
                if formats.is_hourly_object(info.key, day)]

    def read_object(self, key: str, columns: Sequence[str] = SOURCE_COLUMNS) -> ParsedSource:
        """GET one source object and parse its `columns` (SourceFormatError if not a CSV)."""
        # formats.parse_source_csv looked up at call time: the fault tests' wrappers patch it.
        return formats.parse_source_csv(self.store.get_bytes(key), self.store.describe(key),
                                        columns)

    def _read(self, key: str, columns: Sequence[str]) -> ParsedSource | str:
        try:
            return self.read_object(key, columns)
        except SourceFormatError as exc:
            if not self.skip_bad_objects:
                raise
            logger.warning("skipping bad object: %s", exc)
            return str(exc)

    def dates_with_hourly_objects(self, first: dt.date, last: dt.date) -> list[dt.date]:
        """The dates from `first` to `last` whose folder exists in the source, in order: one
        listing of folder names instead of one listing per date (most dates of a long range
        have none). A folder may still hold no hourly objects (only per-minute ones): reading
        the date then finds none, and it waits like a date without a folder."""
        found = []
        for name in self.index.folders(first, last):
            try:
                day = dt.date.fromisoformat(name) if len(name) == 10 else None
            except ValueError:
                continue
            if day is not None and first <= day <= last:
                found.append(day)
        return sorted(found)

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
            hourly_objects=len(objects),
            objects=[(key, item.table.num_rows) for key, item in zip(with_rows, parsed)
                     if isinstance(item, ParsedSource)],
        )

    def read_rows(self, source: DaySource, rows: pa.Array, columns: Sequence[str]) -> pa.Table:
        """The raw `columns` of the day's rows at positions `rows` (ascending) of
        `source.table`: each object holding some of them is fetched again and read block by
        block, one object at a time, so memory stays that of one object and the rows kept."""
        parts, start = [], 0
        for key, count in source.objects:
            inside = pc.and_(pc.greater_equal(rows, start), pc.less(rows, start + count))
            if pc.any(inside).as_py():
                # formats.read_source_rows looked up at call time, as parse_source_csv above.
                parts.append(formats.read_source_rows(
                    self.store.get_bytes(key), self.store.describe(key), columns,
                    pc.subtract(rows.filter(inside), start), count))
            start += count
        return pa.concat_tables(parts)


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
        found = self.previous_before(day)
        return None if found is None else found[1]

    def previous_before(self, day: dt.date) -> tuple[dt.date, pa.Table] | None:
        """The latest trading day before `day` within the look-back and its closes, or None."""
        for back in range(1, self.lookback_days + 1):
            candidate = day - dt.timedelta(days=back)
            if self.latest is not None and candidate == self.latest[0]:
                return self.latest
            if candidate in self.without_trades:
                continue
            closes = self.load_closes(candidate)
            self.remember(candidate, closes)
            if closes is not None:
                return candidate, closes
        return None


@dataclass
class DayResult:
    """One date computed: its report rows and what its meta file entry records."""

    report: pa.Table
    counts: RowCounts
    previous_day: dt.date | None = None
    missing_hours: list[int] = field(default_factory=list)


@dataclass
class DayCommit:
    """A computed date waiting for its commit: its report rows, its meta entry (report key
    still empty), whether it is a recompute, and what to do once it is recorded (given its
    report key)."""

    day: dt.date
    report: pa.Table
    entry: MetaEntry
    recompute: bool
    recorded: Callable[[str], None]


class GroupCommitter:
    """Commits computed dates in date order, in one thread, while the next ones are computed.

    The dates that queue up while a commit is under way go together into the next one: their
    report objects are written (at once), then one conditional meta-file update records them
    all. A date is recorded only once its report object is written; a crash in between
    leaves report objects whose dates the meta file does not list, as with one date at a
    time (docs/CONTRACT.md §4.4). When a report write fails, the dates before it in the group
    are recorded, the objects written for the dates after it are removed (as for a failed
    meta update), and no later commit starts; the error is raised by the next `submit` or by
    `close`.
    """

    def __init__(self, etl: "XetraETL", claim: Claim):
        self.etl = etl
        self.claim = claim
        self._queue: list[DayCommit] = []
        self._guard = threading.Lock()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="xetra-commit")
        self._writers = ThreadPoolExecutor(READ_AHEAD_DAYS + 1, thread_name_prefix="xetra-write")
        self._pending: list[Future] = []
        self._stopped = False  # set in the commit thread once a commit has failed

    def submit(self, item: DayCommit) -> None:
        """Queue the date's commit (after every date submitted before it); raises the error of
        a commit that has failed, before this date is queued."""
        self.check()
        with self._guard:
            self._queue.append(item)
        self._pending.append(self._thread.submit(self._commit_queued))

    def check(self) -> None:
        """Raise the error of a finished commit that failed."""
        for future in self._pending:
            if future.done() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]

    def close(self, failing: bool = False) -> None:
        """Wait for every queued commit; raise the first commit error unless `failing` (the
        caller is already raising one of its own)."""
        self._thread.shutdown(wait=True)
        self._writers.shutdown(wait=True)
        if not failing:
            for future in self._pending:
                future.result()

    def _commit_queued(self) -> None:
        with self._guard:
            group, self._queue = self._queue, []
        if not group or self._stopped:
            return
        try:
            self._commit(group)
        except BaseException:
            self._stopped = True
            raise

    def _commit(self, group: list[DayCommit]) -> None:
        encoded, unencoded = self._encode(group)
        writes = [self._writers.submit(self.etl.load, item.day, data, self.claim)
                  if len(group) > 1 else None for item, data in zip(group, encoded)]
        keys: list[str] = []
        failure: BaseException | None = None
        for item, data, write in zip(group, encoded, writes):
            try:
                key = self.etl.load(item.day, data, self.claim) if write is None \
                    else write.result()
            except Exception as exc:  # pylint: disable=broad-except  # raised below
                failure = failure or exc
                continue
            if failure is None:
                keys.append(key)
            elif key and not item.recompute:
                # Written after an earlier date of the group failed: it is not recorded.
                self.etl.control.discard_unrecorded([(item.day, key)])
        done = group[:len(keys)]
        if done:
            self.etl.control.record_group(
                [replace(item.entry, report_key=key) for item, key in zip(done, keys)],
                recompute=done[0].recompute)
            for item, key in zip(done, keys):
                item.recorded(key)
        if failure or unencoded:
            raise failure or unencoded  # type: ignore[misc]

    def _encode(self, group: list[DayCommit]) -> tuple[list[bytes | None], Exception | None]:
        """The group's report objects, encoded in this thread one after the other (parquet
        encoding in several threads at once raised six months' peak RSS by ~20 MB, issue
        16); up to the first date that fails, and that error (its write fails in its place)."""
        encoded: list[bytes | None] = []
        for item in group:
            try:
                encoded.append(self.etl.encode(item.report))
            except Exception as exc:  # pylint: disable=broad-except  # raised by _commit
                return encoded, exc
        return encoded, None


class XetraETL:
    """Extract the Xetra source of each pending date, transform it into report1, load it,
    and record the date in the meta file, one date at a time (exactly once per date)."""

    def __init__(self, source: ObjectStore, target: ObjectStore, config: AppConfig,
                 pool: ThreadPoolExecutor):
        self.config = config
        self.reader = SourceReader(source, pool, config.job.skip_bad_objects)
        self.control = JobControl(target, config)
        self.history = PreviousTradingDays(self._closes_of, config.job.lookback_days)

    @property
    def meta(self) -> MetaProcess:
        """The target's meta file."""
        return self.control.meta

    def extract(self, day: dt.date) -> DaySource | None:
        """The date's source rows, or None when none of its hourly objects exist yet."""
        return self.reader.read_day(day)

    def _trades(self, day: dt.date, source: DaySource) -> tuple[pa.Table, RowCounts]:
        if source.selected is None:
            currencies = self.config.report.currencies
            try:
                selected = transform.select_trades(source.table, day, currencies,
                                                   source.malformed_rows)
            except NeedsAllColumns as exc:
                # Trades share ISIN and Time: fetch the columns not parsed for those rows only.
                logger.info("%s: %s; reading them for those rows", day, exc)
                selected = transform.select_trades(
                    source.table, day, currencies, source.malformed_rows,
                    self.reader.read_rows(source, exc.rows, exc.columns))
            self._check_invalid_share(day, source, selected[1])
            source.selected = selected
        return source.selected

    def _check_invalid_share(self, day: dt.date, source: DaySource, counts: RowCounts) -> None:
        """Stop on a date whose rows are (nearly) all invalid; warn about any invalid row."""
        if not counts.invalid:
            return
        reasons = transform.invalid_reasons(source.table, day, source.malformed_rows)
        described = transform.describe_invalid(day, counts, reasons)
        limit = self.config.job.max_invalid_share
        if counts.invalid_share > limit:
            raise TooManyInvalidRows(f"{described}, more than job.max_invalid_share {limit} "
                                     f"allows (has the source format changed?); nothing "
                                     f"recorded for {day}")
        logger.warning("%s", described)

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
        result = self.compute(day, source)
        return result.report, result.counts

    def compute(self, day: dt.date, source: DaySource) -> DayResult:
        """The date's report rows and counts, the previous trading day they compare with, and
        the hours inside its session without trades."""
        trades, counts = self._trades(day, source)
        if trades.num_rows == 0:
            self.history.remember(day, None)
            return DayResult(transform.empty_report(), counts)
        summary = transform.daily_summary(trades, day)
        previous = self.history.previous_before(day)
        report = transform.with_change_to_previous_close(
            summary, None if previous is None else previous[1])
        self.history.remember(day, transform.closing_prices(summary))
        return DayResult(report, counts, None if previous is None else previous[0],
                         missing_session_hours(transform.trade_hours(trades)))

    def encode(self, report: pa.Table) -> bytes | None:
        """The bytes of a date's report object (output column names, configured format);
        None for a date without trades, which gets no object."""
        if report.num_rows == 0:
            return None
        return self.control.reports.encode(
            transform.with_output_names(report, self.config.report.columns))

    def load(self, day: dt.date, data: bytes | None, claim: Claim | None = None) -> str:
        """Write the date's report object (`encode`'s bytes); its key. For a date without
        trades (None) no object, and an unlisted object under its key is removed: this run
        processes the date, and exactly once allows no report object for it."""
        if data is None:
            if claim is not None and day in claim.unlisted:
                logger.warning("%s: removing report object %s: the date has no trades", day,
                               self.control.reports.describe(self.control.reports.key(day)))
                self.control.reports.remove(day)
            return ""
        return self.control.reports.write(day, data)

    def plan(self, first: dt.date, last: dt.date) -> list[dt.date]:
        """Dates from `first` to `last` not yet in the meta file, and the stale ones."""
        return self.control.plan(first, last)

    def today(self) -> dt.date:
        """Today in the job's time zone (where "yesterday" and overdue are counted)."""
        return dt.datetime.now(ZoneInfo(self.config.job.timezone)).date()

    def warn_accepted_with_data(self, first: dt.date, last: dt.date, folders: set[dt.date],
                                snapshot: MetaSnapshot | None = None) -> list[str]:
        """Warn about accepted gaps of the range whose source now has hourly objects; the
        warnings (they stay accepted). `snapshot`: the meta file just read (else read now)."""
        warnings = []
        for day, entry in sorted((snapshot or self.meta.load()).entries.items()):
            if first <= day <= last and entry.status == ACCEPTED_MISSING and \
                    day in folders and self.reader.hourly_objects(day):
                warnings.append(f"{day} is recorded as accepted missing ({entry.reason}) but "
                                f"now has hourly source objects; it stays accepted (remove its "
                                f"row from the meta file to have it processed)")
                logger.warning("%s", warnings[-1])
        return warnings

    def accept_missing(self, days: list[dt.date], reason: str) -> list[dt.date]:
        """Record `days` as dates that will never have data (see JobControl.accept_missing)."""
        return self.control.accept_missing(days, reason,
                                           lambda day: len(self.reader.hourly_objects(day)))

    def etl_report1(self, first: dt.date, last: dt.date, slice_only: bool = False,
                    should_stop: Callable[[], bool] | None = None) -> RunSummary:
        """Process every pending date from `first` to `last` under the run's lock, then compute
        again the dates of the range whose previous trading day has changed since.

        `slice_only`: a backfill slice, run beside other slices (see xetra.jobcontrol): it
        locks only its own dates. Dates without source objects are counted as waiting or
        overdue (`summary.overdue_error()`), and logged once as ranges.
        `should_stop`: asked before each date; once it says True (a deadline) the run takes no
        new date, commits the ones done and lists the rest in `summary.left`.
        """
        started = time.monotonic()
        if self.config.report.format == "parquet":
            formats.start_parquet_import()
        summary = RunSummary(max_wait_days=self.config.job.max_wait_days)
        # The meta file is read beside the folder listing: one round trip less in series.
        meta_read = self.reader.pool.submit(self.meta.load)
        folders = set(self.reader.dates_with_hourly_objects(first, last))
        snapshot = meta_read.result()
        self.warn_accepted_with_data(first, last, folders, snapshot)
        with ThreadPoolExecutor(READ_AHEAD_DAYS, thread_name_prefix="xetra-early") as early_pool:
            # The first dates are read while the lock is taken (round trips on S3); a date
            # the claim does not hand out after all (another run did it) is dropped unread.
            early = {day: early_pool.submit(self._extract_and_select, day) for day in
                     [day for day in self.meta.pending_dates(snapshot, first, last)
                      if day in folders][:READ_AHEAD_DAYS]}
            with self.control.claim(first, last, slice_only, folders, snapshot) as claim:
                for day in set(early) - set(claim.dates[:READ_AHEAD_DAYS]):
                    early.pop(day).cancel()
                progress = Progress(len(claim.dates))
                self._process_days(claim, claim.dates, summary, (progress, {}, should_stop),
                                   early)
                if claim.lock is not None:
                    # Under the global lock no other run writes the meta file: the version
                    # this run last wrote is the file (a slice's neighbours write beside it).
                    stale = self.control.stale(self.meta.load() if slice_only
                                               else self.meta.current(), first, last)
                    if stale:
                        progress.total += len(stale)
                        self._process_days(claim, [item.day for item in stale], summary,
                                           (progress, {item.day: item for item in stale},
                                            should_stop))
                    self._warn_stale_after(last)
        # The meta file as this run left it: no read more for the count of missing dates.
        without_source = [day for day in self.meta.pending_dates(self.meta.current(), first, last)
                          if day not in folders]
        self._count_missing(summary, without_source)
        summary.seconds = time.monotonic() - started
        return summary

    def _count_missing(self, summary: RunSummary, without_source: list[dt.date]) -> None:
        """Sort the dates without source objects into overdue and waiting; log each kind once."""
        overdue, waiting = split_overdue([*without_source, *summary.waiting], self.today(),
                                         self.config.job.max_wait_days)
        summary.overdue, summary.waiting = overdue, waiting
        if waiting:
            logger.info("waiting for source data (at most job.max_wait_days=%d days): %s",
                        self.config.job.max_wait_days, format_dates(waiting))

    def _warn_stale_after(self, last: dt.date) -> None:
        """Name the dates after the range that now compare with the wrong day."""
        after = self.control.stale(self.meta.current(), last + dt.timedelta(days=1),
                                   last + dt.timedelta(days=self.config.job.lookback_days))
        for item in after:
            logger.warning("%s (outside this run's range); a run over it computes it again",
                           item.describe())

    def _process_days(self, claim: Claim, days: list[dt.date], summary: RunSummary,
                      context: tuple[Progress, dict[dt.date, StaleDate],
                                     Callable[[], bool] | None],
                      early: dict[dt.date, Future] | None = None) -> None:
        """Process `days` in order, committing them in date order in the committer thread
        (GroupCommitter), until `should_stop` (context[2]) says the deadline has come.
        `early`: reads of the first days already started."""
        progress, stale, should_stop = context
        committer = GroupCommitter(self, claim)
        try:
            for index, (day, source) in enumerate(self._sources_ahead(days, early or {})):
                if should_stop is not None and should_stop():
                    summary.left.extend(days[index:])
                    logger.warning("deadline reached: %d date(s) left for the next run, from %s",
                                   len(days) - index, day)
                    break
                self._process_day(day, summary, source, committer,
                                  (progress, stale.get(day)))
                claim.keep_alive()
        except BaseException:
            committer.close(failing=True)  # the dates before this one are committed first
            raise
        committer.close()

    def _sources_ahead(self, days: list[dt.date], early: dict[dt.date, Future]
                       ) -> Iterator[tuple[dt.date, DaySource | None]]:
        """Each day with its source, while the next READ_AHEAD_DAYS days are being read.

        Reading, parsing and selecting the trades of the coming days (GETs, Arrow threads)
        overlap each other and the summary and writes of this one; at most READ_AHEAD_DAYS + 1
        days' rows are held. A read error surfaces when its day's turn comes, so every earlier
        day is committed first, as without read-ahead.
        """
        with ThreadPoolExecutor(READ_AHEAD_DAYS, thread_name_prefix="xetra-ahead") as ahead:
            def read(day: dt.date) -> Future:
                return early.pop(day, None) or ahead.submit(self._extract_and_select, day)

            upcoming = deque(read(day) for day in days[:READ_AHEAD_DAYS])
            for index, day in enumerate(days):
                current = upcoming.popleft()
                if index + READ_AHEAD_DAYS < len(days):
                    upcoming.append(read(days[index + READ_AHEAD_DAYS]))
                yield day, current.result()
                del current  # the day's rows are freed once it is done

    def _process_day(self, day: dt.date, summary: RunSummary, source: DaySource | None,
                     committer: GroupCommitter,
                     context: tuple[Progress, StaleDate | None]) -> None:
        """Transform the day here and queue its commit (report, then meta entry) in
        `committer`.

        The writes of earlier days overlap the transform of this one: commits stay in date
        order, and a failed commit stops the run before this day is queued.
        A stale day (`context[1]`) is computed again: same key, its meta entry updated.
        """
        progress, stale = context
        if source is None and stale is not None:
            logger.warning("%s; its hourly source objects are gone, so it cannot be computed "
                           "again", stale.describe())
            return
        if source is None:  # its folder holds no hourly objects (yet)
            summary.waiting.append(day)
            return
        result = self.compute(day, source)
        report = result.report
        if result.missing_hours:
            logger.warning("%s: no trades in hour(s) %s (UTC) between hours with trades: the "
                           "day may be incomplete (%d hourly objects)", day,
                           ", ".join(f"{hour:02d}" for hour in result.missing_hours),
                           source.hourly_objects)
        entry = MetaEntry(day, utc_now_iso(), "", str(report.num_rows),
                          previous_day_text(result.previous_day) if report.num_rows else "",
                          utc_now_iso() if stale else "", str(source.hourly_objects),
                          ";".join(str(hour) for hour in result.missing_hours))

        counts, skipped_objects = result.counts, source.skipped_objects

        def recorded(key: str) -> None:  # holds the report, not the day's source rows
            what = f"recomputed: its previous trading day is now {stale.implied} (was " \
                f"{previous_day_text(stale.recorded)}), " if stale else ""
            logger.info("%s: %s%d rows read, %d rows dropped, %d report rows -> %s (%s)", day,
                        what, counts.rows_read, counts.dropped, report.num_rows,
                        key or "no trades", progress.step())
            (summary.recomputed if stale else summary.processed).append(day)
            if not stale:
                summary.counts.add(counts)
                summary.report_rows += report.num_rows
            summary.skipped_objects.extend(skipped_objects)
            if key and not stale:
                summary.report_keys.append(key)

        committer.submit(DayCommit(day, report, entry, stale is not None, recorded))
