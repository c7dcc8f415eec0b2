"""Typed configuration, built once from the YAML file and validated before any I/O."""
from __future__ import annotations

import datetime as dt
import logging.config
import math
import re
import reprlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from xetra.errors import ConfigError


REPORT_FORMATS = ("parquet", "csv")
# Xetra started in 1997 (the public data set in 2017): earlier dates would only list empty
# folders, and near year 1 the look-back would leave the calendar.
EARLIEST_DATE = dt.date(1990, 1, 1)
# A configuration file is a few kB with ~100 values; these bound what a hostile one costs.
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_VALUES = 10_000
_BRIEF = reprlib.Repr()
_BRIEF.maxstring = _BRIEF.maxother = 60
_BRIEF.maxlist = _BRIEF.maxdict = 6
_BRIEF.maxlevel = 2


def _brief(value: Any) -> str:
    """A value as a message shows it: at most ~60 characters of it."""
    return _BRIEF.repr(value)
RETRY_MODES = ("standard", "adaptive", "legacy")

# Default output column names: the ones users of the report know.
DEFAULT_COLUMNS = {
    "isin": "isin",
    "date": "date",
    "opening_price": "opening_price_eur",
    "closing_price": "closing_price_eur",
    "minimum_price": "minimum_price_eur",
    "maximum_price": "maximum_price_eur",
    "daily_traded_volume": "daily_traded_volume",
    "change_prev_closing": "change_prev_closing_%",
}


@dataclass(frozen=True)
class StorageLocation:
    """Where objects live: `s3://bucket/prefix` or a local folder, plus S3 client settings."""

    url: str
    endpoint_url: str | None = None
    region: str | None = None
    unsigned: bool = False

    @property
    def is_s3(self) -> bool:
        """True when the location is an S3 bucket rather than a local folder."""
        return self.url.startswith("s3://")

    @property
    def bucket(self) -> str:
        """The bucket name of an s3:// location."""
        return self.url[len("s3://"):].split("/", 1)[0]

    @property
    def prefix(self) -> str:
        """The key prefix inside the bucket (empty or ending in '/')."""
        rest = self.url[len("s3://"):].split("/", 1)
        prefix = rest[1] if len(rest) > 1 else ""
        return prefix if not prefix or prefix.endswith("/") else prefix + "/"


@dataclass(frozen=True)
class S3ClientSettings:
    """botocore retry and timeout settings shared by every S3 client of a run."""

    retry_mode: str = "standard"
    max_attempts: int = 8
    connect_timeout: float = 10.0
    read_timeout: float = 60.0


@dataclass(frozen=True)
class ReportSettings:
    """What the report is called, where it goes and how it is written."""

    prefix: str = "report1/"
    name: str = "xetra_report1"
    format: str = "parquet"
    columns: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_COLUMNS))
    currencies: tuple[str, ...] = ("EUR",)


@dataclass(frozen=True)
class MetaSettings:
    """The meta file that records processed dates, and the lock that serialises runs."""

    key: str = "meta/report1/xetra_report1_meta_file.csv"
    lock_key: str = "meta/report1/xetra_report1.lock"
    lock_ttl_seconds: int = 900


@dataclass(frozen=True)
class JobSettings:
    """Which dates a run covers and how hard it works the source."""

    first_date: dt.date
    timezone: str = "Europe/Berlin"
    lookback_days: int = 10
    max_concurrent_reads: int = 8
    skip_bad_objects: bool = False
    # Deutsche Börse publishes a date's folder the day after it, weekends included: three
    # days cover a late upload over a weekend before a missing date is an alarm (exit 4).
    max_wait_days: int = 3
    # A date with a larger share of invalid rows stops the run (docs/CONTRACT.md 2.6). Real
    # days have none (29 days of 2017-18, 1.2M rows); a format change makes every row invalid.
    max_invalid_share: float = 0.5


@dataclass(frozen=True)
class AppConfig:
    """The whole job configuration."""

    source: StorageLocation
    target: StorageLocation
    job: JobSettings
    report: ReportSettings
    meta: MetaSettings
    s3: S3ClientSettings
    logging: Mapping[str, Any]

    def with_locations(self, source: str | None, target: str | None) -> "AppConfig":
        """A copy with the source and/or target URL overridden (from the command line)."""
        new_source = _location_with_url(self.source, source, "--source")
        new_target = _location_with_url(self.target, target, "--target")
        _check_distinct(new_source, new_target)
        return AppConfig(new_source, new_target, self.job, self.report, self.meta,
                         self.s3, self.logging)


