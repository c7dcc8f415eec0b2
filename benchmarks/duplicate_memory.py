"""Peak RSS of the job on one large day, with and without exact duplicate rows.

Writes a seeded synthetic trading day (benchmarks/synthetic.py) of about `--mb` MB in the
bucket layout: its hourly objects, or with `--one-object` all rows in one hourly object (the
shape of the 144 MB hour that once needed 1.5 GiB). Then two copies: one whose largest object
ends with a copy of its first data row (one exact duplicate), and one whose largest object
holds each of its rows twice. Runs the job (`run.py` of `--repo`, default this checkout) on
each as its own process, `--repeat` times, and prints the median peak RSS (the process's own
high-water mark, ru_maxrss from wait4) with its ratio to the day without duplicates.

    pipenv run python -m benchmarks.duplicate_memory --mb 150 --repeat 3
    pipenv run python -m benchmarks.duplicate_memory --mb 150 --one-object --repo /path/to/other
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.synthetic import generate

REPO = Path(__file__).resolve().parent.parent
DAY = dt.date(2021, 3, 2)  # a Tuesday
BYTES_PER_NOMINAL_ROW = 86  # 1.4M nominal rows gave 120.8 MB with the generator's defaults
CONFIG = """\
source: {{url: {source}}}
target: {{url: {target}}}
job: {{first_date: "{day}"}}
logging:
  version: 1
  handlers: {{null: {{class: logging.NullHandler}}}}
  root: {{level: INFO, handlers: [null]}}
"""


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


def with_duplicates(source: Path, destination: Path, largest: Path, every_row: bool) -> None:
    """A copy of the day whose largest object gains one duplicate row, or all of them."""
    shutil.copytree(source, destination)
    target = destination / largest.relative_to(source)
    header, body = target.read_bytes().split(b"\n", 1)
    extra = body if every_row else body.split(b"\n", 1)[0] + b"\n"
    target.write_bytes(header + b"\n" + body + extra)


def peak_rss_mb(repo: Path, source: Path, work: Path) -> float:
    """One run of the job; its peak RSS in MiB."""
    target = work / "target"
    shutil.rmtree(target, ignore_errors=True)
    config = work / "job.yml"
    config.write_text(CONFIG.format(source=source, target=target, day=DAY), encoding="utf-8")
    with subprocess.Popen([sys.executable, str(repo / "run.py"), "--config", str(config),
                           "--from", str(DAY), "--to", str(DAY)], cwd=repo,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as process:
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        error = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"the job failed ({process.returncode}): {error.strip()}")
    return usage.ru_maxrss / 1024


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
        medians = {}
        for _ in range(args.repeat):  # interleaved, so load on the machine hits all
            for name, source in variants.items():
                medians.setdefault(name, []).append(peak_rss_mb(args.repo, source, Path(tmp)))
        for name, figures in medians.items():
            median = statistics.median(figures)
            print(f"{name:22s} peak RSS median {median:6.0f} MiB "
                  f"(x{median / statistics.median(medians['no duplicate']):.2f}; runs: "
                  f"{', '.join(f'{f:.0f}' for f in figures)})")


if __name__ == "__main__":
    main()
