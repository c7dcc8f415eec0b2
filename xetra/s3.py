"""The S3 adapter: boto3 with pagination, retries, conditional writes and clear errors."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import (BotoCoreError, ClientError, ConnectionError as BotoConnectionError,
                                 NoCredentialsError, PartialCredentialsError)

from xetra.config import S3ClientSettings, StorageLocation
from xetra.errors import ObjectNotFound, PreconditionFailed, StorageError
from xetra.storage import ObjectInfo, VersionedBytes

logger = logging.getLogger(__name__)

_PRECONDITION_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
_MISSING_KEY_CODES = {"NoSuchKey", "404", "NotFound"}


def _http_status(exc: BaseException | None) -> int | None:
    """The HTTP status of a botocore ClientError, else None."""
    if isinstance(exc, ClientError):
        return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return None


def send_body_at_once(request, **_) -> None:
    """Drop botocore's `Expect: 100-continue` from a PUT: with it the body waits for the
    server's "100 Continue", one round trip more per PUT (30 ms to a remote region; measured
    through the benchmark's 30 ms proxy: 74 ms a PUT with it, 38 ms without). The job's PUTs
    are reports and meta files, small enough to send even when the server refuses them (a 412
    on a conditional write): each date's commit is a report PUT and a meta PUT in series."""
    if "Expect" in request.headers:
        del request.headers["Expect"]


def new_session() -> boto3.session.Session:
    """A boto3 Session for the run's clients (credentials from boto3's default chain)."""
    return boto3.session.Session()


