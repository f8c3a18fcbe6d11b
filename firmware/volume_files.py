"""The camera's volume as the control channel reads it: listing, reading, storage totals.

Every path a client names is resolved inside the volume and refused if it
leaves it (a link, `..`); files are opened without following links and must be
regular files. Nothing here writes: only a release (firmware.release) deletes.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

from formats.eventlog import events_path
from formats.protocol import (
    LIST_PAGE_ENTRIES,
    MAX_JSON,
    NAME_PATTERN,
    ErrorCode,
    ProtocolError,
)

log = logging.getLogger(__name__)

EVENT_LOG_PATH = events_path(Path("."))  # relative to the volume root
RECORDINGS_DIR = "recordings"
_LIST_PAGE_BUDGET = MAX_JSON - 1024  # bytes of JSON a LIST_RECORDINGS page may use


def safe_listdir(path: Path) -> list[os.DirEntry[str]]:
    """The entries of a folder; none if it does not exist (or is not a folder)."""
    try:
        with os.scandir(path) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []


def list_recordings(volume: Path, after: str) -> dict[str, Any]:
    """One LIST_RECORDINGS page: the files after `after` ("REC/NAME"), in name order."""
    root = Path(volume) / RECORDINGS_DIR
    entries: list[tuple[str, str, int]] = []
    for rec in sorted(safe_listdir(root), key=lambda e: e.name):
        if not rec.is_dir(follow_symlinks=False) or not NAME_PATTERN.fullmatch(rec.name):
            continue
        for entry in sorted(safe_listdir(Path(rec.path)), key=lambda e: e.name):
            if not entry.is_file(follow_symlinks=False):
                continue
            if not NAME_PATTERN.fullmatch(entry.name):
                continue
            if f"{rec.name}/{entry.name}" <= after:
                continue
            entries.append((rec.name, entry.name, entry.stat(follow_symlinks=False).st_size))
    page: list[dict[str, Any]] = []
    budget = 0
    for rec_name, name, size in entries:
        cost = len(rec_name) + len(name) + 64
        if len(page) >= LIST_PAGE_ENTRIES or budget + cost > _LIST_PAGE_BUDGET:
            break
        page.append({"recording": rec_name, "name": name, "size": size})
        budget += cost
    return {"files": page, "more": len(page) < len(entries)}


def storage_summary(volume: Path, capacity_bytes: int) -> dict[str, Any]:
    """Recordings, files and bytes on the volume (HELLO's `storage`)."""
    recordings = files = total = 0
    root = Path(volume) / RECORDINGS_DIR
    for rec in safe_listdir(root):
        if not rec.is_dir(follow_symlinks=False):
            continue
        recordings += 1
        for entry in safe_listdir(Path(rec.path)):
            if entry.is_file(follow_symlinks=False):
                files += 1
                total += entry.stat(follow_symlinks=False).st_size
    return {
        "recordings": recordings,
        "files": files,
        "bytes": total,
        "capacity_bytes": capacity_bytes,
    }


def volume_file(volume: Path, relative: str) -> Path:
    """Resolve a client path inside the volume; refuse anything that leaves it."""
    root = Path(volume).resolve()
    candidate = root / relative
    try:
        resolved = candidate.resolve(strict=True)
    except FileNotFoundError:
        raise ProtocolError(ErrorCode.NOT_FOUND, f"{relative}: no such file") from None
    if not resolved.is_relative_to(root) or resolved != candidate:
        raise ProtocolError(ErrorCode.FORBIDDEN, f"{relative}: leaves the volume through a link")
    return candidate


def read_bytes(path: Path, offset: int, length: int) -> tuple[int, bytes]:
    """(file size, up to `length` bytes at `offset`) of a regular file, links refused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise ProtocolError(ErrorCode.NOT_FOUND, f"{path.name}: no such file") from None
    except OSError as exc:
        raise ProtocolError(ErrorCode.FORBIDDEN, f"{path.name}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ProtocolError(ErrorCode.FORBIDDEN, f"{path.name}: not a regular file")
        data = os.pread(fd, length, offset) if offset < st.st_size else b""
        return st.st_size, data
    finally:
        os.close(fd)
