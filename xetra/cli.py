"""The entrypoint: arguments, configuration, logging, wiring of adapters, and exit codes."""
from __future__ import annotations

import argparse
import atexit
import datetime as dt
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence, TextIO

import pyarrow as pa

from xetra.config import AppConfig, StorageLocation, configure_logging, load_config, parse_date
from xetra.dates import yesterday
from xetra.errors import ConfigError, StorageError, VerifyFailed, XetraError
from xetra.etl import XetraETL
from xetra.storage import LocalStorage, ObjectStore

logger = logging.getLogger("xetra")

EXIT_OK = 0  # the failures' exit statuses are those of xetra.errors


def build_parser() -> argparse.ArgumentParser:
    """The command line of run.py."""
    parser = argparse.ArgumentParser(
        prog="run.py", description="Build the daily per-ISIN Xetra report (report1).")
    parser.add_argument("--config", required=True, help="YAML configuration file")
    parser.add_argument("--from", dest="first", help="first date YYYY-MM-DD "
                        "(default: job.first_date)")
    parser.add_argument("--to", dest="last", help="last date YYYY-MM-DD "
                        "(default: yesterday in the job's time zone)")
    parser.add_argument("--source", help="override source.url (local path or s3://bucket/prefix)")
    parser.add_argument("--target", help="override target.url (local path or s3://bucket/prefix)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true",
                      help="print the dates that would be processed; write nothing")
    mode.add_argument("--plan", action="store_true",
                      help="print the pending dates as JSON slices for a parallel backfill "
                      "(Argo withParam); write nothing")
    mode.add_argument("--slice", action="store_true",
                      help="run one backfill slice --from..--to beside other slices: lock and "
                      "clean up only these dates")
    mode.add_argument("--verify", action="store_true",
                      help="check the range: every date once in the meta file, report rows as "
                      "it says, no orphan objects; exit 1 when not")
    mode.add_argument("--accept-missing", action="append", metavar="DATE",
                      help="record that DATE will never have source data (repeatable): no "
                      "overdue alarm for it, never processed; needs --reason")
    parser.add_argument("--reason", help="with --accept-missing: why the date has no data "
                        "(kept in the meta file)")
    parser.add_argument("--max-seconds", type=float, help="stop taking new dates after this "
                        "many seconds (e.g. below the pod's activeDeadlineSeconds); the dates "
                        "done are committed, the rest are left for the next run")
    parser.add_argument("--slices", type=int, default=4, help="with --plan: at most this "
                        "many slices (default 4)")
    parser.add_argument("--plan-file", help="with --plan: also write the JSON to this file")
    return parser


def open_store(location: StorageLocation, config: AppConfig, create: bool,
               session=None) -> ObjectStore:
    """The adapter for a location: S3BucketConnector for s3://, LocalStorage otherwise.
    `session`: a boto3 Session to make the client from (see open_stores)."""
    if location.is_s3:
        # Imported here: boto3 costs a local-folder run 0.13 s and 15 MB for nothing.
        from xetra.s3 import S3BucketConnector  # pylint: disable=import-outside-toplevel
        return S3BucketConnector(location, config.s3,
                                 max_pool_connections=max(10, config.job.max_concurrent_reads),
                                 session=session)
    return LocalStorage(location.url, create=create)


def open_stores(config: AppConfig, create_target: bool) -> tuple[ObjectStore, ObjectStore]:
    """Source and target. Two S3 clients come from one boto3 Session: a second Session loads
    botocore's service model again (measured here: 0.17-0.20 s of the run's start, against
    0.02 s for a second client of the same Session)."""
    session = None
    if config.source.is_s3 and config.target.is_s3:
        from xetra.s3 import new_session  # pylint: disable=import-outside-toplevel
        session = new_session()
    return (open_store(config.source, config, create=False, session=session),
            open_store(config.target, config, create=create_target, session=session))


def date_window(config: AppConfig, first: str | None, last: str | None,
                now: dt.datetime | None = None) -> tuple[dt.date, dt.date]:
    """The run's first and last date, validated: never today or later, first <= last."""
    latest_allowed = yesterday(config.job.timezone, now)
    start = parse_date(first, "--from") if first else config.job.first_date
    end = parse_date(last, "--to") if last else latest_allowed
    if end > latest_allowed:
        raise ConfigError(f"--to: {end} is not over yet in {config.job.timezone}; the latest "
                          f"complete date is {latest_allowed}")
    if start > end:
        setting = "--from" if first else "job.first_date"
        raise ConfigError(f"{setting}: {start} is after the end date {end}")
    return start, end


