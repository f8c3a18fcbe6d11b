"""Byte layouts of the sealed recording format (crypto/FORMAT.md, version 1).

Encoders and bounded parsers for the recording header, segment headers and
manifest entries, key wrapping and derivation, chunk nonces and the atomic file
writes every writer here uses. Parsers read at most a declared bound and raise
only `crypto.errors.FormatError` subclasses.
"""

from __future__ import annotations

import math
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF

from crypto.errors import Tampered, Truncated, UnknownVersion, WrongKey
from crypto.keys import KEY_SIZE, fingerprint, x25519_exchange, x25519_public_from_private

VERSION = 1

HEADER_NAME = "recording.hdr"
MANIFEST_NAME = "manifest.bcm"
PART_SUFFIX = ".part"
SEGMENT_SUFFIX = ".bcs"
_SEGMENT_NAME_RE = re.compile(r"^seg-(\d{6})\.bcs$")
_SEGMENT_PART_RE = re.compile(r"^seg-(\d{6})\.bcs\.part$")

REC_MAGIC = b"BCAMREC\n"
SEG_MAGIC = b"BCAMSEG\n"
MAN_MAGIC = b"BCAMMAN\n"

TAG_SIZE = 16
NONCE_PREFIX_SIZE = 7
STANZA_SIZE = 32 + 32 + KEY_SIZE + TAG_SIZE  # recipient, ephemeral, wrapped key + tag
MAX_RECIPIENTS = 16
MIN_CHUNK_SIZE = 64
MAX_CHUNK_SIZE = 1024 * 1024
DEFAULT_CHUNK_SIZE = 65536
MAX_SEGMENTS = 100_000  # indexes 0..99999: six-digit names
MAX_STR = 64
MAX_CHUNKS = 2**32

REC_HEADER_MIN = 12 + 2 + 2 + 8 + 1 + STANZA_SIZE
REC_HEADER_MAX = 4096
SEG_HEADER_MIN = 12 + 2 + 2 + 4 + 2 + 8 + 8 + 4 + NONCE_PREFIX_SIZE
SEG_HEADER_MAX = 1024

ENTRY_BODY_SIZE = 101
ENTRY_SIZE = ENTRY_BODY_SIZE + 64
MANIFEST_PREFIX_SIZE = 16
MAX_ENTRIES = MAX_SEGMENTS + 3  # START, segments, END (and one spare for recovery order)
MANIFEST_MAX_SIZE = MANIFEST_PREFIX_SIZE + MAX_ENTRIES * ENTRY_SIZE

WRAP_INFO = b"bodycam-wrap-v1"
SEGMENT_INFO = b"bodycam-segment-v1\0"
MANIFEST_SIG_DOMAIN = b"bodycam-manifest-v1\0"

KIND_START = 1
KIND_SEGMENT = 2
KIND_RECOVERED_SEGMENT = 3
KIND_END = 4
KIND_RECOVERED_END = 5
KIND_NAMES = {
    KIND_START: "START",
    KIND_SEGMENT: "SEGMENT",
    KIND_RECOVERED_SEGMENT: "RECOVERED_SEGMENT",
    KIND_END: "END",
    KIND_RECOVERED_END: "RECOVERED_END",
}
SEGMENT_KINDS = (KIND_SEGMENT, KIND_RECOVERED_SEGMENT)
END_KINDS = (KIND_END, KIND_RECOVERED_END)

RandomSource = Callable[[int], bytes]


def segment_name(index: int) -> str:
    return f"seg-{index:06d}{SEGMENT_SUFFIX}"


def segment_index_of(name: str) -> int | None:
    """Index of a final segment file name, or None if `name` is not one."""
    m = _SEGMENT_NAME_RE.match(name)
    return int(m.group(1)) if m else None


def part_index_of(name: str) -> int | None:
    """Index of an in-progress segment file name (`seg-NNNNNN.bcs.part`), or None."""
    m = _SEGMENT_PART_RE.match(name)
    return int(m.group(1)) if m else None


