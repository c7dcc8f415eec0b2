"""Run run.py, but SIGKILL the process at a chosen instant: a crash with no test hook in the job.

    python tests/killrun.py MODULE:CLASS.METHOD N run.py-arguments...

kills the process when MODULE.CLASS.METHOD is called for the N-th time, before it runs
(N = 0: never). With XETRA_TEST_DELAY_SECONDS set, every call first sleeps that long, so that
a test can kill the process from outside while it is surely still working.
"""
import importlib
import os
import runpy
import signal
import sys
import time
from pathlib import Path


def arm(target: str, nth: int) -> None:
    """Replace the method so that its nth call kills this process."""
    module_name, _, attribute = target.partition(":")
    class_name, _, method_name = attribute.partition(".")
    owner = getattr(importlib.import_module(module_name), class_name)
    original = getattr(owner, method_name)
    calls = []
    delay = float(os.environ.get("XETRA_TEST_DELAY_SECONDS", "0"))

    def killing(*args, **kwargs):
        calls.append(1)
        time.sleep(delay)
        if len(calls) == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)

    setattr(owner, method_name, killing)


if __name__ == "__main__":
    REPO = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(REPO))
    arm(sys.argv[1], int(sys.argv[2]))
    sys.argv = [str(REPO / "run.py"), *sys.argv[3:]]
    runpy.run_path(str(REPO / "run.py"), run_name="__main__")