def _location_with_url(location: StorageLocation, url: str | None,
                       setting: str) -> StorageLocation:
    if url is None:
        return location
    return StorageLocation(_check_url(url, setting), location.endpoint_url,
                           location.region, location.unsigned)


def _check_distinct(source: StorageLocation, target: StorageLocation) -> None:
    if _normalised(source.url) == _normalised(target.url):
        raise ConfigError(f"target.url: must differ from source.url ({target.url})")


def _normalised(url: str) -> str:
    if url.startswith("s3://"):
        return url.rstrip("/")
    return str(Path(url).resolve())


class _Section:
    """Reads one mapping of the YAML file, naming keys by their dotted path in errors."""

    def __init__(self, raw: Any, path: str, allowed: set[str]):
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: must be a mapping, got {type(raw).__name__}")
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise ConfigError(f"{path + '.' if path else ''}{unknown[0]}: unknown key "
                              f"(allowed: {', '.join(sorted(allowed))})")
        self.raw = raw
        self.path = path

    def name(self, key: str) -> str:
        """The dotted name of a key, as used in error messages."""
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        """The value of `key`, checked to be of `kind`; required when no default is given."""
        if key not in self.raw or self.raw[key] is None:
            if default is ...:
                raise ConfigError(f"{self.name(key)}: missing required key")
            return default
        value = self.raw[key]
        # bool is an int subclass in Python; a YAML `true` is never a number here.
        if isinstance(value, bool) and bool not in _as_tuple(kind):
            raise ConfigError(f"{self.name(key)}: expected {_kind_name(kind)}, got a boolean")
        if not isinstance(value, kind):
            raise ConfigError(f"{self.name(key)}: expected {_kind_name(kind)}, "
                              f"got {type(value).__name__} {_brief(value)}")
        return value

    def positive(self, key: str, kind: type | tuple[type, ...], default: Any,
                 highest: float) -> Any:
        """A number greater than zero and at most `highest` (NaN is neither)."""
        value = self.get(key, kind, default)
        if not value > 0:
            raise ConfigError(f"{self.name(key)}: must be greater than 0, got {value}")
        if not value <= highest:
            raise ConfigError(f"{self.name(key)}: must be at most {highest}, got {value}")
        return value

    def between(self, key: str, default: int, low: int, high: int) -> int:
        """An integer from `low` to `high`, both included."""
        value = self.get(key, int, default)
        if not low <= value <= high:
            raise ConfigError(f"{self.name(key)}: must be from {low} to {high}, got {value}")
        return value

    def share(self, key: str, default: float) -> float:
        """A number from 0 to 1."""
        value = self.get(key, (int, float), default)
        if math.isnan(value) or not 0 <= value <= 1:
            raise ConfigError(f"{self.name(key)}: must be from 0 to 1, got {value}")
        return float(value)

    def section(self, key: str, allowed: set[str]) -> "_Section":
        """A nested mapping."""
        return _Section(self.raw.get(key), self.name(key), allowed)


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _as_tuple(kind))


def parse_date(value: Any, setting: str) -> dt.date:
    """A YYYY-MM-DD date from YAML (already a date) or from a string; names `setting` on error."""
    if isinstance(value, dt.datetime):
        raise ConfigError(f"{setting}: expected a date YYYY-MM-DD, got a datetime {value}")
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            value = dt.date.fromisoformat(value)
        except ValueError as exc:
            raise ConfigError(f"{setting}: not a valid date: {_brief(value)} ({exc})") from exc
    if not isinstance(value, dt.date):
        raise ConfigError(f"{setting}: expected a date YYYY-MM-DD, got {_brief(value)}")
    if value < EARLIEST_DATE:
        raise ConfigError(f"{setting}: {value} is before {EARLIEST_DATE}, long before any "
                          f"Xetra data")
    return value


def _check_url(url: str, setting: str) -> str:
    if url.startswith("s3://"):
        bucket = url[len("s3://"):].split("/", 1)[0]
        if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket):
            raise ConfigError(f"{setting}: not a valid S3 bucket name in {_brief(url)}")
        if ".." in url[len("s3://"):].split("/"):
            raise ConfigError(f"{setting}: '..' is not allowed in {_brief(url)}")
        return url
    if "://" in url:
        raise ConfigError(f"{setting}: expected s3://bucket/prefix or a local path, "
                          f"got {_brief(url)}")
    if not url:
        raise ConfigError(f"{setting}: must not be empty")
    return url


