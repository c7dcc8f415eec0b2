"""Mutation testing of one core module with mutmut, on the module's fast tests.

    .venv/bin/python scripts/mutation.py MODULE [--again] [--check] [--max-children N]

MODULE is one of the keys of MODULES below (transform, formats, config, storage, s3, meta,
jobcontrol). The run happens in a copy of the working tree under the system's temporary folder
(xetra-mutation/MODULE), never in the working tree itself: mutmut writes its mutants/ folder
and its pyproject.toml section there. Only the module is mutated, and only the test files
listed for it are run (mutmut then runs, per mutant, just the tests that executed the mutated
function). `--again` keeps the copy of the previous run of the module, so mutmut re-runs only
the mutants whose function or tests changed. It prints the mutants generated, killed,
survived and timed out, the survivors' names, and the share that survived; `--check` exits 1
when that share is above `--threshold` (default 5 %). benchmarks/mutation/README.md has the
how and the measured times, RESULTS.md the scores, SURVIVORS.md the accepted survivors.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARKERS = "not container and not airflow and not lambda_runtime and not s3server"
# The fast tests that exercise each module (no S3 server: tests marked s3server are deselected
# by MARKERS; the faults tests named here run the job in-process through testkit.jobs.Job.run).
MODULES = {
    "transform": ["tests/test_transform.py", "tests/test_transform_adversarial.py",
                  "tests/test_etl.py", "tests/test_formats.py"],
    "formats": ["tests/test_formats.py", "tests/test_volume_parsing.py", "tests/test_transform.py",
                "tests/test_etl.py", "tests/test_streaming.py",
                "tests/faults/test_faults_odd_rows.py", "tests/faults/test_faults_bad_input.py"],
    "config": ["tests/test_config.py", "tests/test_cli.py",
               "tests/faults/test_faults_config_hardening.py"],
    "storage": ["tests/test_storage.py", "tests/test_etl.py", "tests/test_meta.py",
                "tests/test_lock_round_trips.py"],
    "s3": ["tests/test_storage.py", "tests/test_etl.py", "tests/test_s3_connector.py"],
    "meta": ["tests/test_meta.py", "tests/test_meta_known_version.py",
             "tests/test_meta_migration.py", "tests/test_etl.py",
             "tests/faults/test_faults_config_meta.py"],
    "jobcontrol": ["tests/test_etl.py", "tests/test_meta.py", "tests/test_backfill.py",
                   "tests/test_catchup.py", "tests/test_deadline.py",
                   "tests/test_lock_round_trips.py", "tests/test_group_commit.py",
                   "tests/test_jobcontrol_release.py", "tests/test_jobcontrol_discard.py"],
}
# What the tests need beside xetra/ and tests/ (mutmut copies these into mutants/).
ALSO_COPY = ["testkit", "configs", "data", "deploy", "run.py"]
COPIED = ["xetra", "tests", "pyproject.toml", "Pipfile.lock", *ALSO_COPY]


def mutmut_section(module: str) -> str:
    """The [tool.mutmut] section for one module's run."""
    def toml_list(items: list[str]) -> str:
        return "[" + ", ".join(json.dumps(item) for item in items) + "]"
    return "\n".join([
        "", "[tool.mutmut]",
        'source_paths = ["xetra"]',
        f'only_mutate = ["xetra/{module}.py"]',
        f"also_copy = {toml_list(ALSO_COPY)}",
        f"pytest_add_cli_args = {toml_list(['--no-cov', '-p', 'no:cacheprovider', '-m', MARKERS])}",
        f"pytest_add_cli_args_test_selection = {toml_list(MODULES[module])}",
        "use_git_change_detection = false",
        "",
    ])


def prepare(module: str, work: Path, again: bool) -> None:
    """A copy of the working tree's files at `work`, with the module's mutmut section."""
    if work.exists() and not again:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in COPIED:
        source, target = REPO / name, work / name
        if source.is_dir():
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copy2(source, target)
    pyproject = work / "pyproject.toml"
    pyproject.write_text(pyproject.read_text(encoding="utf-8") + mutmut_section(module),
                         encoding="utf-8")


def mutmut(work: Path, *args: str, capture: bool = False) -> subprocess.CompletedProcess:
    """Run mutmut (of this Python's environment) in `work`."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=work, env=env,
                          check=False, text=True, capture_output=capture)


def survivors(work: Path) -> list[str]:
    """The names of the mutants that survived (or had no test), as `mutmut results` lists."""
    listed = mutmut(work, "results", capture=True).stdout.splitlines()
    return [line.split(":")[0].strip() for line in listed
            if line.strip().endswith(("survived", "no tests"))]


def main(argv: list[str] | None = None) -> int:
    """Command line; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", choices=sorted(MODULES))
    parser.add_argument("--again", action="store_true",
                        help="reuse the previous run's copy and results (only changes re-run)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when the share of survivors is above --threshold")
    parser.add_argument("--threshold", type=float, default=5.0, help="percent (default 5)")
    parser.add_argument("--max-children", type=int, default=2,
                        help="parallel test processes (default 2: this is a 2-core machine)")
    parser.add_argument("--work", type=Path, default=None,
                        help="where the copy goes (default: TMPDIR/xetra-mutation/MODULE)")
    options = parser.parse_args(argv)
    work = options.work or Path(tempfile.gettempdir()) / "xetra-mutation" / options.module
    started = time.monotonic()
    prepare(options.module, work, options.again)
    run = mutmut(work, "run", "--max-children", str(options.max_children), capture=True)
    seconds = time.monotonic() - started
    (work / "mutmut-run.log").write_text(run.stdout + run.stderr, encoding="utf-8")
    exported = mutmut(work, "export-cicd-stats", capture=True)
    stats_file = work / "mutants" / "mutmut-cicd-stats.json"
    if run.returncode or exported.returncode or not stats_file.exists():
        print(f"mutation: mutmut failed (exit {run.returncode}); log: {work}/mutmut-run.log",
              file=sys.stderr)
        return 2
    stats = json.loads(stats_file.read_text(encoding="utf-8"))
    survived = stats["survived"] + stats["no_tests"]
    share = 100.0 * survived / stats["total"] if stats["total"] else 0.0
    names = survivors(work)
    for name in names:
        print(f"survived: {name}")
    print(f"mutation {options.module}: generated={stats['total']} killed={stats['killed']} "
          f"survived={stats['survived']} no_tests={stats['no_tests']} "
          f"timeout={stats['timeout']} suspicious={stats['suspicious']} "
          f"skipped={stats['skipped']} survived_share={share:.1f}% seconds={seconds:.0f} "
          f"(tests: {' '.join(MODULES[options.module])}; `mutmut show NAME` in {work})")
    if options.check and share > options.threshold:
        print(f"mutation {options.module}: {share:.1f}% of the mutants survived, more than "
              f"{options.threshold}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
