"""Storage backends for ingested footage: a local content-addressed directory and S3 Object Lock.

`open_store(url)` picks the backend:

- `file:///srv/bodycam` (or a plain path): `FileStore`, the embedded default.
- `s3://bucket/prefix?endpoint=http://127.0.0.1:8333&region=us-east-1&retention_days=28`:
  `S3Store`, any S3-compatible server through boto3 (credentials from the usual
  AWS environment variables or config files, never from the URL).

Both keep the same content-addressed layout, so the vault reads either the same way.
A key is `/`-separated; the last component is the file's own name, a dot and the
lowercase hex SHA-256 of its bytes:

```
<site>/<device_id>/<recording_id>/recording.hdr.<sha256>
<site>/<device_id>/<recording_id>/manifest.bcm.<sha256>      one object per manifest version
<site>/<device_id>/<recording_id>/seg-000000.bcs.<sha256>
<site>/<device_id>/events/events-<first byte>-<end byte>.jsonl.<sha256>
quarantine/<any key above>                                    what failed verification
quarantine/<any key above>.reason.json                        why
```

Because a name carries its digest, writing the same content twice is a no-op and
two different contents can never share a key. `put_file` returns a `StoredObject`
only once the copy is durable: for files after fsync of the file and of its
directory, for S3 after the server returned the SHA-256 we sent (it checked the
bytes it received against it) under a COMPLIANCE Object Lock. Transient failures are
retried with exponential backoff (`RetryPolicy`, injected sleep); when the budget is
spent the caller gets `StoreUnavailable`, and `StoreFull` when there is no room.
"""

from __future__ import annotations

import base64
import datetime as dt
import errno
import fcntl
import hashlib
import hmac
import io
import json
import logging
import os
import re
import secrets
import stat
import threading
import time
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from crypto.files import fsync_dir
from dock.faults import fault_point
from dock.names import check_component, check_device_id, check_recording_id

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_RETENTION_DAYS = 28.0
MIN_LOCK_SECONDS = 24 * 3600.0  # a lock date must lie in the future; keep at least a day
COPY_BLOCK = 1 << 20
STORE_MARKER = ".bodycam-store"
STAGING_DIR = ".staging"
HOLDS_DIR = ".holds"
QUARANTINE_PREFIX = "quarantine"
REASON_SUFFIX = ".reason.json"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_LEGACY_TMP = re.compile(r"bytes-[0-9a-f]{16}\.tmp")
MAX_SMALL_OBJECT = 64 << 20  # bound for get_bytes (headers, manifests, reason files)


# --- errors -------------------------------------------------------------------------------


class StoreError(Exception):
    """Base of every storage failure; the message says what to do."""


class StoreUnavailable(StoreError):
    """The store cannot be reached now (network, server down, disk unmounted); retry later."""


class StoreFull(StoreError):
    """The store has no room for the object; free space or add capacity, then retry."""


class StoreIntegrityError(StoreError):
    """The store holds or returned something other than what was sent: never release."""


class StoreConfigError(StoreError, ValueError):
    """The store URL or the bucket/directory is not usable as a bodycam store."""


# --- keys ---------------------------------------------------------------------------------


def _check_component(part: str, what: str) -> str:
    """One path component of a key: the grammar of dock/names.py (raises NameRefused)."""
    return check_component(part, what)


def _check_sha(sha256: str) -> str:
    if not _SHA256_HEX.fullmatch(sha256):
        raise ValueError(f"sha256 {sha256!r} is not 64 lowercase hex digits")
    return sha256


def object_key(site: str, device_id: str, recording_id: str, name: str, sha256: str) -> str:
    """Key of one file of a recording: site/device/recording/name.sha256."""
    parts = (
        _check_component(site, "site"),
        check_device_id(device_id),
        check_recording_id(recording_id),
        f"{check_component(name, 'file name')}.{_check_sha(sha256)}",
    )
    return "/".join(parts)


