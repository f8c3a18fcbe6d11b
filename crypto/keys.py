"""Key pairs and key files: Ed25519 signing keys and X25519 vault keys.

* `SigningKey` (Ed25519): a camera's device key, the site's integrator key (signs
  profiles) and dock key (signs release receipts and proves the dock on serial).
* `VaultKey` (X25519): recordings are sealed for its public half; only the back
  office holds the private half, so a camera can seal but never open footage.

Key files are small JSON documents (see crypto/FORMAT.md, "Key files"). Private
key files are created with mode 0600, written completely before they appear
under their name, and never overwritten. Keys never appear in reprs or logs:
both key classes show only a short fingerprint of the public half.

Public keys in profiles, JSON and on the command line are lowercase hex of the
32 raw bytes.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from Crypto.Protocol.DH import (
    import_x25519_private_key,
    import_x25519_public_key,
    key_agreement,
)
from Crypto.Random import get_random_bytes
from Crypto.Signature import eddsa

from crypto.errors import KeyFileError
from crypto.files import fsync_dir

log = logging.getLogger(__name__)

KEY_SIZE = 32
SIGNATURE_SIZE = 64
PRIVATE_FORMAT = "bodycam-private-key-v1"
PUBLIC_FORMAT = "bodycam-public-key-v1"
ED25519 = "ed25519"
X25519 = "x25519"
# Key files are tiny; a bigger file is not a key file (and is not read into memory).
MAX_KEY_FILE_BYTES = 64 * 1024
_KIND_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
SITE_KEY_KINDS = ("vault", "integrator", "dock")


def fingerprint(public: bytes) -> str:
    """Short, non-secret label of a public key for messages: first 8 hex digits."""
    return bytes(public[:4]).hex()


def algorithm_for_kind(kind: str) -> str:
    """Vault keys are X25519 (sealing); every other kind is an Ed25519 signing key."""
    return X25519 if kind == "vault" else ED25519


def _check_kind(kind: str) -> str:
    if not _KIND_RE.match(kind):
        raise ValueError(f"key kind {kind!r} must be 1-32 lowercase letters, digits or '-'")
    return kind


def _check_raw(raw: bytes, what: str) -> bytes:
    raw = bytes(raw)
    if len(raw) != KEY_SIZE:
        raise ValueError(f"{what} must be {KEY_SIZE} bytes, got {len(raw)}")
    return raw


def _write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with `data` atomically; FileExistsError if it exists.

    The bytes go to a temporary file first (same directory, same mode, fsynced),
    which is then hard-linked to the final name: link() never replaces an existing
    file, so a key is never overwritten, and a crash never leaves half a key file.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise FileExistsError(f"{path} already exists; refusing to overwrite a key file")
    directory = path.parent
    tmp = directory / f".{path.name}.{get_random_bytes(6).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask may have narrowed or (never) widened it
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise FileExistsError(
                f"{path} already exists; refusing to overwrite a key file"
            ) from None
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(directory)


def _replace_file(path: Path, data: bytes, mode: int) -> None:
    """Write `path` atomically, replacing what is there (temp, fsync, rename, dir fsync)."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.{get_random_bytes(6).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def _read_key_file(path: Path) -> bytes:
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise FileNotFoundError(f"key file {path} does not exist") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"{path} is not a regular file")
        if st.st_size > MAX_KEY_FILE_BYTES:
            raise KeyFileError(
                f"{path} is {st.st_size} bytes; a key file is at most {MAX_KEY_FILE_BYTES}"
            )
        data = os.read(fd, MAX_KEY_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{path} is larger than a key file can be")
    return data


def _parse_json(path: Path, data: bytes) -> dict[str, object]:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise KeyFileError(f"{path} is not a bodycam key file (not JSON)") from None
    if not isinstance(doc, dict):
        raise KeyFileError(f"{path} is not a bodycam key file (not a JSON object)")
    return doc


def _hex_field(path: Path, doc: dict[str, object], field: str) -> bytes:
    value = doc.get(field)
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise KeyFileError(f"{path}: field '{field}' must be 64 hex digits")
    return bytes.fromhex(value)


def _private_json(kind: str, algorithm: str, private: bytes, public: bytes) -> bytes:
    doc = {
        "format": PRIVATE_FORMAT,
        "kind": kind,
        "algorithm": algorithm,
        "private": private.hex(),
        "public": public.hex(),
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


def _load_private(path: Path, algorithm: str) -> tuple[bytes, bytes, str]:
    """(private seed, public, kind) from a private key file of the given algorithm."""
    path = Path(path)
    data = _read_key_file(path)
    doc = _parse_json(path, data)
    if doc.get("format") != PRIVATE_FORMAT:
        if doc.get("format") == PUBLIC_FORMAT:
            raise KeyFileError(f"{path} is a public key file; this needs the private key")
        raise KeyFileError(f"{path} is not a bodycam private key file (format {PRIVATE_FORMAT})")
    # Only now that it is known to be a private key does its mode matter.
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = 0
    if mode & 0o077:
        log.warning(
            "private key file %s is readable by others (mode %o); chmod 600 it",
            path,
            stat.S_IMODE(mode),
        )
    if doc.get("algorithm") != algorithm:
        raise KeyFileError(
            f"{path} holds an {doc.get('algorithm')!s} key ({doc.get('kind')!s}); "
            f"this needs an {algorithm} key"
        )
    kind = doc.get("kind")
    if not isinstance(kind, str) or not _KIND_RE.match(kind):
        raise KeyFileError(f"{path}: field 'kind' is missing or malformed")
    private = _hex_field(path, doc, "private")
    public = _hex_field(path, doc, "public")
    return private, public, kind


class SigningKey:
    """An Ed25519 private key (device, integrator, dock). Signs with RFC 8032 Ed25519."""

    __slots__ = ("_seed", "_public", "_signer", "kind")

    def __init__(self, seed: bytes, kind: str = "signing") -> None:
        self._seed = bytearray(_check_raw(seed, "an Ed25519 private key"))
        key = eddsa.import_private_key(bytes(self._seed))
        self._public: bytes = key.public_key().export_key(format="raw")
        self._signer = eddsa.new(key, "rfc8032")
        self.kind = _check_kind(kind)

    @classmethod
    def generate(cls, kind: str = "signing") -> SigningKey:
        return cls(get_random_bytes(KEY_SIZE), kind=kind)

    @classmethod
    def from_seed(cls, seed: bytes, kind: str = "signing") -> SigningKey:
        """A key from its 32-byte RFC 8032 seed (test vectors, provisioning tools)."""
        return cls(seed, kind=kind)

    @classmethod
    def load(cls, path: Path | str) -> SigningKey:
        seed, public, kind = _load_private(Path(path), ED25519)
        key = cls(seed, kind=kind)
        if not hmac.compare_digest(key._public, public):
            raise KeyFileError(f"{path}: public key does not belong to the private key")
        return key

    def save(self, path: Path | str, kind: str | None = None) -> None:
        """Write the key file (mode 0600); FileExistsError if `path` exists."""
        kind = _check_kind(kind or self.kind)
        _write_new_file(
            Path(path), _private_json(kind, ED25519, bytes(self._seed), self._public), 0o600
        )

    def public_bytes(self) -> bytes:
        return self._public

    def sign(self, msg: bytes) -> bytes:
        return bytes(self._signer.sign(bytes(msg)))

    def seed_bytes(self) -> bytes:
        """The raw private seed: only for writing test vectors; never log it."""
        return bytes(self._seed)

    def __repr__(self) -> str:
        return f"SigningKey(kind={self.kind!r}, public={fingerprint(self._public)}...)"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("SigningKey is not picklable: keys stay where they were loaded")


class VaultKey:
    """An X25519 key pair of the back office: recordings are sealed for its public half."""

    __slots__ = ("_private", "_key", "_public", "kind")

    def __init__(self, private: bytes, kind: str = "vault") -> None:
        self._private = bytearray(_check_raw(private, "an X25519 private key"))
        self._key = import_x25519_private_key(bytes(self._private))
        self._public: bytes = self._key.public_key().export_key(format="raw")
        self.kind = _check_kind(kind)

    @classmethod
    def generate(cls) -> VaultKey:
        return cls(get_random_bytes(KEY_SIZE))

    @classmethod
    def from_private_bytes(cls, private: bytes) -> VaultKey:
        """A key from its 32 raw private bytes (RFC 7748 scalar, clamped on use)."""
        return cls(private)

    @classmethod
    def load(cls, path: Path | str) -> VaultKey:
        private, public, kind = _load_private(Path(path), X25519)
        key = cls(private, kind=kind)
        if not hmac.compare_digest(key._public, public):
            raise KeyFileError(f"{path}: public key does not belong to the private key")
        return key

    def save(self, path: Path | str) -> None:
        """Write the key file (mode 0600); FileExistsError if `path` exists."""
        _write_new_file(
            Path(path),
            _private_json(self.kind, X25519, bytes(self._private), self._public),
            0o600,
        )

    def public_bytes(self) -> bytes:
        return self._public

    def private_bytes(self) -> bytes:
        """The raw private scalar: only for writing test vectors; never log it."""
        return bytes(self._private)

    def exchange(self, peer_public: bytes) -> bytes:
        """X25519 shared secret with `peer_public` (raises ValueError on a bad point)."""
        peer = import_x25519_public_key(_check_raw(peer_public, "an X25519 public key"))
        return bytes(key_agreement(static_priv=self._key, static_pub=peer, kdf=lambda z: z))

    def __repr__(self) -> str:
        return f"VaultKey(public={fingerprint(self._public)}...)"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("VaultKey is not picklable: keys stay where they were loaded")


def x25519_public_from_private(private: bytes) -> bytes:
    """Public half of a raw X25519 private key (for ephemeral keys)."""
    key = import_x25519_private_key(_check_raw(private, "an X25519 private key"))
    return bytes(key.public_key().export_key(format="raw"))


def x25519_exchange(private: bytes, peer_public: bytes) -> bytes:
    """X25519(private, peer_public); ValueError if the peer key is a bad point."""
    key = import_x25519_private_key(_check_raw(private, "an X25519 private key"))
    peer = import_x25519_public_key(_check_raw(peer_public, "an X25519 public key"))
    return bytes(key_agreement(static_priv=key, static_pub=peer, kdf=lambda z: z))


def verify_signature(public: bytes, msg: bytes, sig: bytes) -> bool:
    """True if `sig` is a valid Ed25519 signature of `msg` by `public`; never raises."""
    try:
        if len(public) != KEY_SIZE or len(sig) != SIGNATURE_SIZE:
            return False
        key = eddsa.import_public_key(bytes(public))
        eddsa.new(key, "rfc8032").verify(bytes(msg), bytes(sig))
    except (ValueError, TypeError):
        return False
    return True


def check_ed25519_public(raw: bytes, what: str = "Ed25519 public key") -> bytes:
    """`raw` if it is a valid 32-byte Ed25519 point; ValueError naming `what` otherwise."""
    raw = _check_raw(raw, what)
    try:
        eddsa.import_public_key(raw)
    except ValueError:
        raise ValueError(f"{what} {raw.hex()} is not a valid Ed25519 point") from None
    return raw


def check_x25519_public(raw: bytes, what: str = "X25519 public key") -> bytes:
    """`raw` if it is a usable X25519 public key (not a low-order point)."""
    raw = _check_raw(raw, what)
    try:
        import_x25519_public_key(raw)
    except ValueError:
        raise ValueError(f"{what} {raw.hex()} is not a usable X25519 public key") from None
    return raw


def write_public_key(path: Path | str, raw: bytes, kind: str, *, overwrite: bool = False) -> None:
    """Write a public key file (mode 0644). FileExistsError if it exists, unless `overwrite`."""
    kind = _check_kind(kind)
    raw = _check_raw(raw, f"a {kind} public key")
    doc = {
        "format": PUBLIC_FORMAT,
        "kind": kind,
        "algorithm": algorithm_for_kind(kind),
        "public": raw.hex(),
    }
    data = (json.dumps(doc, indent=2) + "\n").encode()
    if overwrite:
        _replace_file(Path(path), data, 0o644)
    else:
        _write_new_file(Path(path), data, 0o644)


def public_key_kind(path: Path | str) -> str | None:
    """The `kind` a bodycam key file declares (public or private), or None if it has none."""
    path = Path(path)
    data = _read_key_file(path)
    if re.fullmatch(r"[0-9a-fA-F]{64}", data.decode("utf-8", errors="replace").strip()):
        return None
    kind = _parse_json(path, data).get("kind")
    return kind if isinstance(kind, str) and _KIND_RE.match(kind) else None


def load_public_key(path: Path | str) -> bytes:
    """The 32 raw bytes of a public key read from a file.

    Accepts a bodycam public key file, a device.json / DEVICE.json (its
    "public_key" field) or a text file holding just the 64 hex digits.
    """
    path = Path(path)
    data = _read_key_file(path)
    text = data.decode("utf-8", errors="replace").strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text)
    doc = _parse_json(path, data)
    fmt = doc.get("format")
    if fmt == PRIVATE_FORMAT:
        raise KeyFileError(f"{path} is a private key file; pass the public key (.pub) instead")
    if fmt == PUBLIC_FORMAT:
        return _hex_field(path, doc, "public")
    if "public_key" in doc:
        return _hex_field(path, doc, "public_key")
    raise KeyFileError(
        f"{path} is not a public key file (expected format {PUBLIC_FORMAT}, "
        "a device.json with 'public_key', or 64 hex digits)"
    )


@dataclass(frozen=True)
class SiteKeys:
    """Public halves and paths of the keys `init_site_keys` created."""

    directory: Path
    vault: bytes
    integrator: bytes
    dock: bytes

    def paths(self) -> list[Path]:
        return [self.directory / f"{k}{ext}" for k in SITE_KEY_KINDS for ext in (".key", ".pub")]


def init_site_keys(directory: Path | str) -> SiteKeys:
    """Create a site's vault.key/.pub, integrator.key/.pub and dock.key/.pub in `directory`.

    Refuses (FileExistsError naming them) if any of the six files already exists,
    before writing anything. The directory is created with mode 0700 if missing.
    """
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    names = [f"{k}{ext}" for k in SITE_KEY_KINDS for ext in (".key", ".pub")]
    existing = [n for n in names if (directory / n).exists() or (directory / n).is_symlink()]
    if existing:
        raise FileExistsError(
            f"{directory} already has {', '.join(existing)}; refusing to overwrite site keys"
        )
    vault = VaultKey.generate()
    integrator = SigningKey.generate(kind="integrator")
    dock = SigningKey.generate(kind="dock")
    vault.save(directory / "vault.key")
    write_public_key(directory / "vault.pub", vault.public_bytes(), "vault")
    integrator.save(directory / "integrator.key")
    write_public_key(directory / "integrator.pub", integrator.public_bytes(), "integrator")
    dock.save(directory / "dock.key")
    write_public_key(directory / "dock.pub", dock.public_bytes(), "dock")
    log.info(
        "site keys created in %s (vault %s, integrator %s, dock %s)",
        directory,
        fingerprint(vault.public_bytes()),
        fingerprint(integrator.public_bytes()),
        fingerprint(dock.public_bytes()),
    )
    return SiteKeys(directory, vault.public_bytes(), integrator.public_bytes(), dock.public_bytes())
