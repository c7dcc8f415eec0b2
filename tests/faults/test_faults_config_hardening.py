"""A hostile or careless configuration file: the job's own log lines survive any logging
section, a file that is not UTF-8 or expands without bound fails with one short line, and
every numeric setting has a range checked before any I/O."""
from __future__ import annotations

import pytest
import yaml

from testkit.jobs import Job
from testkit.sourcedata import hourly_key
from testkit.targets import Folder, fill
from testkit.threedays import D1, D2, D3, three_days

MAX_ERROR_LINE = 400  # characters: what a user can read on one line


def check_config_error(job: Job, start: str, *args: str) -> str:
    """Exit 2, one short line that starts with `start`, nothing written; returns the line."""
    result = job.run(*(args or ("--to", D3)))
    assert result.code == 2, result
    assert result.err.startswith(f"xetra: configuration error: {start}"), result.err[:500]
    assert result.err.count("\n") == 1 and len(result.err) <= MAX_ERROR_LINE, result.err[:500]
    assert not job.target.root.exists()
    return result.err


# --- logging ------------------------------------------------------------------------------

@pytest.mark.parametrize("disable", ["omitted", True])
def test_the_jobs_loggers_survive_a_logging_section_without_disable_existing_loggers(
        tmp_path, disable):
    """dictConfig disables every logger that exists when it runs unless told not to; the
    job's loggers exist by then. Run as a process, as a pod would: the summary and the warning
    about the skipped object (both worked out by hand) are in the log file."""
    source = Folder(tmp_path / "source")
    fill(source, {**three_days(), hourly_key(D2, 11): b"\x89PNG\r\n\x1a\n\x00\x00"})
    job = Job(tmp_path, source, Folder(tmp_path / "target"), job={"skip_bad_objects": True})
    if disable == "omitted":
        del job.config["logging"]["disable_existing_loggers"]
    else:
        job.config["logging"]["disable_existing_loggers"] = True
    job.write()
    result = job.run_process("--to", D3)
    assert result.code == 0, result
    assert result.summary.startswith(f"dates processed=3 ({D1}..{D3}), rows read=6, ")
    assert result.summary.endswith(f"; skipped bad objects: {hourly_key(D2, 11)}")
    warning = (f"skipping bad object: {source.url}/{hourly_key(D2, 11)}: not a CSV "
               f"(unreadable header line)")
    assert [line for line in result.log.splitlines()
            if " WARNING xetra" in line and line.endswith(warning)], result.log


def test_a_logger_the_section_names_keeps_its_settings(tmp_path):
    """Re-enabling the job's loggers keeps what the section says of them: xetra at WARNING
    hides the INFO summary but not the warning."""
    source = Folder(tmp_path / "source")
    fill(source, {**three_days(), hourly_key(D2, 11): b"\x89PNG\r\n\x1a\n\x00\x00"})
    job = Job(tmp_path, source, Folder(tmp_path / "target"), job={"skip_bad_objects": True})
    del job.config["logging"]["disable_existing_loggers"]
    job.config["logging"]["loggers"]["xetra"] = {"level": "WARNING"}
    job.write()
    result = job.run_process("--to", D3)
    assert result.code == 0, result
    assert "run summary" not in result.log
    assert "skipping bad object" in result.log


# --- encoding and expansion ---------------------------------------------------------------

@pytest.mark.parametrize("where, line", [("comment", 1), ("value", 2)])
def test_a_config_file_that_is_not_utf8(tmp_path, where, line):
    """A latin-1 ö (byte 0xf6): exit 2, one line naming the file, the byte and its line."""
    source = Folder(tmp_path / "source")
    fill(source, three_days())
    job = Job(tmp_path, source, Folder(tmp_path / "target"))
    text = yaml.safe_dump(job.config, sort_keys=False).encode("utf-8")
    if where == "comment":
        data = "# Xetra Börse report\n".encode("latin-1") + text
    else:
        data = b"# Xetra report\n" + text.replace(b"source:\n", "source: # Börse\n".encode(
            "latin-1"), 1)
        assert data.index(b"\xf6") > data.index(b"\n")  # on line 2
    job.config_path.write_bytes(data)
    message = check_config_error(job, f"--config: {job.config_path} is not UTF-8 text")
    assert f"byte 0xf6 on line {line}" in message


BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""
NESTED_MAPPINGS = """\
a: &a {x: 1, y: 2, z: 3, w: 4, v: 5, u: 6, t: 7, s: 8}
b: &b {p: *a, q: *a, r: *a, s: *a, t: *a, u: *a, v: *a, w: *a}
c: &c {p: *b, q: *b, r: *b, s: *b, t: *b, u: *b, v: *b, w: *b}
d: &d {p: *c, q: *c, r: *c, s: *c, t: *c, u: *c, v: *c, w: *c}
e: &e {p: *d, q: *d, r: *d, s: *d, t: *d, u: *d, v: *d, w: *d}
f: &f {p: *e, q: *e, r: *e, s: *e, t: *e, u: *e, v: *e, w: *e}
g: &g {p: *f, q: *f, r: *f, s: *f, t: *f, u: *f, v: *f, w: *f}
"""


@pytest.mark.parametrize("document", [BILLION_LAUGHS, NESTED_MAPPINGS,
                                      BILLION_LAUGHS + "job:\n  lookback_days: *i\n"],
                         ids=["lists", "mappings", "inside_a_setting"])
def test_alias_expansion_is_bounded(tmp_path, document):
    """A few hundred bytes that expand to 9**9 (or 8**7) values: exit 2 with one short line
    (the loader counts what aliases expand to, and stops at a limit)."""
    job = Job(tmp_path, Folder(tmp_path / "source"), Folder(tmp_path / "target"))
    job.config_path.write_text(document, encoding="utf-8")
    check_config_error(job, f"--config: {job.config_path}: holds more than 10000 values "
                            f"(aliases expanded)")


