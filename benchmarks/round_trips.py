"""Every S3 request of one weekly run through the latency proxy, on a timeline: which round
trips the run pays in series (control plane) and which overlap the reads.

    .venv/bin/python -m benchmarks.round_trips [--days 7] [--proxy-ms 30] [--runs 2]

Starts SeaweedFS on 127.0.0.1 (benchmarks/run_benchmark's data, uploaded once) behind the
latency proxy, runs the job in this process (`xetra.cli.run`, imports already done: the
timeline starts at the call) over an empty target bucket and prints, per request, when it
was sent and answered (seconds from the start of `cli.run`), the thread that sent it, the
method and the key. GETs of source objects are summarised per date; everything else is
printed one line each. The last lines count the control-plane requests and how much of the
run's wall time they spent with no source GET in flight (the serial control plane), how many
source GETs were in flight on average from the first to the last (the job reads
job.max_concurrent_reads, 8, at a time: fewer means the reads waited for something else), and
the process's CPU time (the job and the proxy's thread). `--days 31` is the month 2021-03.
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote, urlsplit

from botocore.httpsession import URLLib3Session

from benchmarks.run_benchmark import bench_config, dataset, seaweedfs_with_data
from benchmarks.s3_proxy import latency_proxy
from testkit.s3servers import empty_bucket


class Recorder:
    """Wraps botocore's HTTP send: (start, end, thread, method, bucket/key) per request."""

    def __init__(self) -> None:
        self.origin = 0.0
        self.requests: list[tuple[float, float, str, str, str]] = []
        self._lock = threading.Lock()
        self._original = URLLib3Session.send

    def __enter__(self) -> "Recorder":
        recorder, original = self, self._original

        def send(session, request):
            started = time.monotonic()
            try:
                return original(session, request)
            finally:
                parts = urlsplit(request.url)
                query = f"?{parts.query}" if parts.query else ""
                with recorder._lock:  # pylint: disable=protected-access
                    recorder.requests.append((started - recorder.origin,
                                              time.monotonic() - recorder.origin,
                                              threading.current_thread().name, request.method,
                                              unquote(parts.path) + query[:60]))

        URLLib3Session.send = send
        return self

    def __exit__(self, *_) -> None:
        URLLib3Session.send = self._original


def is_source_get(method: str, path: str) -> bool:
    """A GET of an hourly source object (not a listing, not the target's)."""
    return method == "GET" and path.startswith("/bench-source/") and "?" not in path


def serial_control_seconds(requests: list[tuple[float, float, str, str, str]],
                           end: float) -> float:
    """Seconds of the run with a control-plane request in flight and no source GET."""
    events = sorted({0.0, end, *(t for r in requests for t in r[:2] if 0 <= t <= end)})
    total = 0.0
    for left, right in zip(events, events[1:]):
        middle = (left + right) / 2
        flying = [r for r in requests if r[0] <= middle < r[1]]
        if flying and not any(is_source_get(r[3], r[4]) for r in flying):
            total += right - left
    return total


def source_gets_in_flight(requests: list[tuple[float, float, str, str, str]],
                          end: float) -> dict[int, float]:
    """Seconds of the run (0..end) by the number of source GETs in flight."""
    gets = [r for r in requests if is_source_get(r[3], r[4])]
    events = sorted({0.0, end, *(t for r in gets for t in r[:2] if 0 <= t <= end)})
    seconds: dict[int, float] = {}
    for left, right in zip(events, events[1:]):
        middle = (left + right) / 2
        flying = sum(1 for r in gets if r[0] <= middle < r[1])
        seconds[flying] = seconds.get(flying, 0.0) + right - left
    return seconds


def show(requests: list[tuple[float, float, str, str, str]], wall: float) -> None:
    """The timeline, source GETs grouped by date."""
    by_day: dict[str, list[tuple[float, float]]] = {}
    lines = []
    for start, end, thread, method, path in sorted(requests):
        if is_source_get(method, path):
            day = path.split("/")[2]
            if day not in by_day:
                lines.append((start, f"source GETs of {day}", day))
            by_day.setdefault(day, []).append((start, end))
            continue
        lines.append((start, f"{start:6.3f} {end:6.3f} {(end - start) * 1000:5.0f} ms "
                             f"{thread[:14]:14} {method:6} {path}", None))
    for _, text, day in lines:
        if day is not None:
            spans = by_day[day]
            text = (f"{min(s for s, _ in spans):6.3f} {max(e for _, e in spans):6.3f} "
                    f"{len(spans):3d} source GETs of {day}")
        print(text)
    control = [r for r in requests if not is_source_get(r[3], r[4])]
    print(f"wall {wall:.3f} s; {len(requests)} requests, {len(control)} control-plane "
          f"(not source GETs); with only control-plane requests in flight: "
          f"{serial_control_seconds(requests, wall):.3f} s")
    in_flight = source_gets_in_flight(requests, wall)
    first = min((r[0] for r in requests if is_source_get(r[3], r[4])), default=0.0)
    last = max((r[1] for r in requests if is_source_get(r[3], r[4])), default=0.0)
    mean = sum(count * seconds for count, seconds in in_flight.items()) / max(last - first, 1e-9)
    print(f"source GETs from {first:.3f} to {last:.3f} s, {mean:.2f} in flight on average "
          f"between; seconds by GETs in flight: " +
          ", ".join(f"{count}: {seconds:.2f}" for count, seconds in sorted(in_flight.items())))


def main(argv: list[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--proxy-ms", type=float, default=30.0)
    parser.add_argument("--proxy-mbps", type=float, default=40.0)
    parser.add_argument("--runs", type=int, default=2, help="the first one warms the server")
    args = parser.parse_args(argv)
    first = dt.date(2021, 3, 1)  # run_benchmark's default range and seed
    last = first + dt.timedelta(days=args.days - 1)
    data = dataset(first, last, 2021)
    bench = SimpleNamespace(data=data)  # what seaweedfs_with_data needs of a Bench
    # Imported only now: the timeline starts with the job's modules loaded.
    from xetra import cli  # pylint: disable=import-outside-toplevel
    with tempfile.TemporaryDirectory() as work, seaweedfs_with_data(bench) as (server, _):
        os.environ.update(server.env())
        with latency_proxy(server.endpoint_url, args.proxy_ms, args.proxy_mbps) as (url, _):
            config = bench_config(Path(work) / "job.yml", "s3://bench-source/",
                                  "s3://bench-target/", first, url)
            for run in range(1, args.runs + 1):
                empty_bucket(server, "bench-target")
                with Recorder() as recorder:
                    cpu = time.process_time()
                    recorder.origin = time.monotonic()
                    status = cli.run(["--config", str(config), "--from", str(first),
                                      "--to", str(last)], io.StringIO(), io.StringIO())
                    wall = time.monotonic() - recorder.origin
                    cpu = time.process_time() - cpu
                print(f"--- run {run}: exit {status}; job CPU {cpu:.2f} s (this process, "
                      f"the proxy's thread included) in {wall:.2f} s")
                show(recorder.requests, wall)


if __name__ == "__main__":
    main()
