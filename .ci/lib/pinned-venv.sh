# pinned_venv DIR PINS: a venv of its own in DIR holding exactly PINS (a requirements file), kept
# between runs of one checkout and rebuilt when the pins change. Sourced by the CI steps.
pinned_venv() {
  local venv=$1 pins=$2
  if ! cmp -s "$pins" "$venv/pins.txt" 2>/dev/null; then
    rm -rf "$venv"
    python3.11 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$pins"
    cp "$pins" "$venv/pins.txt"
  fi
}
