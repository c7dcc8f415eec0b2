"""Typed configuration, built once from the YAML file and validated before any I/O."""
from __future__ import annotations

import datetime as dt
import logging.config
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from xetra.errors import ConfigError


REPORT_FORMATS = ("parquet", "csv")
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
                              f"got {type(value).__name__} {value!r}")
        return value

    def positive(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        """A number greater than zero."""
        value = self.get(key, kind, default)
        if value <= 0:
            raise ConfigError(f"{self.name(key)}: must be greater than 0, got {value}")
        return value

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
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError as exc:
            raise ConfigError(f"{setting}: not a valid date: {value!r} ({exc})") from exc
    raise ConfigError(f"{setting}: expected a date YYYY-MM-DD, got {value!r}")


def _check_url(url: str, setting: str) -> str:
    if url.startswith("s3://"):
        bucket = url[len("s3://"):].split("/", 1)[0]
        if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket):
            raise ConfigError(f"{setting}: not a valid S3 bucket name in {url!r}")
        if ".." in url[len("s3://"):].split("/"):
            raise ConfigError(f"{setting}: '..' is not allowed in {url!r}")
        return url
    if "://" in url:
        raise ConfigError(f"{setting}: expected s3://bucket/prefix or a local path, got {url!r}")
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
                          f"got {endpoint!r}")
    return StorageLocation(url=url, endpoint_url=endpoint,
                           region=section.get("region", str, None),
                           unsigned=section.get("unsigned", bool, False))


def _key(section: _Section, key: str, default: str) -> str:
    value = section.get(key, str, default)
    if not value or value.startswith("/") or ".." in value.split("/"):
        raise ConfigError(f"{section.name(key)}: must be a relative key without '..', "
                          f"got {value!r}")
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
                          f"are allowed, got {name!r}")
    report_format = section.get("format", str, defaults.format)
    if report_format not in REPORT_FORMATS:
        raise ConfigError(f"{section.name('format')}: unknown format {report_format!r} "
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
                          f"ISO currency codes like EUR, got {currencies!r}")
    return ReportSettings(prefix, name, report_format, columns, tuple(currencies))


def _meta(root: _Section) -> MetaSettings:
    section = root.section("meta", {"key", "lock_key", "lock_ttl_seconds"})
    defaults = MetaSettings()
    return MetaSettings(key=_key(section, "key", defaults.key),
                        lock_key=_key(section, "lock_key", defaults.lock_key),
                        lock_ttl_seconds=section.positive("lock_ttl_seconds", int,
                                                          defaults.lock_ttl_seconds))


def _job(root: _Section) -> JobSettings:
    section = root.section("job", {f.name for f in fields(JobSettings)})
    if "job" not in root.raw:
        raise ConfigError("job: missing required section")
    timezone = section.get("timezone", str, "Europe/Berlin")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"{section.name('timezone')}: unknown time zone {timezone!r}") from exc
    return JobSettings(
        first_date=parse_date(section.get("first_date", (str, dt.date)),
                              section.name("first_date")),
        timezone=timezone,
        lookback_days=section.positive("lookback_days", int, 10),
        max_concurrent_reads=section.positive("max_concurrent_reads", int, 8),
        skip_bad_objects=section.get("skip_bad_objects", bool, False),
        max_wait_days=_in_range(section, "max_wait_days", 3, 0, MAX_WAIT_DAYS_LIMIT),
    )


# A hundred years: a value this large switches the overdue alarm off, larger ones are typos.
MAX_WAIT_DAYS_LIMIT = 36500


def _in_range(section: _Section, key: str, default: int, low: int, high: int) -> int:
    """An integer from `low` to `high`, both included."""
    value = section.get(key, int, default)
    if not low <= value <= high:
        raise ConfigError(f"{section.name(key)}: must be from {low} to {high}, got {value}")
    return value


def _s3(root: _Section) -> S3ClientSettings:
    section = root.section("s3", {f.name for f in fields(S3ClientSettings)})
    defaults = S3ClientSettings()
    retry_mode = section.get("retry_mode", str, defaults.retry_mode)
    if retry_mode not in RETRY_MODES:
        raise ConfigError(f"{section.name('retry_mode')}: expected one of "
                          f"{', '.join(RETRY_MODES)}, got {retry_mode!r}")
    return S3ClientSettings(
        retry_mode=retry_mode,
        max_attempts=section.positive("max_attempts", int, defaults.max_attempts),
        connect_timeout=float(section.positive("connect_timeout", (int, float),
                                               defaults.connect_timeout)),
        read_timeout=float(section.positive("read_timeout", (int, float),
                                            defaults.read_timeout)),
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


def load_config(path: str | Path) -> AppConfig:
    """Read and validate the YAML configuration file at `path`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path}: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config: {path} is not valid YAML: "
                          f"{str(exc).splitlines()[0]}") from exc
    return config_from_mapping(raw)


def configure_logging(config: AppConfig) -> None:
    """Apply the logging section with logging.config.dictConfig."""
    try:
        logging.config.dictConfig(dict(config.logging))
    except (ValueError, TypeError, AttributeError, ImportError) as exc:
        raise ConfigError(f"logging: rejected by logging.config.dictConfig: {exc}") from exc
