"""Docking slots: where a docked camera shows up, and what each slot is doing now.

A slot is a folder under the slots root (`SLOTS/<slot>/volume` and `serial`, see
ARCHITECTURE "Docking"). `SlotProgress` is its live state for the live view, the
ledger and `dock status`; `SlotState` names the states a slot goes through.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TypedDict

from firmware.hardware import Clock

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

    def add_total(self, n: int) -> None:
        with self._lock:
            self.bytes_total += n

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
