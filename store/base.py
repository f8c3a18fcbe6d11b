"""The store interface (`Store`) and its receipt (`StoredObject`).

`put_file` returns a `StoredObject` only once the copy is durable: for files after
fsync of the file and of its directory, for S3 after the server returned the SHA-256
we sent (it checked the bytes it received against it) under a COMPLIANCE Object Lock.
Transient failures are retried with exponential backoff (`RetryPolicy`, injected
sleep); when the budget is spent the caller gets `StoreUnavailable`, and `StoreFull`
when there is no room.
"""

from __future__ import annotations

import hashlib
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from crypto.files import sha256_file
from store.errors import StoreIntegrityError
from store.keys import REASON_SUFFIX, quarantine_key
from store.retry import RetryPolicy

log = logging.getLogger(__name__)

MAX_SMALL_OBJECT = 64 << 20  # bound for get_bytes (headers, manifests, reason files)

# Called with a point's name where a crash test may kill the process (the dock's
# `fault_point`); a store knows the points, not what is done at them.
FaultHook = Callable[[str], None]


# What a quarantine reason file may carry besides the reason (JSON scalars).
ReasonValue = str | int | float | bool | None


def no_fault(point: str) -> None:
    """The default fault hook: nothing happens at any point."""


@dataclass(frozen=True)
class StoredObject:
    """A durable copy in the store: what the ledger records and a release relies on."""

    key: str
    sha256: str
    size: int
    backend: str  # "file" | "s3"
    location: str  # path or s3://bucket/key
    version_id: str | None = None
    retain_until: float | None = None
    already_present: bool = False  # nothing was written: the same content was there

    def to_json(self) -> str:
        return json.dumps(
            {
                "key": self.key,
                "sha256": self.sha256,
                "size": self.size,
                "backend": self.backend,
                "location": self.location,
                "version_id": self.version_id,
                "retain_until": self.retain_until,
            },
            sort_keys=True,
        )


class DurableBatch:
    """Objects put with `batch=` are durable once `commit()` returns, not before.

    A store that makes each object durable on its own (S3: the PUT's answer) has nothing
    to do here. The file store collects the directories whose entries it changed and
    fsyncs each of them once at `commit()`, instead of twice per object: a recording's
    segments share one folder. Nothing may rely on a batched object (record it as
    stored, release it) before `commit()`.
    """

    def __init__(self) -> None:
        self._first: list[Path] = []  # names that must be gone (spool folders)
        self._then: list[Path] = []  # new folders, top down, then the objects' folders

    def gone_from(self, directory: Path) -> None:
        if directory not in self._first:
            self._first.append(directory)

    def named_in(self, directory: Path) -> None:
        if directory not in self._then:
            self._then.append(directory)

    @property
    def pending(self) -> int:
        """Directories still to be made durable."""
        return len(self._first) + len(self._then)

    def commit(self) -> None:
        """Make every batched object durable: one fsync per directory changed."""
        from crypto.files import fsync_dir

        while self._first:
            fsync_dir(self._first.pop(0))
        while self._then:
            fsync_dir(self._then.pop(0))


class Store(ABC):
    """Where verified footage goes. Thread-safe: slots upload concurrently."""

    backend = "abstract"

    def __init__(
        self, retry: RetryPolicy | None, retention_days: float, fault: FaultHook | None = None
    ) -> None:
        self.retry = retry or RetryPolicy()
        self.retention_days = retention_days
        self.fault = fault or no_fault

    @property
    @abstractmethod
    def url(self) -> str:
        """Where the store is, for logs and status (never with secrets)."""

    @property
    def staging_dir(self) -> Path | None:
        """A local directory on the store's filesystem for spool files (rename, no copy)."""
        return None

    @abstractmethod
    def check(self) -> None:
        """Raise StoreUnavailable / StoreConfigError if the store cannot take objects now."""

    @abstractmethod
    def stat(self, key: str) -> StoredObject | None:
        """The stored object under `key` with its proven checksum, or None if absent."""

    @abstractmethod
    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        retain_until: float | None = None,
        legal_hold: bool = False,
        batch: DurableBatch | None = None,
    ) -> StoredObject:
        """Store small bytes (headers, manifests, event log pieces, reason files).

        With `batch`, durable once `batch.commit()` returns (see DurableBatch)."""

    @abstractmethod
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
        """Store the file's bytes under `key` durably; idempotent for identical content.

        `consume=True` lets the store take the file over (rename instead of copy) and
        removes it once stored. With `batch`, the object is durable once `batch.commit()`
        returns, not when this does.
        """

    def verified(self, key: str) -> StoredObject | None:
        """The object under `key` once its content is proven to match the SHA-256 in its name.

        None if absent; StoreIntegrityError if the store holds other bytes under the name.
        What a release or a ledger catch-up relies on, where `stat` only says a name exists.
        """
        return self.stat(key)

    def clean_up(self) -> int:
        """Remove what writers killed mid-write left behind; returns how many files went.

        Idempotent and safe while other processes write to the same store.
        """
        return 0

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """Read a stored object."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under `prefix` (a key prefix ending in '/' or empty), sorted."""

    @abstractmethod
    def set_legal_hold(self, key: str, on: bool) -> None:
        """Put or lift a legal hold on an object (kept past its retention while held)."""

    @abstractmethod
    def legal_hold(self, key: str) -> bool:
        """Whether a legal hold is on."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def get_bytes(self, key: str, limit: int = MAX_SMALL_OBJECT) -> bytes:
        with self.open(key) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise StoreIntegrityError(f"{key}: larger than {limit} bytes")
        return data

    def quarantine(
        self,
        key: str,
        source: bytes | Path,
        reason: str,
        *,
        details: dict[str, ReasonValue] | None = None,
        now: float,
        retain_until: float | None = None,
    ) -> StoredObject:
        """Keep something that failed verification under quarantine/ with a reason file.

        The item is stored under a legal hold: it is evidence of a fault or of tampering
        and must outlive normal retention until someone has looked at it.
        """
        qkey = quarantine_key(key)
        if isinstance(source, bytes):
            stored = self.put_bytes(qkey, source, retain_until=retain_until, legal_hold=True)
        else:
            size = Path(source).stat().st_size
            stored = self.put_file(
                qkey,
                Path(source),
                sha256=sha256_file(Path(source)),
                size=size,
                retain_until=retain_until,
                legal_hold=True,
            )
        reason_prefix = qkey + REASON_SUFFIX
        parent = qkey.rsplit("/", 1)[0] + "/"
        if stored.already_present and any(k.startswith(reason_prefix) for k in self.list(parent)):
            return stored  # quarantined before, with its reason: nothing new to keep
        doc = {
            "key": key,
            "reason": reason,
            "quarantined_utc": now,
            "sha256": stored.sha256,
            "size": stored.size,
            **(details or {}),
        }
        reason_raw = json.dumps(doc, sort_keys=True, indent=1).encode()
        rkey = f"{reason_prefix}.{hashlib.sha256(reason_raw).hexdigest()}"
        self.put_bytes(rkey, reason_raw, retain_until=retain_until, legal_hold=True)
        log.warning("quarantined %s in %s: %s", key, self.url, reason)
        return stored
