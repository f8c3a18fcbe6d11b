"""Docking slots: where a docked camera shows up, and what each slot is doing now.

A slot is a folder under the slots root (`SLOTS/<slot>/volume` and `serial`, see
ARCHITECTURE "Docking"). `SlotProgress` is its live state for the live view, the
ledger and `dock status`; `SlotState` names the states a slot goes through.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TypedDict

from formats.clock import Clock

log = logging.getLogger(__name__)


class SlotState(StrEnum):
    """What a slot shows: a docking runs waiting -> authenticating -> verifying ->
    uploading -> releasing -> done (or quarantined, or error)."""

    WAITING = "waiting"
    AUTHENTICATING = "authenticating"
    VERIFYING = "verifying"
    UPLOADING = "uploading"
    RELEASING = "releasing"
    DONE = "done"
    QUARANTINED = "quarantined"
    ERROR = "error"


class SlotSnapshot(TypedDict):
    """One slot's progress at one instant (live view, ledger, `dock status`)."""

    slot: str
    device_id: str | None
    recording: str | None
    state: str
    bytes_done: int
    bytes_total: int
    rate: float
    eta: float | None
    message: str


@dataclass(frozen=True)
class Slot:
    """A docked camera as the slots root shows it."""

    name: str
    path: Path

    @property
    def volume(self) -> Path | None:
        v = self.path / "volume"
        return v if v.is_dir() else None

    @property
    def serial(self) -> str | None:
        s = self.path / "serial"
        if s.is_symlink():
            return os.path.realpath(s)
        return str(s) if s.exists() else None

    def present(self) -> bool:
        return self.path.is_dir()


@dataclass
class SlotProgress:
    """What one slot is doing, for the live view and `dock status`. Thread-safe."""

    slot: str
    clock: Clock
    device_id: str | None = None
    recording: str | None = None
    state: SlotState = SlotState.WAITING
    bytes_done: int = 0
    bytes_total: int = 0
    message: str = ""
    started: float = 0.0
    rate: float = 0.0  # bytes per second, smoothed
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _last_t: float = 0.0
    _last_bytes: int = 0

    def __post_init__(self) -> None:
        self.started = self._last_t = self.clock.monotonic()

    def set(self, state: SlotState | None = None, **fields: str | int | None) -> None:
        """Change the state and/or fields (device_id, recording, message, bytes_*)."""
        with self._lock:
            if state is not None:
                self.state = state
            for k, v in fields.items():
                setattr(self, k, v)

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self.bytes_done += n
            now = self.clock.monotonic()
            dt = now - self._last_t
            if dt >= 0.25:
                instant = (self.bytes_done - self._last_bytes) / dt
                self.rate = instant if self.rate == 0 else 0.7 * self.rate + 0.3 * instant
                self._last_t, self._last_bytes = now, self.bytes_done

    @property
    def eta(self) -> float | None:
        left = self.bytes_total - self.bytes_done
        if self.rate <= 0 or left <= 0:
            return None
        return left / self.rate

    def snapshot(self) -> SlotSnapshot:
        with self._lock:
            return {
                "slot": self.slot,
                "device_id": self.device_id,
                "recording": self.recording,
                "state": self.state,
                "bytes_done": self.bytes_done,
                "bytes_total": self.bytes_total,
                "rate": self.rate,
                "eta": self.eta,
                "message": self.message,
            }


SLOT_LINKS = ("volume", "serial")


class SlotNotRemoved(OSError):
    """A slot whose camera is gone holds something besides its links: it is left alone."""


def remove_gone_slot(root: Path, name: str) -> str | None:
    """Remove slot `name` under `root` if its camera is gone; the dead serial target, or None.

    A camera killed while docked cannot withdraw its slot: its `serial` link then
    points at a pty that closed with it, and the slot would stay until the camera boots
    again (another camera cannot take the slot meanwhile). Only the slot's own
    symbolic links (`serial`, `volume`) and the then empty folder go, never what a link
    points at: the camera's files stay where they are. Everything is done through
    folder descriptors, without following links, so a slot replaced in between is
    not touched. A live serial link (or none) leaves the slot as it is (None);
    anything else in the folder raises SlotNotRemoved naming it.
    """
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = os.open(
                name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root_fd
            )
        except FileNotFoundError:
            return None  # gone already (undocked meanwhile)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            raise SlotNotRemoved(
                f"slot {root / name} is a link or a file, not a folder: left as it is"
            ) from None
        try:
            try:
                target = os.readlink("serial", dir_fd=fd)
            except OSError:
                return None  # no serial link: nothing says the camera is gone
            try:
                os.stat("serial", dir_fd=fd)  # follows the link
                return None  # the port is there: the camera lives
            except FileNotFoundError:
                pass
            entries = os.listdir(fd)
            links = [
                e
                for e in entries
                if e in SLOT_LINKS
                and stat.S_ISLNK(os.stat(e, dir_fd=fd, follow_symlinks=False).st_mode)
            ]
            kept = sorted(set(entries) - set(links))
            if kept:
                raise SlotNotRemoved(
                    f"slot {root / name}: its camera is gone (serial -> {target} is "
                    f"gone) but it holds {', '.join(kept)}: left as it is"
                )
            for link in links:
                os.unlink(link, dir_fd=fd)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=root_fd)  # empty now; refused if something came in meanwhile
    finally:
        os.close(root_fd)
    return target
