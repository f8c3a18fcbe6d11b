"""The camera's flash storage, simulated by a directory with a capacity limit.

```
volume = DirectoryVolume(home / "volume", capacity_bytes=16 * 1024**3)
volume.used_bytes(); volume.free_bytes()
volume.reserve(65_536)      # raises StorageFull when 64 KiB more would not fit
```

Usage is what the files under the root hold (their sizes), measured each time it is
asked, so it includes everything any writer put there (sealed segments, temporary
`.part` files, the event log). The limit is enforced by writers calling `reserve(n)`
before they write n bytes: full storage is a condition the firmware meets and handles
(it stops recording cleanly), not an exception deep in a write.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


class StorageFull(OSError):
    """The volume has no room for what is about to be written."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOSPC, message)

    def __str__(self) -> str:
        return str(self.strerror)


class DirectoryVolume:
    """A directory standing in for the camera's flash, holding at most `capacity_bytes`."""

    def __init__(self, root: Path | str, capacity_bytes: int) -> None:
        capacity = int(capacity_bytes)
        if capacity <= 0:
            raise ValueError(f"volume capacity must be > 0 bytes, got {capacity_bytes}")
        self.root = Path(root)
        self.capacity_bytes = capacity
        self.root.mkdir(parents=True, exist_ok=True)

    def used_bytes(self) -> int:
        """Bytes the files under the root hold now (files that vanish meanwhile count 0)."""
        total = 0
        stack = [self.root]
        while stack:
            folder = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:  # renamed or deleted while we looked: fine
                    continue
        return total

    def free_bytes(self) -> int:
        return max(0, self.capacity_bytes - self.used_bytes())

    def reserve(self, n_bytes: int) -> int:
        """Check that `n_bytes` more fit; returns the bytes free after them. Raises StorageFull."""
        need = int(n_bytes)
        if need < 0:
            raise ValueError(f"cannot reserve a negative size ({n_bytes})")
        free = self.free_bytes()
        if need > free:
            raise StorageFull(
                f"device volume {self.root} is full: {need} bytes needed, {free} of "
                f"{self.capacity_bytes} free; dock the camera to offload its recordings"
            )
        return free - need

    def __repr__(self) -> str:
        return f"DirectoryVolume({str(self.root)!r}, capacity_bytes={self.capacity_bytes})"
