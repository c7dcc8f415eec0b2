"""Configuration: the shipped files load, and every bad setting is named before any I/O."""
import copy
import datetime as dt
import logging

import pytest
import yaml

from xetra.config import (DEFAULT_COLUMNS, S3ClientSettings, StorageLocation, config_from_mapping,
                          configure_logging, load_config, parse_date)
from xetra.errors import ConfigError


@pytest.fixture
def raw(repo_root):
    """The production config as a mapping, to break one setting at a time."""
    return yaml.safe_load((repo_root / "configs" / "xetra_report1.yml").read_text())


def test_shipped_configs_load(repo_root):
    production = load_config(repo_root / "configs" / "xetra_report1.yml")
    assert production.source == StorageLocation("s3://deutsche-boerse-xetra-pds/", None,
                                                "eu-central-1", True)
    assert production.source.bucket == "deutsche-boerse-xetra-pds"
    assert production.source.prefix == "" and production.source.is_s3
    assert production.job.first_date == dt.date(2022, 1, 3)
    assert dict(production.report.columns) == DEFAULT_COLUMNS
    assert production.meta.key == "meta/report1/xetra_report1_meta_file.csv"
    sample = load_config(repo_root / "configs" / "xetra_sample.yml")
    assert not sample.source.is_s3 and sample.target.url == "output/sample"
    assert sample.job.first_date == dt.date(2017, 6, 27)
    public = load_config(repo_root / "configs" / "xetra_public_local.yml")
    assert public.source == production.source  # the public bucket, unsigned, into a folder
    assert not public.target.is_s3 and public.target.url == "output/public"


def test_location_prefix_normalised():
    assert StorageLocation("s3://bucket-a/some/prefix").prefix == "some/prefix/"
    assert StorageLocation("s3://bucket-a/some/prefix/").bucket == "bucket-a"


def edit(raw, path, value):
    """A copy of raw with the setting at dotted `path` set (or removed when value is ...)."""
    changed = copy.deepcopy(raw)
    *parents, leaf = path.split(".")
    node = changed
    for name in parents:
        node = node[name]
    if value is ...:
        del node[leaf]
    else:
        node[leaf] = value
    return changed


@pytest.mark.parametrize("path, value, message", [
    ("job.first_date", ..., "job.first_date: missing required key"),
    ("job.first_date", "2021-02-30", "job.first_date: not a valid date: '2021-02-30'"),
    ("job.first_date", "last monday", "job.first_date: expected a date YYYY-MM-DD"),
    ("job.first_date", 20210101, "job.first_date: expected str or date"),
    ("job.timezone", "Europe/Nowhere", "job.timezone: unknown time zone"),
    ("job.max_concurrent_reads", 0, "job.max_concurrent_reads: must be greater than 0"),
    ("job.max_concurrent_reads", True, "job.max_concurrent_reads: expected int, got a boolean"),
    ("job.lookback", 5, "job.lookback: unknown key"),
    ("source.url", "ftp://host/x", "source.url: expected s3://bucket/prefix or a local path"),
    ("source.url", "s3://Bad_Bucket", "source.url: not a valid S3 bucket name"),
    ("source.url", ..., "source.url: missing required key"),
    ("source.unsigned", "yes", "source.unsigned: expected bool"),
    ("target.endpoint_url", "localhost:9000", "target.endpoint_url: expected http(s)://"),
    ("target.url", "s3://deutsche-boerse-xetra-pds", "target.url: must differ from source.url"),
    ("report.format", "xlsx", "report.format: unknown format 'xlsx' (supported: parquet, csv)"),
    ("report.name", "a/b", "report.name: only letters"),
    ("report.prefix", "../up", "report.prefix: must be a relative key without '..'"),
    ("report.currencies", [], "report.currencies: expected a non-empty list"),
    ("report.columns.isin", "date", "report.columns: column names must be distinct"),
    ("report.columns.colour", "x", "report.columns.colour: unknown key"),
    ("meta.key", "/abs/meta.csv", "meta.key: must be a relative key"),
    ("meta.lock_ttl_seconds", -1, "meta.lock_ttl_seconds: must be greater than 0"),
    ("s3.retry_mode", "eager", "s3.retry_mode: expected one of standard, adaptive, legacy"),
    ("s3.read_timeout", "slow", "s3.read_timeout: expected int or float"),
    ("logging", ..., "logging: missing required section"),
    ("logging.version", 2, "logging.version: must be 1"),
    ("logging.handlers", {}, "logging.handlers: at least one handler is required"),
    ("logging.root", {"level": "INFO"}, "logging.root.handlers: no logger uses a handler"),
    ("extra", 1, "extra: unknown key"),
    ("job", ..., "job: missing required section"),
    ("target", ..., "target: missing required section"),
    ("report", "parquet", "report: must be a mapping, got str"),
])
def test_bad_setting_is_named(raw, path, value, message):
    with pytest.raises(ConfigError) as error:
        config_from_mapping(edit(raw, path, value))
    assert message in str(error.value)


