"""Durable file writes and file hashing shared by the camera, the dock and the key tools.

Every package that must survive a power cut writes the same way: the data to a
temporary file, fsync, rename over the final name, fsync the folder (so the rename
itself is on disk). These are the only definitions of those steps, and of hashing a
file (`sha256_file`, `sha256_digest`, `sha256_fd`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from crypto.errors import Truncated

HASH_BLOCK = 1 << 20


def sha256_digest(path: Path) -> hashlib._Hash:
    """A running SHA-256 over a whole file, to be continued (a resumed copy) or finished."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256")


def sha256_file(path: Path) -> str:
    """The lowercase hex SHA-256 of a whole file."""
    return sha256_digest(path).hexdigest()


def sha256_fd(fd: int, size: int, name: str) -> str:
    """The hex SHA-256 of the first `size` bytes of an open file, by positional reads.

    The file offset is left alone. Raises Truncated (naming `name`) if the file
    holds fewer than `size` bytes.
    """
    digest = hashlib.sha256()
    buf = bytearray(min(HASH_BLOCK, max(size, 1)))
    view = memoryview(buf)
    offset = 0
    while offset < size:
        n = os.preadv(fd, [view[: min(len(buf), size - offset)]], offset)
        if n <= 0:
            raise Truncated(f"{name} shrank while being read")
        digest.update(view[:n])
        offset += n
    return digest.hexdigest()


def fsync_dir(directory: Path) -> None:
    """Make a folder's entries (a rename, a new or removed file) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """os.write until every byte is written (a write may be short)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a file so a crash leaves either the old or the new content."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