def events_key(site: str, device_id: str, start: int, end: int, sha256: str) -> str:
    """Key of one offloaded piece of a camera's event log (bytes start..end)."""
    if not 0 <= start < end:
        raise ValueError(f"event log piece {start}..{end} is empty or reversed")
    name = f"events-{start:012d}-{end:012d}.jsonl"
    return "/".join(
        (_check_component(site, "site"), _check_component(device_id, "device id"), "events",
         f"{name}.{_check_sha(sha256)}")
    )


def quarantine_key(key: str) -> str:
    return f"{QUARANTINE_PREFIX}/{check_key(key)}"


def split_name(key: str) -> tuple[str, str]:
    """(file name, sha256) of a content-addressed key's last component."""
    base = key.rsplit("/", 1)[-1]
    name, _, sha = base.rpartition(".")
    if not name or not _SHA256_HEX.fullmatch(sha):
        raise ValueError(f"{key!r} is not a content-addressed key (name.sha256)")
    return name, sha


def check_key(key: str) -> str:
    parts = key.split("/")
    if not key or len(key) > 1024:
        raise ValueError(f"store key {key!r} is empty or longer than 1024 characters")
    for part in parts:
        _check_component(part, "key component")
    return key


def retain_until(recorded_utc: float, now: float, days: float = DEFAULT_RETENTION_DAYS) -> float:
    """Object Lock date: recorded time + retention, within [now + 1 day, now + retention].

    The upper bound stops a camera whose clock ran ahead from locking footage for
    years in COMPLIANCE mode (which nobody could undo); the lower bound keeps the
    date in the future, which S3 requires, for footage docked late.
    """
    seconds = days * 86400.0
    wanted = recorded_utc + seconds
    return max(now + min(MIN_LOCK_SECONDS, seconds), min(wanted, now + seconds))


# --- receipts and retries -----------------------------------------------------------------


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


RetryNotice = Callable[[str, int, float, BaseException], None]  # what, attempt, delay, error


@dataclass
class RetryPolicy:
    """Exponential backoff for transient store failures; sleep and clock are injectable."""

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    stop: threading.Event | None = None  # set on shutdown: give up instead of sleeping
    on_retry: RetryNotice | None = None
    # Called after every operation that reached the store: lets status drop an
    # "unavailable" the moment the store answers again, not when a session ends.
    on_success: Callable[[], None] | None = None
    delays: list[float] = field(default_factory=list)  # what was slept (status, tests)

    def succeeded(self) -> None:
        if self.on_success is not None:
            self.on_success()

    def delay_for(self, attempt: int) -> float:
        return float(min(self.max_delay, self.base_delay * (2 ** (attempt - 1))))

    def run(self, what: str, fn: Callable[[], T], transient: Callable[[BaseException], bool],
            describe: str = "store") -> T:
        """Call `fn`, retrying while `transient(error)`; StoreUnavailable when out of budget."""
        attempt = 0
        while True:
            attempt += 1
            try:
                result = fn()
            except Exception as exc:
                if not transient(exc):
                    raise
                if attempt >= self.attempts or (self.stop is not None and self.stop.is_set()):
                    raise StoreUnavailable(
                        f"{what}: {describe} unreachable after {attempt} attempt(s) "
                        f"({type(exc).__name__}: {exc}); everything stays on the camera, "
                        "the dock retries later"
                    ) from exc
                delay = self.delay_for(attempt)
                log.warning("%s failed (%s), retry %d in %.1f s", what, exc, attempt, delay)
                if self.on_retry is not None:
                    self.on_retry(what, attempt, delay, exc)
                self.delays.append(delay)
                self.sleep(delay)
                continue
            self.succeeded()
            return result


# --- the interface ------------------------------------------------------------------------


