#!/bin/sh
# Set up the project's Python environment in .venv/ from Pipfile.lock (the README's quick start).
#
#   sh scripts/setup.sh          the job's packages
#   sh scripts/setup.sh --dev    also the test, lint and benchmark tools
#
# Needs only a Python 3.11 or newer with its venv module (Debian/Ubuntu: python3-venv); the first
# of $PYTHON, python3, python3.14 .. python3.11 that is new enough is used. Everything goes into
# .venv/ (pip, the pinned pipenv, the locked packages), so it works as root or as an ordinary user
# where pip refuses to touch the system Python (PEP 668). Running it again brings .venv/ in line
# with Pipfile.lock; `.venv/bin/python` then runs the job and the tests.
set -eu
PIPENV_VERSION=2026.10.3   # the Dockerfile pins the same
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

case "${1:-}" in
  --dev) sync_args=--dev ;;
  "") sync_args= ;;
  *) say "usage: sh scripts/setup.sh [--dev]"; exit 64 ;;
esac

# Prints the interpreter's version as X.Y when it is 3.11 or newer, fails otherwise.
new_enough() {
  "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11)); ' 2>/dev/null &&
    "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'
}

if [ ! -x .venv/bin/python ]; then
  python=
  for candidate in ${PYTHON:-} python3 python3.14 python3.13 python3.12 python3.11; do
    if command -v "$candidate" >/dev/null 2>&1 && new_enough "$candidate" >/dev/null; then
      python=$candidate
      break
    fi
  done
  if [ -z "$python" ]; then
    found=$(python3 --version 2>&1 || echo "no python3")
    say "needs Python 3.11 or newer, found: $found; install one (e.g. apt-get install" \
        "python3.11 python3.11-venv) or name it: PYTHON=/path/to/python3.12 sh scripts/setup.sh"
    exit 1
  fi
  say "making .venv/ with $python (Python $(new_enough "$python"))"
fi
if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  # Also repairs a .venv/ left without pip by a venv module that lacked ensurepip.
  "${python:-python3}" -m venv .venv || {
    say "could not make .venv/: install Python's venv module (Debian/Ubuntu: apt-get install" \
        "python3-venv), then run this again"
    exit 1
  }
fi
if ! version=$(new_enough .venv/bin/python); then
  say ".venv/ holds a Python older than 3.11: remove it (rm -rf .venv) and run this again"
  exit 1
fi

installed=$(.venv/bin/python -c 'from importlib.metadata import version; print(version("pipenv"))' \
  2>/dev/null || true)
if [ "$installed" != "$PIPENV_VERSION" ]; then
  say "installing pipenv $PIPENV_VERSION into .venv/"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "pipenv==$PIPENV_VERSION"
fi

say "installing the locked packages${sync_args:+ (with --dev)} into .venv/ (Python $version)"
# pipenv uses .venv/ (Pipfile: venv_in_project) even when another virtualenv is active.
PIPENV_VENV_IN_PROJECT=1 PIPENV_IGNORE_VIRTUALENVS=1 PIPENV_VERBOSITY=-1 PIPENV_NOSPIN=1 \
  PIPENV_YES=1 .venv/bin/python -m pipenv sync $sync_args
say "ready: run things with .venv/bin/python"
