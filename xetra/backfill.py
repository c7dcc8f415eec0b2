"""Parallel backfill: split the pending dates into slices, and verify a whole range after.

Because a date's report rows do not depend on the batch it is computed in (docs/CONTRACT.md
section 2.4), slices of a range can run as independent processes or pods; xetra.jobcontrol says
which runs may share the target, and MetaProcess.record merges their meta file updates.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field

import pyarrow as pa

from xetra.catchup import accepted_gaps
from xetra.dates import date_range
from xetra.errors import MetaFileError, ObjectNotFound
from xetra.etl import SourceReader
from xetra.jobcontrol import JobControl, unlisted_warning
from xetra.meta import MetaEntry, MetaSnapshot
from xetra.progress import format_dates

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DateSlice:
    """A contiguous range of dates one slice run processes (its pending dates only)."""

    first: dt.date
    last: dt.date

    def as_param(self) -> dict[str, str]:
        """The slice as an item of Argo's withParam list."""
        return {"from": self.first.isoformat(), "to": self.last.isoformat()}


def plan_slices(pending: list[dt.date], slices: int) -> list[DateSlice]:
    """At most `slices` contiguous ranges over the sorted `pending` dates, each holding as many
    pending dates as the others or one more; [] when nothing is pending."""
    if slices < 1:
        raise ValueError(f"slices must be at least 1, not {slices}")
    pending = sorted(pending)
    count = min(slices, len(pending))
    result = []
    start = 0
    for index in range(count):
        size = len(pending) // count + (1 if index < len(pending) % count else 0)
        result.append(DateSlice(pending[start], pending[start + size - 1]))
        start += size
    return result


def plan_json(plan: list[DateSlice]) -> str:
    """The plan as one line of JSON, the form Argo's withParam takes."""
    return json.dumps([item.as_param() for item in plan])


@dataclass
class VerifyReport:
    """What verify found over a range: counts, and the problems that make it fail."""

    first: dt.date
    last: dt.date
    dates_listed: int = 0
    report_objects: int = 0
    report_rows: int = 0
    waiting: list[dt.date] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the range is complete and consistent."""
        return not self.problems

    def line(self) -> str:
        """One line: the verdict, the counts and the first problems."""
        counts = (f"{self.first}..{self.last}: {self.dates_listed} date(s) in the meta file, "
                  f"{self.report_objects} report object(s), {self.report_rows} report rows")
        waiting = f", waiting for source data: {format_dates(self.waiting)}" \
            if self.waiting else ""
        if self.ok:
            return f"verify ok: {counts}{waiting}"
        shown = "; ".join(self.problems[:3])
        more = f" (and {len(self.problems) - 3} more)" if len(self.problems) > 3 else ""
        return f"verify failed: {len(self.problems)} problem(s): {shown}{more}; {counts}"


class RangeVerifier:
    """Checks a range after a backfill: every date in the meta file once, every listed date's
    report object holding the rows the meta file says, and no report comparing with a day
    that is no longer its previous trading day; lists accepted gaps, and warns about report
    objects of dates the meta file does not list."""

    def __init__(self, control: JobControl, reader: SourceReader):
        self.control = control
        self.reports = control.reports
        self.reader = reader

    def verify(self, first: dt.date, last: dt.date) -> VerifyReport:
        """Check `first`..`last`; the report's problems are empty when all holds."""
        report = VerifyReport(first, last)
        try:
            snapshot = self.control.meta.load()  # a date listed twice is read as listed once
        except MetaFileError as exc:
            report.problems.append(str(exc))
            return report
        entries = snapshot.entries
        objects = self.reports.by_date()
        self._check_arrival_order(snapshot, report)
        for day in date_range(first, last):
            entry = entries.get(day)
            if entry is None:
                self._check_unlisted(day, report)
            else:
                report.dates_listed += 1
                self._check_listed(entry, objects.get(day), report)
        return report

    def _check_arrival_order(self, snapshot: MetaSnapshot, report: VerifyReport) -> None:
        """Stale reports are problems; accepted gaps are listed (with a warning when data
        has appeared for one); unlisted report objects are warnings."""
        report.problems.extend(item.describe() for item in
                               self.control.stale(snapshot, report.first, report.last))
        for day in accepted_gaps(snapshot.entries, report.first, report.last):
            report.accepted.append(f"{day} ({snapshot.entries[day].reason})")
            if self.reader.hourly_objects(day):
                report.warnings.append(f"{day} is recorded as accepted missing "
                                       f"({snapshot.entries[day].reason}) but now has hourly "
                                       f"source objects; it stays accepted")
        unlisted = self.control.unlisted(snapshot)
        if unlisted:
            report.warnings.append(unlisted_warning(unlisted))

    def _check_unlisted(self, day: dt.date, report: VerifyReport) -> None:
        # A report object of the date is a warning, with the others (_check_arrival_order).
        if self.reader.hourly_objects(day):
            report.problems.append(f"date {day} has source objects but is not in the meta "
                                   f"file")
        else:
            report.waiting.append(day)

    def _check_listed(self, entry: MetaEntry, key: str | None, report: VerifyReport) -> None:
        day = entry.source_date
        if not entry.report_rows:  # written by an older tool: nothing to compare against
            return
        try:
            expected = int(entry.report_rows)
        except ValueError:
            report.problems.append(f"date {day}: meta file report_rows {entry.report_rows!r} "
                                   f"is not a number")
            return
        if expected == 0:
            if key is not None:
                report.problems.append(f"date {day}: meta file says no trades but "
                                       f"{self.reports.describe(key)} exists")
            return
        key = entry.report_key or self.reports.key(day)
        where = self.reports.describe(key)
        try:
            rows = self.reports.row_count(key)
        except ObjectNotFound:
            report.problems.append(f"date {day}: report object {where} is missing (meta file "
                                   f"says {expected} rows)")
            return
        except (pa.ArrowInvalid, OSError) as exc:
            report.problems.append(f"date {day}: {where} is not a readable "
                                   f"{self.reports.settings.format} object ({exc})")
            return
        report.report_objects += 1
        report.report_rows += rows
        if rows != expected:
            report.problems.append(f"date {day}: {where} has {rows} rows, the meta file says "
                                   f"{expected}")
