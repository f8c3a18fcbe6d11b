"""Wire format of the camera's serial control channel (spec: formats/PROTOCOL.md).

Shared by the camera's server (`firmware.control`) and the dock's client
(`dock.link`): COBS framing with a 0x00 delimiter, the frame header with
sequence number, session tag and CRC-32, the JSON-plus-blob payload encoding,
error codes, the byte strings that AUTH and RELEASE signatures cover, and the
session key schedule (X25519 agreement, HKDF-SHA256, HMAC-SHA256 frame tags).
Every length read from the wire is checked against a bound here before it is
used.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import logging
import re
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 2
DELIMITER = b"\x00"

MAX_DATA = 64 * 1024  # largest READ / EVENT_LOG blob
MAX_PAYLOAD = MAX_DATA + 2048  # data plus the JSON header of a READ reply
MAX_JSON = 16 * 1024
MAX_PROFILE = 64 * 1024
MAX_SIGNATURE_FILE = 4096
MAX_PATH = 256
MAX_ERROR_MESSAGE = 1024
LIST_PAGE_ENTRIES = 200
# Sequence numbers ahead of the last answered one by more than this are refused.
SEQUENCE_WINDOW = 65535
# A session ends after this long without an accepted request, and this long after AUTH
# (camera's monotonic clock, PROTOCOL.md section 8).
SESSION_IDLE_SECONDS = 120.0
SESSION_MAX_SECONDS = 3600.0
# A clock correction larger than this is logged as a clock jump on both sides.
CLOCK_JUMP_SECONDS = 60.0

_HEADER = struct.Struct(">BBBII")  # version, type, flags, sequence, payload length
_CRC = struct.Struct(">I")
_JSON_LEN = struct.Struct(">H")
HEADER_SIZE = _HEADER.size
FLAG_TAGGED = 0x01
TAG_SIZE = 16  # HMAC-SHA256 truncated to 128 bits
MIN_FRAME = HEADER_SIZE + _CRC.size
MAX_FRAME = MIN_FRAME + MAX_PAYLOAD + TAG_SIZE
# COBS adds one code byte per 254 data bytes, plus one.
MAX_ENCODED_FRAME = MAX_FRAME + MAX_FRAME // 254 + 1


class MessageType(enum.IntEnum):
    """Request types; a successful response is `type | RESPONSE_BIT`."""

    HELLO = 0x01
    AUTH_BEGIN = 0x02
    AUTH_FINISH = 0x03
    STATUS = 0x04
    SET_TIME = 0x05
    PROFILE_BEGIN = 0x10
    PROFILE_CHUNK = 0x11
    PROFILE_COMMIT = 0x12
    PROFILE_READ = 0x13
    LIST_RECORDINGS = 0x20
    READ = 0x21
    EVENT_LOG = 0x22
    RELEASE = 0x23
    ERROR = 0x7F


RESPONSE_BIT = 0x80


def response_type(request: int) -> int:
    return request | RESPONSE_BIT


class ErrorCode(enum.IntEnum):
    BAD_FRAME = 1
    FRAME_TOO_LARGE = 2
    UNKNOWN_COMMAND = 3
    BAD_MESSAGE = 4
    SEQUENCE = 5
    NOT_AUTHENTICATED = 6
    AUTH_FAILED = 7
    NOT_FOUND = 8
    FORBIDDEN = 9
    PROFILE_REJECTED = 10
    BAD_STATE = 11
    RECEIPT_REJECTED = 12
    INTERNAL = 13
    CLOCK_REFUSED = 14


def error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"ERROR_{code}"


class ProtocolError(Exception):
    """Something on the wire or in a request is not acceptable; `code` goes back to the peer.

    `extra` holds documented additional fields of the ERROR payload.
    """

    def __init__(self, code: ErrorCode, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra


class FrameError(ProtocolError):
    """A frame that cannot be decoded: its type and sequence number are not to be trusted."""


class MessageError(ProtocolError):
    """A well-framed payload that is malformed or has a missing, mistyped or too long field."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.BAD_MESSAGE) -> None:
        super().__init__(code, message)


# --- COBS ------------------------------------------------------------------------------


_CODE_BYTE = [bytes((i,)) for i in range(256)]


