"""Object storage: the interface the job needs (bytes and listings, as fsspec's), and the
local-folder store. What the bytes mean (CSV, parquet) is the application's business."""
from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from xetra.errors import ObjectNotFound, PreconditionFailed, StorageError


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object: its key relative to the store's root and its size in bytes."""

    key: str
    size: int


@dataclass(frozen=True)
class VersionedBytes:
    """An object's content with the ETag to make a conditional write against."""

    data: bytes
    etag: str


class ObjectStore(Protocol):
    """What the job needs from a bucket or a folder; keys are relative to the store's root."""

    def describe(self, key: str = "") -> str:
        """A printable location (URL or path) of `key`, for messages."""

    def check_access(self) -> None:
        """Fail early with a clear StorageError when the location cannot be used."""

    def list_objects(self, prefix: str) -> list[ObjectInfo]:
        """Every object whose key starts with `prefix`, sorted by key."""

    def list_folders(self, prefix: str = "") -> list[str]:
        """The names of the folders (key segments ending in "/") directly under `prefix`."""

    def get_bytes(self, key: str) -> bytes:
        """The whole object; ObjectNotFound when it does not exist."""

    def get_versioned(self, key: str) -> VersionedBytes | None:
        """The object with its ETag, or None when it does not exist."""

    def put_bytes(self, key: str, data: bytes, *, if_none_match: bool = False,
                  if_match: str | None = None) -> str:
        """Write the object (conditionally when asked) and return its new ETag."""

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Remove the object; removing a missing object is not an error. `if_match`: only
        while its ETag is that one (PreconditionFailed when it is another)."""


def etag_of(data: bytes) -> str:
    """The ETag a single-part upload of `data` gets on S3 (its MD5), used by the local store."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def new_temp_file(directory: Path) -> tuple[int, Path]:
    """A new hidden `.tmp-` file in `directory`, open for writing, and its path.

    Created with mode 0o666 like any file a program makes, so the kernel applies the umask (and
    a default ACL): the renamed report or meta file is 0644 under umask 022, not mkstemp's 0600.
    """
    while True:
        path = directory / f".tmp-{secrets.token_hex(8)}"
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
            return os.open(path, flags, 0o666), path
        except FileExistsError:
            continue


class LocalStorage:
    """A local folder standing in for a bucket: same keys, atomic writes, conditional writes."""

    def __init__(self, root: str | Path, create: bool = False):
        self.root = Path(root).resolve()
        self.create = create

    def describe(self, key: str = "") -> str:
        """The absolute path of `key`."""
        if not key:
            return str(self.root)
        return str(self.root / key) + ("/" if key.endswith("/") else "")

    def check_access(self) -> None:
        """The folder must exist (or be creatable for a target) and be a directory."""
        if self.create:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"cannot create folder {self.root}: {exc.strerror}") from exc
        if not self.root.is_dir():
            raise StorageError(f"folder {self.root} does not exist")

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if key.startswith("/") or (path != self.root and self.root not in path.parents):
            raise StorageError(f"key {key!r} escapes the folder {self.root}")
        return path

    def list_objects(self, prefix: str) -> list[ObjectInfo]:
        """Files below the root whose relative path starts with `prefix`: only the entries of
        the prefix's folder whose names start with its last part are walked (a month prefix
        `2021-03` walks that month's date folders, not the whole root)."""
        folder, _, start = prefix.rpartition("/")
        base = self._path(folder) if folder else self.root
        if not base.is_dir():
            return []
        found = []
        for entry in base.iterdir():
            if not entry.name.startswith(start):
                continue
            for path in (entry.rglob("*") if entry.is_dir() else [entry]):
                key = path.relative_to(self.root).as_posix()
                if path.is_file() and key.startswith(prefix) and \
                        not path.name.startswith(".tmp-"):
                    found.append(ObjectInfo(key, path.stat().st_size))
        return sorted(found, key=lambda info: info.key)

    def list_folders(self, prefix: str = "") -> list[str]:
        """The sub-folders of `prefix` (a folder path ending in "/", or "" for the root)."""
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(path.name for path in base.iterdir() if path.is_dir())

    def get_bytes(self, key: str) -> bytes:
        """The file's content."""
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"no object {self.describe(key)}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {self.describe(key)}: {exc.strerror}") from exc

    def get_versioned(self, key: str) -> VersionedBytes | None:
        """The file's content and its MD5 as ETag, or None."""
        try:
            data = self.get_bytes(key)
        except ObjectNotFound:
            return None
        return VersionedBytes(data, etag_of(data))

    def put_bytes(self, key: str, data: bytes, *, if_none_match: bool = False,
                  if_match: str | None = None) -> str:
        """Write via a temporary file and rename, so readers never see half a file."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # A lock on the directory makes check-and-replace atomic between processes.
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            fcntl.flock(dir_fd, fcntl.LOCK_EX)
            # Writers hold this lock while their temporary file exists, so any one found now
            # was left by a killed writer.
            for stale in path.parent.glob(".tmp-*"):
                stale.unlink(missing_ok=True)
            if if_none_match and path.exists():
                raise PreconditionFailed(f"{self.describe(key)} already exists")
            if if_match is not None:
                current = self.get_versioned(key)
                if current is None or current.etag != if_match:
                    raise PreconditionFailed(f"{self.describe(key)} changed since it was read")
            temp_fd, temp_path = new_temp_file(path.parent)
            with os.fdopen(temp_fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp_path, path)
            os.fsync(dir_fd)  # the rename itself survives a crash
        except OSError as exc:
            raise StorageError(f"cannot write {self.describe(key)}: {exc.strerror}") from exc
        finally:
            os.close(dir_fd)
        return etag_of(data)

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Remove the file if it is there (`if_match`: and its ETag is that one, checked under
        the same directory lock as a conditional write)."""
        path = self._path(key)
        if if_match is None:
            path.unlink(missing_ok=True)
            return
        try:
            dir_fd = os.open(path.parent, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(dir_fd, fcntl.LOCK_EX)
            current = self.get_versioned(key)
            if current is not None and current.etag != if_match:
                raise PreconditionFailed(f"{self.describe(key)} changed since it was written")
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {self.describe(key)}: {exc.strerror}") from exc
        finally:
            os.close(dir_fd)
