"""Arrival-order experiment: hold one weekday of the bundled sample back, run, deliver it, run
again, and count the report rows that differ from a single run on the complete data.

    python scripts/late_data_experiment.py [--hold 2017-06-29 ...] [--to 2017-07-04]

Each run is `run.py` as a user starts it (the sample config, --source/--target overridden).
The comparison reads every report object with pandas and joins on (isin, date): a row counts as
different when it exists on one side only or when any value differs (null equals null).
Prints one line per held-back date and exits 1 when any row differs.
"""
from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"
CONFIG = REPO / "configs" / "xetra_sample.yml"


def run_job(source: Path, target: Path, last: str) -> int:
    """Run the job once over the sample config's first date .. `last`; its exit status."""
    done = subprocess.run([sys.executable, str(REPO / "run.py"), "--config", str(CONFIG),
                           "--source", str(source), "--target", str(target), "--to", last],
                          cwd=REPO, capture_output=True, text=True, check=False)
    return done.returncode


def read_report(target: Path) -> pd.DataFrame:
    """Every report object under `target` as one frame indexed by (isin, date)."""
    frames = [pd.read_parquet(path) for path in sorted((target / "report1").glob("*.parquet"))]
    frame = pd.concat(frames, ignore_index=True)
    return frame.set_index(["isin", "date"]).sort_index()


def differing_rows(left: pd.DataFrame, right: pd.DataFrame) -> int:
    """Rows of the outer join that are on one side only or differ in any value."""
    joined = left.add_suffix("_l").join(right.add_suffix("_r"), how="outer")
    differ = pd.Series(False, index=joined.index)
    for column in left.columns:
        one, other = joined[f"{column}_l"], joined[f"{column}_r"]
        both_null = one.isna() & other.isna()
        differ |= ~both_null & ((one != other) | one.isna() | other.isna())
    return int(differ.sum())


def experiment(work: Path, hold: str, last: str) -> tuple[int, int, list[int]]:
    """(differing rows, rows of the complete run, exit statuses of the late runs)."""
    complete_source = work / "complete"
    late_source = work / f"late-{hold}"
    shutil.copytree(SAMPLE, late_source)
    held = work / f"held-{hold}"
    shutil.move(str(late_source / hold), held)
    statuses = [run_job(late_source, work / f"target-late-{hold}", last)]
    shutil.move(str(held), late_source / hold)  # delivered late
    statuses.append(run_job(late_source, work / f"target-late-{hold}", last))
    if not (work / "target-complete").exists():
        if not complete_source.exists():
            shutil.copytree(SAMPLE, complete_source)
        run_job(complete_source, work / "target-complete", last)
    complete = read_report(work / "target-complete")
    late = read_report(work / f"target-late-{hold}")
    return differing_rows(late, complete), len(complete), statuses


def main() -> int:
    """Run the experiment for each held-back date and print the counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hold", nargs="+", default=["2017-06-29"],
                        help="the weekday(s) held back, one experiment each")
    parser.add_argument("--to", default="2017-07-04", help="last date of every run")
    args = parser.parse_args()
    worst = 0
    with tempfile.TemporaryDirectory(prefix="xetra-late-") as tmp:
        for hold in args.hold:
            dt.date.fromisoformat(hold)
            differ, total, statuses = experiment(Path(tmp), hold, args.to)
            worst = max(worst, differ)
            print(f"held back {hold}, delivered after the first run: {differ} of {total} "
                  f"report rows differ from one run on the complete data (exit statuses of "
                  f"the two runs: {statuses[0]}, {statuses[1]})")
    return 1 if worst else 0


if __name__ == "__main__":
    sys.exit(main())
