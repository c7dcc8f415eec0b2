"""An XetraETL built in this process over local folders, and its report objects read back."""
from __future__ import annotations

import datetime as dt
from concurrent.futures import Executor
from pathlib import Path

from testkit.config import job_config
from testkit.paths import CONFIGS
from xetra.config import config_from_mapping
from xetra.etl import XetraETL
from xetra.formats import deserialise_table
from xetra.storage import LocalStorage


def make_etl(folders: tuple[Path, Path], pool: Executor, **job) -> XetraETL:
    """An XetraETL from folders[0] to folders[1], with the production config otherwise
    (configs/xetra_report1.yml); `job` overrides keys of its job section."""
    raw = job_config(str(folders[0]), str(folders[1]), base=CONFIGS / "xetra_report1.yml",
                     job=job)
    return XetraETL(LocalStorage(folders[0]), LocalStorage(folders[1], create=True),
                    config_from_mapping(raw), pool)


def report_of(target: Path, day: dt.date) -> list[dict]:
    """The report rows written for `day` under the default layout, as dicts."""
    data = (target / "report1" / f"xetra_report1_{day}.parquet").read_bytes()
    return deserialise_table(data, "parquet").to_pylist()
