"""How close the job through the latency proxy is to what this machine allows: the fetch floor,
and the fetch floor with the job's own local work running beside it (the "composite").

    .venv/bin/python -m benchmarks.composite_floor [--days 31] [--runs 5] [--proxy-ms 30]

SeaweedFS and the proxy run on the same two cores as the job, so the job's parsing slows the
server's answers. The composite is the fetch floor (every non-empty object GET, 8 at a time,
nothing parsed: `benchmarks.peers fetch`) started together with the job on the local copy of
the same data (all its parsing, summaries and writes, no network): both processes' work at
once, without any of the job's ordering. The job through the proxy cannot beat that by much;
if the composite is already past a ratio to the floor, so is any job. Runs are interleaved
(job, floor, composite, job, ...); the server's CPU seconds (psutil) and the proxy's (this
process) are printed too.
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
import time
from pathlib import Path
from types import SimpleNamespace

from benchmarks.run_benchmark import (REPO, bench_config, compile_checkout, dataset,
                                      seaweedfs_with_data, server_cpu_seconds)
from benchmarks.s3_proxy import latency_proxy
from testkit.s3servers import empty_bucket


def started(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """A contender's process, output discarded."""
    return subprocess.Popen(command, cwd=REPO, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def reaped(process: subprocess.Popen) -> None:
    """Wait for the process; fail on a non-zero exit."""
    _, status, _ = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(process.args)} failed")


def contenders(data: Path, work: Path, url: str, window: tuple[dt.date, dt.date]
               ) -> dict[str, list[list[str]]]:
    """The commands of each contender (the composite's two run at once)."""
    first, last = window
    remote = bench_config(work / "remote.yml", "s3://bench-source/", "s3://bench-target/",
                          first, url)
    local = bench_config(work / "local.yml", str(data), str(work / "out"), first)
    job = [sys.executable, "run.py", "--from", str(first), "--to", str(last), "--config"]
    fetch = [sys.executable, "-m", "benchmarks.peers", "fetch", str(data),
             str(work / "fetched.txt"), str(first), str(last), "--endpoint", url,
             "--bucket", "bench-source"]
    return {"job (S3 via proxy)": [job + [str(remote)]], "fetch floor": [fetch],
            "composite: fetch floor + job on the local copy": [fetch, job + [str(local)]]}


def measure(args: argparse.Namespace, data: Path, window: tuple[dt.date, dt.date]
            ) -> dict[str, list[tuple[float, float, float]]]:
    """(wall, server CPU, proxy CPU) seconds of each run of each contender, interleaved."""
    figures: dict[str, list[tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="xetra-composite-", dir=data.parent) as temp, \
            seaweedfs_with_data(SimpleNamespace(data=data)) as (server, _):
        work = Path(temp)
        with latency_proxy(server.endpoint_url, args.proxy_ms, args.proxy_mbps) as (url, _):
            commands = contenders(data, work, url, window)
            for _ in range(args.runs):
                for name, each in commands.items():
                    empty_bucket(server, "bench-target")
                    shutil.rmtree(work / "out", ignore_errors=True)
                    server_before, proxy_before = server_cpu_seconds(), time.process_time()
                    begun = time.perf_counter()
                    for process in [started(command, server.env()) for command in each]:
                        reaped(process)
                    figures.setdefault(name, []).append((
                        time.perf_counter() - begun, server_cpu_seconds() - server_before,
                        time.process_time() - proxy_before))
    return figures


def main(argv: list[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--proxy-ms", type=float, default=30.0)
    parser.add_argument("--proxy-mbps", type=float, default=40.0)
    args = parser.parse_args(argv)
    first = dt.date(2021, 3, 1)  # run_benchmark's default range and seed
    last = first + dt.timedelta(days=args.days - 1)
    compile_checkout(REPO)
    figures = measure(args, dataset(first, last, 2021), (first, last))
    floor = statistics.median(wall for wall, _, _ in figures["fetch floor"])
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    print(f"{first}..{last} through a {args.proxy_ms:g} ms proxy ({args.proxy_mbps:g} MB/s per "
          f"connection), medians of {args.runs}, {stamp} UTC\n\n| contender | wall s | runs | "
          "/ fetch floor | server CPU s | proxy CPU s |\n"
          "| --- | ---: | --- | ---: | ---: | ---: |")
    for name, runs in figures.items():
        wall = statistics.median(run[0] for run in runs)
        print(f"| {name} | {wall:.2f} | {' '.join(f'{run[0]:.2f}' for run in runs)} | "
              f"{wall / floor:.2f} | {statistics.median(run[1] for run in runs):.2f} | "
              f"{statistics.median(run[2] for run in runs):.2f} |")


if __name__ == "__main__":
    main()
