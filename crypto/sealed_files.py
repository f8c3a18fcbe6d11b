"""The sealed format's own file I/O (crypto/FORMAT.md): a header or manifest replaced
through `NAME.part` (what power-cut recovery looks for), and small files read whole with
a bound, never through a link."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from crypto.errors import Tampered, Truncated
from crypto.files import fsync_dir, write_all
from crypto.format import PART_SUFFIX


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: NAME.part, fsync, rename over NAME, fsync the directory."""
    tmp = path.with_name(path.name + PART_SUFFIX)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_bounded(path: Path, limit: int, file: str) -> bytes:
    """A whole small file, refusing (Tampered) files larger than `limit`; never follows links."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise Truncated(f"{file} is missing from {path.parent}") from None
    except OSError as exc:
        raise Tampered(file, None, f"cannot be opened as a regular file ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Tampered(file, None, "not a regular file")
        size = st.st_size
        if size > limit:
            raise Tampered(file, None, f"{size} bytes, larger than the format allows ({limit})")
        # Ask for what the file holds (plus one byte to see growth), never the limit:
        # os.read allocates the requested size up front.
        want = min(limit, size) + 1
        parts = []
        total = 0
        while total < want:
            block = os.read(fd, want - total)
            if not block:
                break
            parts.append(block)
            total += len(block)
        data = b"".join(parts)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise Tampered(file, None, f"larger than the format allows ({limit} bytes)")
    return data
