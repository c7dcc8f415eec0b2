"""The job as a separate process, as a pod runs it: plainly, in a PID namespace of its own (as
a pod elsewhere is seen), or with a fault armed.

Faults are armed by environment variables (built by `kill_at_stage`, `kill_at_call` and
`start_at`) and need no hook in the job's code: `python -m testkit.processes run.py-ARGS`
patches a function of the job in its own process, then runs run.py there with runpy. The
patch kills the process the way Kubernetes kills a pod (SIGKILL: no cleanup, no finally
blocks, a lock stays), or holds the start back to an instant so that runs overlap.

Kill stages (XETRA_TEST_KILL_AT=STAGE:DATE):
  extract        while parsing a source object of DATE (nothing of DATE written yet)
  report_written after DATE's report object is written, before the meta file records DATE
  meta_write     in the middle of the meta write that records DATE (local: temporary file
                 written, not yet renamed; S3: request built, never sent)
  meta_written   right after the meta write that records DATE succeeded (lock still held)
"""
from __future__ import annotations

import functools
import importlib
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

from testkit.paths import REPO

KILL_AT = "XETRA_TEST_KILL_AT"
KILL_CALL = "XETRA_TEST_KILL_CALL"
CALL_DELAY = "XETRA_TEST_DELAY_SECONDS"
START_AT = "XETRA_TEST_START_AT"
FAULT_VARIABLES = (KILL_AT, KILL_CALL, CALL_DELAY, START_AT)
META_NAME = "xetra_report1_meta_file.csv"
# A shell as the namespace's PID 1, so that the job is an ordinary process SIGKILL can stop.
# A user namespace of its own lets an ordinary user create the PID and mount namespaces.
OTHER_POD = ("unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount-proc",
             "sh", "-c", '"$@"; exit $?', "sh")
OTHER_POD_NEEDS = ("a PID namespace of its own: unshare with unprivileged user namespaces "
                   "(kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0)")


def kill_at_stage(stage: str, day: str) -> dict[str, str]:
    """Fault: SIGKILL the job at `stage` (see the module docstring) of date `day`."""
    return {KILL_AT: f"{stage}:{day}"}


def kill_at_call(target: str, nth: int, delay: float = 0.0) -> dict[str, str]:
    """Fault: SIGKILL the job as MODULE:CLASS.METHOD `target` is called for the `nth` time,
    before it runs (0: never); every call first sleeps `delay` seconds, so that a test can also
    kill the process from outside while it is surely still working."""
    return {KILL_CALL: f"{target}:{nth}", CALL_DELAY: str(delay)}


def start_at(epoch: float) -> dict[str, str]:
    """Fault: start the job's work at `epoch` (its imports done before), with the parsing of
    each source object slowed by 0.3 s, so that two runs started together overlap."""
    return {START_AT: str(epoch)}