def _location(root: _Section, key: str) -> StorageLocation:
    section = root.section(key, {"url", "endpoint_url", "region", "unsigned"})
    if key not in root.raw:
        raise ConfigError(f"{key}: missing required section")
    url = _check_url(section.get("url", str), section.name("url"))
    endpoint = section.get("endpoint_url", str, None)
    if endpoint is not None and not re.match(r"https?://", endpoint):
        raise ConfigError(f"{section.name('endpoint_url')}: expected http(s)://host:port, "
                          f"got {_brief(endpoint)}")
    return StorageLocation(url=url, endpoint_url=endpoint,
                           region=section.get("region", str, None),
                           unsigned=section.get("unsigned", bool, False))


def _key(section: _Section, key: str, default: str) -> str:
    value = section.get(key, str, default)
    if not value or value.startswith("/") or ".." in value.split("/"):
        raise ConfigError(f"{section.name(key)}: must be a relative key without '..', "
                          f"got {_brief(value)}")
    return value


def _report(root: _Section) -> ReportSettings:
    section = root.section("report", {"prefix", "name", "format", "columns", "currencies"})
    defaults = ReportSettings()
    prefix = section.get("prefix", str, defaults.prefix)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    if prefix:
        _key(section, "prefix", defaults.prefix)
    name = section.get("name", str, defaults.name)
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        raise ConfigError(f"{section.name('name')}: only letters, digits, '_', '.', '-' "
                          f"are allowed, got {_brief(name)}")
    report_format = section.get("format", str, defaults.format)
    if report_format not in REPORT_FORMATS:
        raise ConfigError(f"{section.name('format')}: unknown format {_brief(report_format)} "
                          f"(supported: {', '.join(REPORT_FORMATS)})")
    columns_section = section.section("columns", set(DEFAULT_COLUMNS))
    columns = {logical: columns_section.get(logical, str, default)
               for logical, default in DEFAULT_COLUMNS.items()}
    if len(set(columns.values())) != len(columns) or not all(columns.values()):
        raise ConfigError(f"{section.name('columns')}: column names must be distinct "
                          f"and non-empty")
    currencies = section.get("currencies", list, list(defaults.currencies))
    if not currencies or not all(isinstance(c, str) and re.fullmatch(r"[A-Z]{3}", c)
                                 for c in currencies):
        raise ConfigError(f"{section.name('currencies')}: expected a non-empty list of "
                          f"ISO currency codes like EUR, got {_brief(currencies)}")
    return ReportSettings(prefix, name, report_format, columns, tuple(currencies))


def _meta(root: _Section) -> MetaSettings:
    section = root.section("meta", {"key", "lock_key", "lock_ttl_seconds"})
    defaults = MetaSettings()
    return MetaSettings(key=_key(section, "key", defaults.key),
                        lock_key=_key(section, "lock_key", defaults.lock_key),
                        lock_ttl_seconds=section.positive("lock_ttl_seconds", int,
                                                          defaults.lock_ttl_seconds, 86_400))


def _job(root: _Section) -> JobSettings:
    section = root.section("job", {f.name for f in fields(JobSettings)})
    if "job" not in root.raw:
        raise ConfigError("job: missing required section")
    timezone = section.get("timezone", str, "Europe/Berlin")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"{section.name('timezone')}: unknown time zone "
                          f"{_brief(timezone)}") from exc
    return JobSettings(
        first_date=parse_date(section.get("first_date", (str, dt.date)),
                              section.name("first_date")),
        timezone=timezone,
        lookback_days=section.positive("lookback_days", int, 10, 31),
        max_concurrent_reads=section.positive("max_concurrent_reads", int, 8, 64),
        max_invalid_share=section.share("max_invalid_share", 0.5),
        skip_bad_objects=section.get("skip_bad_objects", bool, False),
        max_wait_days=section.between("max_wait_days", 3, 0, MAX_WAIT_DAYS_LIMIT),
    )


# A hundred years: a value this large switches the overdue alarm off, larger ones are typos.
MAX_WAIT_DAYS_LIMIT = 36500


def _s3(root: _Section) -> S3ClientSettings:
    section = root.section("s3", {f.name for f in fields(S3ClientSettings)})
    defaults = S3ClientSettings()
    retry_mode = section.get("retry_mode", str, defaults.retry_mode)
    if retry_mode not in RETRY_MODES:
        raise ConfigError(f"{section.name('retry_mode')}: expected one of "
                          f"{', '.join(RETRY_MODES)}, got {_brief(retry_mode)}")
    return S3ClientSettings(
        retry_mode=retry_mode,
        max_attempts=section.positive("max_attempts", int, defaults.max_attempts, 20),
        connect_timeout=float(section.positive("connect_timeout", (int, float),
                                               defaults.connect_timeout, 300)),
        read_timeout=float(section.positive("read_timeout", (int, float),
                                            defaults.read_timeout, 3600)),
    )


