"""`open_store(url)`: the store a URL names.

- `file:///srv/bodycam` (or a plain path): `FileStore`, the embedded default.
- `s3://bucket/prefix?endpoint=http://127.0.0.1:8333&region=us-east-1&retention_days=28`:
  `S3Store`, any S3-compatible server through boto3.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable

from store.base import FaultHook, Store
from store.errors import StoreConfigError
from store.file import FileStore
from store.keys import DEFAULT_RETENTION_DAYS
from store.retry import RetryPolicy
from store.s3 import S3Store


def open_store(
    url: str,
    *,
    retry: RetryPolicy | None = None,
    clock: Callable[[], float] = time.time,
    fault: FaultHook | None = None,
    create: bool = True,
) -> Store:
    """The store a URL names: file:///path (or a plain path) or s3://bucket/prefix?...

    S3 query parameters: endpoint (URL of the S3 server), region, retention_days
    (default 28), create (1: create the bucket with Object Lock if missing; default 1,
    or 0 when `create` is false), connect_timeout, read_timeout (seconds). File stores
    take retention_days too. `create` false: a missing store (a file store's folder or
    its marker, a bucket) is refused rather than made.
    """
    parsed = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))

    def number(name: str, default: float) -> float:
        raw = query.pop(name, None)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise StoreConfigError(f"store URL: {name}={raw!r} is not a number") from None
        if not 0 < value < 1e6:
            raise StoreConfigError(f"store URL: {name}={raw!r} is out of range")
        return value

    retention = number("retention_days", DEFAULT_RETENTION_DAYS)
    if parsed.scheme in ("", "file"):
        if parsed.netloc not in ("", "localhost"):
            raise StoreConfigError(f"store URL {url!r}: file URLs take no host (file:///path)")
        path = urllib.parse.unquote(parsed.path)
        if not path:
            raise StoreConfigError(f"store URL {url!r} has no path")
        if query:
            raise StoreConfigError(f"store URL {url!r}: unknown parameters {sorted(query)}")
        return FileStore(path, retry=retry, retention_days=retention, fault=fault, create=create)
    if parsed.scheme == "s3":
        endpoint = query.pop("endpoint", None)
        region = query.pop("region", None)
        create_bucket = query.pop("create", "1" if create else "0") not in ("0", "false", "no")
        connect_timeout = number("connect_timeout", 3.0)
        read_timeout = number("read_timeout", 30.0)
        if query:
            raise StoreConfigError(f"store URL {url!r}: unknown parameters {sorted(query)}")
        if endpoint is not None and urllib.parse.urlsplit(endpoint).scheme not in ("http", "https"):
            raise StoreConfigError(f"store URL: endpoint {endpoint!r} is not an http(s) URL")
        return S3Store(
            parsed.netloc,
            parsed.path,
            endpoint_url=endpoint,
            region=region,
            retention_days=retention,
            retry=retry,
            create_bucket=create_bucket,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            clock=clock,
            fault=fault,
        )
    raise StoreConfigError(f"store URL {url!r}: use file:///path or s3://bucket/prefix?endpoint=")
