"""One command: the xetra job against its peers on the same synthetic data, in the same run.

    pipenv run python -m benchmarks.run_benchmark --months 1 --runs 3 [--s3 | --proxy-ms 30]

Generates (or reuses) data under benchmarks/data/, then for each of N repetitions runs, each as
its own process: the job (run.py, source folder -> report parquet + meta file), a DuckDB query
and a polars lazy query computing the same report, and a bare pyarrow.csv parse of every file;
with --s3 also the job reading from and writing to SeaweedFS on 127.0.0.1. Checks that every
report equals the job's, value for value, and prints a table of data size, rows, wall seconds
(median), peak RSS (max over runs, the process's own ru_maxrss) and ratios.

With --proxy-ms MS the S3 server is "remote": every S3 contender reads through a proxy on
127.0.0.1 that adds MS of round trip per request and caps each connection at --proxy-mbps MB/s
(benchmarks/s3_proxy.py): the job (source and target through it), DuckDB with httpfs (its own
venv: benchmarks/make_duckdb_httpfs_venv.sh), polars `scan_csv` on s3://, and the fetch floor
(every non-empty object GET, 8 at a time, nothing parsed). The ratios are then to the fetch floor.
"""
from __future__ import annotations

import argparse
import compileall
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks import peers as peer_module
from benchmarks.s3_proxy import latency_proxy
from testkit import synthetic
from testkit.config import job_config, write_config
from testkit.s3servers import empty_bucket, seaweedfs, upload_folder

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = HERE / "data"
REPORT_NAME = "xetra_report1"
DUCKDB_HTTPFS_PYTHON = DATA / "duckdb-httpfs-venv" / "bin" / "python"


@dataclass
class Measured:
    """The runs of one contender."""

    name: str
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    peak_kb: list[int] = field(default_factory=list)
    check: str = ""

    @property
    def median(self) -> float:
        """Median wall seconds."""
        return statistics.median(self.seconds)

    @property
    def peak_mb(self) -> float:
        """Largest peak RSS over the runs, in MB."""
        return max(self.peak_kb) / 1024


