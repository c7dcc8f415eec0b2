"""The one builder of job configurations for tests and benchmarks.

A configuration is the mapping a configs/*.yml file holds: build it with `job_config`, change
it as a test needs, and write it with `write_config`.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def location(url: str, endpoint_url: str | None = None) -> dict:
    """A source or target section; an s3:// URL gets the endpoint of a test server."""
    if endpoint_url is not None and url.startswith("s3://"):
        return {"url": url, "endpoint_url": endpoint_url, "region": "us-east-1"}
    return {"url": url}


def logging_section(log_file: Path | None = None) -> dict:
    """INFO lines to stdout, or to `log_file` when given; botocore's own lines at WARNING."""
    if log_file is None:
        handler = {"class": "logging.StreamHandler", "formatter": "plain",
                   "stream": "ext://sys.stdout"}
    else:
        handler = {"class": "logging.FileHandler", "formatter": "plain",
                   "filename": str(log_file)}
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"plain": {"format": LOG_FORMAT}},
            "handlers": {"out": handler},
            "root": {"level": "INFO", "handlers": ["out"]},
            "loggers": {"botocore": {"level": "WARNING"}}}


def job_config(source: str, target: str, *, first_date: str | dt.date | None = None,
               base: Path | None = None, endpoint_url: str | None = None,
               log_file: Path | None = None, **sections: dict) -> dict:
    """A job configuration from `source` to `target` (local paths or s3:// URLs on
    `endpoint_url`).

    Without `base` it holds the locations, `first_date` and a logging section (see
    `logging_section`); with `base` (a YAML file such as configs/xetra_sample.yml) it starts
    from that file, its logging included. `sections` maps a section name to keys merged into
    it, e.g. job={"skip_bad_objects": True}.
    """
    if base is None:
        if first_date is None:
            raise ValueError("job_config: first_date is needed without a base config")
        config: dict = {"job": {}, "logging": logging_section(log_file)}
    else:
        config = yaml.safe_load(base.read_text(encoding="utf-8"))
        if log_file is not None:
            config["logging"] = logging_section(log_file)
    config["source"] = location(source, endpoint_url)
    config["target"] = location(target, endpoint_url)
    if first_date is not None:
        config.setdefault("job", {})["first_date"] = str(first_date)
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    return config


def write_config(path: Path, config: dict) -> Path:
    """Write `config` as YAML to `path` and return the path."""
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path
