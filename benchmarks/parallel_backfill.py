"""Six-month backfill with 1, 2 and 4 parallel slices (scripts/backfill_local.py), from a local
folder and from SeaweedFS on 127.0.0.1, against one sequential run.py over the same range.

    pipenv run python -m testkit.backfill_data          # once: benchmarks/data/backfill
    pipenv run python -m benchmarks.parallel_backfill --runs 3 --stores local seaweedfs

Prints, per store and parallelism, the median wall seconds, the speed-up against the
sequential run of the same store measured in the same session, and the meta file contention
summed over the slices (updates, 412 conflicts, seconds spent per update). Every variant's meta
file must list the same dates with the same report rows as the sequential run's.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

from testkit.config import job_config, write_config
from testkit.s3servers import seaweedfs, upload_folder

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "benchmarks" / "data" / "backfill"
SLICE_LINE = re.compile(r"meta file updates=(\d+) conflicts_412=(\d+) update_seconds=([\d.]+)")


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run a command; (wall seconds, stdout); raises when it fails."""
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO, env={**os.environ, **env}, capture_output=True,
                          text=True, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}{done.stderr}")
    return seconds, done.stdout


def meta_of(target: str, server) -> list[tuple[str, str]]:
    """(date, report_rows) of the target's meta file."""
    key = "meta/report1/xetra_report1_meta_file.csv"
    if target.startswith("s3://"):
        data = server.client().get_object(Bucket=target[5:].strip("/"), Key=key)["Body"].read()
    else:
        data = (Path(target) / key).read_bytes()
    return [(row["source_date"], row["report_rows"])
            for row in csv.DictReader(io.StringIO(data.decode()))]


def run_variant(variant: str, name: str, source: str, server, workdir: Path,
                options: argparse.Namespace) -> tuple[float, tuple[int, int, float], list]:
    """One run into a fresh target: (wall seconds, (updates, 412s, update seconds), meta)."""
    if server:
        server.client().create_bucket(Bucket=name)
        target = f"s3://{name}/"
    else:
        target = str(workdir / name)
    config = write_config(workdir / f"{name}.yml", job_config(
        source, target, first_date="2018-01-01",
        endpoint_url=server.endpoint_url if server else None))
    if variant == "sequential":
        command = [sys.executable, "run.py", "--config", str(config), "--to", options.last]
    else:
        command = [sys.executable, "scripts/backfill_local.py", "--config", str(config),
                   "--to", options.last, "--parallel", variant.split("=")[1]]
    seconds, out = timed(command, server.env() if server else {})
    figures = [match.groups() for match in map(SLICE_LINE.search, out.splitlines()) if match]
    contention = (sum(int(f[0]) for f in figures), sum(int(f[1]) for f in figures),
                  sum(float(f[2]) for f in figures))
    return seconds, contention, meta_of(target, server)


def summary_lines(store: str, results: dict[str, list[tuple[float, tuple[int, int, float]]]]
                  ) -> list[str]:
    """Table rows: median wall, speed-up against sequential, contention over all runs."""
    base = statistics.median(seconds for seconds, _ in results["sequential"])
    lines = []
    for variant, runs in results.items():
        wall = statistics.median(seconds for seconds, _ in runs)
        updates, conflicts, update_seconds = (sum(c[i] for _, c in runs) for i in range(3))
        per_update = f"{update_seconds / updates * 1000:.1f} ms" if updates else "-"
        lines.append(f"| {store} | {variant} | {wall:.1f} | {base / wall:.2f} | "
                     f"{conflicts}/{updates} | {per_update} |")
    return lines


def measure(store: str, options: argparse.Namespace, workdir: Path) -> list[str]:
    """All variants of one store, `options.runs` times each; the result lines."""
    with seaweedfs() if store == "seaweedfs" else nullcontext() as server:
        if server:
            server.client().create_bucket(Bucket="xetra-source")
            started = time.monotonic()
            count = upload_folder(server, "xetra-source", DATA)
            print(f"uploaded {count} objects in {time.monotonic() - started:.0f} s", flush=True)
        source = "s3://xetra-source/" if server else str(DATA)
        results: dict[str, list[tuple[float, tuple[int, int, float]]]] = {}
        reference = None
        for run_number in range(options.runs):
            for variant in ["sequential", *(f"parallel={p}" for p in options.parallel)]:
                name = f"{store}-{variant.replace('=', '')}-{run_number}"
                seconds, contention, meta = run_variant(variant, name, source, server,
                                                        workdir, options)
                reference = reference or meta
                if meta != reference:
                    raise RuntimeError(f"{name}: meta file differs from the sequential run's")
                results.setdefault(variant, []).append((seconds, contention))
                print(f"{name}: {seconds:.1f} s, {len(meta)} dates, updates/412/seconds="
                      f"{contention[0]}/{contention[1]}/{contention[2]:.2f}", flush=True)
        return summary_lines(store, results)


def main() -> None:
    """Command line: stores, parallelism levels, repetitions."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", nargs="+", default=["local", "seaweedfs"])
    parser.add_argument("--parallel", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--last", default="2018-06-30")
    options = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} is missing: run python -m testkit.backfill_data first")
    lines = ["| source+target | variant | median wall s | speed-up vs sequential | "
             "412 conflicts/meta updates | seconds per meta update |",
             "| --- | --- | --- | --- | --- | --- |"]
    with tempfile.TemporaryDirectory(prefix="xetra-backfill-bench-") as workdir:
        for store in options.stores:
            lines.extend(measure(store, options, Path(workdir)))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
