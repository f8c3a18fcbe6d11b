"""The export package's layout and its plain-text pieces (spec: vault/EXPORT.md).

Pure functions without Django, shared by the back office that writes a package and by
`bodycam vault verify-export`, which checks one anywhere: file names, the hash list
`SHA256SUMS` (the exact text `sha256sum` writes and `sha256sum -c` reads), the export
public key as a PEM SubjectPublicKeyInfo (what `openssl pkeyutl -verify` reads) and
the bounds every reader applies.
"""

from __future__ import annotations

import base64
import hmac
import logging
import re
from pathlib import Path

from crypto.files import sha256_file as sha256_file  # the package's file hash, for verify

log = logging.getLogger(__name__)

FORMAT = "bodycam-export-v1"
CUSTODY_FORMAT = "bodycam-custody-v1"
MANIFEST = "export.json"  # the export manifest, signed
SIGNATURE = "export.sig"  # 64 raw bytes: Ed25519 over the bytes of export.json
PUBLIC_KEY = "export-key.pem"  # the export public key (PEM), also published by the site
HASH_LIST = "SHA256SUMS"  # every other file, for sha256sum -c
CUSTODY = "custody.json"
MP4 = "recording.mp4"
ORIGINAL_DIR = "original"
INGEST = "ingest.json"
# export.json lists every file but itself, its signature and the hash list.
UNLISTED = (MANIFEST, SIGNATURE, HASH_LIST)
BASES = ("prosecutor_claim", "police_report")

MAX_JSON = 16 << 20  # export.json / custody.json / SHA256SUMS: far above any real one
MAX_FILES = 100_100  # a recording has at most 100,000 segments
MAX_PEM = 4096
# The longest segment a camera seals: its profile cuts a segment at the first keyframe
# after recording.segment_seconds (at most 60 s), and keyframes come at least every 4 s.
# It bounds a recording closed by power-cut recovery, whose end time nobody signed.
MAX_SEGMENT_SECONDS = 64
SIGNATURE_SIZE = 64
# DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the 32 key bytes follow.
ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
_PATH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}(/[A-Za-z0-9][A-Za-z0-9._-]{0,99})?")
_SUM_LINE = re.compile(r"([0-9a-f]{64})  (\S.*)")


class PackageFormatError(ValueError):
    """A piece of an export package does not parse; the message names the file."""


def check_path(path: str) -> str:
    """A package-relative path: at most one folder level, no '..', no absolute names."""
    if not _PATH.fullmatch(path) or ".." in path.split("/"):
        raise PackageFormatError(f"{path!r} is not a package file name")
    return path


def render_hash_list(hashes: dict[str, str]) -> bytes:
    """`sha256sum`'s text output for these files, sorted by name (byte order)."""
    return "".join(f"{hashes[p]}  {p}\n" for p in sorted(hashes)).encode("ascii")


def parse_hash_list(raw: bytes) -> dict[str, str]:
    if len(raw) > MAX_JSON:
        raise PackageFormatError(f"{HASH_LIST}: larger than {MAX_JSON} bytes")
    out: dict[str, str] = {}
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise PackageFormatError(f"{HASH_LIST}: not ASCII text") from None
    for n, line in enumerate(text.splitlines(), 1):
        m = _SUM_LINE.fullmatch(line)
        if m is None:
            raise PackageFormatError(f"{HASH_LIST} line {n}: not '<64 hex>  <file>'")
        path = m[2]
        if path in out:
            raise PackageFormatError(f"{HASH_LIST} line {n}: {path} listed twice")
        out[check_path(path)] = m[1]
    return out


def public_key_pem(public: bytes) -> bytes:
    if len(public) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    b64 = base64.b64encode(ED25519_SPKI_PREFIX + public).decode("ascii")
    return f"-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n".encode("ascii")


def parse_public_key_pem(raw: bytes, what: str = PUBLIC_KEY) -> bytes:
    """The 32 raw bytes of an Ed25519 public key in PEM (SubjectPublicKeyInfo)."""
    if len(raw) > MAX_PEM:
        raise PackageFormatError(f"{what}: larger than {MAX_PEM} bytes")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise PackageFormatError(f"{what}: not a PEM file (not ASCII)") from None
    m = re.fullmatch(
        r"\s*-----BEGIN PUBLIC KEY-----\s+([A-Za-z0-9+/=\s]+?)\s*"
        r"-----END PUBLIC KEY-----\s*",
        text,
    )
    if m is None:
        raise PackageFormatError(f"{what}: not a PEM public key")
    try:
        der = base64.b64decode("".join(m[1].split()), validate=True)
    except ValueError:
        raise PackageFormatError(f"{what}: PEM body is not base64") from None
    if len(der) != 44 or not der.startswith(ED25519_SPKI_PREFIX):
        raise PackageFormatError(f"{what}: not an Ed25519 public key")
    return der[len(ED25519_SPKI_PREFIX) :]


_PEM_BLOCK = re.compile(
    rb"-----BEGIN PUBLIC KEY-----\s+[A-Za-z0-9+/=\s]+?-----END PUBLIC KEY-----\s*"
)
_HEX_KEY = re.compile(rb"(?<![0-9A-Fa-f])[0-9A-Fa-f]{64}(?![0-9A-Fa-f])")


def parse_public_key_text(text: str) -> bytes:
    """--export-key: 64 hex digits, a PEM file, or a bodycam public key file.

    A PEM file is an Ed25519 SubjectPublicKeyInfo block; text around it is ignored
    (RFC 7468 allows it: `openssl pkey -text_pub`, or the hex line `bodycam vault
    export-key` printed above the PEM before it went to stderr), except a key written in
    hex that is not the same key.
    """
    stripped = text.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", stripped):
        return bytes.fromhex(stripped)
    path = Path(text)
    if not path.is_file():
        raise PackageFormatError(f"--export-key {text!r} is neither 64 hex digits nor a file")
    with open(path, "rb") as f:
        raw = f.read(MAX_PEM + 1)
    blocks = list(_PEM_BLOCK.finditer(raw))
    if b"-----BEGIN" in raw and not blocks:
        raise PackageFormatError(f"{path}: a PEM file, but not of a public key")
    if len(raw) > MAX_PEM and blocks:
        raise PackageFormatError(f"{path}: larger than {MAX_PEM} bytes: not a key file")
    if len(blocks) > 1:
        raise PackageFormatError(f"{path}: holds {len(blocks)} PEM public keys, not one")
    if blocks:
        key = parse_public_key_pem(blocks[0][0], str(path))
        around = raw[: blocks[0].start()] + b"\n" + raw[blocks[0].end() :]
        for other in _HEX_KEY.findall(around):
            if not hmac.compare_digest(bytes.fromhex(other.decode()), key):
                raise PackageFormatError(
                    f"{path}: its PEM key and the hex key beside it differ: which is the "
                    "published one?"
                )
        return key
    from crypto.keys import load_public_key

    return load_public_key(path)
