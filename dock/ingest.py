"""Ingest one docked camera: authenticate, verify, copy, store durably, record, release.

For a camera in a slot (`SLOTS/<slot>/volume` and `serial`, see ARCHITECTURE
"Docking") `CameraIngest.run()`:

1. says HELLO over serial and refuses cameras the ledger does not hold as
   registered (or whose key differs); AUTH both ways; SET_TIME; flashes a staged
   signed profile (`PROFILES/<device_id>.toml` + `.toml.sig`) if the camera runs
   another one;
2. for each recording: reads header and signed manifest, verifies signatures and
   hash chain with the *registered* device key (crypto.verify), stores both;
3. for each listed segment not yet durable: copies it from the volume (transfer
   mode "mass-storage") or over serial READ (mode "serial", resuming at the last
   byte already in the spool), hashing while copying; checks size, SHA-256 and
   segment header against the manifest; uploads (a bounded number at once); records
   the store's receipt in the ledger; only then sends RELEASE with a dock-signed
   receipt, and records that;
4. offloads the camera's signed event log from where the last docking stopped.

Names, sizes and counts the camera lists are untrusted: every name is checked where it
enters (crypto/names.py and dock/names.py, both transfer modes), a refused one is
reported and never becomes a path, no copy reads past the size the signed manifest
allows, and every file left on the camera at the end is named with why. Every note
reaches the summary line.

Anything that fails verification is put in the store's quarantine with the reason,
recorded, reported, and never released. The volume is read-only to the dock.
Every step is idempotent against the ledger, so a dock killed at any instant
resumes without uploading twice or releasing anything that is not durable.

This module is the session from HELLO to the summary line: who the camera is, its
clock and its profile. Its parts: the shared state and errors (`dock.ingest_base`), the
recordings (`dock.ingest_recordings`), each segment (`dock.ingest_segments`),
quarantine (`dock.ingest_quarantine`), the event log (`dock.ingest_events`); and what
they use: slots and their states (`dock.slots`), where files come from
(`dock.sources`), background releases (`dock.release`), the outcome (`dock.report`),
the spool (`dock.spool`) and the store (`store`).
"""

from __future__ import annotations

import hmac
import logging
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from crypto.device_info import VOLUME_INFO_FILE, IdentityError, read_device_info
from crypto.names import NameRefused, check_device_id
from dock.ledger import TransitionRefused
from dock.names import ListingRefused
from dock.report import CameraReport
from dock.slots import SlotState
from dock.sources import (
    MAX_NAME_NOTES,
    SerialSource,
    VolumeSource,
)
from store import (
    StoreError,
    StoreFull,
    StoreUnavailable,
)

if TYPE_CHECKING:
    from dock.link import HelloInfo

from dock.ingest_base import (
    MAX_EVENT_LOG_PIECE,
    CameraRefused,
    DockContext,
    IngestAborted,
    SlotGone,
    Stopping,
    _sha_of,
)
from dock.ingest_events import EventLogOffload
from dock.ingest_recordings import RecordingIngest

log = logging.getLogger("dock.ingest")  # one logger for the whole ingest session