class S3BucketConnector:
    """One bucket (and key prefix) on S3 or an S3-compatible server.

    Credentials come only from boto3's default chain (environment, profile, pod role);
    `unsigned` reads public buckets such as Deutsche Börse's without any. `session`: the
    boto3 Session to make the client from (a new one when not given).
    """

    def __init__(self, location: StorageLocation, settings: S3ClientSettings | None = None,
                 max_pool_connections: int = 10, session: boto3.session.Session | None = None):
        settings = settings or S3ClientSettings()
        self.bucket_name = location.bucket
        self.prefix = location.prefix
        client_config = Config(
            signature_version=UNSIGNED if location.unsigned else None,
            # total_max_attempts counts the first try too, like AWS_MAX_ATTEMPTS; botocore's
            # "max_attempts" would count retries only and make one attempt more than configured.
            retries={"mode": settings.retry_mode, "total_max_attempts": settings.max_attempts},
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            max_pool_connections=max_pool_connections,
        )
        session = session or new_session()  # a run's two clients share one (cli.open_stores)
        self.client = session.client("s3", endpoint_url=location.endpoint_url,
                                     region_name=location.region, config=client_config)
        self.client.meta.events.register("before-sign.s3.PutObject", send_body_at_once)

    def describe(self, key: str = "") -> str:
        """The s3:// URL of `key`."""
        return f"s3://{self.bucket_name}/{self.prefix}{key}"

    @contextmanager
    def _translated(self, action: str, key: str = "") -> Iterator[None]:
        """The one place botocore's errors become the job's: every S3 call runs inside it, and
        leaves with a StorageError (or ObjectNotFound, PreconditionFailed) whose one line
        names bucket and key, botocore's error chained as its cause."""
        try:
            yield
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, f"{action} {self.describe(key)}") from exc

    def _error(self, exc: Exception, where: str) -> StorageError:
        """The job's error for a botocore error: one line naming `where` (action and URL)."""
        if isinstance(exc, ClientError):
            return self._client_error(exc, where)
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return StorageError(f"{where}: no AWS credentials found (set "
                                f"AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or a role, "
                                f"or source.unsigned for a public bucket)")
        if isinstance(exc, BotoConnectionError):
            return StorageError(f"{where}: cannot connect to the S3 endpoint "
                                f"{self.client.meta.endpoint_url} ({type(exc).__name__})")
        return StorageError(f"{where}: {type(exc).__name__}: {exc}")

    def _client_error(self, exc: ClientError, where: str) -> StorageError:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = _http_status(exc)
        if code in _PRECONDITION_CODES or status == 412:
            return PreconditionFailed(f"{where}: precondition failed ({code})")
        if code in _MISSING_KEY_CODES:
            return ObjectNotFound(f"{where}: no such object")
        known = {
            "NoSuchBucket": f"bucket {self.bucket_name} does not exist",
            "AccessDenied": "access denied", "403": "access denied",
            "InvalidAccessKeyId": "access denied (unknown access key)",
            "SignatureDoesNotMatch": "access denied (bad secret key)",
        }
        message = known.get(code) or \
            f"{code or status} {exc.response.get('Error', {}).get('Message', '')}".rstrip()
        return StorageError(f"{where}: {message}")

    def check_access(self) -> None:
        """HEAD the bucket: fails clearly on a missing bucket, bad credentials or endpoint."""
        try:
            with self._translated("cannot access"):
                self.client.head_bucket(Bucket=self.bucket_name)
        except StorageError as exc:
            if _http_status(exc.__cause__) == 404:
                raise StorageError(f"bucket {self.bucket_name} does not exist "
                                   f"({self.describe()})") from exc.__cause__
            raise

    def list_objects(self, prefix: str) -> list[ObjectInfo]:
        """Every object under `prefix`, following ListObjectsV2 pagination."""
        paginator = self.client.get_paginator("list_objects_v2")
        found = []
        with self._translated("cannot list", prefix):
            for page in paginator.paginate(Bucket=self.bucket_name, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    found.append(ObjectInfo(item["Key"][len(self.prefix):], item["Size"]))
        return sorted(found, key=lambda info: info.key)

    def list_folders(self, prefix: str = "") -> list[str]:
        """The names of the "folders" directly under `prefix` (ListObjectsV2 with Delimiter
        "/": one entry per folder, not per object), sorted."""
        paginator = self.client.get_paginator("list_objects_v2")
        found = []
        with self._translated("cannot list", prefix):
            for page in paginator.paginate(Bucket=self.bucket_name, Prefix=self.prefix + prefix,
                                           Delimiter="/"):
                for item in page.get("CommonPrefixes", []):
                    found.append(item["Prefix"][len(self.prefix) + len(prefix):].rstrip("/"))
        return sorted(found)

    def get_bytes(self, key: str) -> bytes:
        """The whole object."""
        with self._translated("cannot read", key):
            response = self.client.get_object(Bucket=self.bucket_name, Key=self.prefix + key)
            return response["Body"].read()

    def get_versioned(self, key: str) -> VersionedBytes | None:
        """The object and its ETag, or None when it does not exist."""
        try:
            with self._translated("cannot read", key):
                response = self.client.get_object(Bucket=self.bucket_name, Key=self.prefix + key)
                return VersionedBytes(response["Body"].read(), response["ETag"])
        except ObjectNotFound:
            return None

    def put_bytes(self, key: str, data: bytes, *, if_none_match: bool = False,
                  if_match: str | None = None) -> str:
        """PUT the object; `if_none_match` creates only, `if_match` replaces only that ETag."""
        conditions = {}
        if if_none_match:
            conditions["IfNoneMatch"] = "*"
        if if_match is not None:
            conditions["IfMatch"] = if_match
        try:
            with self._translated("cannot write", key):
                response = self.client.put_object(Bucket=self.bucket_name,
                                                  Key=self.prefix + key, Body=data, **conditions)
        except ObjectNotFound as exc:
            if if_match is None:
                raise
            # AWS answers 404 when the object to replace is gone: the condition failed.
            raise PreconditionFailed(f"cannot write {self.describe(key)}: "
                                     f"it was removed since it was read") from exc
        return response["ETag"]

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """DELETE the object (a missing one is fine, as on S3); `if_match`: only while its ETag
        is that one (S3's conditional delete: PreconditionFailed when it is another)."""
        conditions = {} if if_match is None else {"IfMatch": if_match}
        try:
            with self._translated("cannot delete", key):
                self.client.delete_object(Bucket=self.bucket_name, Key=self.prefix + key,
                                          **conditions)
        except ObjectNotFound:
            if if_match is None:
                raise
            # AWS answers 404 to a conditional DELETE of a missing object: already gone.
