#!/usr/bin/env bash
# Mutation testing of the one core module whose run fits CI (meta.py: 277 mutants in 2-4 min
# on 2 cores); fails when more than 5 % of its mutants survive. The other modules take 4-8 min
# each and are run by hand: benchmarks/mutation/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
.venv/bin/python scripts/mutation.py meta --check --max-children 2 --work "$work/meta"
