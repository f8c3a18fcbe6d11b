"""An independent reader of the sealed recording format, written from crypto/FORMAT.md alone.

It uses the `cryptography` package (OpenSSL), not pycryptodome, and imports
nothing from `crypto/`: if the two implementations agree, the spec says what the
code does. It raises `ReferenceError_` with a `kind` naming the format error.
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


class ReferenceError_(Exception):  # noqa: N801 - not the builtin ReferenceError
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


def _err(kind: str, message: str) -> ReferenceError_:
    return ReferenceError_(kind, message)


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=SHA256(), length=32, salt=salt, info=info).derive(ikm)


class _Reader:
    def __init__(self, buf: bytes, file: str) -> None:
        self.buf, self.pos, self.file = buf, 0, file

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise _err("Tampered", f"{self.file}: field past header end")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def str8(self) -> str:
        n = self.take(1)[0]
        raw = self.take(n)
        if not 1 <= n <= 64 or any(not 0x21 <= b <= 0x7E for b in raw):
            raise _err("Tampered", f"{self.file}: bad str8")
        return raw.decode()

    def unpack(self, fmt: str) -> tuple[int | float, ...]:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))


@dataclass
class RefSegment:
    index: int
    plaintext: bytes
    recovered: bool


@dataclass
class RefRecording:
    device_id: str
    recording_id: str
    complete: bool
    segments: list[RefSegment]


def _magic_version(buf: bytes, magic: bytes, file: str) -> None:
    if len(buf) < 10:
        raise _err("Truncated", f"{file} too short")
    if buf[:8] != magic:
        raise _err("Tampered", f"{file}: magic")
    if struct.unpack(">H", buf[8:10])[0] != 1:
        raise _err("UnknownVersion", f"{file}: version")


def parse_recording_header(buf: bytes) -> dict[str, object]:
    _magic_version(buf, b"BCAMREC\n", "recording.hdr")
    (hlen,) = struct.unpack(">H", buf[10:12])
    if not 137 <= hlen <= 4096 or hlen != len(buf):
        raise _err("Tampered", "recording.hdr length")
    r = _Reader(buf, "recording.hdr")
    r.take(12)
    device_id = r.str8()
    recording_id = r.str8()
    (started,) = r.unpack(">d")
    count = r.take(1)[0]
    if not 1 <= count <= 16:
        raise _err("Tampered", "recipient count")
    prefix = buf[: r.pos]
    stanzas = [(r.take(32), r.take(32), r.take(48)) for _ in range(count)]
    if r.pos != hlen:
        raise _err("Tampered", "recording.hdr trailing")
    return {
        "device_id": device_id,
        "recording_id": recording_id,
        "started": started,
        "prefix": prefix,
        "stanzas": stanzas,
    }


def unwrap(header: dict[str, object], vault_private: bytes) -> bytes:
    priv = X25519PrivateKey.from_private_bytes(vault_private)
    pub = priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    stanzas = header["stanzas"]
    assert isinstance(stanzas, list)
    for recipient, eph, wrapped in stanzas:
        if recipient != pub:
            continue
        shared = priv.exchange(X25519PublicKey.from_public_bytes(eph))
        wrap_key = _hkdf(shared, eph + recipient, b"bodycam-wrap-v1")
        try:
            return AESGCM(wrap_key).decrypt(bytes(12), wrapped, header["prefix"])  # type: ignore[arg-type]
        except InvalidTag:
            raise _err("Tampered", "stanza") from None
    raise _err("WrongKey", "no stanza for this vault key")


def parse_segment_header(buf: bytes, file: str) -> dict[str, object]:
    _magic_version(buf, b"BCAMSEG\n", file)
    if len(buf) < 12:
        raise _err("Truncated", file)
    (hlen,) = struct.unpack(">H", buf[10:12])
    if not 49 <= hlen <= 1024:
        raise _err("Tampered", f"{file} header length")
    if len(buf) < hlen:
        raise _err("Truncated", file)
    r = _Reader(buf[:hlen], file)
    r.take(12)
    h: dict[str, object] = {"device_id": r.str8(), "recording_id": r.str8()}
    (h["index"],) = r.unpack(">I")
    h["media_type"] = r.str8()
    h["start_pts"], h["start_utc"], h["chunk_size"] = r.unpack(">qdI")
    h["prefix"] = r.take(7)
    cs = h["chunk_size"]
    assert isinstance(cs, int)
    if r.pos != hlen or not 64 <= cs <= 1 << 20 or not math.isfinite(h["start_utc"]):  # type: ignore[arg-type]
        raise _err("Tampered", f"{file} header fields")
    h["raw"] = buf[:hlen]
    return h


def decrypt_segment(data: bytes, file: str, dk: bytes, recovered: bool = False) -> bytes:
    h = parse_segment_header(data, file)
    raw = h["raw"]
    assert isinstance(raw, bytes)
    index, cs, prefix = h["index"], h["chunk_size"], h["prefix"]
    assert isinstance(index, int) and isinstance(cs, int) and isinstance(prefix, bytes)
    key = AESGCM(_hkdf(dk, prefix, b"bodycam-segment-v1\0" + struct.pack(">I", index)))
    body = data[len(raw) :]
    full = cs + 16
    chunks = [body[i : i + full] for i in range(0, len(body), full)] or [b""]
    out = []
    for i, c in enumerate(chunks):
        last = i == len(chunks) - 1
        if len(c) < 16:
            raise _err("Truncated", f"{file} chunk {i}")
        if last and len(c) == 16 and i > 0:
            raise _err("Tampered", f"{file} empty last chunk")

        def attempt(flag: int, i: int = i, c: bytes = c) -> bytes | None:
            try:
                return key.decrypt(prefix + struct.pack(">IB", i, flag), c, raw)
            except InvalidTag:
                return None

        if recovered:
            if len(c) != full:
                raise _err("Tampered", f"{file} recovered chunk size")
            pt = attempt(0) if not last else (attempt(0) or attempt(1))
        else:
            pt = attempt(1 if last else 0)
            if pt is None and last and len(c) == full and attempt(0) is not None:
                raise _err("Truncated", f"{file} no last-chunk flag")
        if pt is None:
            raise _err("Tampered", f"{file} chunk {i}")
        out.append(pt)
    return b"".join(out)


ENTRY = struct.Struct(">BIIIQqd32s32s")


def read_recording(folder: Path, device_public: bytes, vault_private: bytes | None) -> RefRecording:
    """Verify (and with a vault key, decrypt) a recording folder per FORMAT.md."""
    try:
        hdr_bytes = (folder / "recording.hdr").read_bytes()
        man = (folder / "manifest.bcm").read_bytes()
    except FileNotFoundError as exc:
        raise _err("Truncated", str(exc)) from None
    header = parse_recording_header(hdr_bytes)
    _magic_version(man, b"BCAMMAN\n", "manifest.bcm")
    if len(man) < 16:
        raise _err("Truncated", "manifest")
    esize, count = struct.unpack(">HI", man[10:16])
    if esize != 165 or not 1 <= count <= 100003:
        raise _err("Tampered", "manifest header")
    if len(man) != 16 + 165 * count:
        raise _err("Truncated" if len(man) < 16 + 165 * count else "Tampered", "manifest size")
    entries = [man[16 + 165 * i : 16 + 165 * (i + 1)] for i in range(count)]
    pub = Ed25519PublicKey.from_public_bytes(device_public)
    good = []
    for e in entries:
        try:
            pub.verify(e[101:], b"bodycam-manifest-v1\0" + e[:101])
            good.append(True)
        except InvalidSignature:
            good.append(False)
    if not any(good):
        raise _err("NotSignedByDevice", "no entry verifies")
    if not all(good):
        raise _err("Tampered", "manifest signature")
    dk = unwrap(header, vault_private) if vault_private is not None else None
    prev = bytes(32)
    segments: list[RefSegment] = []
    complete = False
    last_index: int | None = None
    for pos, e in enumerate(entries):
        kind, seq, index, chunks, size, pts, utc, digest, eprev = ENTRY.unpack(e[:101])
        if seq != pos or eprev != prev or complete:
            raise _err("Tampered", f"manifest entry {pos} chain")
        prev = hashlib.sha256(e[:101]).digest()
        if pos == 0:
            if kind != 1 or digest != hashlib.sha256(hdr_bytes).digest() or size != len(hdr_bytes):
                raise _err("Tampered", "START")
            continue
        if kind in (2, 3):
            if last_index is not None and index != last_index + 1:
                raise _err("Tampered", "segment order")
            last_index = index
            name = f"seg-{index:06d}.bcs"
            try:
                data = (folder / name).read_bytes()
            except FileNotFoundError:
                raise _err("Truncated", f"{name} missing") from None
            if len(data) < size:
                raise _err("Truncated", f"{name} short")
            if len(data) > size:
                raise _err("Tampered", f"{name} long")
            if hashlib.sha256(data).digest() != digest:
                raise _err("Tampered", f"{name} sha256")
            h = parse_segment_header(data, name)
            if (h["device_id"], h["recording_id"], h["index"], h["start_pts"], h["start_utc"]) != (
                header["device_id"],
                header["recording_id"],
                index,
                pts,
                utc,
            ):
                raise _err("Tampered", f"{name} header fields")
            plaintext = b""
            if dk is not None:
                plaintext = decrypt_segment(data, name, dk, recovered=kind == 3)
                full = int(h["chunk_size"]) + 16  # type: ignore[call-overload]
                n = (len(data) - len(h["raw"]) + full - 1) // full  # type: ignore[arg-type]
                if n != chunks:
                    raise _err("Tampered", f"{name} chunk count")
            segments.append(RefSegment(index, plaintext, kind == 3))
            continue
        if kind in (4, 5):
            if index != len(segments):
                raise _err("Tampered", "END count")
            complete = True
            continue
        raise _err("Tampered", f"entry kind {kind}")
    return RefRecording(str(header["device_id"]), str(header["recording_id"]), complete, segments)
