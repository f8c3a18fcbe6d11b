"""The profile in force and flashing a new one (PROFILE_BEGIN/CHUNK/COMMIT/READ).

`ProfileFlashing` answers for the profile store (firmware.profile_store, A/B
slots): which profile is in force (the flashed one, else the one the camera
started with), which docks it trusts, and the steps of a flash. A flash is
checked against the integrator's signature before a byte is staged, written
into the inactive slot in chunks, and verified again before the atomic switch;
a refused profile leaves the old one active.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from firmware.profile_store import (
    FlashSession,
    FlashStateError,
    ProfileRejected,
    ProfileStore,
    StoredProfile,
)
from firmware.services import CameraServices, record_event
from formats.profile_sign import ProfileSignatureError, profile_identity, verify_signature_file
from formats.protocol import (
    MAX_PROFILE,
    MAX_SIGNATURE_FILE,
    ErrorCode,
    Fields,
    ProtocolError,
)

log = logging.getLogger(__name__)

PROFILE_CHUNK_MAX = 16 * 1024


class ProfileFlashing:
    """The control channel's profile commands for one camera."""

    def __init__(self, services: CameraServices, store: ProfileStore | None = None) -> None:
        self.services = services
        self.store = store or ProfileStore(Path(services.home) / "profiles")
        self._stored: StoredProfile | None = None
        self._boot: StoredProfile | None = None

    def load(self) -> None:
        """Read the active slot (at every server start)."""
        self._stored = self.store.load_active()

    def forget_boot_profile(self) -> None:
        """Parse the camera's start-up profile again at its next use (a new HELLO)."""
        self._boot = None

    def current(self) -> StoredProfile:
        """The profile in force: the flashed one, else the one the camera started with."""
        if self._stored is not None:
            return self._stored
        if self._boot is None:  # parsed once per session, not on every STATUS
            self._boot = self._boot_profile()
        return self._boot

    def _boot_profile(self) -> StoredProfile:
        raw, profile = self.services.active_profile()
        return StoredProfile(
            raw=raw,
            profile=profile,
            sha256=hashlib.sha256(raw).hexdigest(),
            signature=None,
            signature_file=None,
            slot=None,
        )

    @staticmethod
    def info(stored: StoredProfile) -> dict[str, Any]:
        """Name, version, hash and signer of a profile, as HELLO, STATUS and READ show it."""
        name, version = profile_identity(stored.profile)
        signer = stored.signer
        return {
            "name": name,
            "version": version,
            "sha256": stored.sha256,
            "signer": signer.hex() if signer else None,
        }

    def trusted_docks(self) -> set[bytes]:
        """The dock keys the profile in force trusts (AUTH, RELEASE receipts)."""
        trusted: set[bytes] = set()
        for text in self.current().profile.keys.trusted_docks:
            try:
                trusted.add(bytes.fromhex(str(text)))
            except ValueError:
                log.warning("profile lists a trusted dock key that is not hex: %r", text)
        return trusted

    # --- the commands ---------------------------------------------------------------------

    def begin(self, fields: Fields, blob: bytes) -> tuple[FlashSession, dict[str, Any]]:
        """PROFILE_BEGIN: check the signature file, stage a slot; the flash and the answer."""
        size = fields.integer("size", 1, MAX_PROFILE)
        sha256 = fields.hexbytes("sha256", 32).hex()
        if len(blob) > MAX_SIGNATURE_FILE:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "signature file is too large")
        try:
            trusted = self.store.require_integrator()
        except ProfileRejected as exc:
            record_event(self.services, "profile_rejected", reason=exc.reason)
            raise ProtocolError(ErrorCode.PROFILE_REJECTED, exc.reason) from None
        try:
            verify_signature_file(sha256, blob or None, trusted)
        except ProfileSignatureError as exc:
            record_event(self.services, "profile_rejected", reason=exc.reason)
            raise ProtocolError(ErrorCode.PROFILE_REJECTED, exc.reason) from None
        try:
            flash = self.store.begin(size, sha256, blob)
        except ProfileRejected as exc:
            raise ProtocolError(ErrorCode.PROFILE_REJECTED, exc.reason) from None
        return flash, {"slot": flash.slot, "chunk_max": PROFILE_CHUNK_MAX}

    @staticmethod
    def chunk(flash: FlashSession | None, fields: Fields, blob: bytes) -> dict[str, Any]:
        """PROFILE_CHUNK: write `blob` at `offset` of the staged slot."""
        offset = fields.integer("offset", 0, MAX_PROFILE)
        if flash is None or not flash.open:
            raise ProtocolError(ErrorCode.BAD_STATE, "no flash in progress: send PROFILE_BEGIN")
        if not 0 < len(blob) <= PROFILE_CHUNK_MAX:
            raise ProtocolError(
                ErrorCode.BAD_MESSAGE, f"chunk must carry 1..{PROFILE_CHUNK_MAX} bytes"
            )
        try:
            received = flash.write(offset, blob)
        except FlashStateError as exc:
            raise ProtocolError(ErrorCode.BAD_STATE, str(exc)) from None
        return {"received": received}

    def commit(self, flash: FlashSession | None) -> dict[str, Any]:
        """PROFILE_COMMIT: verify the staged slot and switch to it; the camera is told."""
        if flash is None or not flash.open:
            raise ProtocolError(ErrorCode.BAD_STATE, "no flash in progress: send PROFILE_BEGIN")
        try:
            stored = flash.commit(self.current().profile)
        except FlashStateError as exc:
            flash.abort()
            raise ProtocolError(ErrorCode.BAD_STATE, str(exc)) from None
        except ProfileRejected as exc:
            record_event(self.services, "profile_rejected", reason=exc.reason)
            raise ProtocolError(ErrorCode.PROFILE_REJECTED, exc.reason) from None
        self._stored = stored
        info = self.info(stored)
        record_event(self.services, "profile_flashed", slot=stored.slot, **info)
        try:
            self.services.on_profile_activated(stored.raw, stored.profile)
        except Exception:  # the flash is committed; the camera reloads it at boot anyway
            log.exception("camera failed to take the new profile")
        return {**info, "slot": stored.slot}

    def read(self) -> tuple[dict[str, Any], bytes]:
        """PROFILE_READ: the profile in force, its signature file and its bytes."""
        current = self.current()
        sig = current.signature_file
        return {
            **self.info(current),
            "slot": current.slot,
            "signature_file": sig.decode("utf-8", "replace") if sig is not None else None,
        }, current.raw