@pytest.mark.parametrize("document, problem", [
    ("[" * 50_000 + "]" * 50_000, "is nested too deeply"),
    ("# padding\n" * 120_000, "is larger than 1048576 bytes"),
])
def test_a_config_file_too_deep_or_too_large(tmp_path, document, problem):
    """Nesting that would exhaust the parser's recursion, a file over 1 MiB: one line."""
    job = Job(tmp_path, Folder(tmp_path / "source"), Folder(tmp_path / "target"))
    job.config_path.write_text(document, encoding="utf-8")
    check_config_error(job, f"--config: {job.config_path} {problem}")


def test_a_few_aliases_are_fine(tmp_path):
    """Anchors and aliases as people use them (one endpoint for both sides) still work."""
    source = Folder(tmp_path / "source")
    fill(source, three_days())
    job = Job(tmp_path, source, Folder(tmp_path / "target"))
    text = yaml.safe_dump(job.config, sort_keys=False)
    text = text.replace("  max_concurrent_reads: 2\n", "  max_concurrent_reads: &reads 2\n")
    text = text.replace("  max_attempts: 3\n", "  max_attempts: *reads\n")
    job.config_path.write_text(text, encoding="utf-8")
    result = job.run("--to", D3)
    assert result.code == 0, result


@pytest.mark.parametrize("dotted, value", [
    ("job.lookback_days", list(range(5_000))),
    ("report.name", "x/" * 200_000),
    ("report.currencies", ["EURO"] * 5_000),
])
def test_a_config_error_prints_a_bounded_line(tmp_path, dotted, value):
    """A huge wrong value is named, not printed whole."""
    job = Job(tmp_path, Folder(tmp_path / "source"), Folder(tmp_path / "target"))
    job.set_key(dotted, value)
    check_config_error(job, f"{dotted}: ")


# --- ranges -------------------------------------------------------------------------------

OUT_OF_RANGE = [
    # (setting, value, message after "setting: ")
    ("job.lookback_days", 0, "must be greater than 0, got 0"),
    ("job.lookback_days", 32, "must be at most 31, got 32"),
    ("job.lookback_days", 1_000_000, "must be at most 31, got 1000000"),
    ("job.max_concurrent_reads", 0, "must be greater than 0, got 0"),
    ("job.max_concurrent_reads", 65, "must be at most 64, got 65"),
    ("job.max_concurrent_reads", 10 ** 9, "must be at most 64, got 1000000000"),
    ("job.max_invalid_share", -0.1, "must be from 0 to 1, got -0.1"),
    ("job.max_invalid_share", 1.5, "must be from 0 to 1, got 1.5"),
    ("job.max_invalid_share", float("nan"), "must be from 0 to 1, got nan"),
    ("meta.lock_ttl_seconds", 0, "must be greater than 0, got 0"),
    ("meta.lock_ttl_seconds", 86_401, "must be at most 86400, got 86401"),
    ("s3.max_attempts", 21, "must be at most 20, got 21"),
    ("s3.max_attempts", 10 ** 6, "must be at most 20, got 1000000"),
    ("s3.connect_timeout", 0, "must be greater than 0, got 0"),
    ("s3.connect_timeout", 301, "must be at most 300, got 301"),
    ("s3.connect_timeout", float("inf"), "must be at most 300, got inf"),
    ("s3.read_timeout", -1, "must be greater than 0, got -1"),
    ("s3.read_timeout", 3601, "must be at most 3600, got 3601"),
    ("s3.read_timeout", float("nan"), "must be greater than 0, got nan"),
]


@pytest.mark.parametrize("dotted, value, message", OUT_OF_RANGE,
                         ids=[f"{c[0]}={c[1]}" for c in OUT_OF_RANGE])
def test_numeric_settings_out_of_range_fail_before_any_io(tmp_path, dotted, value, message):
    """Exit 2 naming the setting and its range; the source is not even listed (it does not
    exist) and the target folder is not created."""
    job = Job(tmp_path, Folder(tmp_path / "no-source"), Folder(tmp_path / "target"))
    job.set_key(dotted, value)
    check_config_error(job, f"{dotted}: {message}")


@pytest.mark.parametrize("dotted, value", [
    ("job.lookback_days", 1), ("job.lookback_days", 31), ("job.max_concurrent_reads", 64),
    ("job.max_invalid_share", 0), ("job.max_invalid_share", 1), ("meta.lock_ttl_seconds", 1),
    ("s3.max_attempts", 20), ("s3.read_timeout", 0.5),
])
def test_numeric_settings_at_the_ends_of_their_range_are_accepted(tmp_path, dotted, value):
    """The ends of each range are valid: the run succeeds."""
    source = Folder(tmp_path / "source")
    fill(source, three_days())
    job = Job(tmp_path, source, Folder(tmp_path / "target"))
    job.set_key(dotted, value)
    result = job.run("--to", D3)
    assert result.code == 0, result


@pytest.mark.parametrize("args, config_date, message", [
    ((), "0001-01-01", "job.first_date: 0001-01-01 is before 1990-01-01"),
    (("--from", "1900-01-01", "--to", D3), D1, "--from: 1900-01-01 is before 1990-01-01"),
])
def test_dates_before_any_xetra_data_are_rejected(tmp_path, args, config_date, message):
    """A first date before 1990 (Xetra started in 1997) would only list empty folders, and
    near year 1 the look-back overflows: exit 2 before any I/O."""
    job = Job(tmp_path, Folder(tmp_path / "no-source"), Folder(tmp_path / "target"))
    job.set_key("job.first_date", config_date)
    check_config_error(job, message, *(args or ("--to", D3)))