def check_access(store: ObjectStore, section: str) -> None:
    """Check a location before any write; the error names the config section it came from."""
    try:
        store.check_access()
    except StorageError as exc:
        raise StorageError(f"{exc} (check the {section} settings)") from exc


def run(argv: Sequence[str], stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr,
        should_stop: Callable[[], bool] | None = None) -> int:
    """Run the job; returns the process exit status.

    `should_stop` (e.g. a Lambda's remaining time) is asked before each date, as --max-seconds.
    """
    started = time.monotonic()
    args = build_parser().parse_args(argv)
    logging_configured = False
    try:
        config = load_config(args.config).with_locations(args.source, args.target)
        window = date_window(config, args.first, args.last)
        check_mode_arguments(args)
        accepted = accepted_dates(config, args.accept_missing)
        configure_logging(config)
        logging_configured = True
        if accepted:
            return accept_missing(args, config, accepted)
        return execute(args, config, window, stdout,
                       deadline(started, args.max_seconds, should_stop))
    except XetraError as exc:
        # Before logging is configured, an ERROR record would reach stderr a second time.
        if logging_configured:
            logger.error("%s", exc.line())
        logger.debug("%s: where it was raised, and its cause", exc.line(), exc_info=True)
        stderr.write(f"xetra: {exc.line()}\n")
        return exc.exit_status


def execute(args: argparse.Namespace, config: AppConfig, window: tuple[dt.date, dt.date],
            stdout: TextIO, should_stop: Callable[[], bool] | None = None) -> int:
    """The run the arguments ask for, on a valid configuration; XetraError when it fails."""
    first, last = window
    read_only = args.dry_run or args.plan or args.verify
    source, target = open_stores(config, create_target=not read_only)
    with ThreadPoolExecutor(config.job.max_concurrent_reads,
                            thread_name_prefix="xetra-read") as pool:
        check_stores(pool, [(source, "source")] + (  # a dry run creates no local folder
            [(target, "target")] if not read_only or config.target.is_s3 else []))
        etl = XetraETL(source, target, config, pool)
        if args.dry_run:
            pending = etl.plan(first, last)
            stdout.write("".join(f"{day}\n" for day in pending))
            logger.info("dry run: %d date(s) would be processed from %s to %s",
                        len(pending), first, last)
            return EXIT_OK
        if args.plan or args.verify:
            return backfill_step(args, etl, window, stdout)
        summary = etl.etl_report1(first, last, slice_only=args.slice, should_stop=should_stop)
    logger.info(etl.meta.contention_line())
    logger.info(summary.line())
    stdout.write(f"report objects under {target.describe(config.report.prefix)}\n")
    overdue = summary.overdue_error()
    if overdue is not None:
        raise overdue  # after the summary: everything else is done
    return EXIT_OK


def accept_missing(args: argparse.Namespace, config: AppConfig, days: list[dt.date]) -> int:
    """--accept-missing: record the dates as never having data, under the run lock."""
    source, target = open_stores(config, create_target=True)
    check_access(source, "source")
    check_access(target, "target")
    with ThreadPoolExecutor(config.job.max_concurrent_reads,
                            thread_name_prefix="xetra-read") as pool:
        XetraETL(source, target, config, pool).accept_missing(days, args.reason.strip())
    return EXIT_OK


def accepted_dates(config: AppConfig, values: list[str] | None) -> list[dt.date]:
    """The dates of --accept-missing, validated (ConfigError): each a complete past date."""
    if not values:
        return []
    dates = [parse_date(value, "--accept-missing") for value in values]
    latest = yesterday(config.job.timezone)
    for day in dates:
        if day > latest:
            raise ConfigError(f"--accept-missing: {day} is not over yet in "
                              f"{config.job.timezone}")
    return dates


def use_lean_memory_pool() -> None:
    """Arrow's jemalloc pool, handing freed pages back after 200 ms (Arrow's default: 1 s).

    Measured here on a month: peak RSS ~25 % below the default mimalloc pool's at the same
    speed; the shorter decay saves another ~20 MB for ~2 % more time (0 ms: -80 MB, +15 %).
    A pyarrow build without jemalloc keeps its default pool.
    """
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
        pa.jemalloc_set_decay_ms(200)
    except NotImplementedError:
        logger.debug("pyarrow has no jemalloc pool; keeping %s",
                     pa.default_memory_pool().backend_name)