def cobs_encode(data: bytes | bytearray | memoryview) -> bytes:
    """COBS-encode `data`: the result contains no zero byte."""
    # Works on the zero-free runs (split and join run in C) rather than byte by byte: bulk
    # READ replies are encrypted data with a zero every ~256 bytes, so this is a few hundred
    # steps per 64 KiB frame.
    parts: list[bytes] = []
    append = parts.append
    for run in bytes(data).split(b"\x00"):
        n = len(run)
        start = 0
        while n - start >= 254:
            append(b"\xff")  # 254 data bytes, no zero follows
            append(run[start : start + 254])
            start += 254
        append(_CODE_BYTE[n - start + 1])
        append(run[start:] if start else run)
    return b"".join(parts)


def cobs_decode(data: bytes | bytearray | memoryview) -> bytes:
    """Inverse of `cobs_encode`; raises FrameError on an invalid encoding."""
    raw = bytes(data)
    if 0 in raw:  # memchr: the frame splitter never leaves one, but decode_frame is public
        raise FrameError(ErrorCode.BAD_FRAME, "COBS: zero byte inside a frame")
    parts: list[bytes] = []
    append = parts.append
    n = len(raw)
    i = 0
    while i < n:
        code = raw[i]
        end = i + code
        if end > n:
            raise FrameError(ErrorCode.BAD_FRAME, "COBS: block runs past the end of the frame")
        append(raw[i + 1 : end])
        i = end
        if code < 0xFF and i < n:
            append(b"\x00")
    return b"".join(parts)


# --- frames ----------------------------------------------------------------------------


class Frame(NamedTuple):
    """A decoded, CRC-checked frame.

    `body` is the whole unencoded frame (a retry is a byte-identical body); `tag` is the
    session tag (empty when the frame is untagged), not yet checked: see `FrameKey.verify`.
    """

    type: int
    seq: int
    payload: bytes
    crc: int
    tag: bytes = b""
    body: bytes = b""

    @property
    def tagged(self) -> bool:
        return bool(self.tag)


# Directions of a frame, bound into its tag (PROTOCOL.md section 8).
DOCK_TO_CAMERA = 0x01
CAMERA_TO_DOCK = 0x02


class FrameKey:
    """One direction's session key: tags frames sent that way and checks their tags."""

    __slots__ = ("_key", "_direction")

    def __init__(self, key: bytes, direction: int) -> None:
        if len(key) != 32:
            raise ValueError("a session key is 32 bytes")
        if direction not in (DOCK_TO_CAMERA, CAMERA_TO_DOCK):
            raise ValueError(f"unknown frame direction {direction}")
        self._key = bytes(key)
        self._direction = direction

    def __repr__(self) -> str:  # never the key itself: reprs end up in logs
        return f"FrameKey(direction={self._direction})"

    def tag(self, *signed: bytes | memoryview) -> bytes:
        """The 16-byte tag of a frame's header and payload (`signed`, in parts)."""
        mac = hmac.new(self._key, bytes((self._direction,)), hashlib.sha256)
        for part in signed:
            mac.update(part)
        return mac.digest()[:TAG_SIZE]

    def verify(self, frame: Frame) -> bool:
        """Whether `frame` carries a valid tag under this key (constant-time compare)."""
        if len(frame.tag) != TAG_SIZE or len(frame.body) < MIN_FRAME + TAG_SIZE:
            return False
        signed = memoryview(frame.body)[: len(frame.body) - TAG_SIZE - _CRC.size]
        return hmac.compare_digest(self.tag(signed), frame.tag)


@dataclass(frozen=True, repr=False)
class SessionKeys:
    """Both directions' keys of one authenticated session."""

    dock_to_camera: FrameKey
    camera_to_dock: FrameKey

    def __repr__(self) -> str:
        return "SessionKeys(<secret>)"


SESSION_INFO = b"bodycam-session-v2"