def check_text(value: str, what: str) -> bytes:
    """`value` as str8 payload bytes; ValueError if it is not 1..64 printable ASCII."""
    raw = value.encode("ascii", errors="replace")
    if not 1 <= len(raw) <= MAX_STR or any(b < 0x21 or b > 0x7E for b in raw):
        raise ValueError(f"{what} {value!r} must be 1-{MAX_STR} printable ASCII characters")
    return raw


def check_chunk_size(chunk_size: int) -> int:
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size {chunk_size} out of range {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE}")
    return chunk_size


def _str8(raw: bytes) -> bytes:
    return bytes([len(raw)]) + raw


class _Cursor:
    """Reads fields from a header buffer; any overrun or bad field is Tampered(file)."""

    def __init__(self, buf: bytes, file: str, what: str) -> None:
        self.buf = buf
        self.pos = 0
        self.file = file
        self.what = what

    def fail(self, reason: str) -> Tampered:
        return Tampered(self.file, None, f"{self.what}: {reason}")

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise self.fail("fields run past the declared header length")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def i64(self) -> int:
        return int(struct.unpack(">q", self.take(8))[0])

    def f64(self, field: str) -> float:
        value = float(struct.unpack(">d", self.take(8))[0])
        if not math.isfinite(value):
            raise self.fail(f"{field} is not a finite number")
        return value

    def text(self, field: str) -> str:
        n = self.u8()
        raw = self.take(n)
        if not 1 <= n <= MAX_STR or any(b < 0x21 or b > 0x7E for b in raw):
            raise self.fail(f"{field} is not 1-{MAX_STR} printable ASCII characters")
        return raw.decode("ascii")


def _check_prefix(buf: bytes, magic: bytes, file: str, what: str) -> None:
    """Magic and version of any of the three file kinds (first 10 bytes)."""
    if len(buf) < len(magic) + 2:
        if magic.startswith(buf[: len(magic)]):
            raise Truncated(f"{file}: ends after {len(buf)} bytes, inside the {what}")
        raise Tampered(file, None, f"not a {what} (bad magic)")
    if buf[: len(magic)] != magic:
        raise Tampered(file, None, f"not a {what} (bad magic)")
    version = struct.unpack(">H", buf[len(magic) : len(magic) + 2])[0]
    if version != VERSION:
        raise UnknownVersion(
            f"{file}: {what} version {version}; this build reads version {VERSION}"
        )


# --- recording header -------------------------------------------------------------------


@dataclass(frozen=True)
class Stanza:
    recipient_public: bytes
    ephemeral_public: bytes
    wrapped_key: bytes


@dataclass(frozen=True)
class RecordingHeader:
    device_id: str
    recording_id: str
    started_utc: float
    stanzas: tuple[Stanza, ...]
    prefix: bytes  # bytes up to and including recipient_count: the wrap AAD
    raw: bytes

    def recipients(self) -> list[bytes]:
        return [s.recipient_public for s in self.stanzas]


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    out = HKDF(bytes(ikm), KEY_SIZE, bytes(salt), SHA256, 1, context=bytes(info))
    assert isinstance(out, bytes)
    return out


def _gcm(key: bytes, nonce: bytes) -> object:
    return AES.new(bytes(key), AES.MODE_GCM, nonce=nonce, mac_len=TAG_SIZE)


def build_recording_header(
    device_id: str,
    recording_id: str,
    started_utc: float,
    recipients: list[bytes],
    data_key: bytes | bytearray,
    rng: RandomSource,
) -> bytes:
    """The recording header with `data_key` wrapped for each vault public key."""
    if not 1 <= len(recipients) <= MAX_RECIPIENTS:
        raise ValueError(
            f"a recording needs 1-{MAX_RECIPIENTS} vault recipients, got {len(recipients)}"
        )
    if not math.isfinite(started_utc):
        raise ValueError(f"started_utc {started_utc!r} is not a finite time")
    body = (
        _str8(check_text(device_id, "device id"))
        + _str8(check_text(recording_id, "recording id"))
        + struct.pack(">d", started_utc)
        + bytes([len(recipients)])
    )
    header_len = 12 + len(body) + STANZA_SIZE * len(recipients)
    prefix = REC_MAGIC + struct.pack(">HH", VERSION, header_len) + body
    stanzas = []
    for recipient in recipients:
        recipient = bytes(recipient)
        eph = rng(KEY_SIZE)
        eph_public = x25519_public_from_private(eph)
        try:
            shared = x25519_exchange(eph, recipient)
        except ValueError:
            raise ValueError(
                f"vault recipient {recipient.hex()} is not a usable X25519 public key"
            ) from None
        wrap_key = hkdf_sha256(shared, eph_public + recipient, WRAP_INFO)
        cipher = AES.new(wrap_key, AES.MODE_GCM, nonce=bytes(12), mac_len=TAG_SIZE)
        cipher.update(prefix)
        wrapped, tag = cipher.encrypt_and_digest(bytes(data_key))
        stanzas.append(recipient + eph_public + wrapped + tag)
    raw = prefix + b"".join(stanzas)
    assert len(raw) == header_len
    return raw


