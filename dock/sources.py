"""Where a docked camera's sealed files are read from: its volume, or its serial channel.

Both sources list what the camera holds through `dock.names.ListingBuilder`, so every
name, size and count from the camera is checked where it enters the dock, and neither
ever reads past the byte limit the caller gives (the size the signed manifest allows).
The volume is read-only to the dock: files are opened folder by folder with
`O_NOFOLLOW`, and anything that is not a folder or a regular file is not taken.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from crypto.device_info import VOLUME_INFO_FILE
from crypto.names import NameRefused, check_recording_id, shown
from dock.names import (
    RECORDINGS_DIR,
    CameraListing,
    ListingBounds,
    ListingBuilder,
    ListingRefused,
    display_path,
)

if TYPE_CHECKING:
    from dock.link import CameraLink

log = logging.getLogger(__name__)

COPY_BLOCK = 1 << 20
MAX_NAME_NOTES = 32  # files left on the camera named in notes; the rest are counted
# What a camera volume holds besides recordings, and what stays on it after a docking.
VOLUME_KEEPS = {VOLUME_INFO_FILE: None, "events": {"events.jsonl"}, RECORDINGS_DIR: None}


class VerificationFailed(Exception):
    """A file does not match the camera's signed manifest; the item goes to quarantine."""


class FileSource(Protocol):
    """Where a camera's sealed files are read from: its volume, or its serial channel."""

    kind: str

    def list_files(self) -> CameraListing:
        """Every file under recordings/: accepted names (dock/names.py) with their sizes,
        and what was refused, with why. Raises ListingRefused beyond the bounds."""

    def read_small(self, relative: str, limit: int) -> bytes:
        """A whole small file (header, manifest); raises if larger than `limit`."""

    def copy(
        self,
        relative: str,
        out: BinaryIO,
        start: int,
        on_chunk: Callable[[memoryview], None],
        limit: int,
    ) -> tuple[int, int]:
        """Copy from `start` into `out`, chunk by chunk, never past byte `limit`.

        Returns (end offset, size of the file as the camera reports it)."""

    def event_log(self, offset: int, limit: int) -> bytes:
        """Up to `limit` bytes of the signed event log from `offset`."""


