"""A local stand-in for the Argo fan-out: plan, run the slices as parallel processes, verify.

It does what deploy/backfill-parallel-workflowtemplate.yaml does on a cluster, with the same
commands of run.py: `--plan` lists the slices still to do, one `--slice` process per slice runs
(at most --parallel at a time, as Argo's `parallelism`), then `--verify` checks the whole range.

    pipenv run python scripts/backfill_local.py --config configs/xetra_sample.yml \\
        --to 2017-07-04 --parallel 2

Extra options after the known ones (for example --source/--target) go to every run.py call.
Exit status: 0 when every slice and the verify step succeeded, else 1 (or the plan's status).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUN_PY = Path(__file__).resolve().parent.parent / "run.py"


def job_command(options: argparse.Namespace, extra: list[str], *args: str) -> list[str]:
    """`python run.py --config ... [--from] [--to] EXTRA ARGS`."""
    window = [*(["--from", options.first] if options.first else []),
              *(["--to", options.last] if options.last else [])]
    return [sys.executable, str(RUN_PY), "--config", options.config, *window, *extra, *args]


def plan(options: argparse.Namespace, extra: list[str]) -> list[dict[str, str]] | int:
    """The slices from `run.py --plan` (its last stdout line), or its exit status."""
    done = subprocess.run(job_command(options, extra, "--plan", "--slices",
                                      str(options.slices)),
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        return done.returncode
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_slices(options: argparse.Namespace, extra: list[str],
               slices: list[dict[str, str]], logs: Path) -> list[int]:
    """Run every slice, at most options.parallel at once; their exit statuses in plan order."""
    waiting = list(enumerate(slices))
    running: dict[int, tuple[subprocess.Popen, float]] = {}
    statuses = [0] * len(slices)
    while waiting or running:
        while waiting and len(running) < options.parallel:
            index, item = waiting.pop(0)
            with open(logs / f"slice-{index}.log", "wb") as log:
                # Several run at once and are polled below, so no `with` per process.
                process = subprocess.Popen(  # pylint: disable=consider-using-with
                    slice_command(options, extra, item), stdout=log, stderr=subprocess.STDOUT)
            running[index] = (process, time.monotonic())
        for index, (process, started) in list(running.items()):
            if process.poll() is None:
                continue
            statuses[index] = process.returncode
            del running[index]
            report_slice(slices[index], process.returncode, time.monotonic() - started,
                         logs / f"slice-{index}.log")
        time.sleep(0.05)
    return statuses


def slice_command(options: argparse.Namespace, extra: list[str],
                  item: dict[str, str]) -> list[str]:
    """`python run.py --config ... EXTRA --slice --from A --to B` for one slice."""
    return [sys.executable, str(RUN_PY), "--config", options.config, *extra, "--slice",
            "--from", item["from"], "--to", item["to"]]


def report_slice(item: dict[str, str], status: int, seconds: float, log: Path) -> None:
    """One line per finished slice: range, status, seconds, and its meta file contention."""
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    contention = next((line.split(": ", 1)[-1] for line in reversed(lines)
                       if "meta file updates=" in line), "no meta file figures")
    print(f"slice {item['from']}..{item['to']}: exit {status}, {seconds:.2f} s, {contention}",
          flush=True)
    if status != 0:
        sys.stderr.write("".join(f"  {line}\n" for line in lines[-5:]))


def main() -> int:
    """Plan, fan out, verify; the exit status of the whole backfill."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--from", dest="first")
    parser.add_argument("--to", dest="last")
    parser.add_argument("--parallel", type=int, default=2, help="slices running at once")
    parser.add_argument("--slices", type=int, help="slices in the plan (default: --parallel)")
    options, extra = parser.parse_known_args()
    options.slices = options.slices or options.parallel
    started = time.monotonic()
    slices = plan(options, extra)
    if isinstance(slices, int):
        return slices
    print(f"plan: {len(slices)} slice(s) {json.dumps(slices)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="xetra-backfill-") as logs:
        statuses = run_slices(options, extra, slices, Path(logs))
    verify = subprocess.run(job_command(options, extra, "--verify"), capture_output=True,
                            text=True, check=False)
    verdict = (verify.stderr.strip() or verify.stdout.strip()).splitlines()[-1:]
    print(f"{verdict[0] if verdict else 'verify printed nothing'}", flush=True)
    failed = sum(1 for status in statuses if status != 0)
    print(f"backfill: {len(slices)} slice(s), {failed} failed, parallel={options.parallel}, "
          f"verify exit {verify.returncode}, wall seconds={time.monotonic() - started:.2f}",
          flush=True)
    return 0 if failed == 0 and verify.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