def parse_recording_header(buf: bytes, file: str = HEADER_NAME) -> RecordingHeader:
    """Parse a whole recording header file (the caller read at most REC_HEADER_MAX + 1)."""
    _check_prefix(buf, REC_MAGIC, file, "recording header")
    if len(buf) < 12:
        raise Truncated(f"{file}: ends inside the recording header")
    header_len = struct.unpack(">H", buf[10:12])[0]
    if not REC_HEADER_MIN <= header_len <= REC_HEADER_MAX:
        raise Tampered(file, None, f"recording header length {header_len} out of bounds")
    if len(buf) < header_len:
        raise Truncated(f"{file}: {len(buf)} bytes, the header declares {header_len}")
    if len(buf) > header_len:
        raise Tampered(file, None, f"{len(buf) - header_len} bytes after the recording header")
    cur = _Cursor(buf[:header_len], file, "recording header")
    cur.take(12)
    device_id = cur.text("device id")
    recording_id = cur.text("recording id")
    started = cur.f64("started_utc")
    count = cur.u8()
    if not 1 <= count <= MAX_RECIPIENTS:
        raise cur.fail(f"{count} recipients (allowed 1-{MAX_RECIPIENTS})")
    prefix = buf[: cur.pos]
    stanzas = []
    for _ in range(count):
        raw = cur.take(STANZA_SIZE)
        stanzas.append(Stanza(raw[:32], raw[32:64], raw[64:]))
    if cur.pos != header_len:
        raise cur.fail(f"fields end at {cur.pos}, the header declares {header_len}")
    return RecordingHeader(device_id, recording_id, started, tuple(stanzas), prefix, bytes(buf))


def unwrap_data_key(
    header: RecordingHeader, exchange: Callable[[bytes], bytes], public: bytes
) -> bytearray:
    """The data key from the stanza for the vault key with `public` half; WrongKey if none.

    `exchange(peer_public)` is the vault key's X25519 agreement (VaultKey.exchange).
    """
    for stanza in header.stanzas:
        if stanza.recipient_public != public:
            continue
        try:
            shared = exchange(stanza.ephemeral_public)
        except ValueError:
            raise Tampered(HEADER_NAME, None, "ephemeral key is not a valid X25519 point") from None
        wrap_key = hkdf_sha256(shared, stanza.ephemeral_public + public, WRAP_INFO)
        cipher = AES.new(wrap_key, AES.MODE_GCM, nonce=bytes(12), mac_len=TAG_SIZE)
        cipher.update(header.prefix)
        try:
            key = cipher.decrypt_and_verify(
                stanza.wrapped_key[:KEY_SIZE], stanza.wrapped_key[KEY_SIZE:]
            )
        except ValueError:
            raise Tampered(
                HEADER_NAME, None, "the wrapped data key for this vault key does not authenticate"
            ) from None
        return bytearray(key)
    listed = ", ".join(fingerprint(s.recipient_public) for s in header.stanzas)
    raise WrongKey(
        f"vault key {fingerprint(public)}... is not a recipient of recording "
        f"{header.recording_id} (sealed for {listed})"
    )


# --- segment header ---------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentHeader:
    device_id: str
    recording_id: str
    index: int
    media_type: str
    start_pts: int
    start_utc: float
    chunk_size: int
    nonce_prefix: bytes
    raw: bytes

    @property
    def header_len(self) -> int:
        return len(self.raw)


