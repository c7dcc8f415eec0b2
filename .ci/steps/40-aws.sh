#!/usr/bin/env bash
# The AWS template (deploy/aws/template.yaml) through cfn-lint, offline, in a venv of its own
# with the pins of deploy/aws/requirements-lint.txt; then a deliberately broken copy must fail,
# so a lint that silently checks nothing fails this step too. tests/test_aws_template.py (in
# the default test run) checks what cfn-lint cannot: the template against the image and code.
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$SECONDS
venv=.build/cfn-lint-venv
source .ci/lib/pinned-venv.sh
pinned_venv "$venv" deploy/aws/requirements-lint.txt
"$venv/bin/cfn-lint" --version
"$venv/bin/cfn-lint" deploy/aws/template.yaml
echo "cfn-lint: deploy/aws/template.yaml clean"
broken="$(mktemp --suffix=.yaml)"
trap 'rm -f "$broken"' EXIT
sed 's/MemorySize: 1024/MemorySize: lots/' deploy/aws/template.yaml > "$broken"
if "$venv/bin/cfn-lint" "$broken" >/dev/null; then
  echo "cfn-lint accepted a broken template" >&2
  exit 1
fi
# The Lambda entry as Lambda starts it (python -m awslambdaric), with the project's .venv and the
# image's pinned awslambdaric beside it (not a project dependency: no wheels for every platform).
ric=.build/awslambdaric
lambda_pins=deploy/aws/requirements-lambda.txt
if ! cmp -s "$lambda_pins" "$ric/pins.txt" 2>/dev/null; then
  rm -rf "$ric"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes \
    --target "$ric" -r "$lambda_pins"
  cp "$lambda_pins" "$ric/pins.txt"
fi
PYTHONPATH="$PWD/$ric" .venv/bin/python -m pytest -p no:cacheprovider --no-cov -m lambda_runtime \
  tests/test_lambda_runtime.py
echo "aws step: $((SECONDS - started)) s"
