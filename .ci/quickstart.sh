#!/usr/bin/env bash
# Print the README's quick-start commands, one per line, exactly as a reader sees them: the
# command lines of the code block between `<!-- quickstart -->` and `<!-- /quickstart -->` in
# README.md (comments and blank lines left out). `.ci/quickstart.sh N` prints only the Nth.
# .ci/steps/90-newcomer.sh runs what this prints; .ci/run checks its own copy against it.
set -euo pipefail
readme="$(dirname "$0")/../README.md"
mapfile -t lines < <(awk '/^<!-- quickstart/ {on = 1; next} /^<!-- \/quickstart -->/ {on = 0}
  on && !/^```/ && !/^[[:space:]]*(#|$)/' "$readme")
if [ "${#lines[@]}" -ne 2 ]; then
  echo "quickstart: README.md's quick-start block must hold exactly 2 commands, found" \
       "${#lines[@]}" >&2
  exit 1
fi
if [ $# -eq 0 ]; then
  printf '%s\n' "${lines[@]}"
else
  printf '%s\n' "${lines[$(($1 - 1))]}"
fi
