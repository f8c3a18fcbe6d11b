"""What the camera's control server needs of the camera: the `CameraServices` interface.

The server (firmware.control), its release handling (firmware.release) and its
profile flashing (firmware.flashing) reach the rest of the camera only through
this interface, so the firmware's camera object (or a test fake) plugs in
without them knowing it. `firmware.camera.Camera` implements it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from firmware.hardware import SettableClock
from formats.protocol import Signer

if TYPE_CHECKING:
    from formats.profile import Profile

log = logging.getLogger(__name__)


class EventSink(Protocol):
    """The camera's signed event log (formats.eventlog)."""

    def append(self, kind: str, **fields: Any) -> object: ...


class CameraServices(Protocol):
    """What CameraControlServer needs of the camera. Called from the server's thread.

    Attributes may be plain attributes or read-only properties.
    """

    @property
    def device_id(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def firmware_version(self) -> str: ...

    @property
    def device_key(self) -> Signer:
        """The camera's Ed25519 device key (crypto.keys.SigningKey); it signs AUTH replies."""
        ...

    @property
    def home(self) -> Path:
        """Camera-private home; the profile store lives in HOME/profiles."""
        ...

    @property
    def volume(self) -> Path:
        """The camera's flash storage (what mass storage exposes); READ is confined to it."""
        ...

    @property
    def clock(self) -> SettableClock:
        """The camera clock (firmware.hardware.SettableClock): SET_TIME sets it."""
        ...

    @property
    def event_log(self) -> EventSink: ...

    def status(self) -> dict[str, Any]:
        """A JSON-serialisable status object (state, storage, buffer, ...)."""
        ...

    def active_profile(self) -> tuple[bytes, Profile]:
        """The profile the camera was started with (raw TOML, parsed).

        Used when nothing has been flashed into the profile store yet.
        """
        ...

    def on_profile_activated(self, raw: bytes, profile: Profile) -> None:
        """A flashed profile was committed; the camera applies it at its next standby."""
        ...


def record_event(services: CameraServices, kind: str, **fields: Any) -> None:
    """Append to the camera's signed event log; a failure is logged, never raised (logging
    must not turn a served request into a failure)."""
    try:
        services.event_log.append(kind, **fields)
    except Exception:
        log.exception("could not write event %s to the event log", kind)
