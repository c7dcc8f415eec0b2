"""Peak RSS of the job on one large day, with and without exact duplicate rows.

Writes a seeded synthetic trading day (benchmarks/synthetic.py) of about `--mb` MB in the
bucket layout: its hourly objects, or with `--one-object` all rows in one hourly object (the
shape of a 144 MB hour object). Then two copies: one whose largest object ends with a copy of
its first trade (one exact duplicate), and one whose largest object holds each of its rows
twice. Runs the job (`run.py` of `--repo`, default this checkout) on
each as its own process, `--repeat` times, and prints the median peak RSS (the process's own
high-water mark, ru_maxrss from wait4) with its ratio to the day without duplicates.

    pipenv run python -m benchmarks.duplicate_memory --mb 150 --repeat 3
    pipenv run python -m benchmarks.duplicate_memory --mb 150 --one-object --repo /path/to/other
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from testkit.synthetic import generate

REPO = Path(__file__).resolve().parent.parent
DAY = dt.date(2021, 3, 2)  # a Tuesday
BYTES_PER_NOMINAL_ROW = 86  # 1.4M nominal rows gave 120.8 MB with the generator's defaults
CONFIG = """\
source: {{url: {source}}}
target: {{url: {target}}}
job: {{first_date: "{day}"}}
logging:
  version: 1
  disable_existing_loggers: false
  handlers: {{file: {{class: logging.FileHandler, filename: {log}}}}}
  root: {{level: INFO, handlers: [file]}}
"""
DUPLICATES = re.compile(r"run summary: .* duplicate=(\d+),")


def write_day(folder: Path, megabytes: int, one_object: bool) -> Path:
    """The synthetic day below `folder`; returns its largest object."""
    generate(folder, DAY, DAY, rows_per_day=megabytes * 1_000_000 // BYTES_PER_NOMINAL_ROW)
    objects = sorted((folder / DAY.isoformat()).glob("*.csv"))
    if one_object:
        header = objects[0].read_bytes().split(b"\n", 1)[0] + b"\n"
        body = b"".join(path.read_bytes()[len(header):] for path in objects)
        for path in objects:
            path.unlink()
        single = folder / DAY.isoformat() / f"{DAY}_BINS_XETR09.csv"
        single.write_bytes(header + body)
        return single
    return max(objects, key=lambda path: path.stat().st_size)


def first_trade(body: bytes) -> bytes:
    """The first line of `body` that is a trade (EUR, volume > 0), with its line end: a copy
    of a zero-volume row would not be a duplicate trade."""
    for line in body.splitlines(keepends=True):
        fields = next(csv.reader([line.decode()]))
        if fields[4] == "EUR" and int(fields[12]) > 0:
            return line
    raise ValueError("no trade in the object")


def with_duplicates(source: Path, destination: Path, largest: Path, every_row: bool) -> None:
    """A copy of the day whose largest object gains one duplicate trade, or all its rows."""
    shutil.copytree(source, destination)
    target = destination / largest.relative_to(source)
    header, body = target.read_bytes().split(b"\n", 1)
    extra = body if every_row else first_trade(body)
    target.write_bytes(header + b"\n" + body + extra)


def peak_rss_mb(repo: Path, source: Path, work: Path) -> tuple[float, int]:
    """One run of the job: its peak RSS in MiB and the duplicates its summary counts."""
    target, log = work / "target", work / "job.log"
    shutil.rmtree(target, ignore_errors=True)
    log.unlink(missing_ok=True)
    config = work / "job.yml"
    config.write_text(CONFIG.format(source=source, target=target, day=DAY, log=log),
                      encoding="utf-8")
    with subprocess.Popen([sys.executable, str(repo / "run.py"), "--config", str(config),
                           "--from", str(DAY), "--to", str(DAY)], cwd=repo,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as process:
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        error = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"the job failed ({process.returncode}): {error.strip()}")
    counted = DUPLICATES.findall(log.read_text(encoding="utf-8"))
    return usage.ru_maxrss / 1024, int(counted[-1]) if counted else -1


def main() -> None:
    """Generate, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=150, help="size of the day (default 150)")
    parser.add_argument("--one-object", action="store_true",
                        help="all of the day's rows in one hourly object")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose run.py runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xetra-dup-rss-") as tmp:
        base = Path(tmp) / "none"
        largest = write_day(base, args.mb, args.one_object)
        size = sum(path.stat().st_size for path in base.rglob("*.csv")) / 1e6
        variants = {"no duplicate": base}
        for name, every_row in (("one duplicate row", False), ("largest object twice", True)):
            variants[name] = Path(tmp) / name.replace(" ", "-")
            with_duplicates(base, variants[name], largest, every_row)
        print(f"day {DAY}: {size:.0f} MB, largest object {largest.stat().st_size / 1e6:.0f} MB"
              f"{' (all rows in one object)' if args.one_object else ''}; job of {args.repo}")
        medians: dict[str, list[float]] = {}
        counted = {}
        for _ in range(args.repeat):  # interleaved, so load on the machine hits all
            for name, source in variants.items():
                figure, counted[name] = peak_rss_mb(args.repo, source, Path(tmp))
                medians.setdefault(name, []).append(figure)
        for name, figures in medians.items():
            median = statistics.median(figures)
            print(f"{name:22s} peak RSS median {median:6.0f} MiB "
                  f"(x{median / statistics.median(medians['no duplicate']):.2f}; runs: "
                  f"{', '.join(f'{f:.0f}' for f in figures)}; duplicates counted: "
                  f"{counted[name]})")


if __name__ == "__main__":
    main()
