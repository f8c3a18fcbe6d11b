"""What the camera's control server keeps for the client on the line (firmware/control.py)."""

from __future__ import annotations

from firmware.profile_store import FlashSession
from formats.protocol import SessionKeys


class Connection:
    """State of the client currently talking to the camera.

    HELLO resets the session part; a connection reset (port opened or closed) replaces
    the whole object, so no sequence number or cached answer outlives the client.
    """

    def __init__(self) -> None:
        self.last_seq: int | None = None
        self.last_body: bytes | None = None  # the last accepted request, byte for byte
        self.last_response: bytes | None = None
        self.keys: SessionKeys | None = None
        self.dock_public: bytes | None = None
        # dock public key, signed AUTH transcript, X25519 agreement: until AUTH_FINISH
        self.challenge: tuple[bytes, bytes, bytes] | None = None
        self.flash: FlashSession | None = None
        self.opened_at = 0.0
        self.last_used = 0.0
        self.frames_refused = 0

    @property
    def authenticated(self) -> bool:
        return self.keys is not None

    def end_session(self) -> None:
        self.keys = None
        self.dock_public = None
        self.challenge = None
        self.frames_refused = 0
        if self.flash is not None:
            self.flash.abort()
            self.flash = None
