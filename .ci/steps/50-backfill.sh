#!/usr/bin/env bash
# The parallel backfill's scripts: lint, then the local fan-out (plan, 3 slices at once, verify)
# over the bundled sample into a temporary folder, as a user would run it.
set -euo pipefail
cd "$(dirname "$0")/../.."
python -m pipenv run pylint --fail-under=10 scripts/backfill_local.py benchmarks/backfill_data.py \
  benchmarks/meta_contention.py benchmarks/parallel_backfill.py
target="$(mktemp -d)"
trap 'rm -rf "$target"' EXIT
python -m pipenv run python scripts/backfill_local.py --config configs/xetra_sample.yml \
  --to 2017-07-04 --parallel 3 --target "$target/out"
