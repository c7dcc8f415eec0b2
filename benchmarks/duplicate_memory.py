"""Peak RSS of the job on one large day, with and without exact duplicate rows.

Writes a seeded synthetic trading day (testkit/synthetic.py) of about `--mb` MB in the
bucket layout: its hourly objects, or with `--one-object` all rows in one hourly object (the
shape of a 144 MB hour object). Then two copies: one whose largest object ends with a copy of
its first trade (one exact duplicate), and one whose largest object holds each of its rows
twice. Runs the job (`run.py` of `--repo`, default this checkout) on each as its own process,
`--repeat` times, and prints the median peak RSS (the process's own high-water mark, ru_maxrss
from wait4) with its ratio to the day without duplicates.

    .venv/bin/python -m benchmarks.duplicate_memory --mb 175 --repeat 3
    .venv/bin/python -m benchmarks.duplicate_memory --mb 175 --one-object --repo /path/to/other
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from testkit.peakmemory import DAY, peak_rss_mb, with_duplicates, write_day

REPO = Path(__file__).resolve().parent.parent


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