class CameraIngest(RecordingIngest, EventLogOffload):
    """One docking of one camera, from HELLO to the summary line."""

    def run(self) -> CameraReport:
        """Ingest the camera; never raises for a camera-level problem (see the report)."""
        from dock.link import LinkClosed, LinkError, LinkTimeout

        try:
            self._connect()
            self._ingest_all()
            self._offload_events()
            if self._deferred_profile is not None:
                self._push_profile(self._deferred_profile, after_transfer=True)
            self._finish_state()
        except CameraRefused as exc:
            self.report.refused = str(exc)
            self.progress.set(SlotState.ERROR, message=f"refused: {exc}")
            log.warning("slot %s: camera refused: %s", self.slot.name, exc)
        except IngestAborted as exc:
            self.report.aborted = str(exc)
            self.progress.set(SlotState.ERROR, message=str(exc))
            log.warning("slot %s: %s", self.slot.name, exc)
        except ListingRefused as exc:
            self.report.errors.append(f"listing refused: {exc}")
            self.progress.set(SlotState.ERROR, message=str(exc))
            log.error("slot %s: camera %s: %s", self.slot.name, self.device_id, exc)
        except NameRefused as exc:
            # Names are checked where they enter (list_files); one reaching a key or a
            # path unchecked is a bug, reported here rather than taking the daemon down.
            self.report.errors.append(f"name refused: {exc}")
            self.progress.set(SlotState.ERROR, message=str(exc))
            log.error("slot %s: camera %s: %s", self.slot.name, self.device_id, exc)
        except (StoreUnavailable, StoreFull) as exc:
            self.report.store_problem = f"store problem: {exc}"
            self.progress.set(SlotState.ERROR, message=f"store: {exc}")
            log.error("slot %s: %s", self.slot.name, exc)
        except (LinkClosed, LinkTimeout) as exc:
            if not self.slot.present() or self.cancel.is_set():
                self.report.aborted = "undocked during transfer; dock the camera again to resume"
            else:
                self.report.errors.append(f"camera stopped answering: {exc}")
            self.progress.set(SlotState.ERROR, message=self.report.aborted or str(exc))
        except (LinkError, StoreError, TransitionRefused, OSError) as exc:
            if isinstance(exc, OSError) and not self.slot.present():
                self.report.aborted = "undocked during transfer; dock the camera again to resume"
            else:
                self.report.errors.append(f"{type(exc).__name__}: {exc}")
            self.progress.set(SlotState.ERROR, message=str(exc))
            log.error("slot %s: %s", self.slot.name, exc)
        finally:
            unnamed = len(self.report.left) - MAX_NAME_NOTES
            if unnamed > 0:
                self._note(f"{unnamed} more file(s) left on the camera (named in the dock's log)")
            if self._releaser is not None:
                self._releaser.close()
            if self.link is not None:
                try:
                    self.link.close()
                except Exception:  # closing a vanished pty may fail; nothing to keep
                    log.debug("closing the link of slot %s failed", self.slot.name)
        return self.report

    def _finish_state(self) -> None:
        r = self.report
        if r.quarantined:
            self.progress.set(SlotState.QUARANTINED, message=r.summary(), recording=None)
        elif r.ok:
            self.progress.set(SlotState.DONE, message=r.summary(), recording=None)
        else:
            self.progress.set(SlotState.ERROR, message=r.summary(), recording=None)

    def _connect(self) -> None:
        from dock.link import AuthFailed

        self.progress.set(SlotState.AUTHENTICATING)
        serial = self.slot.serial
        volume = self.slot.volume
        volume_id = self._volume_identity(volume)
        if serial is None:
            # A volume without a control channel: copy and store, but nothing can be released.
            if volume is None or volume_id is None:
                raise CameraRefused("no volume with DEVICE.json and no serial link in the slot")
            device = self.ctx.ledger.active_device(volume_id[0])
            if device is None or device.public_key != volume_id[1]:
                raise CameraRefused(self._unknown(volume_id[0]))
            self.device_id, self.device_public = device.device_id, device.public_key
            self.progress.set(device_id=self.device_id)
            self.report.device_id = self.device_id
            self.source = VolumeSource(volume, self.check_alive, self.ctx.listing_bounds)
            self._note("no serial link: stored only, nothing released")
            return
        self.link = self.ctx.open_link(serial)
        info = self.link.hello()
        try:
            check_device_id(info.device_id)
        except NameRefused as exc:
            raise CameraRefused(f"the camera presents {exc}") from None
        self.report.device_id = info.device_id
        self.progress.set(device_id=info.device_id)
        device = self.ctx.ledger.active_device(info.device_id)
        if device is None:
            raise CameraRefused(self._unknown(info.device_id))
        if not hmac.compare_digest(device.public_key, info.device_public):
            raise CameraRefused(
                f"camera {info.device_id} presents a device key that differs from the registered "
                "one (re-provisioned or an impostor): the coordinator must check it and "
                "register it again"
            )
        try:
            self.link.auth(self._dock_key(), device.public_key)
        except AuthFailed as exc:
            raise CameraRefused(f"authentication failed: {exc}") from None
        self.device_id, self.device_public = device.device_id, device.public_key
        self._sync_clock()
        self._push_profile(info)
        if info.transfer_mode == "serial" or volume is None:
            if info.transfer_mode != "serial":
                self._note("no volume in the slot: copying over serial")
            self.source = SerialSource(self.link, self.check_alive, self.ctx.listing_bounds)
        else:
            if volume_id is not None and volume_id[0] != info.device_id:
                raise CameraRefused(
                    f"the volume in slot {self.slot.name} belongs to {volume_id[0]}, the serial "
                    f"port to {info.device_id}: re-seat the camera"
                )
            self.source = VolumeSource(volume, self.check_alive, self.ctx.listing_bounds)

    def _sync_clock(self) -> None:
        """SET_TIME; a large or refused correction is logged and noted for the operator."""
        from dock.link import ClockRefused
        from formats.protocol import CLOCK_JUMP_SECONDS

        try:
            drift = self._camera_link().set_time(self.ctx.clock.now())
        except ClockRefused as exc:
            # The camera's profile bounds how far a dock may move its clock: the footage
            # still comes off, but a person has to look at that camera's time.
            off = f"{exc.drift:+.1f} s" if exc.drift is not None else "too far"
            limit = f"{exc.limit} s" if exc.limit is not None else "its profile's limit"
            self._note(
                f"camera clock is off by {off}, more than its profile lets a dock "
                f"correct ({limit}): not corrected, check the camera's clock"
            )
            return
        if abs(drift) > CLOCK_JUMP_SECONDS:
            self._note(f"camera clock was off by {drift:+.1f} s, corrected")
        elif abs(drift) > 2.0:
            self.report.notes.append(f"camera clock was off by {drift:+.1f} s, corrected")
            log.info(
                "slot %s: camera %s: camera clock was off by %+.1f s, corrected",
                self.slot.name,
                self.device_id,
                drift,
            )

    def _unknown(self, device_id: str) -> str:
        if not self.ctx.takes_registry:
            # Not the coordinator's to fix: the back office may list it already.
            return (
                f"camera {device_id} is not registered and this dock runs without a "
                "registry key: start it with --registry-key FILE (the back office's "
                "HOME/registry.pub) to take the back office's registry, or, for a dock "
                "without a back office, `bodycam dock register "
                f"{self.slot.path}/volume/DEVICE.json --role coordinator`"
            )
        return (
            f"camera {device_id} is not registered; the coordinator adds it to the back "
            f"office's registry (`bodycam vault camera add {self.slot.path}/volume/DEVICE.json "
            "--municipality M`), which docks run with --registry-key take from the store"
        )

    def _volume_identity(self, volume: Path | None) -> tuple[str, bytes] | None:
        if volume is None:
            return None
        try:
            info = read_device_info(volume / VOLUME_INFO_FILE)
        except IdentityError:
            return None
        return info["device_id"], bytes.fromhex(info["public_key"])

    def _trusts_this_dock(self, data: bytes) -> bool:
        """Whether a profile lists our dock key (the camera checks it from commit on)."""
        try:
            keys = tomllib.loads(data.decode("utf-8")).get("keys", {})
            trusted = {str(k).lower() for k in keys.get("trusted_docks", [])}
        except (UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError, TypeError):
            return True  # not ours to judge: the camera validates and refuses it
        return self._dock_key().public_bytes().hex() in trusted

    def _push_profile(self, info: HelloInfo, *, after_transfer: bool = False) -> None:
        from dock.link import LinkError

        directory = self.ctx.profiles_dir
        if directory is None:
            return
        profile = directory / f"{info.device_id}.toml"
        sig = directory / f"{info.device_id}.toml.sig"
        if not profile.is_file():
            return
        from formats.protocol import MAX_PROFILE, MAX_SIGNATURE_FILE

        with open(profile, "rb") as f:
            data = f.read(MAX_PROFILE + 1)
        if len(data) > MAX_PROFILE:
            self.report.errors.append(
                f"staged profile {profile} is larger than {MAX_PROFILE} bytes; not flashed"
            )
            return
        if hmac.compare_digest(_sha_of(data), info.profile.sha256):
            return  # the camera already runs it
        if not sig.is_file():
            self.report.errors.append(f"staged profile {profile} has no signature file {sig}")
            return
        if not after_transfer and not self._trusts_this_dock(data):
            # Its trusted docks apply from commit on: flashed now, this dock could not
            # release anything any more. Flash it once the transfer is done.
            self._deferred_profile = info
            self._note("staged profile does not trust this dock: flashed after the transfer")
            return
        with open(sig, "rb") as f:
            signature = f.read(MAX_SIGNATURE_FILE + 1)
        try:
            active = self._camera_link().profile_flash(data, signature)
        except LinkError as exc:
            self.report.errors.append(f"staged profile refused by the camera: {exc}")
            return
        self._note(f"profile {active.name} v{active.version} flashed")
        log.info("camera %s: flashed profile %s v%d", info.device_id, active.name, active.version)


__all__ = [
    "MAX_EVENT_LOG_PIECE",
    "CameraIngest",
    "CameraRefused",
    "DockContext",
    "IngestAborted",
    "SlotGone",
    "Stopping",
]
