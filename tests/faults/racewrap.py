"""Run run.py at the instant XETRA_START_AT (epoch seconds), its imports done beforehand, with
each source object's parsing slowed by 0.3 s so that two runs started together overlap."""
from __future__ import annotations

import os
import runpy
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

# pylint: disable=wrong-import-position
# Import the whole job now, so that the start signal is not delayed by imports.
from xetra import cli as _cli, formats  # noqa: E402,F401  pylint: disable=unused-import

_original_parse = formats.parse_source_csv


def slow_parse(data, where, *args, **kwargs):
    """Parse, slowly: the run holds its lock long enough for the other run to meet it."""
    time.sleep(0.3)
    return _original_parse(data, where, *args, **kwargs)


if __name__ == "__main__":
    formats.parse_source_csv = slow_parse
    time.sleep(max(0.0, float(os.environ["XETRA_START_AT"]) - time.time()))
    sys.argv = [str(REPO / "run.py"), *sys.argv[1:]]
    runpy.run_path(str(REPO / "run.py"), run_name="__main__")