def derive_session_keys(shared: bytes, dock_auth_msg: bytes) -> SessionKeys:
    """K_dc, K_cd from the X25519 agreement and the signed AUTH transcript (section 8)."""
    from Crypto.Hash import SHA256
    from Crypto.Protocol.KDF import HKDF

    if len(shared) != 32 or not any(shared):
        raise ValueError("the X25519 agreement is not usable (all-zero or wrong size)")
    salt = hashlib.sha256(dock_auth_msg).digest()
    okm = HKDF(shared, 64, salt, SHA256, 1, context=SESSION_INFO)  # L = 64, then split
    assert isinstance(okm, bytes)
    return SessionKeys(FrameKey(okm[:32], DOCK_TO_CAMERA), FrameKey(okm[32:], CAMERA_TO_DOCK))


def frame_body(msg_type: int, seq: int, payload: bytes, key: FrameKey | None = None) -> bytes:
    """The unencoded frame: header, payload, the session tag under `key` if given, CRC-32."""
    if not 0 <= msg_type <= 0xFF:
        raise ValueError(f"message type {msg_type} does not fit in a byte")
    if not 0 <= seq <= 0xFFFFFFFF:
        raise ValueError(f"sequence number {seq} does not fit in 32 bits")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds the limit of {MAX_PAYLOAD}")
    flags = FLAG_TAGGED if key is not None else 0
    header = _HEADER.pack(PROTOCOL_VERSION, msg_type, flags, seq, len(payload))
    tag = key.tag(header, payload) if key is not None else b""
    crc = zlib.crc32(tag, zlib.crc32(payload, zlib.crc32(header)))
    return b"".join((header, payload, tag, _CRC.pack(crc)))


def encode_frame(msg_type: int, seq: int, payload: bytes, key: FrameKey | None = None) -> bytes:
    """The bytes to put on the wire: delimiter, COBS(frame body), delimiter."""
    body = frame_body(msg_type, seq, payload, key)
    return b"".join((DELIMITER, cobs_encode(body), DELIMITER))


def parse_frame_body(body: bytes) -> Frame:
    """Check and split an unencoded frame body; raises FrameError."""
    if len(body) < MIN_FRAME:
        raise FrameError(ErrorCode.BAD_FRAME, f"frame of {len(body)} bytes is too short")
    version, msg_type, flags, seq, length = _HEADER.unpack_from(body)
    if version != PROTOCOL_VERSION:
        raise FrameError(ErrorCode.BAD_FRAME, f"protocol version {version} is not supported")
    if flags & ~FLAG_TAGGED:
        raise FrameError(ErrorCode.BAD_FRAME, f"unknown frame flags 0x{flags:02x}")
    if length > MAX_PAYLOAD:
        raise FrameError(
            ErrorCode.FRAME_TOO_LARGE,
            f"payload length {length} exceeds the limit of {MAX_PAYLOAD}",
        )
    tag_size = TAG_SIZE if flags & FLAG_TAGGED else 0
    end = HEADER_SIZE + length + tag_size
    if end + _CRC.size != len(body):
        raise FrameError(
            ErrorCode.BAD_FRAME,
            f"length field says {length} bytes, frame carries {len(body) - MIN_FRAME - tag_size}",
        )
    (crc,) = _CRC.unpack_from(body, end)
    if zlib.crc32(memoryview(body)[:end]) != crc:
        raise FrameError(ErrorCode.BAD_FRAME, "CRC-32 mismatch")
    payload = body[HEADER_SIZE : HEADER_SIZE + length]
    return Frame(msg_type, seq, payload, crc, bytes(body[HEADER_SIZE + length : end]), bytes(body))


def decode_frame(encoded: bytes | bytearray) -> Frame:
    """Decode one COBS-encoded frame (without delimiters); raises FrameError."""
    if len(encoded) > MAX_ENCODED_FRAME:
        raise FrameError(ErrorCode.FRAME_TOO_LARGE, "frame exceeds the size limit")
    return parse_frame_body(cobs_decode(encoded))


