"""Names that come from a camera, checked once where they enter the dock.

A camera (or whoever holds one) chooses the recording ids and file names it lists,
over serial (LIST_RECORDINGS) or on its volume (USB mass storage). The dock turns
them into spool paths and store keys, so every name is untrusted input (ARCHITECTURE
invariant 9). This module is the one grammar both transfer modes and the store's key
building use; it is crypto/FORMAT.md's "Names" section in code:

- a recording id (and a device id) is 1..64 characters of `[A-Za-z0-9._-]`, starting
  with a letter or digit, never containing `..`;
- a file in a recording folder is `recording.hdr`, `manifest.bcm`, `seg-NNNNNN.bcs`,
  or one of them + `.part` (a file being written);
- any path component of a store key follows the recording-id grammar, up to 200
  characters (a file name plus `.` and its SHA-256).

Anything else raises `NameRefused`, which says which name and why; names are shown
escaped and shortened (`shown`), so a hostile name cannot forge log lines or fill a
screen. `ListingBuilder` collects a camera's listing with these checks and with
bounds on how much a camera may list in one session (`ListingBounds`): refused names
are kept aside with their reason, the good recordings go on, and a listing beyond
the bounds stops with `ListingRefused` before it can grow without limit.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from crypto.format import (
    HEADER_NAME,
    MANIFEST_NAME,
    MAX_SEGMENTS,
    MAX_STR,
    PART_SUFFIX,
    part_index_of,
    segment_index_of,
)

log = logging.getLogger(__name__)

MAX_ID_LENGTH = MAX_STR  # a recording or device id is a str8 of the format: 1..64
MAX_COMPONENT_LENGTH = 200  # a store key component: a file name + "." + 64 hex digits
MAX_SHOWN = 48  # characters of a refused name shown to the operator
RECORDINGS_DIR = "recordings"
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_CHARS = re.compile(r"[A-Za-z0-9._-]*")
_METADATA = (HEADER_NAME, MANIFEST_NAME)

# Per docking. A recording holds at most MAX_SEGMENTS segments, its header and
# manifest, and one `.part` of each; a camera volume of 256 GB in 10 s segments of
# 2 MB holds ~128,000 segments, well below the session bound.
MAX_FILES_PER_RECORDING = MAX_SEGMENTS + 2 * len(_METADATA) + 1
MAX_LISTED_FILES = 250_000
MAX_RECORDINGS = 20_000


class NameRefused(ValueError):
    """A name from a camera (or for a store key) is not one the format allows."""

    def __init__(self, what: str, name: object, reason: str) -> None:
        self.what = what
        self.name = name
        self.reason = reason
        super().__init__(f"{what} {shown(name)} refused: {reason}")


class ListingRefused(Exception):
    """A camera lists more than a session takes (files, recordings): nothing is taken."""


def shown(name: object, limit: int = MAX_SHOWN) -> str:
    """A name as the operator may see it: quoted, escaped (control bytes, non-ASCII), short."""
    if not isinstance(name, str):
        return f"<{type(name).__name__}>"
    text = ascii(name[:limit])
    if len(name) > limit:
        text += f"...({len(name)} characters)"
    return text


def _why_not_component(name: object, max_length: int) -> str | None:
    """Why `name` is not a safe path component, or None if it is one."""
    if not isinstance(name, str):
        return f"not a string but {type(name).__name__}"
    if not name:
        return "empty"
    if len(name) > max_length:
        return f"{len(name)} characters, at most {max_length} allowed"
    if "\0" in name:
        return "contains a NUL byte"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "contains a control character"
    if "/" in name or "\\" in name:
        return "contains a path separator"
    if ".." in name:
        return "contains '..'"
    if not _CHARS.fullmatch(name):
        return "has characters outside A-Z a-z 0-9 . _ -"
    if not _SAFE.fullmatch(name):
        return "does not start with a letter or digit"
    return None


def check_component(name: object, what: str, max_length: int = MAX_COMPONENT_LENGTH) -> str:
    """`name` if it is a safe path component (see the module doc), else NameRefused."""
    reason = _why_not_component(name, max_length)
    if reason is not None:
        raise NameRefused(what, name, reason)
    assert isinstance(name, str)
    return name


def check_recording_id(name: object) -> str:
    return check_component(name, "recording id", MAX_ID_LENGTH)


def check_device_id(name: object) -> str:
    return check_component(name, "device id", MAX_ID_LENGTH)


def check_file_name(name: object) -> str:
    """A file name the format defines for a recording folder (or its `.part`)."""
    safe = check_component(name, "file name", MAX_ID_LENGTH)
    final = safe[: -len(PART_SUFFIX)] if safe.endswith(PART_SUFFIX) else safe
    if final in _METADATA or segment_index_of(final) is not None \
            or part_index_of(safe) is not None:
        return safe
    raise NameRefused("file name", name, "not a file the recording format defines "
                      f"({HEADER_NAME}, {MANIFEST_NAME}, seg-NNNNNN.bcs)")


def check_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= 2**53:
        raise NameRefused("size", size, "not a byte count 0..2^53")
    return size


_NO_NAME = object()


def display_path(recording: object, name: object = _NO_NAME) -> str:
    """`recordings/<id>[/<name>]` with each part shown safely (escaped when unsafe)."""
    parts = [RECORDINGS_DIR]
    for part in (recording, name):
        if part is _NO_NAME:
            continue
        parts.append(part if isinstance(part, str) and _why_not_component(
            part, MAX_ID_LENGTH) is None else shown(part))
    return "/".join(parts)


@dataclass(frozen=True)
class ListingBounds:
    """How much one camera may list in one session (every listed entry counts)."""

    max_files: int = MAX_LISTED_FILES
    max_recordings: int = MAX_RECORDINGS
    max_files_per_recording: int = MAX_FILES_PER_RECORDING


@dataclass
class CameraListing:
    """What a camera lists under recordings/: accepted files, and what was refused, why."""

    recordings: dict[str, dict[str, int]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # display path -> reason


class ListingBuilder:
    """Collects a camera's listing entry by entry, checking every name and the bounds."""

    def __init__(self, bounds: ListingBounds | None = None) -> None:
        self.bounds = bounds or ListingBounds()
        self.listing = CameraListing()
        self._count = 0
        self._too_big: set[str] = set()

    def _counted(self) -> None:
        self._count += 1
        if self._count > self.bounds.max_files:
            raise ListingRefused(
                f"the camera lists more than {self.bounds.max_files} files under "
                f"{RECORDINGS_DIR}/; nothing is taken from it (check the camera)")

    def refuse(self, path: str, reason: str) -> None:
        """Something the dock will not take (a folder or file the format does not allow)."""
        self._counted()
        self.listing.refused.setdefault(path, reason)

    def add(self, recording: object, name: object, size: object) -> None:
        """One listed file; a bad name or size is refused, never raised."""
        self._counted()
        try:
            rec_id = check_recording_id(recording)
        except NameRefused as exc:
            self.listing.refused.setdefault(display_path(recording), f"name refused: "
                                                                      f"{exc.reason}")
            return
        try:
            file_name = check_file_name(name)
            file_size = check_size(size)
        except NameRefused as exc:
            self.listing.refused.setdefault(display_path(rec_id, name),
                                            f"{exc.what} refused: {exc.reason}")
            return
        if rec_id in self._too_big:
            return
        files = self.listing.recordings.get(rec_id)
        if files is None:
            if len(self.listing.recordings) >= self.bounds.max_recordings:
                raise ListingRefused(
                    f"the camera lists more than {self.bounds.max_recordings} recordings; "
                    "nothing is taken from it (check the camera)")
            files = self.listing.recordings[rec_id] = {}
        files[file_name] = file_size
        if len(files) > self.bounds.max_files_per_recording:
            # Not a recording the format can make: refuse it whole, keep the others.
            del self.listing.recordings[rec_id]
            self._too_big.add(rec_id)
            self.listing.refused[display_path(rec_id)] = (
                f"lists more than {self.bounds.max_files_per_recording} files, more than "
                "a recording can hold")

    def result(self) -> CameraListing:
        return self.listing


__all__ = [
    "CameraListing", "ListingBounds", "ListingBuilder", "ListingRefused", "NameRefused",
    "check_component", "check_device_id", "check_file_name", "check_recording_id",
    "display_path", "shown",
]
