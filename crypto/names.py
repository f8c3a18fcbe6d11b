"""The name grammar of crypto/FORMAT.md ("Names"): recording ids, device ids, file names.

A camera (or whoever holds one) chooses the recording ids and file names it lists.
The dock turns them into spool paths, the store into keys, so every name is
untrusted input (ARCHITECTURE invariant 9). This module is the one grammar the dock
(both transfer modes) and the store's key building use:

- a recording id (and a device id) is 1..64 characters of `[A-Za-z0-9._-]`, starting
  with a letter or digit, never containing `..`;
- a file in a recording folder is `recording.hdr`, `manifest.bcm`, `seg-NNNNNN.bcs`,
  or one of them + `.part` (a file being written);
- any path component of a store key follows the recording-id grammar, up to 200
  characters (a file name plus `.` and its SHA-256).

Anything else raises `NameRefused`, which says which name and why; names are shown
escaped and shortened (`shown`), so a hostile name cannot forge log lines or fill a
screen.
"""

from __future__ import annotations

import logging
import re

from crypto.format import (
    HEADER_NAME,
    MANIFEST_NAME,
    MAX_STR,
    PART_SUFFIX,
    part_index_of,
    segment_index_of,
)

log = logging.getLogger(__name__)

MAX_ID_LENGTH = MAX_STR  # a recording or device id is a str8 of the format: 1..64
MAX_COMPONENT_LENGTH = 200  # a store key component: a file name + "." + 64 hex digits
MAX_SHOWN = 48  # characters of a refused name shown to the operator
METADATA_NAMES = (HEADER_NAME, MANIFEST_NAME)
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_CHARS = re.compile(r"[A-Za-z0-9._-]*")


class NameRefused(ValueError):
    """A name from a camera (or for a store key) is not one the format allows."""

    def __init__(self, what: str, name: object, reason: str) -> None:
        self.what = what
        self.name = name
        self.reason = reason
        super().__init__(f"{what} {shown(name)} refused: {reason}")


def shown(name: object, limit: int = MAX_SHOWN) -> str:
    """A name as the operator may see it: quoted, escaped (control bytes, non-ASCII), short."""
    if not isinstance(name, str):
        return f"<{type(name).__name__}>"
    text = ascii(name[:limit])
    if len(name) > limit:
        text += f"...({len(name)} characters)"
    return text


def why_not_component(name: object, max_length: int = MAX_COMPONENT_LENGTH) -> str | None:
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
    reason = why_not_component(name, max_length)
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
    if (
        final in METADATA_NAMES
        or segment_index_of(final) is not None
        or part_index_of(safe) is not None
    ):
        return safe
    raise NameRefused(
        "file name",
        name,
        f"not a file the recording format defines ({HEADER_NAME}, {MANIFEST_NAME}, seg-NNNNNN.bcs)",
    )


def check_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= 2**53:
        raise NameRefused("size", size, "not a byte count 0..2^53")
    return size


__all__ = [
    "MAX_COMPONENT_LENGTH",
    "MAX_ID_LENGTH",
    "METADATA_NAMES",
    "NameRefused",
    "check_component",
    "check_device_id",
    "check_file_name",
    "check_recording_id",
    "check_size",
    "shown",
    "why_not_component",
]