def build_segment_header(
    device_id: str,
    recording_id: str,
    index: int,
    media_type: str,
    start_pts: int,
    start_utc: float,
    chunk_size: int,
    nonce_prefix: bytes,
) -> SegmentHeader:
    if not 0 <= index < MAX_SEGMENTS:
        raise ValueError(f"segment index {index} out of range 0..{MAX_SEGMENTS - 1}")
    if not -(2**63) <= start_pts < 2**63:
        raise ValueError(f"start_pts {start_pts} does not fit a signed 64-bit integer")
    if not math.isfinite(start_utc):
        raise ValueError(f"start_utc {start_utc!r} is not a finite time")
    check_chunk_size(chunk_size)
    if len(nonce_prefix) != NONCE_PREFIX_SIZE:
        raise ValueError(f"nonce prefix must be {NONCE_PREFIX_SIZE} bytes")
    body = (
        _str8(check_text(device_id, "device id"))
        + _str8(check_text(recording_id, "recording id"))
        + struct.pack(">I", index)
        + _str8(check_text(media_type, "media type"))
        + struct.pack(">qdI", start_pts, start_utc, chunk_size)
        + bytes(nonce_prefix)
    )
    raw = SEG_MAGIC + struct.pack(">HH", VERSION, 12 + len(body)) + body
    return SegmentHeader(
        device_id,
        recording_id,
        index,
        media_type,
        start_pts,
        start_utc,
        chunk_size,
        bytes(nonce_prefix),
        raw,
    )


def segment_header_len_of(buf: bytes, file: str) -> int:
    """Declared header length from the first 12 bytes (checks magic, version, bounds)."""
    _check_prefix(buf, SEG_MAGIC, file, "sealed segment")
    if len(buf) < 12:
        raise Truncated(f"{file}: ends inside the segment header")
    header_len = int(struct.unpack(">H", buf[10:12])[0])
    if not SEG_HEADER_MIN <= header_len <= SEG_HEADER_MAX:
        raise Tampered(file, None, f"segment header length {header_len} out of bounds")
    return header_len


def parse_segment_header(buf: bytes, file: str) -> SegmentHeader:
    """Parse the header at the start of `buf` (at least header_len bytes, else Truncated)."""
    header_len = segment_header_len_of(buf, file)
    if len(buf) < header_len:
        raise Truncated(f"{file}: ends after {len(buf)} bytes, inside the segment header")
    cur = _Cursor(bytes(buf[:header_len]), file, "segment header")
    cur.take(12)
    device_id = cur.text("device id")
    recording_id = cur.text("recording id")
    index = cur.u32()
    if index >= MAX_SEGMENTS:
        raise cur.fail(f"segment index {index} out of range")
    media_type = cur.text("media type")
    start_pts = cur.i64()
    start_utc = cur.f64("start_utc")
    chunk_size = cur.u32()
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise cur.fail(f"chunk size {chunk_size} out of bounds")
    nonce_prefix = cur.take(NONCE_PREFIX_SIZE)
    if cur.pos != header_len:
        raise cur.fail(f"fields end at {cur.pos}, the header declares {header_len}")
    return SegmentHeader(
        device_id,
        recording_id,
        index,
        media_type,
        start_pts,
        start_utc,
        chunk_size,
        nonce_prefix,
        cur.buf,
    )


def read_segment_header(fd: int, file: str) -> SegmentHeader:
    """Read and parse the header at the start of an open file (reads at most 1024 bytes)."""
    first = os.pread(fd, 12, 0)
    header_len = segment_header_len_of(first, file)
    buf = os.pread(fd, header_len, 0)
    return parse_segment_header(buf, file)


def segment_key(data_key: bytes | bytearray, header: SegmentHeader) -> bytes:
    return hkdf_sha256(
        bytes(data_key), header.nonce_prefix, SEGMENT_INFO + struct.pack(">I", header.index)
    )


def chunk_nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + struct.pack(">I", counter) + (b"\x01" if last else b"\x00")