def _logging(root: _Section) -> Mapping[str, Any]:
    raw = root.raw.get("logging")
    if raw is None:
        raise ConfigError("logging: missing required section (a logging.config.dictConfig "
                          "mapping)")
    if not isinstance(raw, dict) or raw.get("version") != 1:
        raise ConfigError("logging.version: must be 1 (logging.config.dictConfig schema)")
    handlers = raw.get("handlers")
    root_logger = raw.get("root") or {}
    if not handlers or not isinstance(handlers, dict):
        raise ConfigError("logging.handlers: at least one handler is required, or every log "
                          "line is lost")
    if not (isinstance(root_logger, dict) and root_logger.get("handlers")) and \
            not any(isinstance(lg, dict) and lg.get("handlers")
                    for lg in (raw.get("loggers") or {}).values()):
        raise ConfigError("logging.root.handlers: no logger uses a handler, so every log "
                          "line would be lost")
    return raw


TOP_LEVEL_KEYS = {"source", "target", "job", "report", "meta", "s3", "logging"}


def config_from_mapping(raw: Any) -> AppConfig:
    """Validate a parsed YAML document and build the typed configuration."""
    root = _Section(raw, "", TOP_LEVEL_KEYS)
    source = _location(root, "source")
    target = _location(root, "target")
    _check_distinct(source, target)
    return AppConfig(source=source, target=target, job=_job(root), report=_report(root),
                     meta=_meta(root), s3=_s3(root), logging=_logging(root))


class _BoundedLoader(yaml.SafeLoader):  # pylint: disable=too-many-ancestors
    """yaml's safe loader, refusing documents whose aliases expand beyond MAX_CONFIG_VALUES
    values (a "billion laughs" of a few hundred bytes stands for 9**9 strings)."""

    def construct_document(self, node: yaml.Node) -> Any:
        sizes: dict[int, int] = {}

        def expanded(item: yaml.Node) -> int:
            if id(item) not in sizes:
                sizes[id(item)] = 0  # a node that contains itself counts once
                children = item.value if isinstance(item, yaml.SequenceNode) else \
                    [part for pair in item.value for part in pair] \
                    if isinstance(item, yaml.MappingNode) else []
                sizes[id(item)] = 1 + sum(expanded(child) for child in children)
            return sizes[id(item)]
        if expanded(node) > MAX_CONFIG_VALUES:
            raise ConfigError(f"holds more than {MAX_CONFIG_VALUES} values (aliases expanded)")
        return super().construct_document(node)


def _config_text(path: str | Path) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path}: {exc.strerror}") from exc
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"--config: {path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"--config: {path} is not UTF-8 text: byte 0x{data[exc.start]:02x} "
                          f"on line {line} (save the file as UTF-8)") from exc


def load_config(path: str | Path) -> AppConfig:
    """Read and validate the YAML configuration file at `path`."""
    text = _config_text(path)
    try:
        raw = yaml.load(text, Loader=_BoundedLoader)  # nosec B506: a safe loader
    except ConfigError as exc:
        raise ConfigError(f"--config: {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config: {path} is not valid YAML: "
                          f"{str(exc).splitlines()[0]}") from exc
    except RecursionError:
        # Not chained: the cause is a traceback thousands of frames deep that says nothing more.
        raise ConfigError(f"--config: {path} is nested too deeply") from None
    return config_from_mapping(raw)


def configure_logging(config: AppConfig) -> None:
    """Apply the logging section with logging.config.dictConfig."""
    try:
        logging.config.dictConfig(dict(config.logging))
    except (ValueError, TypeError, AttributeError, ImportError) as exc:
        raise ConfigError(f"logging: rejected by logging.config.dictConfig: "
                          f"{_brief(str(exc))}") from exc
    # dictConfig disables every logger that exists unless the section says
    # disable_existing_loggers: false, and the job's exist by now: without this a section
    # that omits the key would silence the summary and every warning. Levels, handlers and
    # propagation stay as the section sets them.
    for name, item in list(logging.root.manager.loggerDict.items()):
        if (name == "xetra" or name.startswith("xetra.")) and isinstance(item, logging.Logger):
            item.disabled = False