@pytest.mark.parametrize("value, message", [
    (0, "must be greater than 0, got 0"),
    (-3, "must be greater than 0, got -3"),
    (32, "must be at most 31, got 32"),        # README: 1..31
    (2.5, "expected int, got float 2.5"),
    ("x", "expected int, got str 'x'"),
    (True, "expected int, got a boolean"),
])
def test_lookback_days_outside_1_to_31_is_refused(raw, value, message):
    """A look-back of 0 or less would make every change_prev_closing_% null without a word:
    refused before any I/O, in one line naming the key."""
    with pytest.raises(ConfigError) as error:
        config_from_mapping(edit(raw, "job.lookback_days", value))
    assert str(error.value) == f"job.lookback_days: {message}"  # one line


@pytest.mark.parametrize("value", [1, 31])
def test_lookback_days_bounds_are_accepted(raw, value):
    assert config_from_mapping(edit(raw, "job.lookback_days", value)).job.lookback_days == value


def test_optional_sections_have_defaults(raw):
    for section in ("report", "meta", "s3"):
        del raw[section]
    config = config_from_mapping(raw)
    assert config.report.format == "parquet" and config.report.currencies == ("EUR",)
    assert config.meta.lock_ttl_seconds == 900 and config.s3.retry_mode == "standard"


def test_renamed_columns_and_prefix_slash(raw):
    config = config_from_mapping(edit(edit(raw, "report.columns", {"isin": "ISIN"}),
                                      "report.prefix", "daily"))
    assert config.report.columns["isin"] == "ISIN"
    assert config.report.columns["date"] == "date"
    assert config.report.prefix == "daily/"


def test_command_line_locations_override_and_are_checked(raw, tmp_path):
    config = config_from_mapping(raw)
    local = config.with_locations(None, str(tmp_path))
    assert local.target.url == str(tmp_path) and local.source == config.source
    with pytest.raises(ConfigError, match="--source: expected s3://bucket/prefix"):
        config.with_locations("http://x", None)
    with pytest.raises(ConfigError, match="target.url: must differ from source.url"):
        config.with_locations(str(tmp_path), str(tmp_path / "." / ""))