class Store(ABC):
    """Where verified footage goes. Thread-safe: slots upload concurrently."""

    backend = "abstract"

    def __init__(self, retry: RetryPolicy | None, retention_days: float) -> None:
        self.retry = retry or RetryPolicy()
        self.retention_days = retention_days

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
    def put_bytes(self, key: str, data: bytes, *, retain_until: float | None = None,
                  legal_hold: bool = False) -> StoredObject:
        """Store small bytes (headers, manifests, event log pieces, reason files)."""

    @abstractmethod
    def put_file(self, key: str, path: Path, *, sha256: str, size: int,
                 retain_until: float | None = None, consume: bool = False,
                 legal_hold: bool = False) -> StoredObject:
        """Store the file's bytes under `key` durably; idempotent for identical content.

        `consume=True` lets the store take the file over (rename instead of copy) and
        removes it once stored.
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

    def quarantine(self, key: str, source: bytes | Path, reason: str, *,
                   details: dict[str, Any] | None = None, now: float,
                   retain_until: float | None = None) -> StoredObject:
        """Keep something that failed verification under quarantine/ with a reason file.

        The item is stored under a legal hold: it is evidence of a fault or of tampering
        and must outlive normal retention until someone has looked at it.
        """
        qkey = quarantine_key(key)
        if isinstance(source, bytes):
            stored = self.put_bytes(qkey, source, retain_until=retain_until, legal_hold=True)
        else:
            size = Path(source).stat().st_size
            stored = self.put_file(qkey, Path(source), sha256=sha256_file(Path(source)),
                                   size=size, retain_until=retain_until, legal_hold=True)
        reason_prefix = qkey + REASON_SUFFIX
        parent = qkey.rsplit("/", 1)[0] + "/"
        if stored.already_present and any(
            k.startswith(reason_prefix) for k in self.list(parent)
        ):
            return stored  # quarantined before, with its reason: nothing new to keep
        doc = {"key": key, "reason": reason, "quarantined_utc": now, "sha256": stored.sha256,
               "size": stored.size, **(details or {})}
        reason_raw = json.dumps(doc, sort_keys=True, indent=1).encode()
        rkey = f"{reason_prefix}.{hashlib.sha256(reason_raw).hexdigest()}"
        self.put_bytes(rkey, reason_raw, retain_until=retain_until, legal_hold=True)
        log.warning("quarantined %s in %s: %s", key, self.url, reason)
        return stored


def _reap_staging_folder(folder: Path) -> int:
    """Remove a writer's staging folder if its writer is gone (its flock is free)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # its writer is alive
        return _remove_tree(folder)
    finally:
        os.close(fd)


