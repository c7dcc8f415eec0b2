"""Which runs may work on the target at the same time: the weekly run and backfill slices.

The rule. Only orphan removal makes two runs unsafe together: processing a date twice rewrites
the same deterministic report object with the same rows, and the meta file keeps the first
entry, but a run that removes the "orphan" report object of a date another live run has just
written and not yet recorded would leave a meta entry without its object. So:

- the weekly run takes the global RunLock and removes orphans of every date: it must not run
  while any backfill slice is live;
- a backfill slice takes a lock of its own range and removes orphans of its own dates only: it
  must not run while the weekly run is live, nor while another live slice overlaps its range
  (slices of one plan never overlap; two backfills of the same dates might).

Each side first writes its own lock object, then looks for the others' (write, then read). With
the read-after-write consistency of S3 at least one of two runs starting together sees the other
and stops (exit 3, nothing written); both may stop, none both proceed. Argo retries the stopped
one. A killed run's lock blocks the same dates until it expires (meta.lock_ttl_seconds).
"""
from __future__ import annotations

import datetime as dt
import logging
import re

from xetra.config import MetaSettings
from xetra.meta import LockHeldError, RunLock
from xetra.storage import ObjectStore

logger = logging.getLogger(__name__)

_SLICE_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})_(\d{4}-\d{2}-\d{2})")


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
