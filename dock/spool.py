"""The dock's spool: copies of a camera's files on their way into the store.

Serial copies resume from what the spool holds; a file store's spool lives on the
store's filesystem, so a verified copy is moved into the store, never copied again.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)


def drop_if_shared(part: Path) -> None:
    """Never write through a spool name that is another name of a stored object.

    An earlier version of the dock could leave the spool name hard-linked to the stored
    object after a kill; reopening it for writing would change the stored bytes.
    """
    try:
        if part.lstat().st_nlink > 1 or not stat.S_ISREG(part.lstat().st_mode):
            part.unlink()
    except FileNotFoundError:
        pass


def remove_spool_folder(folder: Path) -> int:
    """Remove one recording's spool folder (flat: spooled files only); files removed."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.is_file(follow_symlinks=False) or entry.is_symlink():
            os.unlink(entry.path)
            removed += 1
    try:
        folder.rmdir()
    except OSError:
        pass  # something unexpected in it: left for a person to look at
    return removed


def clean_spool_at_start(spool: Path) -> int:
    """Start-up check of the spool: drop any file that shares its inode with another name.

    Only an earlier version of the dock, killed between storing and unlinking, left
    such spool names (a second name of a stored object); no writer makes them now,
    so this never disturbs another dock sharing the store. Everything else a killed
    session left is dropped at the camera's next docking (`_tidy_spool`), when its
    listing says what is still needed.
    """
    removed = 0
    for dirpath, _, filenames in os.walk(spool):
        for name in filenames:
            path = Path(dirpath) / name
            try:
                if path.lstat().st_nlink > 1:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
    if removed:
        log.warning("spool %s: removed %d spool name(s) shared with stored objects", spool, removed)
    return removed