def _remove_tree(folder: Path) -> int:
    """Remove a staging folder and the files in it (flat); how many files went."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            removed += _remove_tree(Path(entry.path))
        else:
            os.unlink(entry.path)
            removed += 1
    folder.rmdir()
    return removed


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(COPY_BLOCK):
            digest.update(block)
    return digest.hexdigest()


# --- local directory ----------------------------------------------------------------------


class FileStore(Store):
    """A content-addressed directory tree, written atomically and fsynced.

    Each object is written to this process's own folder under `.staging/` on the
    same filesystem (a spool file the dock hands over is moved there by rename, so the
    spool never shares an inode with a stored object), fsynced, made read-only (0444),
    then hard-linked to its final name (link, unlike rename, never replaces an existing
    file) and the directory is fsynced: a final name always holds complete, durable
    content, and nothing ever opens it for writing again.

    Each write gets its own staging folder `.staging/w-<token>/`, held under an
    exclusive flock on the folder itself for as long as the write runs and removed
    after it; `clean_up()` removes the folders whose lock is free (their writer died),
    so a kill -9 leaves nothing behind for good and a live writer in another process
    is never disturbed.
    An object found under its final name with other content is moved to
    `quarantine/` with a reason (under a legal hold) and replaced by the good copy.
    """

    backend = "file"

    def __init__(self, root: Path | str, *, retry: RetryPolicy | None = None,
                 retention_days: float = DEFAULT_RETENTION_DAYS, min_free_bytes: int = 64 << 20,
                 create: bool = True) -> None:
        super().__init__(retry, retention_days)
        self.root = Path(root).absolute()
        self.min_free_bytes = min_free_bytes
        self._create = create
        self._ready = False
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"file://{self.root}"

    @property
    def staging_dir(self) -> Path:
        return self.root / STAGING_DIR

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def check(self) -> None:
        self._check()
        self.retry.succeeded()

    def _check(self) -> None:
        with self._lock:
            if self._ready and (self.root / STORE_MARKER).is_file():
                return
            self._ready = False
            marker = self.root / STORE_MARKER
            if not self.root.is_dir():
                if not self._create or not self.root.parent.is_dir():
                    raise StoreUnavailable(
                        f"store directory {self.root} does not exist: is the disk mounted?"
                    )
                self.root.mkdir(mode=0o750)
                fsync_dir(self.root.parent)
            if not marker.is_file():
                if any(p.name != STAGING_DIR for p in self.root.iterdir()):
                    raise StoreConfigError(
                        f"{self.root} holds other files and no {STORE_MARKER}: not a bodycam "
                        "store (choose an empty directory)"
                    )
                marker.write_text(json.dumps({"format": "bodycam-file-store-v1"}) + "\n")
                fsync_dir(self.root)
            self.staging_dir.mkdir(exist_ok=True)
            self._ready = True

    def stat(self, key: str) -> StoredObject | None:
        path = self._path(key)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        _, sha = split_name(key)
        return StoredObject(key, sha, st.st_size, self.backend, str(path), already_present=True)

    def verified(self, key: str) -> StoredObject | None:
        path = self._path(key)
        _, sha = split_name(key)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        return self._verify_existing(key, path, sha, size)

    def _verify_existing(self, key: str, path: Path, sha256: str, size: int) -> StoredObject:
        actual = sha256_file(path)
        if path.stat().st_size != size or not hmac.compare_digest(actual, sha256):
            raise StoreIntegrityError(
                f"{path} exists with other content (sha256 {actual}): the store is damaged; "
                "check the disk before ingesting more"
            )
        return StoredObject(key, sha256, size, self.backend, str(path), already_present=True)

    def _set_aside(self, key: str, path: Path, problem: str) -> None:
        """Move a damaged object out of its final name into quarantine/, with a reason.

        Rename, not copy: the bad bytes are kept as evidence and the name is free for
        the good copy. The reason file and the legal hold are written first, so a kill
        at any step either repeats all of it at the next run (the damaged object is
        still under the name) or has finished it.
        """
        actual = sha256_file(path)
        name, _ = split_name(key)
        base = key if key.startswith(QUARANTINE_PREFIX + "/") else quarantine_key(key)
        qkey = f"{base.rsplit('/', 1)[0]}/{name}.{actual}"
        doc = {"key": key, "reason": "found under its final name with other content",
               "sha256": actual}
        raw = json.dumps(doc, sort_keys=True, indent=1).encode()
        self.put_bytes(f"{qkey}{REASON_SUFFIX}.{hashlib.sha256(raw).hexdigest()}", raw,
                       legal_hold=True)
        self._write_hold(qkey)
        qpath = self._path(qkey)
        self._make_parents(qpath.parent)
        if qpath.exists():
            path.unlink()  # the same bad bytes were set aside before
        else:
            os.chmod(path, 0o444)  # evidence: read-only like every object
            os.rename(path, qpath)
            fsync_dir(qpath.parent)
        fsync_dir(path.parent)
        log.error("store %s: %s held other bytes (%s); moved to %s", self.root, key,
                  problem, qkey)

    @contextmanager
    def _staging_folder(self) -> Iterator[Path]:
        """A staging folder of this write alone, locked while it runs, removed after."""
        staging = self.staging_dir
        token = secrets.token_hex(8)
        # Made and locked under a hidden name, then renamed: clean_up() never sees a
        # writer's folder unlocked.
        hidden = staging / f".w-{token}"
        hidden.mkdir(mode=0o700)
        fd = os.open(hidden, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            folder = staging / f"w-{token}"
            os.rename(hidden, folder)
            try:
                yield folder
            finally:
                _remove_tree(folder)
        finally:
            os.close(fd)

    def clean_up(self) -> int:
        """Remove staging folders of dead writers and temps of earlier dock versions."""
        staging = self.staging_dir
        if not staging.is_dir():
            return 0
        removed = 0
        for entry in sorted(os.scandir(staging), key=lambda e: e.name):
            name = entry.name
            if entry.is_file(follow_symlinks=False) and name.endswith(".tmp"):
                # Written directly into .staging/ by an earlier version of the dock.
                os.unlink(entry.path)
                removed += 1
            elif entry.is_dir(follow_symlinks=False) and name.startswith("w-"):
                removed += _reap_staging_folder(Path(entry.path))
            elif entry.is_dir(follow_symlinks=False) and name.startswith(".w-") and \
                    time.time() - entry.stat(follow_symlinks=False).st_mtime > 60:
                # killed between mkdir and rename (a few microseconds); never a live one
                removed += _reap_staging_folder(Path(entry.path))
        if removed:
            fsync_dir(staging)
            log.info("store %s: removed %d file(s) left by interrupted writes", self.root,
                     removed)
        return removed

    def put_bytes(self, key: str, data: bytes, *, retain_until: float | None = None,
                  legal_hold: bool = False) -> StoredObject:
        self.check()
        with self._staging_folder() as folder:
            tmp = folder / "bytes.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            return self.put_file(key, tmp, sha256=hashlib.sha256(data).hexdigest(),
                                 size=len(data), retain_until=retain_until, consume=True,
                                 legal_hold=legal_hold)

    def _make_parents(self, directory: Path) -> None:
        missing: list[Path] = []
        d = directory
        while not d.is_dir():
            missing.append(d)
            d = d.parent
        for m in reversed(missing):
            try:
                m.mkdir(mode=0o750)
            except FileExistsError:
                pass
            fsync_dir(m.parent)

    def put_file(self, key: str, path: Path, *, sha256: str, size: int,
                 retain_until: float | None = None, consume: bool = False,
                 legal_hold: bool = False) -> StoredObject:
        _check_sha(sha256)
        if split_name(key)[1] != sha256:
            raise ValueError(f"key {key} does not carry the content's sha256 {sha256}")
        self.check()
        dest = self._path(key)
        try:
            stored = self._put(key, dest, Path(path), sha256, size, consume, legal_hold)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StoreFull(f"store {self.root} is full writing {key}: free space") from exc
            if exc.errno in (errno.EIO, errno.ENODEV, errno.ENXIO, errno.ESTALE, errno.EROFS):
                self._ready = False
                raise StoreUnavailable(f"store {self.root} failed writing {key}: {exc}") from exc
            raise
        self.retry.succeeded()
        return stored

    def _put(self, key: str, dest: Path, src: Path, sha256: str, size: int, consume: bool,
             legal_hold: bool) -> StoredObject:
        if dest.exists():
            try:
                done = self._verify_existing(key, dest, sha256, size)
            except StoreIntegrityError as exc:
                self._set_aside(key, dest, str(exc))  # then stored afresh below
            else:
                if consume:
                    src.unlink(missing_ok=True)
                if legal_hold:
                    self.set_legal_hold(key, True)
                return done
        vfs = os.statvfs(self.root)
        if vfs.f_bavail * vfs.f_frsize < size + self.min_free_bytes:
            raise StoreFull(
                f"store {self.root} has {vfs.f_bavail * vfs.f_frsize} bytes free, "
                f"{size} needed plus a reserve of {self.min_free_bytes}: free space"
            )
        with self._staging_folder() as folder:
            result = self._link_new(key, dest, src, folder / "object.tmp", sha256, size,
                                    consume)
        if consume:
            src.unlink(missing_ok=True)
        if legal_hold:
            self.set_legal_hold(key, True)
        log.debug("stored %s (%d bytes) in %s", key, size, self.root)
        return result

    def _link_new(self, key: str, dest: Path, src: Path, tmp: Path, sha256: str, size: int,
                  consume: bool) -> StoredObject:
        if consume and src.stat().st_dev == tmp.parent.stat().st_dev:
            # The spool file lives on this filesystem: move it here (its spool name is gone
            # before the object has a name, so nothing can write to the object through
            # it), make it durable and link it.
            fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                if os.fstat(fd).st_size != size:
                    raise StoreIntegrityError(f"{src}: {os.fstat(fd).st_size} bytes, "
                                              f"expected {size}")
                os.fsync(fd)  # data first, then the two directory changes
            finally:
                os.close(fd)
            os.rename(src, tmp)
            if not (src.parent.parent == self.staging_dir and src.parent.name.startswith("w-")):
                fsync_dir(src.parent)  # the spool name is durably gone before the final link
        else:
            self._copy_verified(src, tmp, sha256, size)
        try:
            os.chmod(tmp, 0o444)
            self._make_parents(dest.parent)
            try:
                os.link(tmp, dest)
                fsync_dir(dest.parent)
                result = StoredObject(key, sha256, size, self.backend, str(dest))
            except FileExistsError:
                # Another slot stored the same content a moment ago.
                result = self._verify_existing(key, dest, sha256, size)
            fault_point("store-linked")
        finally:
            # The final name is durable (or nothing was named); the staging name can go.
            tmp.unlink(missing_ok=True)
        return result

    def _copy_verified(self, src: Path, tmp: Path, sha256: str, size: int) -> None:
        digest = hashlib.sha256()
        n = 0
        buf = bytearray(COPY_BLOCK)
        view = memoryview(buf)
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            while True:
                got = fin.readinto(buf)
                if not got:
                    break
                digest.update(view[:got])
                fout.write(view[:got])
                n += got
            fout.flush()
            os.fsync(fout.fileno())
        if n != size or not hmac.compare_digest(digest.hexdigest(), sha256):
            tmp.unlink(missing_ok=True)
            raise StoreIntegrityError(
                f"{src} changed while being stored ({n} bytes, sha256 {digest.hexdigest()})"
            )

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise FileNotFoundError(f"{key} is not in store {self.root}") from None

    def list(self, prefix: str = "") -> Iterator[str]:
        base = self.root / prefix if prefix else self.root
        if not base.is_dir():
            return iter(())
        keys = []
        for dirpath, dirnames, filenames in os.walk(base):
            rel_dir = Path(dirpath).relative_to(self.root)
            if rel_dir.parts and rel_dir.parts[0] in (STAGING_DIR, HOLDS_DIR):
                dirnames.clear()
                continue
            dirnames[:] = [d for d in dirnames if d not in (STAGING_DIR, HOLDS_DIR)]
            for name in filenames:
                if name == STORE_MARKER:
                    continue
                keys.append((rel_dir / name).as_posix())
        return iter(sorted(keys))

    def _hold_path(self, key: str) -> Path:
        return self.root / HOLDS_DIR / (check_key(key) + ".hold")

    def set_legal_hold(self, key: str, on: bool) -> None:
        if not self._path(key).exists():
            raise FileNotFoundError(f"{key} is not in store {self.root}")
        hold = self._hold_path(key)
        if on:
            self._write_hold(key)
        elif hold.exists():
            hold.unlink()
            fsync_dir(hold.parent)

    def _write_hold(self, key: str) -> None:
        hold = self._hold_path(key)
        self._make_parents(hold.parent)
        hold.write_text("ON\n")
        fsync_dir(hold.parent)

    def legal_hold(self, key: str) -> bool:
        return self._hold_path(key).exists()


# --- S3 with Object Lock ------------------------------------------------------------------

_TRANSIENT_CODES = {
    "RequestTimeout", "RequestTimeTooSkewed", "SlowDown", "ServiceUnavailable",
    "InternalError", "InternalServerError", "RequestTimeoutException", "Throttling",
    "ThrottlingException", "OperationAborted",
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

    if isinstance(exc, ConnectionError | EndpointConnectionError | ConnectionClosedError
                  | ReadTimeoutError):
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

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None, retention_days: float = DEFAULT_RETENTION_DAYS,
                 retry: RetryPolicy | None = None, create_bucket: bool = True,
                 connect_timeout: float = 3.0, read_timeout: float = 30.0,
                 client: Any = None, clock: Callable[[], float] = time.time) -> None:
        super().__init__(retry, retention_days)
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
            client = session.client("s3", endpoint_url=endpoint_url, region_name=region,
                                    config=config)
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
                if status in (401, 403) or code in ("AccessDenied", "InvalidAccessKeyId",
                                                    "SignatureDoesNotMatch"):
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

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            result: dict[str, Any] = self.client.head_object(
                Bucket=self.bucket, Key=self.full_key(key), ChecksumMode="ENABLED"
            )
            return result
        except ClientError as exc:
            code, status = _error_code(exc)
            if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def _as_stored(self, key: str, head: dict[str, Any], already: bool) -> StoredObject:
        _, sha = split_name(key)
        got = head.get("ChecksumSHA256")
        if not isinstance(got, str) or not hmac.compare_digest(got, _b64(sha)):
            raise StoreIntegrityError(
                f"{self.url}/{key}: the store reports checksum {got!r}, not the SHA-256 in the "
                "key; the object cannot be trusted (not released)"
            )
        until = head.get("ObjectLockRetainUntilDate")
        return StoredObject(
            key, sha, int(head.get("ContentLength", 0)), self.backend,
            f"s3://{self.bucket}/{self.full_key(key)}", head.get("VersionId"),
            until.timestamp() if isinstance(until, dt.datetime) else None, already,
        )

    def stat(self, key: str) -> StoredObject | None:
        self.check()
        head = self._run(f"looking up {key}", lambda: self._head(key))
        return None if head is None else self._as_stored(key, head, True)

    def put_file(self, key: str, path: Path, *, sha256: str, size: int,
                 retain_until: float | None = None, consume: bool = False,
                 legal_hold: bool = False) -> StoredObject:
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

    def put_bytes(self, key: str, data: bytes, *, retain_until: float | None = None,
                  legal_hold: bool = False) -> StoredObject:
        # Straight from memory: no temporary file anywhere that a kill could leave behind.
        return self._put(key, lambda: io.BytesIO(data), hashlib.sha256(data).hexdigest(),
                         len(data), retain_until, legal_hold)

    def _put(self, key: str, body: Callable[[], BinaryIO], sha256: str, size: int,
             retain_until: float | None, legal_hold: bool) -> StoredObject:
        _check_sha(sha256)
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
                        "but does not show the object")
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

    def _upload(self, key: str, body: Callable[[], BinaryIO], sha256: str, size: int,
                until: float, legal_hold: bool) -> StoredObject | None:
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
                    log.info("%s: already in %s (conditional write refused a second copy)",
                             key, self.url)
                    return None
                raise
        fault_point("s3-put-sent")
        got = response.get("ChecksumSHA256")
        if not isinstance(got, str):
            head = self._head(key)  # some servers return the checksum only on HEAD
            got = head.get("ChecksumSHA256") if head else None
        if not isinstance(got, str) or not hmac.compare_digest(got, ours):
            raise StoreIntegrityError(
                f"{self.url} did not confirm the SHA-256 of {key} (returned {got!r}): "
                "not durable, not released"
            )
        log.debug("stored %s (%d bytes) in %s, locked until %s", key, size, self.url,
                  dt.datetime.fromtimestamp(until, dt.UTC).isoformat())
        return StoredObject(key, sha256, size, self.backend,
                            f"s3://{self.bucket}/{self.full_key(key)}",
                            response.get("VersionId"), until)

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
                if entry.is_file(follow_symlinks=False) and \
                        entry.stat(follow_symlinks=False).st_uid == os.getuid():
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        if removed:
            log.info("removed %d temporary file(s) of interrupted uploads from %s", removed,
                     folder)
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
        full = self.full_key(prefix.rstrip("/")) + "/" if prefix else (
            f"{self.prefix}/" if self.prefix else "")
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys: list[str] = []
        token: str | None = None

        def page_after(token: str | None) -> dict[str, Any]:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full}
            if token:
                kwargs["ContinuationToken"] = token
            page: dict[str, Any] = self.client.list_objects_v2(**kwargs)
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
                Bucket=self.bucket, Key=self.full_key(key),
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


# --- URLs ---------------------------------------------------------------------------------


def open_store(url: str, *, retry: RetryPolicy | None = None,
               clock: Callable[[], float] = time.time) -> Store:
    """The store a URL names: file:///path (or a plain path) or s3://bucket/prefix?...

    S3 query parameters: endpoint (URL of the S3 server), region, retention_days
    (default 28), create (1: create the bucket with Object Lock if missing; default 1),
    connect_timeout, read_timeout (seconds). File stores take retention_days too.
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
        return FileStore(path, retry=retry, retention_days=retention)
    if parsed.scheme == "s3":
        endpoint = query.pop("endpoint", None)
        region = query.pop("region", None)
        create = query.pop("create", "1") not in ("0", "false", "no")
        connect_timeout = number("connect_timeout", 3.0)
        read_timeout = number("read_timeout", 30.0)
        if query:
            raise StoreConfigError(f"store URL {url!r}: unknown parameters {sorted(query)}")
        if endpoint is not None and urllib.parse.urlsplit(endpoint).scheme not in ("http",
                                                                                   "https"):
            raise StoreConfigError(f"store URL: endpoint {endpoint!r} is not an http(s) URL")
        return S3Store(parsed.netloc, parsed.path, endpoint_url=endpoint, region=region,
                       retention_days=retention, retry=retry, create_bucket=create,
                       connect_timeout=connect_timeout, read_timeout=read_timeout, clock=clock)
    raise StoreConfigError(f"store URL {url!r}: use file:///path or s3://bucket/prefix?endpoint=")