def normal_chunk_count(size: int, header_len: int, chunk_size: int) -> int | None:
    """Chunks of a normally closed segment of `size` bytes, or None if no layout fits."""
    body = size - header_len
    full = chunk_size + TAG_SIZE
    if body < TAG_SIZE:
        return None
    n = (body + full - 1) // full
    last = body - (n - 1) * full
    if last < TAG_SIZE or (last == TAG_SIZE and n > 1) or n > MAX_CHUNKS:
        return None
    return n


def recovered_chunk_count(size: int, header_len: int, chunk_size: int) -> int | None:
    """Chunks of a recovered segment (only whole chunks), or None if no layout fits."""
    body = size - header_len
    full = chunk_size + TAG_SIZE
    if body < full or body % full:
        return None
    return body // full


# --- manifest ---------------------------------------------------------------------------

_ENTRY = struct.Struct(">BIIIQqd32s32s")
assert _ENTRY.size == ENTRY_BODY_SIZE


@dataclass(frozen=True)
class ManifestRecord:
    """One manifest entry as stored (see FORMAT.md, "Manifest")."""

    kind: int
    seq: int
    index: int
    chunks: int
    size: int
    start_pts: int
    utc: float
    digest: bytes
    prev: bytes
    signature: bytes
    body: bytes

    @property
    def link(self) -> bytes:
        return SHA256.new(self.body).digest()

    def to_bytes(self) -> bytes:
        return self.body + self.signature


def entry_body(
    kind: int,
    seq: int,
    index: int,
    chunks: int,
    size: int,
    start_pts: int,
    utc: float,
    digest: bytes,
    prev: bytes,
) -> bytes:
    return _ENTRY.pack(kind, seq, index, chunks, size, start_pts, utc, digest, prev)


def entry_message(body: bytes) -> bytes:
    return MANIFEST_SIG_DOMAIN + body


def parse_entry(raw: bytes, position: int) -> ManifestRecord:
    body = raw[:ENTRY_BODY_SIZE]
    kind, seq, index, chunks, size, start_pts, utc, digest, prev = _ENTRY.unpack(body)
    if kind not in KIND_NAMES:
        raise Tampered(MANIFEST_NAME, None, f"entry {position} has unknown kind {kind}")
    if not math.isfinite(utc):
        raise Tampered(MANIFEST_NAME, None, f"entry {position} has a non-finite time")
    return ManifestRecord(
        kind,
        seq,
        index,
        chunks,
        size,
        start_pts,
        utc,
        digest,
        prev,
        raw[ENTRY_BODY_SIZE:ENTRY_SIZE],
        body,
    )


def manifest_bytes(entries: list[bytes]) -> bytes:
    return MAN_MAGIC + struct.pack(">HHI", VERSION, ENTRY_SIZE, len(entries)) + b"".join(entries)


def parse_manifest(buf: bytes) -> list[ManifestRecord]:
    """Entries of a whole manifest file (the caller read at most MANIFEST_MAX_SIZE + 1)."""
    _check_prefix(buf, MAN_MAGIC, MANIFEST_NAME, "manifest")
    if len(buf) < MANIFEST_PREFIX_SIZE:
        raise Truncated(f"{MANIFEST_NAME}: ends inside the manifest header")
    entry_size, count = struct.unpack(">HI", buf[10:16])
    if entry_size != ENTRY_SIZE:
        raise Tampered(MANIFEST_NAME, None, f"entry size {entry_size}, expected {ENTRY_SIZE}")
    if not 1 <= count <= MAX_ENTRIES:
        raise Tampered(MANIFEST_NAME, None, f"{count} entries (allowed 1-{MAX_ENTRIES})")
    expected = MANIFEST_PREFIX_SIZE + count * ENTRY_SIZE
    if len(buf) < expected:
        raise Truncated(f"{MANIFEST_NAME}: {len(buf)} bytes, {count} entries need {expected}")
    if len(buf) > expected:
        raise Tampered(MANIFEST_NAME, None, f"{len(buf) - expected} bytes after the last entry")
    return [
        parse_entry(
            buf[
                MANIFEST_PREFIX_SIZE + i * ENTRY_SIZE : MANIFEST_PREFIX_SIZE + (i + 1) * ENTRY_SIZE
            ],
            i,
        )
        for i in range(count)
    ]