class FrameDecoder:
    """Splits a byte stream into frames; memory is bounded by MAX_ENCODED_FRAME.

    `feed` returns decoded frames and, in their place, FrameError instances for
    frames that could not be decoded, so the caller can answer each of them.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._discarding = False

    def reset(self) -> None:
        self._buf.clear()
        self._discarding = False

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        out: list[Frame | FrameError] = []
        start = 0
        n = len(data)
        while start <= n:
            zero = data.find(0, start)
            if zero < 0:
                if not self._discarding and start < n:
                    if len(self._buf) + (n - start) > MAX_ENCODED_FRAME:
                        # No delimiter within the largest legal frame: drop it all up to the
                        # next delimiter rather than buffer without bound.
                        self._buf.clear()
                        self._discarding = True
                        out.append(
                            FrameError(
                                ErrorCode.FRAME_TOO_LARGE,
                                f"no frame delimiter within {MAX_ENCODED_FRAME} bytes",
                            )
                        )
                    else:
                        self._buf += memoryview(data)[start:]
                break
            if self._discarding:
                self._discarding = False
            elif self._buf:
                self._buf += memoryview(data)[start:zero]
                out.append(_decode_or_error(self._buf))
                self._buf = bytearray()
            elif zero > start:
                out.append(_decode_or_error(data[start:zero]))
            start = zero + 1
        return out


def _decode_or_error(encoded: bytes | bytearray) -> Frame | FrameError:
    try:
        return decode_frame(encoded)
    except FrameError as exc:
        return exc


# --- payloads --------------------------------------------------------------------------


class Message(NamedTuple):
    fields: Fields
    blob: bytes


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def encode_payload(fields: Mapping[str, Any], blob: bytes = b"") -> bytes:
    """u16 JSON length, the JSON object, then the blob (PROTOCOL.md section 2)."""
    text = json.dumps(dict(fields), separators=(",", ":"), allow_nan=False).encode("utf-8")
    if len(text) > MAX_JSON:
        raise MessageError(f"message header of {len(text)} bytes exceeds {MAX_JSON}")
    total = _JSON_LEN.size + len(text) + len(blob)
    if total > MAX_PAYLOAD:
        raise MessageError(f"message of {total} bytes exceeds the payload limit {MAX_PAYLOAD}")
    return b"".join((_JSON_LEN.pack(len(text)), text, blob))


def decode_payload(payload: bytes) -> Message:
    """Split and parse a payload; raises MessageError."""
    if len(payload) < _JSON_LEN.size:
        raise MessageError("payload shorter than its JSON length field")
    (length,) = _JSON_LEN.unpack_from(payload)
    if length > MAX_JSON or _JSON_LEN.size + length > len(payload):
        raise MessageError(f"JSON length {length} is out of bounds")
    raw = payload[_JSON_LEN.size : _JSON_LEN.size + length]
    try:
        obj = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MessageError(f"message header is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise MessageError("message header must be a JSON object")
    return Message(Fields(obj), payload[_JSON_LEN.size + length :])


class Fields:
    """Typed, bounded access to the JSON fields of a message."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Fields({sorted(self.data)})"

    def _get(self, name: str, default: Any) -> Any:
        if name in self.data:
            return self.data[name]
        if default is _REQUIRED:
            raise MessageError(f"field '{name}' is missing")
        return default

    def text(
        self,
        name: str,
        max_len: int,
        *,
        pattern: re.Pattern[str] | None = None,
        default: str | None = None,
    ) -> str:
        value = self._get(name, _REQUIRED if default is None else default)
        if not isinstance(value, str):
            raise MessageError(f"field '{name}' must be a string")
        if len(value) > max_len:
            raise MessageError(f"field '{name}' is longer than {max_len} characters")
        if pattern is not None and not pattern.fullmatch(value):
            raise MessageError(f"field '{name}' has characters or a form that is not allowed")
        return value

    def integer(self, name: str, lo: int, hi: int, *, default: int | None = None) -> int:
        value = self._get(name, _REQUIRED if default is None else default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise MessageError(f"field '{name}' must be an integer")
        if not lo <= value <= hi:
            raise MessageError(f"field '{name}' = {value} is outside {lo}..{hi}")
        return value

    def number(self, name: str, lo: float, hi: float) -> float:
        value = self._get(name, _REQUIRED)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MessageError(f"field '{name}' must be a number")
        if not lo <= value < hi:
            raise MessageError(f"field '{name}' = {value} is outside {lo}..{hi}")
        return float(value)

    def flag(self, name: str, *, default: bool | None = None) -> bool:
        value = self._get(name, _REQUIRED if default is None else default)
        if not isinstance(value, bool):
            raise MessageError(f"field '{name}' must be true or false")
        return value

    def hexbytes(self, name: str, nbytes: int) -> bytes:
        value = self.text(name, 2 * nbytes, pattern=_HEX)
        if len(value) != 2 * nbytes:
            raise MessageError(f"field '{name}' must be {nbytes} bytes as lowercase hex")
        return bytes.fromhex(value)

    def optional(self, name: str) -> Any:
        return self.data.get(name)


_REQUIRED: Any = object()
_HEX = re.compile(r"[0-9a-f]*")
# Path components on the volume: the names the camera itself writes.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
PATH_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*")


def error_payload(code: ErrorCode, message: str, **extra: Any) -> bytes:
    """An ERROR payload; `extra` adds documented fields (CLOCK_REFUSED: drift, limit)."""
    text = message[:MAX_ERROR_MESSAGE]
    return encode_payload({**extra, "code": int(code), "name": code.name, "message": text})


# --- signed statements -----------------------------------------------------------------

AUTH_CAMERA_CONTEXT = b"bodycam-auth-camera-v2\0"
AUTH_DOCK_CONTEXT = b"bodycam-auth-dock-v2\0"
RELEASE_CONTEXT = b"bodycam-release-v1\0"
NONCE_SIZE = 32
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64


def auth_transcript(
    device_id: str,
    dock_public: bytes,
    dock_nonce: bytes,
    camera_nonce: bytes,
    dock_share: bytes,
    camera_share: bytes,
) -> bytes:
    """T of PROTOCOL.md section 3 (AUTH): everything both AUTH signatures bind."""
    return b"".join(
        (device_id.encode(), b"\0", dock_public, dock_nonce, camera_nonce, dock_share, camera_share)
    )


def camera_auth_message(transcript: bytes) -> bytes:
    """What the camera signs with its device key in AUTH_BEGIN."""
    return AUTH_CAMERA_CONTEXT + transcript


def dock_auth_message(transcript: bytes) -> bytes:
    """What the dock signs with its dock key in AUTH_FINISH (and the key schedule's salt)."""
    return AUTH_DOCK_CONTEXT + transcript


def release_message(device_id: str, recording_id: str, segment: str, sha256_hex: str) -> bytes:
    """The bytes a dock signs to release one segment (contract in contracts/PROTOCOL.md)."""
    text = "\0".join((device_id, recording_id, segment, sha256_hex))
    return RELEASE_CONTEXT + text.encode("utf-8")


class Signer(Protocol):
    """What signing needs of a key (crypto.keys.SigningKey fits)."""

    def sign(self, message: bytes) -> bytes: ...

    def public_bytes(self) -> bytes: ...


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ReleaseReceipt:
    """A dock's signed statement that it holds a durable, verified copy of one segment."""

    recording_id: str
    segment: str
    sha256: str
    dock_public: bytes
    signature: bytes

    @classmethod
    def sign(
        cls, dock_key: Signer, device_id: str, recording_id: str, segment: str, sha256_hex: str
    ) -> ReleaseReceipt:
        if not _SHA256_HEX.fullmatch(sha256_hex):
            raise ValueError("sha256 must be 64 lowercase hex characters")
        msg = release_message(device_id, recording_id, segment, sha256_hex)
        return cls(recording_id, segment, sha256_hex, dock_key.public_bytes(), dock_key.sign(msg))

    def message(self, device_id: str) -> bytes:
        return release_message(device_id, self.recording_id, self.segment, self.sha256)

    def to_fields(self) -> dict[str, Any]:
        return {
            "recording": self.recording_id,
            "segment": self.segment,
            "sha256": self.sha256,
            "dock_public": self.dock_public.hex(),
            "signature": self.signature.hex(),
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> ReleaseReceipt:
        return cls(
            recording_id=fields.text("recording", 128, pattern=NAME_PATTERN),
            segment=fields.text("segment", 128, pattern=NAME_PATTERN),
            sha256=fields.text("sha256", 64, pattern=_SHA256_HEX),
            dock_public=fields.hexbytes("dock_public", PUBLIC_KEY_SIZE),
            signature=fields.hexbytes("signature", SIGNATURE_SIZE),
        )
