"""Line-by-line memory report (memory_profiler) of the job's per-day path over a month.

    pipenv run python -m benchmarks.memory_profile --out benchmarks/profiles/FILE.txt

Wraps the functions that hold a day's data with one memory_profiler LineProfiler and runs the
job in-process on the benchmark data (generated if missing). Per line, "Mem usage" is the
largest RSS seen after it ran, over every call; the "Increment" column sums deltas that other
threads (the read-ahead) also move, so read the first column. For the RSS over time of the
whole process use `mprof run run.py ...` (see benchmarks/README.md).
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path

from memory_profiler import LineProfiler, show_results

from benchmarks.run_benchmark import DATA, bench_config, dataset
from xetra import cli, etl, transform


def main(argv: list[str] | None = None) -> None:
    """Run the job over the benchmark month with the per-day functions profiled."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2021, 3, 1))
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--out", type=Path, required=True, help="where to write the report")
    args = parser.parse_args(argv)
    first = args.start
    last = first + dt.timedelta(days=args.days - 1)
    data = dataset(first, last, 2021)
    # Main-thread functions only: memory_profiler's tracer recurses when the same profiler
    # also traces the read-ahead thread (where reading and selecting happen since the
    # streaming change); `_process_day` shows the whole day, its source included.
    targets = [(etl.XetraETL, "etl_report1"), (etl.XetraETL, "_process_day"),
               (etl.XetraETL, "transform"), (transform, "daily_summary")]
    profiler = LineProfiler(backend="psutil")
    for owner, name in targets:
        setattr(owner, name, profiler(getattr(owner, name)))
    with tempfile.TemporaryDirectory(prefix="xetra-mprof-", dir=DATA) as work:
        config = bench_config(Path(work) / "job.yml", str(data), str(Path(work) / "out"), first)
        cli.use_lean_memory_pool()  # as run.py does
        status = cli.run(["--config", str(config), "--from", str(first), "--to", str(last)])
    with args.out.open("w", encoding="utf-8") as stream:
        stream.write(f"# python -m benchmarks.memory_profile {' '.join(argv or sys.argv[1:])}\n"
                     f"# {first}..{last}, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} "
                     f"UTC, exit status {status}\n")
        show_results(profiler, stream=stream, precision=1)
    if status:
        raise SystemExit(status)


if __name__ == "__main__":
    main()
