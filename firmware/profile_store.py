"""A/B profile store in the camera's home (layout: formats/PROTOCOL.md section 7).

A camera accepts flashed profiles only once an integrator key is provisioned
(`bodycam device provision`); there is no trust on first use. A flashed
profile is written into the inactive slot, verified (SHA-256 of what
arrived, integrator Ed25519 signature binding name and version, profile
validity, no rollback), made durable, and only then activated by atomically
replacing the `active` pointer file. A power cut or an unplug at any moment
before that rename leaves the old profile active, and the next flash simply
overwrites the inactive slot again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from crypto.files import atomic_write, fsync_dir
from formats.profile_sign import (
    ProfileSignature,
    ProfileSignatureError,
    profile_identity,
    short_key,
    verify_signed_profile,
)
from formats.protocol import MAX_PROFILE, MAX_SIGNATURE_FILE

if TYPE_CHECKING:
    from formats.profile import Profile

log = logging.getLogger(__name__)

SLOTS = ("a", "b")
ACTIVE_FILE = "active"
PROFILE_FILE = "profile.toml"
SIGNATURE_FILE = "profile.sig"
PART_SUFFIX = ".part"
INTEGRATOR_FILE = "integrator.pub"

# Named points a test can interrupt (the `fault` hook) to model a power cut there.
FAULT_POINTS = (
    "begin",
    "chunk",
    "verified",
    "signature_written",
    "slot_renamed",
    "activated",
)


class ProfileRejected(ValueError):
    """The camera refuses a flashed profile; `reason` says why in one line.

    Raised inside the camera; the control server answers it with the PROFILE_REJECTED
    error code, which the host's link raises as `dock.link.ProfileRefused`.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FlashStateError(ValueError):
    """A chunk or commit that does not fit the flash in progress (wrong offset, too much data)."""


@dataclass(frozen=True)
class StoredProfile:
    """A verified profile: the exact bytes, its signature and where it is stored."""

    raw: bytes
    profile: Profile
    sha256: str
    signature: ProfileSignature | None
    signature_file: bytes | None
    slot: str | None

    @property
    def name(self) -> str:
        return profile_identity(self.profile)[0]

    @property
    def version(self) -> int:
        return profile_identity(self.profile)[1]

    @property
    def signer(self) -> bytes | None:
        return self.signature.signer if self.signature else None