def timed(command: list[str], env: dict[str, str] | None = None, cwd: Path = REPO,
          accept: tuple[int, ...] = (0,)) -> tuple[float, float, int, str]:
    """Run `command`; wall and CPU (user + system) seconds, peak RSS in KB of the process
    (ru_maxrss), and its output.

    wait4 reports the process's own high-water mark, so no polling can miss a short peak.
    """
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        process = subprocess.Popen(  # pylint: disable=consider-using-with  # reaped by wait4
            command, cwd=cwd, stdout=output, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read().decode(errors="replace")
    if process.returncode not in accept:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{text[-3000:]}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, text


def compile_checkout(root: Path) -> None:
    """Bytecode for a checkout's job modules, as the image has (Dockerfile: compileall).

    The peers' libraries come compiled by pip; without this, a shell with
    PYTHONDONTWRITEBYTECODE=1 (CI's) made every run of the job compile xetra/ again, ~0.1 s
    of a week's ~1 s that no deployed run pays."""
    for path in (root / "xetra", root / "run.py"):
        compiled = (compileall.compile_dir(str(path), quiet=1) if path.is_dir()
                    else compileall.compile_file(str(path), quiet=1))
        if not compiled:
            raise SystemExit(f"cannot compile {path}")


def dataset(first: dt.date, last: dt.date, seed: int) -> Path:
    """The data folder for the range, generated once and reused (marker file when complete)."""
    folder = DATA / f"{first}_{last}_seed{seed}"
    marker = folder / ".complete"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        days = synthetic.generate(folder, first, last, seed=seed)
        marker.write_text(f"{sum(d.rows for d in days)}\n")
        print(f"generated {folder} in {time.perf_counter() - started:.1f}s", flush=True)
    return folder


def folder_size(folder: Path) -> tuple[int, int, int]:
    """Bytes, objects and data rows below `folder` (rows from the generator's marker)."""
    files = list(folder.rglob("*.csv"))
    rows = int((folder / ".complete").read_text())
    return sum(p.stat().st_size for p in files), len(files), rows


def job_report(target: Path) -> pa.Table:
    """Every report object the job wrote, concatenated in date order."""
    paths = sorted((target / "report1").glob(f"{REPORT_NAME}_*.parquet"))
    return pa.concat_tables([pq.read_table(path) for path in paths])


def differences(expected: pa.Table, actual: pa.Table) -> str:
    """'' when both tables hold the same rows with byte-equal values (nulls equal), else why."""
    if expected.num_rows != actual.num_rows:
        return f"{actual.num_rows} rows, expected {expected.num_rows}"
    if actual.column_names != expected.column_names:
        return f"columns {actual.column_names}"
    actual = actual.cast(expected.schema)
    problems = []
    for name in expected.column_names:
        left, right = expected[name], actual[name]
        same = pc.or_kleene(pc.and_(pc.is_null(left), pc.is_null(right)),
                            pc.fill_null(pc.equal(left, right), False))
        unequal = len(same) - (pc.sum(same).as_py() or 0)
        if unequal:
            problems.append(f"{name}: {unequal} values differ")
    return "; ".join(problems)


def server_cpu_seconds() -> float:
    """CPU seconds used so far by the `weed` processes this benchmark started."""
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            if child.name() == "weed":
                times = child.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total


def bench_config(path: Path, source: str, target: str, first: dt.date,
                 endpoint: str | None = None) -> Path:
    """Write a job configuration for this benchmark (S3 endpoint when given)."""
    return write_config(path, job_config(
        source, target, first_date=first, endpoint_url=endpoint,
        report={"prefix": "report1/", "name": REPORT_NAME, "format": "parquet"}))


class Bench:
    """The contenders of one benchmark run, sharing one data folder and one work folder."""

    def __init__(self, data: Path, first: dt.date, last: dt.date, work: Path):
        self.data, self.first, self.last, self.work = data, first, last, work
        self.results: dict[str, Measured] = {}
        self.reference: pa.Table | None = None
        self.server_cpu: list[float] = []
        self.versus = "job (local)"  # the ratios' denominator

    def _record(self, name: str, seconds: float, cpu: float, peak_kb: int) -> Measured:
        measured = self.results.setdefault(name, Measured(name))
        measured.seconds.append(seconds)
        measured.cpu.append(cpu)
        measured.peak_kb.append(peak_kb)
        return measured

    def job(self, name: str = "job (local)", source: str | None = None,
            endpoint: str | None = None, env: dict[str, str] | None = None,
            reset_target=None, root: Path = REPO) -> None:
        """One end-to-end run of run.py (of the checkout at `root`) over the whole range, into
        an empty target."""
        target = self.work / "job-out"
        shutil.rmtree(target, ignore_errors=True)
        if endpoint:
            reset_target()
            target_url = "s3://bench-target/"
        else:
            target_url = str(target)
        config = bench_config(self.work / "job.yml", source or str(self.data), target_url,
                              self.first, endpoint)
        seconds, cpu, peak, output = timed([sys.executable, "run.py", "--config", str(config),
                                            "--from", str(self.first), "--to", str(self.last)],
                                           env, root)
        measured = self._record(name, seconds, cpu, peak)
        summary = [line for line in output.splitlines() if "run summary" in line]
        measured.check = summary[-1].split("run summary: ", 1)[1][:60] if summary else "?"
        if not endpoint:
            report = job_report(target)
            if self.reference is None:
                self.reference = report
                measured.check = "reference"
            else:
                measured.check = differences(self.reference, report) or \
                    ("reference" if name == "job (local)" else "= job (local)")

    def job_from_s3(self, server, client) -> None:
        """The job with source and target on an S3 server; its report checked too. The
        server's own CPU seconds during the run are noted: it shares the machine's cores."""
        def reset_target() -> None:
            empty_bucket(server, "bench-target")
        before = server_cpu_seconds()
        self.job("job (S3 SeaweedFS)", "s3://bench-source/", server.endpoint_url, server.env(),
                 reset_target)
        self.server_cpu.append(server_cpu_seconds() - before)
        target = self.work / "s3-report"
        shutil.rmtree(target, ignore_errors=True)
        for page in client.get_paginator("list_objects_v2").paginate(
                Bucket="bench-target", Prefix="report1/"):
            for item in page.get("Contents", []):
                path = target / item["Key"]
                path.parent.mkdir(parents=True, exist_ok=True)
                client.download_file("bench-target", item["Key"], str(path))
        self.results["job (S3 SeaweedFS)"].check = \
            (differences(self.reference, job_report(target)) or "= job (local)") + \
            f"; SeaweedFS used {statistics.median(self.server_cpu):.2f} CPU s (median)"

    def peer(self, name: str, remote: tuple[str, dict[str, str]] | None = None,
             python: str = sys.executable) -> None:
        """One run of a peer process (reading from S3 through `remote`: endpoint and env)."""
        out = self.work / f"{name}.parquet"
        command = [python, "-m", "benchmarks.peers", name, str(self.data), str(out),
                   str(self.first), str(self.last)]
        label = name
        if remote is not None:
            command += ["--endpoint", remote[0], "--bucket", "bench-source"]
            label = f"{name} (S3 via proxy)"
        seconds, cpu, peak, _ = timed(command, remote[1] if remote else None)
        measured = self._record(label, seconds, cpu, peak)
        if name == "pyarrow":
            measured.check = f"{int(out.read_text(encoding='utf-8'))} rows parsed"
        elif name == "fetch":
            fetched = int(out.read_text(encoding="utf-8"))
            expected = sum(path.stat().st_size for path in self.data.glob(peer_module.GLOB)
                           if path.stat().st_size not in peer_module.HEADER_ONLY_SIZES)
            measured.check = f"{fetched / 1e6:.1f} MB fetched" + \
                ("" if fetched == expected else f", expected {expected / 1e6:.1f} MB")
        else:
            measured.check = differences(self.reference, pq.read_table(out)) or "= job (local)"

    def job_over(self, name: str, server, endpoint: str, since: dt.date,
                 dry_run: bool = False, root: Path = REPO) -> None:
        """run.py from `since` (years before the data) to the range's end, source and target
        through `endpoint`: most dates have no source, so the run lists much and reads little.
        Exit status 4 (those dates are overdue) is expected. A dry run's check is the number
        of dates it names; a real run's, its report against the reference."""
        empty_bucket(server, "bench-target")
        config = bench_config(self.work / "job.yml", "s3://bench-source/", "s3://bench-target/",
                              since, endpoint)
        command = [sys.executable, "run.py", "--config", str(config), "--from", str(since),
                   "--to", str(self.last)] + (["--dry-run"] if dry_run else [])
        seconds, cpu, peak, output = timed(command, server.env(), root, accept=(0, 4))
        measured = self._record(name, seconds, cpu, peak)
        if dry_run:
            named = [line for line in output.splitlines() if len(line) == 10 and
                     line[:4].isdigit()]
            measured.check = f"{len(named)} dates would be processed"
            return
        measured.check = differences(self.reference, self.s3_report(server)) or \
            "= job (local)"

    def s3_report(self, server) -> pa.Table:
        """The report objects the job wrote to the target bucket, downloaded and concatenated."""
        target = self.work / "s3-report"
        shutil.rmtree(target, ignore_errors=True)
        client = server.client()
        for page in client.get_paginator("list_objects_v2").paginate(
                Bucket="bench-target", Prefix="report1/"):
            for item in page.get("Contents", []):
                path = target / item["Key"]
                path.parent.mkdir(parents=True, exist_ok=True)
                client.download_file("bench-target", item["Key"], str(path))
        return job_report(target)

    def job_via(self, name: str, server, endpoint: str, root: Path = REPO) -> None:
        """The job (of the checkout at `root`) with source and target on `server`, reached
        through `endpoint` (the proxy); its report downloaded and checked."""
        self.job(name, "s3://bench-source/", endpoint, server.env(),
                 lambda: empty_bucket(server, "bench-target"), root)
        self.results[name].check = differences(self.reference, self.s3_report(server)) or \
            "= job (local)"


def print_table(bench: Bench, size: tuple[int, int, int], runs: int) -> str:
    """The results as a markdown table (also returned)."""
    data_bytes, objects, rows = size
    trading = sum(1 for d in bench.data.iterdir() if d.is_dir() and synthetic.is_trading_day(
        dt.date.fromisoformat(d.name)) and bench.first <= dt.date.fromisoformat(d.name)
        <= bench.last)
    job = bench.results[bench.versus]
    floor = bench.versus != "job (local)"  # with the proxy: times the fetch floor
    lines = [
        f"data: {bench.first}..{bench.last}, {trading} trading days, {objects} objects, "
        f"{data_bytes / 1e6:.0f} MB, {rows:,} rows; median of {runs} run(s); "
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, pyarrow {pa.__version__}",
        "",
        "| contender | wall s (median) | runs (wall s) | CPU s (median) | peak RSS MB | "
        f"{'wall / fetch floor' if floor else 'job wall / this'} | "
        f"{'RSS / fetch floor' if floor else 'job RSS / this'} | output check |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for measured in bench.results.values():
        wall, rss = measured.median / job.median, measured.peak_mb / job.peak_mb
        if not floor:
            wall, rss = 1 / wall, 1 / rss
        lines.append(
            f"| {measured.name} | {measured.median:.2f} | "
            f"{' '.join(f'{s:.2f}' for s in measured.seconds)} | "
            f"{statistics.median(measured.cpu):.2f} | {measured.peak_mb:.0f} | "
            f"{wall:.2f} | {rss:.2f} | "
            f"{measured.check} |")
    table = "\n".join(lines)
    print(table, flush=True)
    return table


def main(argv: list[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    span = parser.add_mutually_exclusive_group()
    span.add_argument("--days", type=int, help="calendar days from --start")
    span.add_argument("--months", type=int, help="calendar months from --start")
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2021, 3, 1))
    parser.add_argument("--runs", type=int, default=3, help="repetitions (median is quoted)")
    parser.add_argument("--seed", type=int, default=2021)
    parser.add_argument("--s3", action="store_true",
                        help="also run the job against SeaweedFS on 127.0.0.1")
    parser.add_argument("--proxy-ms", type=float, help="run the S3 contenders through a proxy "
                        "adding this round trip per request (the 'remote S3' benchmark)")
    parser.add_argument("--proxy-mbps", type=float, default=40.0,
                        help="the proxy's bandwidth cap per connection, MB/s (0: none)")
    parser.add_argument("--duckdb-python", type=Path, default=DUCKDB_HTTPFS_PYTHON,
                        help="python of a venv with duckdb + duckdb-extension-httpfs")
    parser.add_argument("--since", type=dt.date.fromisoformat,
                        help="with --proxy-ms: instead of the peers, run the job (and the "
                        "baseline) --dry-run and for real from this date (e.g. five years "
                        "before the data) to the end of the data: the listing benchmark")
    parser.add_argument("--only", default="job,duckdb,polars,pyarrow",
                        help="comma-separated contenders (the job always runs)")
    parser.add_argument("--save", type=Path, help="append the table to this file")
    parser.add_argument("--baseline", type=Path, help="another checkout of the project (e.g. "
                        "`git worktree add ../xetra-main main`): its run.py runs as one more "
                        "contender, for before/after in the same run (not with --s3)")
    args = parser.parse_args(argv)
    first = args.start
    if args.months:
        month = first.month - 1 + args.months
        last = dt.date(first.year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)
    else:
        last = first + dt.timedelta(days=(args.days or 7) - 1)
    data = dataset(first, last, args.seed)
    for root in [REPO, *([args.baseline] if args.baseline else [])]:
        compile_checkout(root)
    peers = [name for name in args.only.split(",") if name in ("duckdb", "polars", "pyarrow")]
    with tempfile.TemporaryDirectory(prefix="xetra-bench-", dir=DATA) as work:
        bench = Bench(data, first, last, Path(work))
        if args.proxy_ms is not None:
            run_with_proxy(bench, [name for name in args.only.split(",") if name != "pyarrow"],
                           args)
        elif args.s3:
            run_with_s3(bench, peers, args.runs)
        else:
            for _ in range(args.runs):
                run_once(bench, peers, baseline=args.baseline)
        table = print_table(bench, folder_size(data), args.runs)
    if args.save:
        with args.save.open("a", encoding="utf-8") as handle:
            handle.write(f"\n`python -m benchmarks.run_benchmark {' '.join(argv or sys.argv[1:])}`"
                         f"\n\n{table}\n")


def run_once(bench: Bench, peers: list[str], s3_job=None, baseline: Path | None = None) -> None:
    """One repetition of every contender, in a fixed order."""
    bench.job()
    if baseline:
        bench.job(f"job at {baseline.name} (baseline)", root=baseline)
    if s3_job:
        s3_job()
    for name in peers:
        bench.peer(name)
    print("  " + ", ".join(f"{m.name} {m.seconds[-1]:.2f}s" for m in bench.results.values()),
          flush=True)


@contextmanager
def seaweedfs_with_data(bench: Bench) -> Iterator[tuple[object, object]]:
    """SeaweedFS on 127.0.0.1 with the data uploaded to bench-source and an empty
    bench-target; yields the server and a client."""
    with seaweedfs() as server:
        client = server.client()
        client.create_bucket(Bucket="bench-source")
        client.create_bucket(Bucket="bench-target")
        started = time.perf_counter()
        count = upload_folder(server, "bench-source", bench.data)
        print(f"uploaded {count} objects in {time.perf_counter() - started:.1f}s", flush=True)
        yield server, client


def run_with_s3(bench: Bench, peers: list[str], runs: int) -> None:
    """Upload the data to SeaweedFS once, then repeat every contender with the S3 job too."""
    with seaweedfs_with_data(bench) as (server, client):
        for _ in range(runs):
            run_once(bench, peers, lambda: bench.job_from_s3(server, client))


def run_with_proxy(bench: Bench, contenders: list[str], args: argparse.Namespace) -> None:
    """Upload the data to SeaweedFS once; then each repetition runs the job locally (the
    reference), and the job, the baseline, DuckDB, polars and the fetch floor through the
    latency proxy."""
    if "duckdb" in contenders and not Path(args.duckdb_python).exists():
        sys.exit(f"no DuckDB with httpfs at {args.duckdb_python}: run "
                 f"`sh benchmarks/make_duckdb_httpfs_venv.sh` first (or --only without duckdb)")
    with seaweedfs_with_data(bench) as (server, _):
        with latency_proxy(server.endpoint_url, args.proxy_ms, args.proxy_mbps) as (url, _):
            remote = (url, server.env())
            bench.versus = "fetch (S3 via proxy)"
            for _ in range(args.runs):
                bench.job()
                if args.since:
                    run_since(bench, server, url, args)
                    continue
                bench.job_via("job (S3 via proxy)", server, url)
                if args.baseline:
                    bench.job_via(f"job at {args.baseline.name} (baseline, S3 via proxy)",
                                  server, url, args.baseline)
                bench.peer("fetch", remote)
                if "duckdb" in contenders:
                    bench.peer("duckdb", remote, str(args.duckdb_python))
                if "polars" in contenders:
                    bench.peer("polars", remote)
                print("  " + ", ".join(f"{m.name} {m.seconds[-1]:.2f}s"
                                       for m in bench.results.values()), flush=True)


def run_since(bench: Bench, server, url: str, args: argparse.Namespace) -> None:
    """The listing benchmark's repetition: dry run and real run from `args.since`, this
    checkout and the baseline."""
    checkouts = [("job", REPO)] + ([(f"job at {args.baseline.name} (baseline)", args.baseline)]
                                   if args.baseline else [])
    for dry_run in (True, False):
        for label, root in checkouts:
            bench.job_over(f"{label}{' --dry-run' if dry_run else ''} from {args.since}",
                           server, url, args.since, dry_run, root)
    bench.versus = bench.versus if bench.versus in bench.results else "job (local)"
    print("  " + ", ".join(f"{m.name} {m.seconds[-1]:.2f}s" for m in bench.results.values()),
          flush=True)


if __name__ == "__main__":
    main()
