"""Integrator signatures on configuration profiles (format: formats/PROTOCOL.md section 6).

`bodycam profile sign FILE --key KEY` writes `FILE.sig`; the camera verifies it
before it switches to a flashed profile. The signature binds the exact TOML
bytes (SHA-256) and the profile's name and version, so a profile cannot be
altered, nor a signature moved to another profile or version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crypto.files import atomic_write
from formats.protocol import MAX_PROFILE, MAX_SIGNATURE_FILE, Signer

if TYPE_CHECKING:
    from formats.profile import Profile

log = logging.getLogger(__name__)

SIGNATURE_FORMAT = "bodycam-profile-signature-v1"
PROFILE_CONTEXT = b"bodycam-profile-v1\0"
SIGNATURE_SUFFIX = ".sig"

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")
_MAX_NAME = 128


class ProfileSignatureError(ValueError):
    """A profile's signature is missing, malformed, invalid or from an untrusted key.

    `reason` is the one-line explanation the camera gives back to the integrator.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def short_key(public: bytes) -> str:
    """A key's first 8 bytes in hex: enough to tell keys apart in messages."""
    return public[:8].hex() + "..."


def profile_message(name: str, version: int, sha256_hex: str) -> bytes:
    """The bytes the integrator key signs."""
    if "\0" in name:
        raise ProfileSignatureError("profile name contains a NUL character")
    return PROFILE_CONTEXT + f"{name}\0{version}\0{sha256_hex}".encode()


