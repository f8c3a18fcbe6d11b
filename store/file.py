"""`FileStore`: a local content-addressed directory, the embedded default (`file:///path`)."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from crypto.files import fsync_dir, sha256_file
from store.base import DurableBatch, FaultHook, Store, StoredObject
from store.errors import StoreConfigError, StoreFull, StoreIntegrityError, StoreUnavailable
from store.keys import (
    DEFAULT_RETENTION_DAYS,
    QUARANTINE_PREFIX,
    REASON_SUFFIX,
    check_key,
    check_sha,
    quarantine_key,
    split_name,
)
from store.retry import RetryPolicy

log = logging.getLogger(__name__)

COPY_BLOCK = 1 << 20
STORE_MARKER = ".bodycam-store"
STAGING_DIR = ".staging"
HOLDS_DIR = ".holds"


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

    def __init__(
        self,
        root: Path | str,
        *,
        retry: RetryPolicy | None = None,
        retention_days: float = DEFAULT_RETENTION_DAYS,
        min_free_bytes: int = 64 << 20,
        create: bool = True,
        fault: FaultHook | None = None,
    ) -> None:
        super().__init__(retry, retention_days, fault)
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
                if not self._create:
                    # An empty mount point of an unmounted disk looks like a new store.
                    raise StoreUnavailable(
                        f"store directory {self.root} has no {STORE_MARKER}: is the disk "
                        "mounted? (a new store is made only when asked to create one)"
                    )
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
        doc = {
            "key": key,
            "reason": "found under its final name with other content",
            "sha256": actual,
        }
        raw = json.dumps(doc, sort_keys=True, indent=1).encode()
        self.put_bytes(
            f"{qkey}{REASON_SUFFIX}.{hashlib.sha256(raw).hexdigest()}", raw, legal_hold=True
        )
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
        log.error("store %s: %s held other bytes (%s); moved to %s", self.root, key, problem, qkey)

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
            elif (
                entry.is_dir(follow_symlinks=False)
                and name.startswith(".w-")
                and time.time() - entry.stat(follow_symlinks=False).st_mtime > 60
            ):
                # killed between mkdir and rename (a few microseconds); never a live one
                removed += _reap_staging_folder(Path(entry.path))
        if removed:
            fsync_dir(staging)
            log.info("store %s: removed %d file(s) left by interrupted writes", self.root, removed)
        return removed

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        retain_until: float | None = None,
        legal_hold: bool = False,
        batch: DurableBatch | None = None,
    ) -> StoredObject:
        self.check()
        with self._staging_folder() as folder:
            tmp = folder / "bytes.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            return self.put_file(
                key,
                tmp,
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                retain_until=retain_until,
                consume=True,
                legal_hold=legal_hold,
                batch=batch,
            )

    def _make_parents(self, directory: Path, batch: DurableBatch | None = None) -> None:
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
            if batch is None:
                fsync_dir(m.parent)
            else:
                batch.named_in(m.parent)

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
        check_sha(sha256)
        if split_name(key)[1] != sha256:
            raise ValueError(f"key {key} does not carry the content's sha256 {sha256}")
        self.check()
        dest = self._path(key)
        try:
            stored = self._put(key, dest, Path(path), sha256, size, consume, legal_hold, batch)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StoreFull(f"store {self.root} is full writing {key}: free space") from exc
            if exc.errno in (errno.EIO, errno.ENODEV, errno.ENXIO, errno.ESTALE, errno.EROFS):
                self._ready = False
                raise StoreUnavailable(f"store {self.root} failed writing {key}: {exc}") from exc
            raise
        self.retry.succeeded()
        return stored

    def _put(
        self,
        key: str,
        dest: Path,
        src: Path,
        sha256: str,
        size: int,
        consume: bool,
        legal_hold: bool,
        batch: DurableBatch | None = None,
    ) -> StoredObject:
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
            result = self._link_new(
                key, dest, src, folder / "object.tmp", sha256, size, consume, batch
            )
        if consume:
            src.unlink(missing_ok=True)
        if legal_hold:
            self.set_legal_hold(key, True)
        log.debug("stored %s (%d bytes) in %s", key, size, self.root)
        return result

    def _link_new(
        self,
        key: str,
        dest: Path,
        src: Path,
        tmp: Path,
        sha256: str,
        size: int,
        consume: bool,
        batch: DurableBatch | None = None,
    ) -> StoredObject:
        if consume and src.stat().st_dev == tmp.parent.stat().st_dev:
            # The spool file lives on this filesystem: move it here (its spool name is gone
            # before the object has a name, so nothing can write to the object through
            # it), make it durable and link it.
            fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                if os.fstat(fd).st_size != size:
                    raise StoreIntegrityError(
                        f"{src}: {os.fstat(fd).st_size} bytes, expected {size}"
                    )
                os.fsync(fd)  # data first, then the two directory changes
            finally:
                os.close(fd)
            os.rename(src, tmp)
            if not (src.parent.parent == self.staging_dir and src.parent.name.startswith("w-")):
                if batch is None:
                    fsync_dir(src.parent)  # the spool name durably gone before the final link
                else:
                    # Made durable at the batch's commit, before the final folders. Until
                    # then a power cut may leave the spool name as a second name of the
                    # object: the dock never writes through such a name (it drops it,
                    # dock.spool.drop_if_shared, and at start clean_spool_at_start).
                    batch.gone_from(src.parent)
        else:
            self._copy_verified(src, tmp, sha256, size)
        try:
            os.chmod(tmp, 0o444)
            self._make_parents(dest.parent, batch)
            try:
                os.link(tmp, dest)
                if batch is None:
                    fsync_dir(dest.parent)
                else:
                    batch.named_in(dest.parent)
                result = StoredObject(key, sha256, size, self.backend, str(dest))
            except FileExistsError:
                # Another slot stored the same content a moment ago.
                result = self._verify_existing(key, dest, sha256, size)
            self.fault("store-linked")
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
            self._remove_empty_hold_folders(hold.parent)

    def _remove_empty_hold_folders(self, folder: Path) -> None:
        """A lifted hold leaves no empty `.holds/<site>/<device>/<recording>/` behind."""
        top = self.root / HOLDS_DIR
        while folder != top and top in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return  # not empty: another key's hold lives here
            folder = folder.parent
            fsync_dir(folder)

    def _write_hold(self, key: str) -> None:
        hold = self._hold_path(key)
        for attempt in (1, 2):
            self._make_parents(hold.parent)
            try:
                hold.write_text("ON\n")
                break
            except FileNotFoundError:
                # a hold lifted at the same moment removed the empty folder: make it again
                if attempt == 2:
                    raise
        fsync_dir(hold.parent)

    def legal_hold(self, key: str) -> bool:
        return self._hold_path(key).exists()


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