def is_regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except FileNotFoundError:
        return False


def fetch_recording(store: Store, site: str, device_id: str, recording_id: str,
                    dest: Path) -> Path:
    """Rebuild a recording folder from the store (for the vault and the demo); returns it.

    Writes the header, the most complete manifest version (a manifest only grows, so
    the longest one) and every segment under their own names into `dest`. Decrypt
    or verify the folder with crypto afterwards: this only collects files.
    """
    prefix = "/".join((_check_component(site, "site"), _check_component(device_id, "device id"),
                       _check_component(recording_id, "recording id"))) + "/"
    best: dict[str, tuple[int, str]] = {}
    for key in store.list(prefix):
        name, _ = split_name(key)
        size = store.stat(key)
        length = size.size if size is not None else 0
        if name not in best or length > best[name][0]:
            best[name] = (length, key)
    if not best:
        raise FileNotFoundError(f"recording {device_id}/{recording_id} is not in {store.url}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name, (_, key) in sorted(best.items()):
        with store.open(key) as src, open(dest / name, "wb") as out:
            while block := src.read(COPY_BLOCK):
                out.write(block)
    return dest


# --- deleting, for the back office's retention purge ---------------------------------------


class StoreLocked(StoreError):
    """A legal hold or an unexpired Object Lock retention still protects the object."""


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
                    f"Lock retention): {code or status}") from None
            raise
        removed += 1
    return removed