@dataclass(frozen=True)
class ProfileSignature:
    """The content of a `.sig` file."""

    name: str
    version: int
    sha256: str
    signer: bytes
    signature: bytes

    def to_bytes(self) -> bytes:
        doc = {
            "format": SIGNATURE_FORMAT,
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "signer": self.signer.hex(),
            "signature": self.signature.hex(),
        }
        return (json.dumps(doc, indent=2) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> ProfileSignature:
        """Parse a signature file; raises ProfileSignatureError saying what is wrong."""
        if not data:
            raise ProfileSignatureError(
                "profile is unsigned: the signature file is empty "
                "(sign it with `bodycam profile sign FILE --key INTEGRATOR_KEY`)"
            )
        if len(data) > MAX_SIGNATURE_FILE:
            raise ProfileSignatureError(
                f"signature file is malformed: {len(data)} bytes, at most {MAX_SIGNATURE_FILE}"
            )
        try:
            doc: Any = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise ProfileSignatureError("signature file is malformed: not JSON") from None
        if not isinstance(doc, dict):
            raise ProfileSignatureError("signature file is malformed: not a JSON object")
        if doc.get("format") != SIGNATURE_FORMAT:
            raise ProfileSignatureError(
                f"signature file is malformed: format is not {SIGNATURE_FORMAT!r}"
            )
        name, version = doc.get("name"), doc.get("version")
        sha, signer, sig = doc.get("sha256"), doc.get("signer"), doc.get("signature")
        if not isinstance(name, str) or not 0 < len(name) <= _MAX_NAME or "\0" in name:
            raise ProfileSignatureError("signature file is malformed: bad 'name'")
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise ProfileSignatureError("signature file is malformed: bad 'version'")
        if not isinstance(sha, str) or not _HEX64.fullmatch(sha):
            raise ProfileSignatureError("signature file is malformed: 'sha256' is not 64 hex")
        if not isinstance(signer, str) or not _HEX64.fullmatch(signer):
            raise ProfileSignatureError("signature file is malformed: 'signer' is not a key")
        if not isinstance(sig, str) or not _HEX128.fullmatch(sig):
            raise ProfileSignatureError("signature file is malformed: 'signature' is not 64 bytes")
        return cls(name, version, sha, bytes.fromhex(signer), bytes.fromhex(sig))


@dataclass(frozen=True)
class VerifiedProfile:
    profile: Profile
    signature: ProfileSignature


def profile_identity(profile: Profile) -> tuple[str, int]:
    """(name, version) of a parsed profile: what the signature binds."""
    return str(profile.profile.name), int(profile.profile.version)


def _parse(data: bytes, source: str) -> Profile:
    from formats.profile import parse_profile

    return parse_profile(data, source=source)


def sign_profile(data: bytes, key: Signer, *, source: str = "<profile>") -> ProfileSignature:
    """Sign profile bytes; the profile must be valid (raises formats.profile.ProfileError)."""
    if len(data) > MAX_PROFILE:
        raise ValueError(f"{source}: profile of {len(data)} bytes exceeds {MAX_PROFILE} bytes")
    name, version = profile_identity(_parse(data, source))
    sha = hashlib.sha256(data).hexdigest()
    signature = key.sign(profile_message(name, version, sha))
    return ProfileSignature(name, version, sha, key.public_bytes(), signature)


def verify_signature_file(
    sha256_hex: str, signature_file: bytes | None, trusted_signers: Collection[bytes] | None
) -> ProfileSignature:
    """Check a signature file against a digest (before the bytes themselves are at hand).

    `trusted_signers=None` accepts any signer whose signature verifies (local checks
    before flashing; a camera always passes its provisioned integrator keys).
    """
    from crypto.keys import verify_signature

    if signature_file is None:
        raise ProfileSignatureError(
            "profile is unsigned: no signature file "
            "(sign it with `bodycam profile sign FILE --key INTEGRATOR_KEY`)"
        )
    sig = ProfileSignature.from_bytes(signature_file)
    if sig.sha256 != sha256_hex:
        raise ProfileSignatureError(
            f"signature is for other bytes: profile sha256 {sha256_hex[:16]}..., signature "
            f"covers {sig.sha256[:16]}... (was the profile changed after signing?)"
        )
    if not verify_signature(
        sig.signer, profile_message(sig.name, sig.version, sig.sha256), sig.signature
    ):
        raise ProfileSignatureError(
            f"signature does not verify with the key it names ({short_key(sig.signer)})"
        )
    if trusted_signers is not None and sig.signer not in set(trusted_signers):
        trusted = ", ".join(short_key(k) for k in trusted_signers) or "none"
        raise ProfileSignatureError(
            f"signed by key {short_key(sig.signer)}, which is not this camera's integrator key "
            f"({trusted})"
        )
    return sig


def verify_signed_profile(
    data: bytes,
    signature_file: bytes | None,
    *,
    trusted_signers: Collection[bytes] | None,
    source: str = "<profile>",
) -> VerifiedProfile:
    """Verify a profile and its signature file; raises ProfileSignatureError or ProfileError."""
    sha = hashlib.sha256(data).hexdigest()
    sig = verify_signature_file(sha, signature_file, trusted_signers)
    profile = _parse(data, source)
    name, version = profile_identity(profile)
    if (name, version) != (sig.name, sig.version):
        raise ProfileSignatureError(
            f"signature is for profile {sig.name!r} version {sig.version}, "
            f"the file is {name!r} version {version}"
        )
    return VerifiedProfile(profile, sig)


def signature_path(profile_path: Path) -> Path:
    """Where the signature of a profile file lives: FILE.sig next to it."""
    return profile_path.with_name(profile_path.name + SIGNATURE_SUFFIX)


def read_signature_file(path: Path) -> bytes:
    """Read a signature file, bounded; a missing file says how to make one."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_SIGNATURE_FILE + 1)
    except FileNotFoundError:
        raise ProfileSignatureError(
            f"profile is unsigned: {path} does not exist "
            "(sign it with `bodycam profile sign FILE --key INTEGRATOR_KEY`)"
        ) from None
    return data


def read_profile_file(path: Path) -> bytes:
    """Read a profile file, refusing files larger than a camera accepts."""
    with path.open("rb") as fh:
        data = fh.read(MAX_PROFILE + 1)
    if len(data) > MAX_PROFILE:
        raise ValueError(f"{path}: profile is larger than {MAX_PROFILE} bytes")
    return data


def sign_profile_file(profile_path: Path, key: Signer) -> Path:
    """Sign a profile file and write FILE.sig next to it; returns the signature path."""
    data = read_profile_file(profile_path)
    sig = sign_profile(data, key, source=str(profile_path))
    out = signature_path(profile_path)
    atomic_write(out, sig.to_bytes())
    log.info(
        "signed profile %s v%s (%s) with key %s",
        sig.name,
        sig.version,
        profile_path,
        short_key(sig.signer),
    )
    return out
