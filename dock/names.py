"""A camera's listing, collected name by name with bounds on how much it may list.

A camera (or whoever holds one) chooses the recording ids and file names it lists,
over serial (LIST_RECORDINGS) or on its volume (USB mass storage). Every name is
checked where it enters the dock by the format's name grammar (`crypto.names`,
crypto/FORMAT.md "Names"), in both transfer modes. `ListingBuilder` collects a
camera's listing with those checks and with bounds on how much a camera may list in
one session (`ListingBounds`): refused names are kept aside with their reason, the
good recordings go on, and a listing beyond the bounds stops with `ListingRefused`
before it can grow without limit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from crypto.format import MAX_SEGMENTS
from crypto.names import (
    MAX_ID_LENGTH,
    METADATA_NAMES,
    NameRefused,
    check_file_name,
    check_recording_id,
    check_size,
    shown,
    why_not_component,
)

log = logging.getLogger(__name__)

RECORDINGS_DIR = "recordings"

# Per docking. A recording holds at most MAX_SEGMENTS segments, its header and
# manifest, and one `.part` of each; a camera volume of 256 GB in 10 s segments of
# 2 MB holds ~128,000 segments, well below the session bound.
MAX_FILES_PER_RECORDING = MAX_SEGMENTS + 2 * len(METADATA_NAMES) + 1
MAX_LISTED_FILES = 250_000
MAX_RECORDINGS = 20_000


class ListingRefused(Exception):
    """A camera lists more than a session takes (files, recordings): nothing is taken."""


_NO_NAME = object()


def display_path(recording: object, name: object = _NO_NAME) -> str:
    """`recordings/<id>[/<name>]` with each part shown safely (escaped when unsafe)."""
    parts = [RECORDINGS_DIR]
    for part in (recording, name):
        if part is _NO_NAME:
            continue
        parts.append(
            part
            if isinstance(part, str) and why_not_component(part, MAX_ID_LENGTH) is None
            else shown(part)
        )
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
                f"{RECORDINGS_DIR}/; nothing is taken from it (check the camera)"
            )

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
            self.listing.refused.setdefault(display_path(recording), f"name refused: {exc.reason}")
            return
        try:
            file_name = check_file_name(name)
            file_size = check_size(size)
        except NameRefused as exc:
            self.listing.refused.setdefault(
                display_path(rec_id, name), f"{exc.what} refused: {exc.reason}"
            )
            return
        if rec_id in self._too_big:
            return
        files = self.listing.recordings.get(rec_id)
        if files is None:
            if len(self.listing.recordings) >= self.bounds.max_recordings:
                raise ListingRefused(
                    f"the camera lists more than {self.bounds.max_recordings} recordings; "
                    "nothing is taken from it (check the camera)"
                )
            files = self.listing.recordings[rec_id] = {}
        files[file_name] = file_size
        if len(files) > self.bounds.max_files_per_recording:
            # Not a recording the format can make: refuse it whole, keep the others.
            del self.listing.recordings[rec_id]
            self._too_big.add(rec_id)
            self.listing.refused[display_path(rec_id)] = (
                f"lists more than {self.bounds.max_files_per_recording} files, more than "
                "a recording can hold"
            )

    def result(self) -> CameraListing:
        return self.listing


__all__ = [
    "RECORDINGS_DIR",
    "CameraListing",
    "ListingBounds",
    "ListingBuilder",
    "ListingRefused",
    "display_path",
]
