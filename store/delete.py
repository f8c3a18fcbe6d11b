"""Deleting from a store, for the back office's retention purge (and nothing else).

The purge decides what may go (retention over, no hold); the store checks again: a
legal hold (both backends) or a COMPLIANCE retention date not yet reached (S3) raises
`StoreLocked` and nothing is removed. On S3 every version of a key goes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from crypto.files import fsync_dir
from crypto.timestamps import utc_text
from store.base import Store
from store.errors import StoreConfigError, StoreLocked
from store.file import FileStore
from store.keys import check_key
from store.s3 import S3Store, _error_code

log = logging.getLogger(__name__)


def delete_object(store: Store, key: str) -> int:
    """Remove `key` from the store for good (on S3 every version of it); returns versions gone.

    Only the back office's retention purge calls this, after its own checks; the store
    checks again: a legal hold (both backends) or a COMPLIANCE retention date not yet
    reached (S3) raises StoreLocked and nothing is removed. A missing key returns 0.
    """
    check_key(key)
    if isinstance(store, FileStore):
        return _delete_file_object(store, key)
    if isinstance(store, S3Store):
        return _delete_s3_object(store, key)
    raise StoreConfigError(f"{store.url}: deleting is not supported by this backend")


def delete_objects(store: Store, keys: list[str]) -> int:
    """`delete_object` for several keys (one recording's); a file store fsyncs each folder once.

    Every key is checked for a legal hold before anything is removed.
    """
    for key in keys:
        check_key(key)
    if not isinstance(store, FileStore):
        return sum(delete_object(store, key) for key in keys)
    held = [k for k in keys if store.legal_hold(k)]
    if held:
        raise StoreLocked(f"{held[0]} is under a legal hold in {store.url}; lift the hold first")
    removed = 0
    folders: set[Path] = set()
    for key in keys:
        path = store._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed += 1
        folders.add(path.parent)
    for folder in sorted(folders, key=lambda p: -len(p.parts)):
        _remove_empty_parents(store, folder)
    return removed


def keys_to_purge(store: Store, prefix: str) -> list[str]:
    """Every key under `prefix` that still has any bytes in the store.

    On S3 that is every key with any version, not only the current ones a listing
    shows: a version behind a delete marker is still footage, and outlives a purge
    that lists with `list_objects_v2`. On a file store it is the listing.
    """
    if isinstance(store, S3Store):
        return _s3_keys_with_versions(store, prefix)
    return list(store.list(prefix))


def _s3_keys_with_versions(store: S3Store, prefix: str) -> list[str]:
    store.check()
    full = (
        store.full_key(prefix.rstrip("/")) + "/"
        if prefix
        else (f"{store.prefix}/" if store.prefix else "")
    )
    strip = len(store.prefix) + 1 if store.prefix else 0
    keys: set[str] = set()
    kwargs: dict[str, Any] = {"Bucket": store.bucket, "Prefix": full}
    while True:
        args = dict(kwargs)

        def list_page(args: dict[str, Any] = args) -> dict[str, Any]:
            page: dict[str, Any] = store.client.list_object_versions(**args)
            return page

        page = store._run(f"listing versions under {prefix}", list_page)
        for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
            keys.add(item["Key"][strip:])
        if not page.get("IsTruncated"):
            return sorted(keys)
        kwargs["KeyMarker"] = page.get("NextKeyMarker")
        kwargs["VersionIdMarker"] = page.get("NextVersionIdMarker")


def _remove_empty_parents(store: FileStore, folder: Path) -> None:
    """fsync `folder`, then remove it and its parents while empty (no husks in a listing)."""
    if folder.is_dir():
        fsync_dir(folder)
    while folder != store.root:
        try:
            folder.rmdir()
        except OSError:
            break
        folder = folder.parent
        fsync_dir(folder)


def _delete_file_object(store: FileStore, key: str) -> int:
    if store.legal_hold(key):
        raise StoreLocked(f"{key} is under a legal hold in {store.url}; lift the hold first")
    path = store._path(key)
    try:
        path.unlink()
    except FileNotFoundError:
        return 0
    _remove_empty_parents(store, path.parent)
    return 1


def s3_object_versions(store: S3Store, key: str) -> list[dict[str, Any]]:
    """Every version and delete marker of one key (S3 keeps versions under Object Lock)."""
    full = store.full_key(key)
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"Bucket": store.bucket, "Prefix": full}
    while True:
        args = dict(kwargs)

        def list_page(args: dict[str, Any] = args) -> dict[str, Any]:
            page: dict[str, Any] = store.client.list_object_versions(**args)
            return page

        page = store._run(f"listing versions of {key}", list_page)
        for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
            if item.get("Key") == full:
                out.append(item)
        if not page.get("IsTruncated"):
            return out
        kwargs["KeyMarker"] = page.get("NextKeyMarker")
        kwargs["VersionIdMarker"] = page.get("NextVersionIdMarker")


def _locked_until(store: S3Store, full: str, version: Any) -> str:
    """When a locked version may go, for the purge report ("" if the store does not say)."""
    try:
        kwargs: dict[str, Any] = {"Bucket": store.bucket, "Key": full}
        if version:
            kwargs["VersionId"] = version
        answer = store.client.get_object_retention(**kwargs)
        until = answer["Retention"]["RetainUntilDate"]
    except Exception:  # only a nicer message is lost
        return ""
    return f"; locked until {utc_text(until)}, the first purge after that removes it"


def _delete_s3_object(store: S3Store, key: str) -> int:
    from botocore.exceptions import ClientError

    store.check()
    full = store.full_key(key)
    removed = 0
    for version in s3_object_versions(store, key):
        vid = version.get("VersionId")

        def delete(v: Any = vid) -> Any:
            return store.client.delete_object(Bucket=store.bucket, Key=full, VersionId=v)

        try:
            store._run(f"deleting {key} version {vid}", delete)
        except ClientError as exc:
            code, status = _error_code(exc)
            if status == 403 or code in ("AccessDenied", "ObjectLocked", "InvalidRequest"):
                raise StoreLocked(
                    f"{store.url}/{key} version {vid} is still locked (legal hold or Object "
                    f"Lock retention): {code or status}{_locked_until(store, full, vid)}"
                ) from None
            raise
        removed += 1
    return removed