def test_unreadable_or_invalid_yaml_is_named(tmp_path):
    with pytest.raises(ConfigError, match="--config: cannot read .*missing.yml"):
        load_config(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("source: [unclosed\n")
    with pytest.raises(ConfigError, match="--config: .*bad.yml is not valid YAML"):
        load_config(bad)


def test_parse_date_rejects_datetime():
    with pytest.raises(ConfigError, match="--from: expected a date YYYY-MM-DD, got a datetime"):
        parse_date(dt.datetime(2021, 5, 7, 12), "--from")
    assert parse_date("2021-05-07", "--to") == dt.date(2021, 5, 7)


def test_logging_section_configures_handlers(raw, capsys):
    configure_logging(config_from_mapping(raw))
    logging.getLogger("xetra.test").info("hello from the config")
    assert "INFO xetra.test: hello from the config" in capsys.readouterr().out
    broken = edit(raw, "logging.handlers", {"console": {"class": "no.such.Handler"}})
    with pytest.raises(ConfigError, match="logging: rejected by logging.config.dictConfig"):
        configure_logging(config_from_mapping(broken))


def test_command_line_urls_keep_the_other_location_settings(raw):
    raw["target"]["endpoint_url"] = "http://127.0.0.1:8333"
    raw["s3"] = {"retry_mode": "adaptive", "max_attempts": 3}
    config = config_from_mapping(raw)
    moved = config.with_locations("s3://other-source/pre", "s3://other-target")
    assert moved.source == StorageLocation("s3://other-source/pre", None, "eu-central-1", True)
    assert moved.target == StorageLocation("s3://other-target", "http://127.0.0.1:8333",
                                           "eu-central-1", False)
    assert (moved.job, moved.report, moved.meta, moved.s3, moved.logging) == \
        (config.job, config.report, config.meta, config.s3, config.logging)
    with pytest.raises(ConfigError) as error:
        config.with_locations(None, "ftp://x")
    assert str(error.value).startswith("--target: expected s3://bucket/prefix")


def test_s3_client_settings_and_their_ranges(raw):
    raw["s3"] = {"retry_mode": "legacy", "max_attempts": 20, "connect_timeout": 300,
                 "read_timeout": 0.5}
    assert config_from_mapping(raw).s3 == S3ClientSettings("legacy", 20, 300.0, 0.5)
    del raw["s3"]
    assert config_from_mapping(raw).s3 == S3ClientSettings("standard", 8, 10.0, 60.0)
    for key, value, message in [
            ("max_attempts", 21, "s3.max_attempts: must be at most 20, got 21"),
            ("connect_timeout", 301, "s3.connect_timeout: must be at most 300, got 301"),
            ("read_timeout", 3601, "s3.read_timeout: must be at most 3600, got 3601"),
            ("retry_mode", "eager", "s3.retry_mode: expected one of standard, adaptive, "
                                    "legacy, got 'eager'")]:
        with pytest.raises(ConfigError) as error:
            config_from_mapping({**raw, "s3": {key: value}})
        assert str(error.value) == message


@pytest.mark.parametrize("section, message", [
    (..., "logging: missing required section (a logging.config.dictConfig mapping)"),
    ({"version": 2}, "logging.version: must be 1 (logging.config.dictConfig schema)"),
    ({"version": 1, "handlers": {}},
     "logging.handlers: at least one handler is required, or every log line is lost"),
    ({"version": 1, "handlers": {"h": {"class": "logging.NullHandler"}},
      "root": {"level": "INFO"}, "loggers": {"xetra": {"level": "INFO"}}},
     "logging.root.handlers: no logger uses a handler, so every log line would be lost"),
])
def test_a_logging_section_that_would_lose_every_line_is_refused(raw, section, message):
    with pytest.raises(ConfigError) as error:
        config_from_mapping(edit(raw, "logging", section))
    assert str(error.value) == message


def test_a_named_logger_with_a_handler_is_enough(raw):
    raw["logging"] = {"version": 1, "handlers": {"h": {"class": "logging.NullHandler"}},
                      "loggers": {"xetra": {"handlers": ["h"]}}}
    assert config_from_mapping(raw).logging["loggers"]["xetra"] == {"handlers": ["h"]}


def test_job_settings_defaults_and_values(raw):
    raw["job"] = {"first_date": "2022-01-03"}
    job = config_from_mapping(raw).job
    assert (job.timezone, job.lookback_days, job.max_concurrent_reads, job.skip_bad_objects,
            job.max_wait_days, job.max_invalid_share) == ("Europe/Berlin", 10, 8, False, 3, 0.5)
    raw["job"] = {"first_date": "1990-01-01", "timezone": "UTC", "lookback_days": 31,
                  "max_concurrent_reads": 64, "skip_bad_objects": True, "max_wait_days": 0,
                  "max_invalid_share": 1}
    job = config_from_mapping(raw).job
    assert (job.first_date, job.timezone, job.lookback_days, job.max_concurrent_reads,
            job.skip_bad_objects, job.max_wait_days, job.max_invalid_share) == \
        (dt.date(1990, 1, 1), "UTC", 31, 64, True, 0, 1.0)
    raw["job"]["max_wait_days"] = 36500
    assert config_from_mapping(raw).job.max_wait_days == 36500


@pytest.mark.parametrize("key, value, message", [
    ("max_wait_days", -1, "job.max_wait_days: must be from 0 to 36500, got -1"),
    ("max_wait_days", 36501, "job.max_wait_days: must be from 0 to 36500, got 36501"),
    ("max_wait_days", "3", "job.max_wait_days: expected int, got str '3'"),
    ("first_date", "1989-12-31", "job.first_date: 1989-12-31 is before 1990-01-01"),
    ("first_date", [2022], "job.first_date: expected str or date, got list [2022]"),
    ("timezone", "Mars/Base", "job.timezone: unknown time zone 'Mars/Base'"),
    ("skip_bad_objects", "yes", "job.skip_bad_objects: expected bool, got str 'yes'"),
])
def test_job_settings_refused_in_one_line(raw, key, value, message):
    with pytest.raises(ConfigError) as error:
        config_from_mapping(edit(raw, f"job.{key}", value))
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_report_and_meta_settings_as_given(raw):
    raw["report"] = {"prefix": "daily/eur", "name": "Rep_1.x-y", "format": "csv",
                     "currencies": ["EUR", "USD"]}
    raw["meta"] = {"key": "m/meta.csv", "lock_key": "m/run.lock", "lock_ttl_seconds": 60}
    config = config_from_mapping(raw)
    assert (config.report.prefix, config.report.name, config.report.format,
            config.report.currencies) == ("daily/eur/", "Rep_1.x-y", "csv", ("EUR", "USD"))
    assert (config.meta.key, config.meta.lock_key, config.meta.lock_ttl_seconds) == \
        ("m/meta.csv", "m/run.lock", 60)
    raw["report"] = {"prefix": ""}
    assert config_from_mapping(raw).report.prefix == ""


@pytest.mark.parametrize("path, value, message", [
    ("meta.lock_key", "../lock", "meta.lock_key: must be a relative key without '..'"),
    ("report.name", "a b", "report.name: only letters"),
    ("source.url", "s3://bucket-a/../x", "source.url: '..' is not allowed in "
                                         "'s3://bucket-a/../x'"),
    ("source.url", "s3://bucket-a/pre/../x", "source.url: '..' is not allowed in "
                                             "'s3://bucket-a/pre/../x'"),
    ("source.url", "s3://Bad_Bucket/x", "source.url: not a valid S3 bucket name in "
                                        "'s3://Bad_Bucket/x'"),
    ("source.url", "http://host/x", "source.url: expected s3://bucket/prefix or a local "
                                    "path, got 'http://host/x'"),
    ("source.url", "", "source.url: must not be empty"),
    ("target.endpoint_url", "host:9000", "target.endpoint_url: expected http(s)://host:port, "
                                         "got 'host:9000'"),
    ("job.unknown", 1, "job.unknown: unknown key (allowed: first_date, lookback_days, "
                       "max_concurrent_reads, max_invalid_share, max_wait_days, "
                       "skip_bad_objects, timezone)"),
    ("other", 1, "other: unknown key (allowed: job, logging, meta, report, s3, source, "
                 "target)"),
])
def test_bad_values_are_named_with_what_was_given(raw, path, value, message):
    with pytest.raises(ConfigError) as error:
        config_from_mapping(edit(raw, path, value))
    assert str(error.value).startswith(message)


def test_source_and_target_must_differ_also_with_a_trailing_slash(raw, tmp_path):
    raw["target"] = {"url": "s3://deutsche-boerse-xetra-pds//"}
    with pytest.raises(ConfigError, match="target.url: must differ from source.url"):
        config_from_mapping(raw)
    raw["source"] = {"url": str(tmp_path)}
    raw["target"] = {"url": f"{tmp_path}/./"}
    with pytest.raises(ConfigError, match="target.url: must differ from source.url"):
        config_from_mapping(raw)
    raw["target"] = {"url": "s3://deutsche-boerse-xetra-pds"}
    assert config_from_mapping(raw).target.bucket == "deutsche-boerse-xetra-pds"


def test_the_jobs_loggers_stay_enabled_others_follow_the_section(raw):
    names = ("xetra", "xetra.etl", "xetrax", "other")
    loggers = {name: logging.getLogger(name) for name in names}
    raw["logging"] = {"version": 1, "handlers": {"h": {"class": "logging.NullHandler"}},
                      "root": {"handlers": ["h"]}}  # disable_existing_loggers left out: True
    try:
        configure_logging(config_from_mapping(raw))
        assert {name: bool(logger.disabled) for name, logger in loggers.items()} == \
            {"xetra": False, "xetra.etl": False, "xetrax": True, "other": True}
    finally:
        for logger in loggers.values():
            logger.disabled = False


def test_a_rejected_logging_section_names_the_reason(raw):
    broken = edit(raw, "logging.handlers", {"console": {"class": "no.such.Handler"}})
    with pytest.raises(ConfigError) as error:
        configure_logging(config_from_mapping(broken))
    assert str(error.value).startswith("logging: rejected by logging.config.dictConfig: "
                                       "\"Unable to configure handler 'console'\"")


def test_config_file_size_encoding_and_yaml_errors_in_one_line(tmp_path, raw):
    at_limit = tmp_path / "limit.yml"
    text = yaml.safe_dump(raw)
    at_limit.write_text(text + "#" * ((1 << 20) - len(text.encode()) - 1) + "\n")
    assert at_limit.stat().st_size == 1 << 20
    assert load_config(at_limit).job.first_date == dt.date(2022, 1, 3)
    over = tmp_path / "over.yml"
    over.write_bytes(at_limit.read_bytes() + b"\n")
    with pytest.raises(ConfigError) as error:
        load_config(over)
    assert str(error.value) == f"--config: {over} is larger than 1048576 bytes"
    latin = tmp_path / "latin.yml"
    latin.write_bytes(b"a: 1\nb: 2\nc: M\xfcller\n")
    with pytest.raises(ConfigError) as error:
        load_config(latin)
    assert str(error.value) == (f"--config: {latin} is not UTF-8 text: byte 0xfc on line 3 "
                                "(save the file as UTF-8)")
    first = tmp_path / "first.yml"
    first.write_bytes(b"\n\xfc: 1\n")  # the line count starts at the first byte
    with pytest.raises(ConfigError, match="byte 0xfc on line 2 "):
        load_config(first)
    bad = tmp_path / "bad.yml"
    bad.write_text("source: [unclosed\n")
    with pytest.raises(ConfigError) as error:
        load_config(bad)
    assert str(error.value) == (f"--config: {bad} is not valid YAML: while parsing a flow "
                                "sequence")


def test_the_value_limit_is_10000_exactly(tmp_path):
    """A mapping of one key and a list of k values holds k + 3 values (mapping, key, list):
    10,000 are read (and the unknown key named), 10,001 are too many."""
    document = tmp_path / "values.yml"
    document.write_text("a: [" + ",".join(["0"] * 9997) + "]\n")
    with pytest.raises(ConfigError) as error:
        load_config(document)
    assert str(error.value).startswith("a: unknown key")
    document.write_text("a: [" + ",".join(["0"] * 9998) + "]\n")
    with pytest.raises(ConfigError) as error:
        load_config(document)
    assert str(error.value) == f"--config: {document}: holds more than 10000 values " \
                               "(aliases expanded)"


@pytest.mark.parametrize("path, value, message", [
    ("job.first_date", "last monday",
     "job.first_date: expected a date YYYY-MM-DD, got 'last monday'"),
    ("meta.lock_key", "/abs", "meta.lock_key: must be a relative key without '..', got '/abs'"),
])
def test_messages_name_the_value_given(raw, path, value, message):
    with pytest.raises(ConfigError) as error:
        config_from_mapping(edit(raw, path, value))
    assert str(error.value) == message


@pytest.mark.parametrize("path, value, message", [
    ("report.name", "a b", "report.name: only letters, digits, '_', '.', '-' are allowed, "
                           "got 'a b'"),
    ("report.currencies", ["eur"], "report.currencies: expected a non-empty list of ISO "
                                   "currency codes like EUR, got ['eur']"),
    ("job", ..., "job: missing required section"),
])
def test_report_and_job_messages_in_full(raw, path, value, message):
    with pytest.raises(ConfigError) as error:
        config_from_mapping(edit(raw, path, value))
    assert str(error.value) == message


def test_a_prefix_ending_in_a_slash_is_kept_as_it_is(raw):
    assert config_from_mapping(raw).report.prefix == "report1/"
    assert config_from_mapping(edit(raw, "report.prefix", "a/b/")).report.prefix == "a/b/"
