"""What a camera's replies become on the host: errors by code, and the records of HELLO,
profiles and listings (the client itself is dock/link.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from formats.protocol import ErrorCode, Fields, Message, MessageError, error_name


class LinkError(Exception):
    """The camera answered with an error (`code` from PROTOCOL.md section 5), or broke protocol."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.name = error_name(code)
        self.message = message
        super().__init__(f"camera refused ({self.name}): {message}")


class AuthFailed(LinkError):
    """Authentication failed in either direction (dock key untrusted, wrong device key)."""


class ProfileRefused(LinkError):
    """The camera answered PROFILE_REJECTED: it refused the profile; the old one stays active.

    The host's view of the camera's `firmware.profile_store.ProfileRejected` (the store's
    verdict inside the camera), which reaches the host only as this error reply.
    """


class ReceiptRejected(LinkError):
    """The camera refused a release receipt; nothing was deleted."""


class RemoteNotFound(LinkError):
    """The file or segment is not on the camera."""


class ClockRefused(LinkError):
    """SET_TIME was beyond the bound of the camera's profile; its clock was not changed.

    `drift` (camera minus dock, seconds) and `limit` (seconds) come from the camera.
    """

    def __init__(
        self, code: int, message: str, drift: float | None = None, limit: int | None = None
    ) -> None:
        super().__init__(code, message)
        self.drift = drift
        self.limit = limit


class SessionLost(LinkError):
    """The camera no longer has our session (port reset, expired); the request did not run."""


class LinkTimeout(TimeoutError):
    """No valid answer after all retries: the camera is gone, hung or the line is too noisy."""


class LinkTampered(LinkTimeout):
    """No authentic answer after all retries, and replies that failed the session tag came in.

    Someone on the line answers in the camera's place (or alters its answers).
    """


class LinkClosed(ConnectionError):
    """The serial port went away (camera undocked, unplugged or switched off)."""


ERRORS_BY_CODE: dict[int, type[LinkError]] = {
    ErrorCode.AUTH_FAILED: AuthFailed,
    ErrorCode.PROFILE_REJECTED: ProfileRefused,
    ErrorCode.RECEIPT_REJECTED: ReceiptRejected,
    ErrorCode.NOT_FOUND: RemoteNotFound,
    ErrorCode.CLOCK_REFUSED: ClockRefused,
}


@dataclass(frozen=True)
class ProfileInfo:
    name: str
    version: int
    sha256: str
    signer: bytes | None
    slot: str | None = None
    data: bytes | None = None
    signature_file: bytes | None = None


@dataclass(frozen=True)
class HelloInfo:
    device_id: str
    model: str
    firmware: str
    device_public: bytes
    profile: ProfileInfo
    transfer_mode: str
    storage: dict[str, Any]


@dataclass(frozen=True)
class RemoteFile:
    recording_id: str
    name: str
    size: int

    @property
    def path(self) -> str:
        """Path relative to the volume root, as READ takes it."""
        return f"recordings/{self.recording_id}/{self.name}"


@dataclass(frozen=True)
class RecordingListing:
    recording_id: str
    files: tuple[RemoteFile, ...]


def profile_info(f: Fields) -> ProfileInfo:
    signer = f.optional("signer")
    return ProfileInfo(
        name=f.text("name", 128),
        version=f.integer("version", 0, 2**31),
        sha256=f.text("sha256", 64),
        signer=bytes.fromhex(signer) if isinstance(signer, str) else None,
    )


def reply_size(msg: Message, command: str) -> int:
    """The `size` a READ/EVENT_LOG reply claims; a malformed one is the camera's LinkError."""
    try:
        return msg.fields.integer("size", 0, 2**53)
    except MessageError as exc:
        raise LinkError(ErrorCode.BAD_MESSAGE, f"malformed {command} reply: {exc}") from None