def check_stores(pool: ThreadPoolExecutor, stores: list[tuple[ObjectStore, str]]) -> None:
    """check_access of each store in order; S3 buckets all at once (a round trip each), the
    first one's error raised first. A local target is checked only once the source is
    reachable, since checking it creates its folder."""
    if not any(isinstance(store, LocalStorage) for store, _ in stores):
        checks = [pool.submit(check_access, store, section) for store, section in stores]
        for check in checks:
            check.result()
        return
    for store, section in stores:
        check_access(store, section)


def check_mode_arguments(args: argparse.Namespace) -> None:
    """The options of --plan and --slice make sense together, or ConfigError."""
    if args.slices < 1:
        raise ConfigError(f"--slices: {args.slices} is not a positive number of slices")
    if args.max_seconds is not None and not args.max_seconds > 0:
        raise ConfigError(f"--max-seconds: {args.max_seconds} is not a positive number")
    if args.slice and not (args.first and args.last):
        raise ConfigError("--slice: give the slice's range with --from and --to")
    if args.accept_missing and not (args.reason and args.reason.strip()):
        raise ConfigError("--reason: required with --accept-missing (why the date will never "
                          "have data; it is kept in the meta file)")
    if args.reason is not None and not args.accept_missing:
        raise ConfigError("--reason: only with --accept-missing")


def deadline(started: float, max_seconds: float | None,
             should_stop: Callable[[], bool] | None) -> Callable[[], bool] | None:
    """One predicate for --max-seconds (from `started`, monotonic) and a caller's own."""
    if max_seconds is None:
        return should_stop
    return lambda: time.monotonic() - started >= max_seconds or bool(should_stop and
                                                                    should_stop())


def backfill_step(args: argparse.Namespace, etl: XetraETL, window: tuple[dt.date, dt.date],
                  stdout: TextIO) -> int:
    """--plan: print the slices still to do; --verify: check the whole range (VerifyFailed
    when it does not hold)."""
    # Imported here: only --plan and --verify need it (~0.1 s of a weekly run's start).
    from xetra.backfill import (  # pylint: disable=import-outside-toplevel
        RangeVerifier, plan_json, plan_slices)
    first, last = window
    if args.plan:
        plan = plan_slices(etl.plan(first, last), args.slices)
        logger.info("plan: %d slice(s) from %s to %s", len(plan), first, last)
        text = plan_json(plan)
        if args.plan_file:
            try:
                with open(args.plan_file, "w", encoding="utf-8") as handle:
                    handle.write(text + "\n")
            except OSError as exc:
                raise StorageError(f"cannot write --plan-file {args.plan_file}: "
                                   f"{exc.strerror}") from exc
        stdout.write(text + "\n")
        return EXIT_OK
    report = RangeVerifier(etl.control, etl.reader).verify(first, last)
    for problem in report.problems:
        logger.error("verify: %s", problem)
    for warning in report.warnings:
        logger.warning("verify: %s", warning)
    if report.accepted:
        shown = ", ".join(report.accepted[:20])
        more = f" and {len(report.accepted) - 20} more" if len(report.accepted) > 20 else ""
        logger.info("verify: accepted gaps: %s%s", shown, more)
    if not report.ok:
        raise VerifyFailed(report.line())
    logger.info(report.line())
    return EXIT_OK


def main() -> None:
    """Console entry point; it owns the process: at exit, end_without_teardown ends it with
    the run's status (call run() to run the job inside another program)."""
    use_lean_memory_pool()
    status = run(sys.argv[1:])
    atexit.register(end_without_teardown, status)
    sys.exit(status)


def end_without_teardown(status: int) -> None:
    """The exit's last step: flush the logs and the standard streams, then end the process
    without the interpreter's teardown of its modules (pyarrow's and numpy's take 0.06-0.1 s,
    ~8 % of a weekly run; benchmarks/README.md).

    Registered once the run has returned, so it runs after the interpreter has joined every
    thread, and every write of the run is durable by then (put_bytes syncs before renaming).
    Exit handlers registered earlier do not run (coverage's COVERAGE_PROCESS_START save would
    need its `patch = _exit` setting; `coverage run` saves before the exit and is unaffected).
    """
    logging.shutdown()  # logging's own exit handler would run after this one: it never does
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # e.g. a closed pipe: as the interpreter's own exit does
            status = status or 120
    os._exit(status)
