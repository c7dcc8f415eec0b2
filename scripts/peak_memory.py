"""Peak RSS of the job (the figure behind the pod's memory request and limit).

Runs `python run.py --config configs/xetra_sample.yml --to 2017-07-04` under `/usr/bin/time -v`
on the bundled sample and on copies of it with every trading day's rows multiplied (new ISINs,
so nothing is deduplicated): 2017 days hold ~60k rows, 2021-22 days up to 150k, so `--scale 3`
stands for a current day. Prints the median of `--repeat` runs per scale.

    pipenv run python scripts/peak_memory.py --scale 1 3 --repeat 3
"""
from __future__ import annotations

import argparse
import csv
import io
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"
CONFIG = REPO / "configs" / "xetra_sample.yml"
MAX_RSS = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")


def scaled_copy(destination: Path, scale: int) -> None:
    """Copy the sample with each data row repeated `scale` times under distinct valid ISINs."""
    for source in sorted(SAMPLE.rglob("*.csv")):
        target = destination / source.relative_to(SAMPLE)
        target.parent.mkdir(parents=True, exist_ok=True)
        with source.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        out = io.StringIO()
        writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow(rows[0])
        for copy in range(scale):
            # Copy 0 keeps the real ISIN; copy k gets the prefix Q + letter k (still valid).
            prefix = None if copy == 0 else "Q" + chr(ord("A") + copy)
            for row in rows[1:]:
                writer.writerow([prefix + row[0][2:], *row[1:]] if prefix else row)
        target.write_text(out.getvalue(), encoding="utf-8")


def peak_rss_mb(source: Path, target: Path) -> float:
    """One run of the job on `source`; returns its maximum resident set size in MB."""
    result = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, str(REPO / "run.py"), "--config", str(CONFIG),
         "--to", "2017-07-04", "--source", str(source), "--target", str(target)],
        cwd=REPO, capture_output=True, text=True, check=True)
    return int(MAX_RSS.search(result.stderr).group(1)) / 1024


def main() -> None:
    """Measure and print the median peak RSS per scale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xetra-rss-") as tmp:
        for scale in args.scale:
            source = Path(tmp) / f"source-x{scale}"
            if scale == 1:
                source = SAMPLE
            else:
                scaled_copy(source, scale)
            figures = []
            for attempt in range(args.repeat):
                figures.append(peak_rss_mb(source, Path(tmp) / f"target-x{scale}-{attempt}"))
            print(f"scale x{scale}: peak RSS median {statistics.median(figures):.0f} MB "
                  f"(runs: {', '.join(f'{f:.0f}' for f in figures)})")


if __name__ == "__main__":
    main()
