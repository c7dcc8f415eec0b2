"""The job's errors, in one catalogue: each kind carries the exit status and the line's prefix.

Every error the job raises on purpose derives from XetraError, so the entrypoint has one
`except` for them: it prints `xetra: {headline}{message}` as one line on stderr and exits with
`exit_status`. The original cause (botocore's or the OS's error) is chained to the error and
logged at DEBUG with its traceback. The second bases (ValueError, RuntimeError) keep the
classes catchable as what they were before the catalogue existed.
"""
from __future__ import annotations


class XetraError(Exception):
    """Root of the job's own errors: a run failed (exit status 1, "run failed: ...")."""

    exit_status = 1
    headline = "run failed: "

    def line(self) -> str:
        """The one line the user sees (without the program's name)."""
        return f"{self.headline}{self}"


class ConfigError(XetraError, ValueError):
    """Invalid configuration or arguments; the message names the setting (exit status 2)."""

    exit_status = 2
    headline = "configuration error: "


class LockHeldError(XetraError, RuntimeError):
    """Another run holds the job's lock; this run stops without writing (exit status 3)."""

    exit_status = 3
    headline = ""


class OverdueData(XetraError):
    """Source data that should have arrived long ago is still missing (exit status 4): raised
    after the run has done everything else; the message names the dates as ranges."""

    exit_status = 4
    headline = ""


class JobStateError(XetraError):
    """What the operator asked cannot be done in the target's present state (e.g.
    --accept-missing of a date already processed)."""


class StorageError(XetraError, RuntimeError):
    """An object store operation failed; the message names the location and key."""


class ObjectNotFound(StorageError):
    """The object does not exist."""


class PreconditionFailed(StorageError):
    """A conditional write lost: the object exists (If-None-Match) or changed (If-Match)."""


class SourceFormatError(XetraError, ValueError):
    """An object cannot be read as a Xetra CSV at all; the message names the object."""


class TooManyInvalidRows(SourceFormatError):
    """A date's share of invalid rows is above job.max_invalid_share: not a day without
    trades but a source in a format the job does not read; nothing is recorded for it."""


class MetaFileError(XetraError, RuntimeError):
    """The meta file is corrupt; the job stops rather than rewrite history."""


class VerifyFailed(XetraError):
    """--verify found the range incomplete or inconsistent; the message counts the problems."""

    headline = ""


class NeedsAllColumns(ValueError):
    """Trades share ISIN and Time, and only the source columns not read tell whether they are
    exact duplicates: select again with those columns of exactly these source rows. Not a
    failure: the run handles it, it never reaches the user."""

    def __init__(self, rows, columns):
        super().__init__(f"{len(rows)} trades share ISIN and Time with another; "
                         f"{', '.join(columns)} needed to find exact duplicates")
        self.rows = rows          # positions in the source table, ascending (a pyarrow Array)
        self.columns = tuple(columns)