def job_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a job process: this one's without AWS_* or fault variables (so
    credentials and faults come from `env` only), plus `env`, with the repository importable."""
    full = {key: value for key, value in os.environ.items()
            if not key.startswith("AWS_") and key not in FAULT_VARIABLES}
    full.update(env or {})
    full["PYTHONPATH"] = str(REPO)
    return full


def job_command(*args: str, env: dict[str, str] | None = None,
                script: Path = REPO / "run.py") -> list[str]:
    """The command line of the job (or of another `script`); through this module's wrapper
    when `env` arms a fault."""
    if any(key in FAULT_VARIABLES for key in env or {}):
        return [sys.executable, "-m", "testkit.processes", *args]
    return [sys.executable, str(script), *args]


@functools.lru_cache(maxsize=1)
def other_pod_supported() -> bool:
    """Whether this user may run a process in a PID namespace of its own (tried once)."""
    try:
        done = subprocess.run([*OTHER_POD, "true"], capture_output=True, timeout=30,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def run_job(*args: str, env: dict[str, str] | None = None, other_pod: bool = False,
            cwd: Path = REPO, timeout: float = 240,
            script: Path = REPO / "run.py") -> subprocess.CompletedProcess:
    """Run `python run.py ARGS` (or another `script`) as a subprocess, as a user would; with
    a fault armed by `env`, through this module's wrapper; with `other_pod`, in a PID
    namespace of its own (check `other_pod_supported` first)."""
    command = job_command(*args, env=env, script=script)
    if other_pod:
        command = [*OTHER_POD, *command]
    return subprocess.run(command, cwd=cwd, env=job_env(env), capture_output=True, text=True,
                          timeout=timeout, check=False)


def die() -> None:
    """Die now, as a killed pod does."""
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm_kill_at_call(spec: str, delay: float) -> None:
    """Replace MODULE:CLASS.METHOD (spec MODULE:CLASS.METHOD:N) so that its Nth call kills
    this process; every call first sleeps `delay` seconds."""
    target, _, nth_text = spec.rpartition(":")
    nth = int(nth_text)
    module_name, _, attribute = target.partition(":")
    class_name, _, method_name = attribute.partition(".")
    owner = getattr(importlib.import_module(module_name), class_name)
    original = getattr(owner, method_name)
    calls = []

    def killing(*args, **kwargs):
        calls.append(1)
        time.sleep(delay)
        if len(calls) == nth:
            die()
        return original(*args, **kwargs)

    setattr(owner, method_name, killing)


def _body_bytes(body) -> bytes:
    """The bytes of a prepared request body (bytes or a seekable stream)."""
    if body is None or isinstance(body, (bytes, bytearray)):
        return bytes(body or b"")
    position = body.tell()
    data = body.read()
    body.seek(position)
    return data


def _kill_in_extract(day: str) -> None:
    from xetra import formats  # pylint: disable=import-outside-toplevel
    original_parse = formats.parse_source_csv

    def parse(data, where, *args, **kwargs):
        if f"{day}_BINS_XETR" in where:
            die()
        return original_parse(data, where, *args, **kwargs)
    formats.parse_source_csv = parse


def _kill_when_report_written(day: str) -> None:
    from xetra import meta  # pylint: disable=import-outside-toplevel
    original_record = meta.MetaProcess.record

    def record(self, new_entries):
        if any(entry.source_date.isoformat() == day for entry in new_entries):
            die()
        return original_record(self, new_entries)
    meta.MetaProcess.record = record


def _kill_in_meta_write(day: str) -> None:
    from xetra import s3, storage  # pylint: disable=import-outside-toplevel
    original_replace = os.replace

    def replace(src, dst, **kwargs):
        if str(dst).endswith(META_NAME) and day.encode() in Path(src).read_bytes():
            die()
        return original_replace(src, dst, **kwargs)
    storage.os.replace = replace
    original_init = s3.S3BucketConnector.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)

        def before_send(request, **_):
            if request.url.split("?")[0].endswith(META_NAME) and \
                    day.encode() in _body_bytes(request.body):
                die()
        self.client.meta.events.register("before-send.s3.PutObject", before_send)
    s3.S3BucketConnector.__init__ = init


def _kill_when_meta_written(day: str) -> None:
    from xetra import s3, storage  # pylint: disable=import-outside-toplevel
    for store_class in (storage.LocalStorage, s3.S3BucketConnector):
        original_put = store_class.put_bytes

        def put_bytes(self, key, data, *, _original=original_put, **conditions):
            etag = _original(self, key, data, **conditions)
            if key.endswith(META_NAME) and day.encode() in data:
                die()
            return etag
        store_class.put_bytes = put_bytes


KILL_STAGES = {"extract": _kill_in_extract, "report_written": _kill_when_report_written,
               "meta_write": _kill_in_meta_write, "meta_written": _kill_when_meta_written}


def arm_kill_at_stage(spec: str) -> None:
    """Install the patch that kills the process at STAGE for DATE (spec STAGE:DATE)."""
    stage, _, day = spec.partition(":")
    if stage not in KILL_STAGES:
        raise SystemExit(f"testkit.processes: unknown kill stage {stage!r}")
    KILL_STAGES[stage](day)


def arm_start_at(epoch: float) -> None:
    """Import the whole job now, slow each source object's parsing by 0.3 s (the run holds its
    lock long enough for another run to meet it), and wait until `epoch`."""
    # pylint: disable=import-outside-toplevel,unused-import
    from xetra import cli as _cli, formats  # noqa: F401  imported now, not after the start
    original_parse = formats.parse_source_csv

    def slow_parse(data, where, *args, **kwargs):
        time.sleep(0.3)
        return original_parse(data, where, *args, **kwargs)
    formats.parse_source_csv = slow_parse
    time.sleep(max(0.0, epoch - time.time()))


def main(argv: list[str]) -> None:
    """Arm the faults named in the environment, then run run.py with `argv` in this process."""
    if KILL_CALL in os.environ:
        arm_kill_at_call(os.environ[KILL_CALL], float(os.environ.get(CALL_DELAY, "0")))
    if KILL_AT in os.environ:
        arm_kill_at_stage(os.environ[KILL_AT])
    if START_AT in os.environ:
        arm_start_at(float(os.environ[START_AT]))
    sys.argv = [str(REPO / "run.py"), *argv]
    runpy.run_path(str(REPO / "run.py"), run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
