"""A configured job on a source and a target, run in this process or as a process, with its
exit status, output and log lines."""
from __future__ import annotations

import io
import os
from pathlib import Path

from testkit.config import job_config, write_config
from testkit.processes import run_job
from testkit.targets import Bucket, Folder
from testkit.threedays import D1


class JobResult:
    """Exit status, stdout, stderr and the log lines of one run."""

    def __init__(self, code: int, out: str, err: str, log: str):
        self.code = code
        self.out = out
        self.err = err
        self.log = log

    @property
    def summary(self) -> str:
        """The run summary line (the last log line of a successful run)."""
        lines = [line for line in self.log.splitlines() if "run summary:" in line]
        assert lines, f"no run summary in the log:\n{self.log}"
        return lines[-1].split("run summary: ", 1)[1]

    def __repr__(self) -> str:
        return f"JobResult(code={self.code}, err={self.err!r}, log=...{self.log[-600:]!r})"


class Job:
    """A configured job on a source and target; runs it in-process or as a process.

    Its configuration is made for tests: fast retries and timeouts, log lines to a file,
    first_date `first_date`; `sections` maps a section name to keys merged into it.
    """

    def __init__(self, tmp: Path, source: Folder | Bucket, target: Folder | Bucket,
                 endpoint_url: str | None = None, env: dict[str, str] | None = None,
                 first_date: str = D1, **sections):
        self.tmp = tmp
        self.source = source
        self.target = target
        self.env = env or {}
        self.log_file = tmp / "job.log"
        fast = {"job": {"max_concurrent_reads": 2}, "meta": {"lock_ttl_seconds": 60},
                "s3": {"retry_mode": "standard", "max_attempts": 3, "connect_timeout": 1,
                       "read_timeout": 1}}
        for name, values in sections.items():
            fast.setdefault(name, {}).update(values)
        self.config = job_config(source.url, target.url, first_date=first_date,
                                 endpoint_url=endpoint_url, log_file=self.log_file, **fast)
        self.config_path = tmp / "job.yml"
        self.write()

    def write(self) -> Path:
        """(Re)write the configuration file after changing `self.config`."""
        return write_config(self.config_path, self.config)

    def set_key(self, dotted: str, value) -> None:
        """Set config key `section.key` (or `section.sub.key`) and rewrite the file."""
        *path, last = dotted.split(".")
        section = self.config
        for name in path:
            section = section.setdefault(name, {})
        section[last] = value
        self.write()

    def _log_since(self, offset: int) -> str:
        if not self.log_file.exists():
            return ""
        return self.log_file.read_bytes()[offset:].decode("utf-8", "replace")

    def run(self, *args: str) -> JobResult:
        """Run the job in this process through the CLI (what run.py does)."""
        from xetra import cli  # pylint: disable=import-outside-toplevel
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        out, err = io.StringIO(), io.StringIO()
        saved = {key: os.environ.get(key) for key in self.env}
        os.environ.update(self.env)
        try:
            code = cli.run(["--config", str(self.config_path), *args], stdout=out, stderr=err)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        return JobResult(code, out.getvalue(), err.getvalue(), self._log_since(offset))

    def run_process(self, *args: str, env: dict[str, str] | None = None,
                    other_pod: bool = False) -> JobResult:
        """Run the job as a separate process (with the fault `env` arms, if any; see
        testkit.processes), in a PID namespace of its own with `other_pod`."""
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        done = run_job("--config", str(self.config_path), *args,
                       env={**self.env, **(env or {})}, other_pod=other_pod, timeout=120)
        return JobResult(done.returncode, done.stdout, done.stderr, self._log_since(offset))
