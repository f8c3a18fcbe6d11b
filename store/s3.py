"""`S3Store`: S3-compatible object storage with Object Lock in COMPLIANCE mode (boto3).

`s3://bucket/prefix?endpoint=http://127.0.0.1:8333&region=us-east-1&retention_days=28`
names one (see `open_store`); credentials come from the usual AWS environment
variables or config files, never from the URL.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import io
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from crypto.timestamps import utc_text
from store.base import DurableBatch, FaultHook, Store, StoredObject
from store.errors import StoreConfigError, StoreFull, StoreIntegrityError
from store.keys import DEFAULT_RETENTION_DAYS, check_key, check_sha, split_name
from store.retry import RetryPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")

# boto3 ships no type information: its client and the dicts it answers with are the one
# place the store handles untyped values, and every value taken from them is checked.
S3Response = dict[str, Any]

_LEGACY_TMP = re.compile(r"bytes-[0-9a-f]{16}\.tmp")
_TRANSIENT_CODES = {
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "InternalServerError",
    "RequestTimeoutException",
    "Throttling",
    "ThrottlingException",
    "OperationAborted",
}
_FULL_CODES = {"QuotaExceeded", "InsufficientStorage", "XMinioStorageFull", "StorageFull"}


def _error_code(exc: BaseException) -> tuple[str, int]:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return "", 0
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


def _is_transient(exc: BaseException) -> bool:
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectionError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    if isinstance(
        exc, ConnectionError | EndpointConnectionError | ConnectionClosedError | ReadTimeoutError
    ):
        return True
    if isinstance(exc, ClientError):
        code, status = _error_code(exc)
        if code in _FULL_CODES or status == 507:
            return False
        return code in _TRANSIENT_CODES or status >= 500
    # urllib3 / socket level failures that botocore did not wrap
    return isinstance(exc, OSError | TimeoutError) and not isinstance(exc, FileNotFoundError)


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


class S3Store(Store):
    """S3-compatible object storage with Object Lock in COMPLIANCE mode.

    Every object is put with `ObjectLockMode=COMPLIANCE`, a retain-until date from
    `retain_until()` and our SHA-256 (`ChecksumSHA256`): the server rejects bytes that
    do not match it, and the checksum it returns proves what it stored. Every PUT is
    conditional (`If-None-Match: *`): a HEAD first saves the upload when the object is
    there, but HEAD-then-PUT is not atomic (the PUT of a dock killed before the reply
    can still commit after the next run's HEAD said 404), so the server itself refuses
    a second version (412) and the object it holds is then checked like a HEAD hit:
    same SHA-256 is success, another is a StoreIntegrityError (never released). No
    multipart upload is used: a segment is one PUT.
    """

    backend = "s3"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        retention_days: float = DEFAULT_RETENTION_DAYS,
        retry: RetryPolicy | None = None,
        create_bucket: bool = True,
        connect_timeout: float = 3.0,
        read_timeout: float = 30.0,
        client: Any = None,
        clock: Callable[[], float] = time.time,
        fault: FaultHook | None = None,
    ) -> None:
        super().__init__(retry, retention_days, fault)
        if len(bucket) < 3 or not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
            raise StoreConfigError(f"bucket name {bucket!r} is not a valid S3 bucket name")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            check_key(self.prefix)
        self.endpoint_url = endpoint_url
        self.region = region
        self.create_bucket = create_bucket
        self._clock = clock
        self._ready = False
        self._lock = threading.Lock()
        if client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"total_max_attempts": 1, "mode": "standard"},  # RetryPolicy retries
                s3={"addressing_style": "path"},
                max_pool_connections=16,
            )
            session = boto3.session.Session()
            client = session.client(
                "s3", endpoint_url=endpoint_url, region_name=region, config=config
            )
        self.client = client

    @property
    def url(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{where} at {self.endpoint_url}" if self.endpoint_url else where

    def full_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _run(self, what: str, fn: Callable[[], T]) -> T:
        return self.retry.run(what, fn, _is_transient, describe=f"store {self.url}")

    def check(self) -> None:
        from botocore.exceptions import ClientError, NoCredentialsError

        with self._lock:
            if self._ready:
                return
            try:
                self._run(f"checking bucket {self.bucket}", self._ensure_bucket)
            except NoCredentialsError:
                raise StoreConfigError(
                    f"no S3 credentials for {self.url}: set AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY (or an AWS profile) for the dock"
                ) from None
            except ClientError as exc:
                code, status = _error_code(exc)
                if status in (401, 403) or code in (
                    "AccessDenied",
                    "InvalidAccessKeyId",
                    "SignatureDoesNotMatch",
                ):
                    raise StoreConfigError(
                        f"{self.url} refused the dock's credentials ({code or status}): "
                        "check the access key and its rights on the bucket"
                    ) from None
                raise
            self._ready = True

    def _ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code, status = _error_code(exc)
            if status != 404 and code not in ("404", "NoSuchBucket", "NotFound"):
                raise
            if not self.create_bucket:
                raise StoreConfigError(
                    f"bucket {self.bucket} does not exist; create it with Object Lock enabled"
                ) from None
            log.warning("creating bucket %s with Object Lock enabled", self.bucket)
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "ObjectLockEnabledForBucket": True}
            if self.region and self.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            try:
                self.client.create_bucket(**kwargs)
            except ClientError as exc2:
                if _error_code(exc2)[0] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
        try:
            conf = self.client.get_object_lock_configuration(Bucket=self.bucket)
            enabled = conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
        except ClientError as exc:
            if _is_transient(exc):
                raise
            enabled = None
        if enabled != "Enabled":
            raise StoreConfigError(
                f"bucket {self.bucket} has no Object Lock: footage could be deleted early; "
                "use a bucket created with Object Lock enabled"
            )

    def _head(self, key: str) -> S3Response | None:
        from botocore.exceptions import ClientError

        try:
            result: S3Response = self.client.head_object(
                Bucket=self.bucket, Key=self.full_key(key), ChecksumMode="ENABLED"
            )
            return result
        except ClientError as exc:
            code, status = _error_code(exc)
            if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def _as_stored(self, key: str, head: S3Response, already: bool) -> StoredObject:
        _, sha = split_name(key)
        got = head.get("ChecksumSHA256")
        if not isinstance(got, str) or not hmac.compare_digest(got, _b64(sha)):
            raise StoreIntegrityError(
                f"{self.url}/{key}: the store reports checksum {got!r}, not the SHA-256 in the "
                "key; the object cannot be trusted (not released)"
            )
        until = head.get("ObjectLockRetainUntilDate")
        return StoredObject(
            key,
            sha,
            int(head.get("ContentLength", 0)),
            self.backend,
            f"s3://{self.bucket}/{self.full_key(key)}",
            head.get("VersionId"),
            until.timestamp() if isinstance(until, dt.datetime) else None,
            already,
        )

    def stat(self, key: str) -> StoredObject | None:
        self.check()
        head = self._run(f"looking up {key}", lambda: self._head(key))
        return None if head is None else self._as_stored(key, head, True)

    def put_file(
        self,
        key: str,
        path: Path,
        *,
        sha256: str,
        size: int,
        retain_until: float | None = None,
        consume: bool = False,
        legal_hold: bool = False,
        batch: DurableBatch | None = None,
    ) -> StoredObject:
        # Durable when the PUT is answered: a batch has nothing left to do.
        path = Path(path)

        def body() -> BinaryIO:
            f = open(path, "rb")
            if os.fstat(f.fileno()).st_size != size:
                f.close()
                raise StoreIntegrityError(f"{path}: size differs from the expected {size} bytes")
            return f

        stored = self._put(key, body, sha256, size, retain_until, legal_hold)
        if consume:
            path.unlink(missing_ok=True)
        return stored

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        retain_until: float | None = None,
        legal_hold: bool = False,
        batch: DurableBatch | None = None,
    ) -> StoredObject:
        # Straight from memory: no temporary file anywhere that a kill could leave behind.
        return self._put(
            key,
            lambda: io.BytesIO(data),
            hashlib.sha256(data).hexdigest(),
            len(data),
            retain_until,
            legal_hold,
        )

    def _put(
        self,
        key: str,
        body: Callable[[], BinaryIO],
        sha256: str,
        size: int,
        retain_until: float | None,
        legal_hold: bool,
    ) -> StoredObject:
        check_sha(sha256)
        if split_name(key)[1] != sha256:
            raise ValueError(f"key {key} does not carry the content's sha256 {sha256}")
        self.check()
        now = self._clock()
        until = retain_until if retain_until is not None else now + self.retention_days * 86400
        until = max(until, now + 60.0)

        def attempt() -> StoredObject:
            head = self._head(key)
            if head is None:
                stored = self._upload(key, body, sha256, size, until, legal_hold)
                if stored is not None:
                    return stored
                head = self._head(key)  # 412: the server holds the key already
                if head is None:
                    raise StoreIntegrityError(
                        f"{self.url}/{key}: the server refused the upload as already present "
                        "but does not show the object"
                    )
            if int(head.get("ContentLength", -1)) != size:
                raise StoreIntegrityError(
                    f"{self.url}/{key} exists with {head.get('ContentLength')} bytes, "
                    f"expected {size}"
                )
            return self._as_stored(key, head, True)

        try:
            return self._run(f"uploading {key}", attempt)
        except Exception as exc:
            code, status = _error_code(exc)
            if code in _FULL_CODES or status == 507:
                raise StoreFull(f"{self.url} is full ({code or status}) storing {key}") from exc
            raise

    def _upload(
        self,
        key: str,
        body: Callable[[], BinaryIO],
        sha256: str,
        size: int,
        until: float,
        legal_hold: bool,
    ) -> StoredObject | None:
        """One conditional PUT; None when the server already holds the key (412)."""
        from botocore.exceptions import ClientError

        ours = _b64(sha256)
        with body() as stream:
            try:
                response = self.client.put_object(
                    Bucket=self.bucket,
                    Key=self.full_key(key),
                    Body=stream,
                    ContentLength=size,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=ours,
                    IfNoneMatch="*",
                    ObjectLockMode="COMPLIANCE",
                    ObjectLockRetainUntilDate=dt.datetime.fromtimestamp(until, dt.UTC),
                    ObjectLockLegalHoldStatus="ON" if legal_hold else "OFF",
                    Metadata={"sha256": sha256},
                )
            except ClientError as exc:
                code, status = _error_code(exc)
                if status == 412 or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                    log.info(
                        "%s: already in %s (conditional write refused a second copy)", key, self.url
                    )
                    return None
                raise
        self.fault("s3-put-sent")
        got = response.get("ChecksumSHA256")
        if not isinstance(got, str):
            head = self._head(key)  # some servers return the checksum only on HEAD
            got = head.get("ChecksumSHA256") if head else None
        if not isinstance(got, str) or not hmac.compare_digest(got, ours):
            raise StoreIntegrityError(
                f"{self.url} did not confirm the SHA-256 of {key} (returned {got!r}): "
                "not durable, not released"
            )
        log.debug(
            "stored %s (%d bytes) in %s, locked until %s",
            key,
            size,
            self.url,
            utc_text(until),
        )
        return StoredObject(
            key,
            sha256,
            size,
            self.backend,
            f"s3://{self.bucket}/{self.full_key(key)}",
            response.get("VersionId"),
            until,
        )

    def clean_up(self) -> int:
        """Remove `bytes-*.tmp` files an earlier version of the dock left in $TMPDIR."""
        folder = Path(os.environ.get("TMPDIR", "/tmp"))
        removed = 0
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return 0
        for entry in entries:
            if not _LEGACY_TMP.fullmatch(entry.name):
                continue
            try:
                if (
                    entry.is_file(follow_symlinks=False)
                    and entry.stat(follow_symlinks=False).st_uid == os.getuid()
                ):
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        if removed:
            log.info("removed %d temporary file(s) of interrupted uploads from %s", removed, folder)
        return removed

    def open(self, key: str) -> BinaryIO:
        from botocore.exceptions import ClientError

        self.check()
        try:
            obj = self._run(
                f"reading {key}",
                lambda: self.client.get_object(Bucket=self.bucket, Key=self.full_key(key)),
            )
        except ClientError as exc:
            if _error_code(exc)[1] == 404:
                raise FileNotFoundError(f"{key} is not in {self.url}") from None
            raise
        body: BinaryIO = obj["Body"]
        return body

    def list(self, prefix: str = "") -> Iterator[str]:
        self.check()
        full = (
            self.full_key(prefix.rstrip("/")) + "/"
            if prefix
            else (f"{self.prefix}/" if self.prefix else "")
        )
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys: list[str] = []
        token: str | None = None

        def page_after(token: str | None) -> S3Response:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full}
            if token:
                kwargs["ContinuationToken"] = token
            page: S3Response = self.client.list_objects_v2(**kwargs)
            return page

        while True:
            page = self._run(f"listing {prefix}", lambda: page_after(token))  # noqa: B023
            keys.extend(o["Key"][strip:] for o in page.get("Contents", []))
            if not page.get("IsTruncated"):
                break
            token = page.get("NextContinuationToken")
        return iter(sorted(keys))

    def set_legal_hold(self, key: str, on: bool) -> None:
        self.check()
        self._run(
            f"legal hold on {key}",
            lambda: self.client.put_object_legal_hold(
                Bucket=self.bucket,
                Key=self.full_key(key),
                LegalHold={"Status": "ON" if on else "OFF"},
            ),
        )

    def legal_hold(self, key: str) -> bool:
        self.check()
        r = self._run(
            f"legal hold of {key}",
            lambda: self.client.get_object_legal_hold(Bucket=self.bucket, Key=self.full_key(key)),
        )
        return bool(r.get("LegalHold", {}).get("Status") == "ON")

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close is not None:
            close()