def _read_bounded(path: Path, limit: int) -> bytes:
    with path.open("rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ProfileRejected(f"{path.name} is larger than {limit} bytes")
    return data


class ProfileStore:
    """The camera's A/B profile slots under HOME/profiles."""

    def __init__(self, root: Path, *, fault: Callable[[str], None] | None = None) -> None:
        self.root = Path(root)
        self._fault = fault or (lambda point: None)

    # --- trust ---------------------------------------------------------------------

    def integrator_keys(self) -> list[bytes]:
        """Integrator public keys this camera trusts; empty until provisioned."""
        path = self.root / INTEGRATOR_FILE
        if not path.exists():
            return []
        from crypto.keys import load_public_key

        return [load_public_key(path)]

    def require_integrator(self) -> list[bytes]:
        """The trusted integrator keys; ProfileRejected if none was provisioned."""
        keys = self.integrator_keys()
        if not keys:
            raise ProfileRejected(
                "this camera has no integrator key provisioned, so it accepts no flashed "
                "profile; provision it first: bodycam device provision --home HOME "
                "--integrator-key integrator.pub"
            )
        return keys

    def provision_integrator(self, public: bytes) -> bool:
        """Install the trusted integrator key; False if it was already this key.

        Refuses (FileExistsError) to replace a different key: trust is set once, at
        provisioning, never changed over the wire.
        """
        from crypto.keys import write_public_key

        current = self.integrator_keys()
        if current:
            if hmac.compare_digest(current[0], public):
                return False
            raise FileExistsError(
                f"{self.root / INTEGRATOR_FILE} already trusts {short_key(current[0])}; "
                "a camera's integrator key is not replaced over the wire"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        write_public_key(self.root / INTEGRATOR_FILE, public, "integrator")
        fsync_dir(self.root)
        return True

    # --- reading -------------------------------------------------------------------

    def active_slot(self) -> str | None:
        try:
            text = (self.root / ACTIVE_FILE).read_bytes()[:16].decode("ascii", "replace").strip()
        except FileNotFoundError:
            return None
        return text if text in SLOTS else None

    def _load_slot(self, slot: str) -> StoredProfile:
        directory = self.root / slot
        try:
            raw = _read_bounded(directory / PROFILE_FILE, MAX_PROFILE)
            sig_file = _read_bounded(directory / SIGNATURE_FILE, MAX_SIGNATURE_FILE)
        except FileNotFoundError as exc:
            raise ProfileRejected(f"slot {slot} is incomplete: {exc.filename} missing") from None
        keys = self.integrator_keys()
        verified = verify_signed_profile(
            raw, sig_file, trusted_signers=keys or None, source=str(directory / PROFILE_FILE)
        )
        return StoredProfile(
            raw=raw,
            profile=verified.profile,
            sha256=verified.signature.sha256,
            signature=verified.signature,
            signature_file=sig_file,
            slot=slot,
        )

    def load_active(self) -> StoredProfile | None:
        """The active flashed profile, verified again; None if nothing was ever flashed.

        If the active slot no longer verifies (storage damage) the other slot is used when
        it verifies; if neither does, None, and the camera keeps its built-in profile.
        """
        active = self.active_slot()
        if active is None:
            return None
        other = SLOTS[1 - SLOTS.index(active)]
        for slot in (active, other):
            try:
                stored = self._load_slot(slot)
            except (ProfileRejected, ProfileSignatureError, ValueError, OSError) as exc:
                log.warning("profile slot %s does not verify: %s", slot, exc)
                continue
            if slot != active:
                log.warning("active profile slot %s is damaged; using slot %s", active, slot)
            return stored
        return None

    # --- flashing ------------------------------------------------------------------

    def begin(self, size: int, sha256_hex: str, signature_file: bytes) -> FlashSession:
        """Start writing a profile of `size` bytes into the inactive slot."""
        self.require_integrator()
        if not 0 < size <= MAX_PROFILE:
            raise ProfileRejected(f"profile size {size} is outside 1..{MAX_PROFILE} bytes")
        active = self.active_slot()
        slot = "b" if active == "a" else "a"
        directory = self.root / slot
        directory.mkdir(parents=True, exist_ok=True)
        # Empty the slot first so it never pairs a new signature with an old profile.
        for name in (PROFILE_FILE, SIGNATURE_FILE):
            (directory / name).unlink(missing_ok=True)
        part = directory / (PROFILE_FILE + PART_SUFFIX)
        fh = part.open("wb")
        session = FlashSession(self, slot, size, sha256_hex, signature_file, fh)
        try:
            self._fault("begin")
        except BaseException:
            session.abort()  # nobody holds the session yet, so nobody else would close it
            raise
        return session

    def _commit(self, session: FlashSession, current: Profile | None) -> StoredProfile:
        directory = self.root / session.slot
        part = directory / (PROFILE_FILE + PART_SUFFIX)
        raw = part.read_bytes()
        if len(raw) != session.size:
            raise ProfileRejected(
                f"received {len(raw)} of {session.size} bytes; flash again from the start"
            )
        digest = hashlib.sha256(raw).hexdigest()
        if not hmac.compare_digest(digest, session.sha256):
            raise ProfileRejected(
                "profile bytes were damaged in transfer (sha256 differs from the one announced); "
                "flash again"
            )
        keys = self.require_integrator()
        try:
            verified = verify_signed_profile(
                raw, session.signature_file, trusted_signers=keys, source="flashed profile"
            )
        except ProfileSignatureError as exc:
            raise ProfileRejected(exc.reason) from None
        except ValueError as exc:  # formats.profile.ProfileError: invalid profile
            raise ProfileRejected(f"profile is not valid: {exc}") from None
        name, version = profile_identity(verified.profile)
        if current is not None:
            cur_name, cur_version = profile_identity(current)
            if cur_name == name and version < cur_version:
                raise ProfileRejected(
                    f"profile {name!r} version {version} is older than the active version "
                    f"{cur_version}; sign a higher version to roll back"
                )
        self._fault("verified")
        atomic_write(directory / SIGNATURE_FILE, session.signature_file)
        self._fault("signature_written")
        os.replace(part, directory / PROFILE_FILE)
        fsync_dir(directory)
        self._fault("slot_renamed")
        atomic_write(self.root / ACTIVE_FILE, session.slot.encode("ascii") + b"\n")
        self._fault("activated")
        log.info("profile %s v%s active in slot %s", name, version, session.slot)
        return StoredProfile(
            raw=raw,
            profile=verified.profile,
            sha256=digest,
            signature=verified.signature,
            signature_file=session.signature_file,
            slot=session.slot,
        )


class FlashSession:
    """One profile being written into the inactive slot; nothing is active until commit."""

    def __init__(
        self,
        store: ProfileStore,
        slot: str,
        size: int,
        sha256_hex: str,
        signature_file: bytes,
        fh: BinaryIO,
    ) -> None:
        self.store = store
        self.slot = slot
        self.size = size
        self.sha256 = sha256_hex
        self.signature_file = signature_file
        self.received = 0
        self._fh: BinaryIO | None = fh

    def write(self, offset: int, data: bytes) -> int:
        """Append one chunk; it must start where the previous one ended."""
        if self._fh is None:
            raise FlashStateError("no flash in progress: send PROFILE_BEGIN first")
        if offset != self.received:
            raise FlashStateError(f"chunk at offset {offset}, expected offset {self.received}")
        if self.received + len(data) > self.size:
            raise FlashStateError(
                f"chunk ends at {self.received + len(data)}, beyond the announced {self.size} bytes"
            )
        self._fh.write(data)
        self.received += len(data)
        self.store._fault("chunk")
        return self.received

    def commit(self, current: Profile | None) -> StoredProfile:
        """Verify and activate; raises ProfileRejected (old profile stays active)."""
        if self._fh is None:
            raise FlashStateError("no flash in progress: send PROFILE_BEGIN first")
        if self.received != self.size:
            raise FlashStateError(f"received {self.received} of {self.size} bytes; not complete")
        fh, self._fh = self._fh, None
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        return self.store._commit(self, current)

    def abort(self) -> None:
        """Give up; the partial slot stays inactive and is overwritten by the next flash."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    @property
    def open(self) -> bool:
        return self._fh is not None
