#!/usr/bin/env bash
# The image: lint the Dockerfile, build it with scripts/build_image.sh (no Docker daemon), run it
# against SeaweedFS on 127.0.0.1 (tests/test_container.py). Bounded by `timeout`; what it builds
# is pruned on exit so a re-run on the same machine starts clean. The locally made Debian base
# is kept in .build/ between runs of one checkout (a fresh clone builds it: about a minute).
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$SECONDS

if ! command -v buildah >/dev/null || ! command -v podman >/dev/null || \
   ! command -v runc >/dev/null || ! command -v mmdebstrap >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah podman runc mmdebstrap >/dev/null
fi
echo "tools ready after $((SECONDS - started)) s"

.venv/bin/hadolint Dockerfile
echo "hadolint: Dockerfile clean"

trap 'IMAGE=localhost/xetra:containertest bash scripts/build_image.sh --prune' EXIT
timeout 1200 .venv/bin/python -m pytest tests/test_container.py -m container \
  -p no:cacheprovider --no-cov -s -q
echo "container step: $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s"
