#!/usr/bin/env bash
# The parallel backfill as a user runs it: the local fan-out (plan, 3 slices at once, verify)
# over the bundled sample into a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/../.."
target="$(mktemp -d)"
trap 'rm -rf "$target"' EXIT
.venv/bin/python scripts/backfill_local.py --config configs/xetra_sample.yml \
  --to 2017-07-04 --parallel 3 --target "$target/out"