class VolumeSource:
    """Reads the camera's volume as mounted in the slot (USB mass storage). Never writes."""

    kind = "volume"

    def __init__(
        self, volume: Path, check: Callable[[], None], bounds: ListingBounds | None = None
    ) -> None:
        self.volume = Path(volume)
        self._check = check
        self.bounds = bounds

    def _open(self, relative: str) -> int:
        """Open a file below the volume without following any link on the way.

        Listed names are checked already; walking folder by folder with O_NOFOLLOW also
        stops a folder swapped for a symlink after the listing from leading the dock
        outside the volume.
        """
        parts = relative.split("/")
        try:
            fd = os.open(self.volume, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            self._check()
            raise
        try:
            for part in parts[:-1]:
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = nxt
            file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
        except FileNotFoundError:
            self._check()
            raise
        except NotADirectoryError:
            raise VerificationFailed(f"{relative}: a folder on the way is not a folder") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise VerificationFailed(f"{relative} is a symbolic link") from None
            raise
        finally:
            os.close(fd)
        if not stat.S_ISREG(os.fstat(file_fd).st_mode):
            os.close(file_fd)
            raise VerificationFailed(f"{relative} is not a regular file")
        return file_fd

    def _scan(self, folder: Path, builder: ListingBuilder) -> list[os.DirEntry[str]]:
        """A folder's entries, sorted; each one counts against the listing bound."""
        entries: list[os.DirEntry[str]] = []
        with os.scandir(folder) as it:
            for entry in it:
                if len(entries) >= builder.bounds.max_files:
                    raise ListingRefused(
                        f"{shown(folder.name)} on the camera holds more than "
                        f"{builder.bounds.max_files} entries; nothing is taken from it "
                        "(check the camera)"
                    )
                entries.append(entry)
        return sorted(entries, key=lambda e: e.name)

    def list_files(self) -> CameraListing:
        builder = ListingBuilder(self.bounds)
        root = self.volume / RECORDINGS_DIR
        try:
            recs = self._scan(root, builder)
        except FileNotFoundError:
            self._check()
            return builder.result()
        for rec in recs:
            if rec.is_symlink():
                builder.refuse(
                    display_path(rec.name), "a symbolic link, not a recording folder: not followed"
                )
                continue
            if not rec.is_dir(follow_symlinks=False):
                builder.refuse(display_path(rec.name), "not a recording folder")
                continue
            try:
                check_recording_id(rec.name)
            except NameRefused as exc:  # refused whole: nothing inside it is looked at
                builder.refuse(display_path(rec.name), f"name refused: {exc.reason}")
                continue
            try:
                files = self._scan(Path(rec.path), builder)
            except FileNotFoundError:
                continue  # released and removed meanwhile
            if not files:
                builder.refuse(display_path(rec.name), "an empty folder")
            for e in files:
                if e.is_symlink() or not e.is_file(follow_symlinks=False):
                    kind = "a symbolic link" if e.is_symlink() else "not a regular file"
                    builder.refuse(display_path(rec.name, e.name), f"{kind}: not taken")
                    continue
                try:
                    size = e.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue
                builder.add(rec.name, e.name, size)
        return builder.result()

    def others(self) -> dict[str, str]:
        """What the volume holds outside recordings/ beyond what a camera keeps there."""
        found: dict[str, str] = {}
        try:
            with os.scandir(self.volume) as it:
                top = sorted(itertools.islice(it, MAX_NAME_NOTES * 10), key=lambda e: e.name)
        except FileNotFoundError:
            return found
        for entry in top:
            name = entry.name if len(entry.name) <= 64 else shown(entry.name)
            if entry.name not in VOLUME_KEEPS:
                found[name] = "not part of a camera volume"
                continue
            keeps = VOLUME_KEEPS[entry.name]
            if keeps is None or entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
                continue
            with os.scandir(entry.path) as it:
                inside = sorted(e.name for e in itertools.islice(it, MAX_NAME_NOTES * 10))
            for inner in inside:
                if inner not in keeps:
                    found[f"{name}/{shown(inner) if len(inner) > 64 else inner}"] = (
                        "not part of a camera volume"
                    )
        return found

    def read_small(self, relative: str, limit: int) -> bytes:
        fd = self._open(relative)
        try:
            with os.fdopen(fd, "rb", closefd=False) as f:
                data = f.read(limit + 1)
        finally:
            os.close(fd)
        if len(data) > limit:
            raise VerificationFailed(f"{relative} is larger than the format allows ({limit})")
        return data

    def copy(
        self,
        relative: str,
        out: BinaryIO,
        start: int,
        on_chunk: Callable[[memoryview], None],
        limit: int,
    ) -> tuple[int, int]:
        fd = self._open(relative)
        buf = bytearray(COPY_BLOCK)
        view = memoryview(buf)
        offset = start
        try:
            while offset < limit:
                self._check()  # between chunks: unplug and shutdown stop here
                want = min(COPY_BLOCK, limit - offset)
                n = os.preadv(fd, [view[:want]], offset)
                if n <= 0:
                    break
                chunk = view[:n]
                on_chunk(chunk)
                out.write(chunk)
                offset += n
            return offset, os.fstat(fd).st_size
        finally:
            os.close(fd)

    def event_log(self, offset: int, limit: int) -> bytes:
        path = self.volume / "events" / "events.jsonl"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return b""
        try:
            return os.pread(fd, limit, offset)
        finally:
            os.close(fd)


class SerialSource:
    """Reads sealed files over the camera's serial channel (transfer mode "serial")."""

    kind = "serial"

    def __init__(
        self, link: CameraLink, check: Callable[[], None], bounds: ListingBounds | None = None
    ) -> None:
        self.link = link
        self._check = check
        self.bounds = bounds

    def list_files(self) -> CameraListing:
        return self.link.list_files(self.bounds)

    def read_small(self, relative: str, limit: int) -> bytes:
        data = self.link.read(relative, 0, limit + 1)
        if len(data) > limit:
            raise VerificationFailed(f"{relative} is larger than the format allows ({limit})")
        return data

    def copy(
        self,
        relative: str,
        out: BinaryIO,
        start: int,
        on_chunk: Callable[[memoryview], None],
        limit: int,
    ) -> tuple[int, int]:
        from formats.protocol import MAX_DATA

        offset, size = start, start
        while offset < limit:
            self._check()
            size, data = self.link.read_chunk(relative, offset, min(MAX_DATA, limit - offset))
            if data:
                view = memoryview(data)
                on_chunk(view)
                out.write(view)
                offset += len(data)
            if offset >= size or not data:
                break
        return offset, size

    def event_log(self, offset: int, limit: int) -> bytes:
        return self.link.event_log(offset, limit)
