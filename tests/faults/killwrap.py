"""Run run.py, but SIGKILL the process at the stage named by XETRA_KILL_AT=STAGE:DATE.

No test hook lives in production code: this wrapper patches a method before running run.py
with runpy, and the patch kills the process the way Kubernetes kills a pod (SIGKILL: no
cleanup, no finally blocks, the lock stays).

Stages:
  extract        while parsing a source object of DATE (nothing of DATE written yet)
  report_written after DATE's report object is written, before the meta file records DATE
  meta_write     in the middle of the meta write that records DATE (local: temporary file
                 written, not yet renamed; S3: request built, never sent)
  meta_written   right after the meta write that records DATE succeeded (lock still held)
"""
from __future__ import annotations

import os
import runpy
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

# pylint: disable=wrong-import-position
from xetra import formats, meta, s3, storage  # noqa: E402

META_NAME = "xetra_report1_meta_file.csv"


def die() -> None:
    """Die now, as a killed pod does."""
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def body_bytes(body) -> bytes:
    """The bytes of a prepared request body (bytes or a seekable stream)."""
    if body is None or isinstance(body, (bytes, bytearray)):
        return bytes(body or b"")
    position = body.tell()
    data = body.read()
    body.seek(position)
    return data


def patch(stage: str, day: str) -> None:
    """Install the patch that kills the process at `stage` for date `day`."""
    if stage == "extract":
        original_parse = formats.parse_source_csv

        def parse(data, where, *args, **kwargs):
            if f"{day}_BINS_XETR" in where:
                die()
            return original_parse(data, where, *args, **kwargs)
        formats.parse_source_csv = parse
    elif stage == "report_written":
        original_record = meta.MetaProcess.record

        def record(self, new_entries):
            if any(entry.source_date.isoformat() == day for entry in new_entries):
                die()
            return original_record(self, new_entries)
        meta.MetaProcess.record = record
    elif stage == "meta_write":
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
                        day.encode() in body_bytes(request.body):
                    die()
            self.client.meta.events.register("before-send.s3.PutObject", before_send)
        s3.S3BucketConnector.__init__ = init
    elif stage == "meta_written":
        for store_class in (storage.LocalStorage, s3.S3BucketConnector):
            original_put = store_class.put_bytes

            def put_bytes(self, key, data, *, _original=original_put, **conditions):
                etag = _original(self, key, data, **conditions)
                if key.endswith(META_NAME) and day.encode() in data:
                    die()
                return etag
            store_class.put_bytes = put_bytes
    else:
        raise SystemExit(f"killwrap: unknown stage {stage!r}")


if __name__ == "__main__":
    STAGE, DATE = os.environ["XETRA_KILL_AT"].split(":", 1)
    patch(STAGE, DATE)
    sys.argv = [str(REPO / "run.py"), *sys.argv[1:]]
    runpy.run_path(str(REPO / "run.py"), run_name="__main__")
