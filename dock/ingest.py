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

This module is the session itself; the parts it uses each have their own: slots and
their states (`dock.slots`), where files come from (`dock.sources`), background
releases (`dock.release`), the outcome (`dock.report`), the spool (`dock.spool`) and
the store (`store`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import threading
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from crypto.device_info import VOLUME_INFO_FILE, IdentityError, read_device_info
from crypto.errors import FormatError
from crypto.files import sha256_digest, sha256_file
from crypto.format import (
    HEADER_NAME,
    MANIFEST_MAX_SIZE,
    MANIFEST_NAME,
    PART_SUFFIX,
    REC_HEADER_MAX,
    segment_index_of,
)
from crypto.names import NameRefused, check_device_id
from crypto.verify import ManifestEntry, VerifiedRecording, open_listed_segment, verify_manifest
from dock.clock import SystemClock
from dock.faults import fault_point
from dock.ingest_record import write_for_recording
from dock.ledger import QUARANTINED, RELEASED, STORED, Ledger, StoredSegment, TransitionRefused
from dock.names import ListingBounds, ListingRefused, display_path
from dock.release import ReleaseWorker
from dock.report import CameraReport
from dock.slots import Slot, SlotProgress, SlotState
from dock.sources import (
    MAX_NAME_NOTES,
    FileSource,
    SerialSource,
    VerificationFailed,
    VolumeSource,
)
from dock.spool import drop_if_shared, remove_spool_folder
from formats.clock import Clock
from formats.protocol import Signer
from store import (
    DurableBatch,
    Store,
    StoredObject,
    StoreError,
    StoreFull,
    StoreIntegrityError,
    StoreUnavailable,
    events_key,
    events_prefix,
    events_range,
    object_key,
    retain_until,
    split_name,
)

if TYPE_CHECKING:
    from dock.link import CameraLink, HelloInfo

log = logging.getLogger(__name__)

MAX_EVENT_LOG_PIECE = 64 << 20  # bytes of event log taken per docking
# A quarantined file without a manifest entry (nothing says how long it may be) is kept
# as evidence up to this many bytes: a camera cannot make the dock copy without end.
MAX_EVIDENCE = 16 << 20
MAX_EVIDENCE_PER_SESSION = 64 << 20  # and all of them together, per docking
# And per camera and UTC day, across dockings: in volume-only mode a camera is known by
# its DEVICE.json, which anyone can copy, so re-seating a forged volume must not be a
# way to fill the store's quarantine.
MAX_EVIDENCE_PER_CAMERA_DAY = 128 << 20
# Of a recording that fails as a whole (its manifest does not verify) only the evidence
# of the tampering is kept: header, manifest and this many segments (the first).
EVIDENCE_SEGMENTS = 1
_EVIDENCE_LIMITS = {HEADER_NAME: REC_HEADER_MAX, MANIFEST_NAME: MANIFEST_MAX_SIZE}


class IngestAborted(Exception):
    """The slot's session stopped before it finished; nothing unsafe happened."""


class SlotGone(IngestAborted):
    """The camera was undocked (its slot vanished) mid-transfer; resume at the next docking."""


class Stopping(IngestAborted):
    """The daemon is shutting down (SIGTERM); the current chunk was finished."""


class CameraRefused(Exception):
    """The camera may not be ingested: unknown, re-keyed, or failed authentication."""


@dataclass
class DockContext:
    """What every slot's session shares: store, ledger, keys, limits, the stop flag."""

    store: Store
    ledger: Ledger
    dock_key: Signer | None  # crypto.keys.SigningKey: signs auth and release receipts
    site: str = "default"
    spool_root: Path | None = None
    clock: Clock = field(default_factory=SystemClock)
    uploads: threading.Semaphore = field(default_factory=lambda: threading.BoundedSemaphore(2))
    stop: threading.Event = field(default_factory=threading.Event)
    profiles_dir: Path | None = None
    link_factory: Callable[[str], CameraLink] | None = None
    link_timeout: float = 2.0
    listing_bounds: ListingBounds = field(default_factory=ListingBounds)
    event_log_piece: int = MAX_EVENT_LOG_PIECE  # bytes of event log read per docking
    # Run with --registry-key: the back office's registry decides who is registered.
    takes_registry: bool = False

    def spool_dir(self) -> Path:
        staging = self.store.staging_dir
        if staging is not None:
            return staging / "spool"  # same filesystem: the store links, never copies
        if self.spool_root is None:
            raise ValueError("a spool directory is needed for this store (--state DIR)")
        return self.spool_root

    def open_link(self, port: str) -> CameraLink:
        if self.link_factory is not None:
            return self.link_factory(port)
        from dock.link import CameraLink

        return CameraLink(port, timeout=self.link_timeout)


# Segments stored before their folders and the ledger are synced for all of them at once.
SETTLE_SEGMENTS = 8
SETTLE_BYTES = 64 << 20


class _Stored:
    """Segments of one recording in the store, not yet durable, recorded or released."""

    def __init__(self) -> None:
        self.durable = DurableBatch()
        self.segments: list[StoredSegment] = []
        self.entries: list[ManifestEntry] = []
        self.bytes = 0

    def add(self, segment: StoredSegment, entry: ManifestEntry) -> None:
        self.segments.append(segment)
        self.entries.append(entry)
        self.bytes += segment.size

    def full(self) -> bool:
        return len(self.segments) >= SETTLE_SEGMENTS or self.bytes >= SETTLE_BYTES

    def take(self) -> tuple[list[StoredSegment], list[ManifestEntry]]:
        out = self.segments, self.entries
        self.segments, self.entries, self.bytes = [], [], 0
        return out


def _sha_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class CameraIngest:
    """One docking of one camera, from HELLO to the summary line."""

    def __init__(
        self,
        slot: Slot,
        ctx: DockContext,
        progress: SlotProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.slot = slot
        self.ctx = ctx
        self.progress = progress or SlotProgress(slot.name, ctx.clock)
        self.cancel = cancel or threading.Event()
        self.report = CameraReport(slot.name)
        self.link: CameraLink | None = None
        self.device_id = ""
        self.device_public = b""
        self.source: FileSource | None = None
        self._spool: Path | None = None
        # (recording, segment) not to release (see _ingest_recording). Keyed by recording
        # and never reset: the release worker may act on a recording after the next began.
        self._hold: set[tuple[str, str]] = set()
        self._unfinished: set[str] = set()  # recordings without END in their manifest
        self._empty: set[str] = set()  # finished, and their manifest lists no segment
        self._evidence_bytes = 0  # copied for quarantine in this session
        self._releaser: ReleaseWorker | None = None
        self._deferred_profile: HelloInfo | None = None

    # --- session ---------------------------------------------------------------------------

    def check_alive(self) -> None:
        """Raise at a chunk boundary if the camera was undocked or the dock is stopping."""
        if self.ctx.stop.is_set():
            raise Stopping(
                "dock shutting down: stopped after the current chunk; resumes at the next start"
            )
        if self.cancel.is_set() or not self.slot.present():
            raise SlotGone("undocked during transfer; dock the camera again to resume")
        releaser = self._releaser
        if releaser is not None and releaser.error is not None and not releaser.on_worker_thread():
            raise releaser.error

    def _dock_key(self) -> Signer:
        """The key the dock signs with; without one a camera is refused before anything."""
        if self.ctx.dock_key is None:
            raise CameraRefused("the dock has no dock key (--keys DIR with dock.key)")
        return self.ctx.dock_key

    def _camera_link(self) -> CameraLink:
        """The serial link; only steps that run after HELLO ask for it."""
        if self.link is None:
            raise AssertionError("no serial link to the camera")
        return self.link

    def _note(self, text: str) -> None:
        """Something the operator must hear: the report, the live view, the log."""
        self.report.notes.append(text)
        self.progress.set(message=text)
        log.warning("slot %s: camera %s: %s", self.slot.name, self.device_id or "?", text)

    def _left_file(self, path: str, reason: str) -> None:
        """A file stays on the camera (named, with why); the camera is not released."""
        if path in self.report.left:
            return
        self.report.left[path] = reason
        if len(self.report.left) <= MAX_NAME_NOTES:
            self._note(f"left on the camera: {path}: {reason}")
        else:  # a camera listing thousands must not make the summary line endless
            log.warning("camera %s: left on the camera: %s: %s", self.device_id, path, reason)

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

    # --- recordings --------------------------------------------------------------------------

    def _ingest_all(self) -> None:
        assert self.source is not None
        # Before touching anything: a store that cannot take objects means nothing moves.
        self.ctx.store.check()
        listing = self.source.list_files()
        # Refused names never become paths or keys: reported, left on the camera.
        for path, reason in listing.refused.items():
            self._left_file(path, reason)
        files = listing.recordings
        self._spool = self.ctx.spool_dir() / self.ctx.site / self.device_id
        self._tidy_spool(set(files))
        pending = 0
        for rec_id, names in files.items():
            for name, size in names.items():
                if segment_index_of(name) is None:
                    continue
                seg = self.ctx.ledger.segment(self.device_id, rec_id, name)
                if seg is None or seg.state not in (STORED, RELEASED, QUARANTINED):
                    pending += size
        self.progress.set(bytes_total=pending, bytes_done=0)
        if self.link is not None and self.source.kind == "volume":
            self._releaser = ReleaseWorker(self._release_now)
        for rec_id in sorted(files):
            self.check_alive()
            self.report.recordings += 1
            self.progress.set(SlotState.VERIFYING, recording=rec_id)
            try:
                done = self._ingest_recording(rec_id, files[rec_id])
                if done and rec_id in self._empty:
                    self.report.empty += 1  # no footage to store: not counted as stored
                elif done:
                    self.report.recordings_done += 1
            finally:
                self._clean_spool(rec_id)
        if self._releaser is not None:
            releaser, self._releaser = self._releaser, None
            self.progress.set(SlotState.RELEASING)
            releaser.finish()
        self._audit_camera()

    def _audit_camera(self) -> None:
        """Name every file left on the camera, as the camera itself now shows it.

        The camera counts as released only when it holds nothing but what a camera keeps
        (DEVICE.json, its event log): kept segments are counted (their reasons are in the
        report already), every other file is reported with why it stayed.
        """
        assert self.source is not None
        left = self.source.list_files()
        for path, reason in left.refused.items():
            self._left_file(path, reason)
        kept = 0
        for rec_id, names in sorted(left.recordings.items()):
            segments = sum(1 for n in names if segment_index_of(n) is not None)
            kept += segments
            if rec_id in self._empty and set(names) <= {HEADER_NAME, MANIFEST_NAME}:
                self._left_file(
                    display_path(rec_id),
                    "a finished recording without footage (its signed manifest lists no "
                    "segment): its header and manifest are stored, but with no segment to "
                    "release nothing removes it from the camera until the camera's boot "
                    "recovery does (at its next power-on)",
                )
                continue
            for name in sorted(names):
                path = display_path(rec_id, name)
                if name.endswith(PART_SUFFIX):
                    self._left_file(
                        path,
                        "unsealed leftover (.part): the camera's recovery "
                        "seals or removes it, the next docking takes it",
                    )
                elif (
                    segment_index_of(name) is None
                    and not segments
                    and rec_id not in self._unfinished
                ):
                    # An unfinished recording keeps its header and manifest by design; a
                    # finished one goes with its last segment unless something else is there.
                    self._left_file(
                        path,
                        "the camera kept this finished recording's folder "
                        "(it holds files the camera does not remove)",
                    )
        if isinstance(self.source, VolumeSource):
            for path, reason in self.source.others().items():
                self._left_file(path, reason)
        self.report.kept = kept
        self.report.released_camera = self.link is not None and kept == 0 and not self.report.left

    def _ingest_recording(self, rec_id: str, files: dict[str, int]) -> bool:
        """Ingest one recording folder; True when every segment it lists is durable."""
        assert self.source is not None and self._spool is not None
        ledger = self.ctx.ledger
        base = f"recordings/{rec_id}"
        known = ledger.recording(self.device_id, rec_id)
        if known is not None and known.get("quarantine_reason"):
            self.report.quarantined.append(f"{rec_id}: {known['quarantine_reason']}")
            return False
        if HEADER_NAME not in files or MANIFEST_NAME not in files:
            if all(n.endswith(PART_SUFFIX) for n in files):
                self._note(f"{rec_id}: still being sealed, left on the camera")
                return False
            self._quarantine_recording(
                rec_id,
                files,
                "recording.hdr or manifest.bcm missing: the recording cannot be verified",
            )
            return False
        # Header and manifest are read whole: a listed size (or the bytes themselves)
        # beyond the format's bound refuses this recording, never the session.
        for name, bound in ((HEADER_NAME, REC_HEADER_MAX), (MANIFEST_NAME, MANIFEST_MAX_SIZE)):
            if files[name] > bound:
                self._left_file(
                    f"{base}/{name}",
                    f"{files[name]} bytes, more than the format "
                    f"allows ({bound}); recording not taken",
                )
                return False
        try:
            header = self.source.read_small(f"{base}/{HEADER_NAME}", REC_HEADER_MAX)
            manifest = self.source.read_small(f"{base}/{MANIFEST_NAME}", MANIFEST_MAX_SIZE)
        except VerificationFailed as exc:
            self._left_file(base, f"{exc}; recording not taken")
            return False
        spool = self._spool / rec_id
        spool.mkdir(parents=True, exist_ok=True)
        (spool / HEADER_NAME).write_bytes(header)
        (spool / MANIFEST_NAME).write_bytes(manifest)
        try:
            vr = verify_manifest(spool, self.device_public)
        except FormatError as exc:
            self._quarantine_recording(rec_id, files, f"manifest does not verify: {exc}")
            return False
        if vr.device_id != self.device_id or vr.recording_id != rec_id:
            self._quarantine_recording(
                rec_id,
                files,
                f"folder {rec_id} holds recording {vr.recording_id} of {vr.device_id}",
            )
            return False
        if not vr.complete:
            self._unfinished.add(rec_id)
        elif not vr.segments:
            self._empty.add(rec_id)
        now = self.ctx.clock.now()
        until = retain_until(vr.started_utc, now, self.ctx.store.retention_days)
        header_key = object_key(self.ctx.site, self.device_id, rec_id, HEADER_NAME, _sha_of(header))
        manifest_key = object_key(
            self.ctx.site, self.device_id, rec_id, MANIFEST_NAME, _sha_of(manifest)
        )
        # Header and manifest first: without them no stored segment could be opened.
        with self.ctx.uploads:
            both = DurableBatch()  # two objects in one folder: its entries synced once
            self.ctx.store.put_bytes(header_key, header, retain_until=until, batch=both)
            self.ctx.store.put_bytes(manifest_key, manifest, retain_until=until, batch=both)
        both.commit()
        ledger.note_recording(
            self.device_id,
            rec_id,
            started_utc=vr.started_utc,
            complete=vr.complete,
            segments=len(vr.segments),
            header_key=header_key,
            manifest_key=manifest_key,
        )
        listed = {e.name for e in vr.segments} | {HEADER_NAME, MANIFEST_NAME}
        unlisted = sorted(set(files) - listed)
        # Unlisted files first: quarantined before any release can change the folder.
        for name in unlisted:
            self._unlisted_file(vr, name, files[name])
        if vr.complete and any(segment_index_of(n) is not None for n in unlisted):
            # The camera removes a finished recording's folder, every file in it, with its
            # last released segment: keep one listed segment back so the quarantined file
            # stays on the camera as evidence.
            present = [e.name for e in vr.segments if e.name in files]
            if present:
                self._hold.add((rec_id, present[-1]))
        all_durable = True
        batch = _Stored()
        try:
            for entry in vr.segments:
                self.check_alive()
                if not self._ingest_segment(vr, entry, files.get(entry.name), spool, until, batch):
                    all_durable = False
                if batch.full():
                    self._settle(batch)
        except BaseException:
            # Undocked, stopping, a failing link: what is already in the store is still
            # made durable and recorded (the next docking releases it without copying it
            # again); nothing is released now.
            try:
                self._settle(batch, release=False)
            except Exception as exc:  # the first error is the one to report
                log.error(
                    "camera %s: recording the stored segments failed: %s", self.device_id, exc
                )
            raise
        self._settle(batch)
        if all_durable:  # the chain of custody, signed by this dock, next to the footage
            with self.ctx.uploads:
                write_for_recording(self.ctx, vr, header, manifest, until)
        return all_durable

    def _tidy_spool(self, listed: set[str]) -> None:
        """Drop spooled copies of recordings the camera no longer has (released, or gone).

        What a killed session left: partial copies, headers and manifests. The camera's
        listing is the only authority on what may still be needed for resuming.
        """
        assert self._spool is not None
        try:
            entries = list(os.scandir(self._spool))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.name in listed or not entry.is_dir(follow_symlinks=False):
                continue
            removed = remove_spool_folder(Path(entry.path))
            log.info(
                "camera %s: dropped the spool of %s (%d file(s)), no longer on the camera",
                self.device_id,
                entry.name,
                removed,
            )

    def _clean_spool(self, rec_id: str) -> None:
        """Drop the spooled header and manifest; partial serial copies stay for resuming."""
        assert self._spool is not None
        spool = self._spool / rec_id
        for name in (HEADER_NAME, MANIFEST_NAME):
            (spool / name).unlink(missing_ok=True)
        try:
            spool.rmdir()
        except OSError:
            pass  # missing, or holds a partial copy

    def _unlisted_file(self, vr: VerifiedRecording, name: str, size: int) -> None:
        rec_id = vr.recording_id
        if name.endswith(PART_SUFFIX):
            self._left_file(
                display_path(rec_id, name),
                "unsealed leftover (.part): the "
                "camera's recovery seals or removes it, the next docking takes it",
            )
            return
        if segment_index_of(name) is None:
            self._left_file(display_path(rec_id, name), "not part of the recording")
            return
        if not vr.complete:
            # sealed but not yet in the manifest (power cut between the two): the camera's
            # boot recovery adds it; the next docking takes it.
            self._note(f"{rec_id}/{name}: not yet in the manifest, left on camera")
            return
        reason = "segment file is not in the signed manifest of a finished recording (spliced)"
        self._quarantine_file(rec_id, name, size, None, reason)

    def _ingest_segment(
        self,
        vr: VerifiedRecording,
        entry: ManifestEntry,
        camera_size: int | None,
        spool: Path,
        until: float,
        batch: _Stored,
    ) -> bool:
        """Copy, verify and store one segment. True when it is durable, or will be once
        `batch` is settled (which records and releases it)."""
        ledger, store = self.ctx.ledger, self.ctx.store
        rec_id, name = vr.recording_id, entry.name
        key = object_key(self.ctx.site, self.device_id, rec_id, name, entry.sha256)
        seg = ledger.segment(self.device_id, rec_id, name)
        if seg is not None and seg.sha256 != entry.sha256 and seg.state != QUARANTINED:
            self._quarantine_file(
                rec_id,
                name,
                camera_size or 0,
                entry,
                f"the signed manifest now lists sha256 {entry.sha256}, the "
                f"ledger recorded {seg.sha256} for this segment",
            )
            return False
        if seg is not None and seg.state == QUARANTINED:
            self.report.quarantined.append(f"{rec_id}/{name}: {seg.reason}")
            return False
        if seg is not None and seg.durable:
            if camera_size is None:
                if seg.state == STORED:
                    ledger.mark_released(
                        self.device_id,
                        rec_id,
                        name,
                        entry.sha256,
                        how="gone from the camera after a receipt",
                    )
                return True
            if self._intact(key):
                self._release(rec_id, entry, key)
                return True
            # Recorded as stored, but the store does not hold it intact: the camera still
            # has it, so store it again (a damaged object is set aside) before releasing.
        if camera_size is None:
            stored = self._verified_or_none(key)
            if stored is not None:
                # Stored before the dock could record it, then released: catch up.
                ledger.mark_stored(
                    self.device_id, rec_id, name, entry.sha256, entry.size, key, stored.to_json()
                )
                ledger.mark_released(
                    self.device_id,
                    rec_id,
                    name,
                    entry.sha256,
                    how="gone from the camera after a receipt",
                )
                return True
            self.report.errors.append(
                f"{rec_id}/{name} is listed in the signed manifest but is neither on the camera "
                "nor in the store"
            )
            return False
        if camera_size != entry.size:
            # Refused before a byte is copied: a camera listing 2 GiB for a segment the
            # manifest signs at 2 MiB must not make the dock copy 2 GiB first.
            self._quarantine_file(
                rec_id,
                name,
                camera_size,
                entry,
                f"the camera lists {camera_size} bytes, the signed manifest {entry.size}",
            )
            return False
        self.progress.set(SlotState.UPLOADING, recording=rec_id)
        part = spool / f"{name}{PART_SUFFIX}"
        try:
            sha, size = self._copy_verified(vr, entry, part)
        except VerificationFailed as exc:
            self._quarantine_file(rec_id, name, camera_size, entry, str(exc), spooled=part)
            return False
        ledger.mark_copied(self.device_id, rec_id, name, sha, size)
        try:
            with self.ctx.uploads:
                self.check_alive()
                stored = store.put_file(
                    key,
                    part,
                    sha256=sha,
                    size=size,
                    retain_until=until,
                    consume=True,
                    batch=batch.durable,
                )
        except StoreIntegrityError as exc:
            # The store holds other bytes under this content's name and cannot replace them
            # (S3 under Object Lock): keep our verified copy in quarantine, never release.
            self._quarantine_file(
                rec_id, name, size, entry, f"store integrity: {exc}", spooled=part
            )
            return False
        fault_point("after-store")
        batch.add(
            StoredSegment(self.device_id, rec_id, name, sha, size, key, stored.to_json()), entry
        )
        return True

    def _settle(self, batch: _Stored, *, release: bool = True) -> None:
        """Make the batch's objects durable, record them stored, then release them.

        In that order, for all of them at once: the folders they were named in are
        fsynced (one fsync each, not two per object), one ledger transaction records
        every copy (one fsync), and only then is any of them released.
        """
        if not batch.segments:
            return
        batch.durable.commit()
        segments, entries = batch.take()
        self.ctx.ledger.mark_stored_many(segments)
        for seg, entry in zip(segments, entries, strict=True):
            self.report.stored += 1
            fault_point("after-ledger")
            if release:
                self._release(seg.recording_id, entry, seg.store_key)

    def _intact(self, key: str) -> bool:
        """Whether the store holds `key` with the content its name promises (hash checked)."""
        return self._verified_or_none(key) is not None

    def _verified_or_none(self, key: str) -> StoredObject | None:
        try:
            return self.ctx.store.verified(key)
        except StoreIntegrityError as exc:
            log.error("camera %s: %s", self.device_id, exc)
            self.report.notes.append(
                f"{key}: the store held other bytes under this name; not trusted"
            )
            return None

    def _copy_verified(
        self, vr: VerifiedRecording, entry: ManifestEntry, part: Path
    ) -> tuple[str, int]:
        """Copy into the spool, hashing while copying, and check against the manifest."""
        assert self.source is not None
        relative = f"recordings/{vr.recording_id}/{entry.name}"
        resume = self.source.kind == "serial"
        drop_if_shared(part)
        for attempt in (1, 2):
            start = part.stat().st_size if resume and part.exists() else 0
            if start > entry.size:
                start = 0
            # What the spool holds already is `start` bytes: the whole spooled file.
            digest = sha256_digest(part) if start else hashlib.sha256()
            if part.exists():
                os.chmod(part, 0o644)
            else:
                part.touch(mode=0o644)
            with open(part, "r+b") as out:
                out.seek(start)
                out.truncate(start)

                def on_chunk(view: memoryview, digest: hashlib._Hash = digest) -> None:
                    digest.update(view)
                    self.progress.add_bytes(len(view))

                # Never more than the manifest signs, whatever size the camera claims.
                end, reported = self.source.copy(relative, out, start, on_chunk, entry.size)
            sha = digest.hexdigest()
            try:
                if reported != entry.size:
                    raise VerificationFailed(
                        f"the camera reports {reported} bytes, the signed "
                        f"manifest lists {entry.size}"
                    )
                self._check_segment(part, entry, vr, sha, end)
                return sha, end
            except VerificationFailed:
                if start == 0 or attempt == 2:
                    raise
                # The resumed prefix in the spool may be what is wrong: copy it all again.
                log.info("%s: resumed copy does not verify; copying it again", relative)
                part.unlink()
        raise AssertionError("unreachable")

    @staticmethod
    def _check_segment(
        part: Path, entry: ManifestEntry, vr: VerifiedRecording, sha: str, size: int
    ) -> None:
        if size != entry.size:
            raise VerificationFailed(
                f"{size} bytes, the signed manifest lists {entry.size} (sha256 {sha})"
            )
        if not hmac.compare_digest(sha, entry.sha256):
            raise VerificationFailed(f"SHA-256 {sha} differs from the signed manifest")
        try:
            fd, _ = open_listed_segment(part, entry, vr)
            os.close(fd)
        except FormatError as exc:
            raise VerificationFailed(str(exc)) from None

    def _release(self, rec_id: str, entry: ManifestEntry, key: str) -> None:
        if self._releaser is not None:
            self._releaser.submit(rec_id, entry, key)
        else:
            self._release_now(rec_id, entry, key)

    def _release_now(self, rec_id: str, entry: ManifestEntry, key: str) -> None:
        from dock.link import ReceiptRejected, RemoteNotFound
        from formats.protocol import ReleaseReceipt

        ledger = self.ctx.ledger
        seg = ledger.segment(self.device_id, rec_id, entry.name)
        if seg is None or not seg.durable or seg.sha256 != entry.sha256:
            raise TransitionRefused(f"{rec_id}/{entry.name} is not recorded as stored")
        if self.link is None:
            return
        if (rec_id, entry.name) in self._hold:
            self.report.notes.append(
                f"{rec_id}/{entry.name}: stored, held on the camera with the quarantined file"
            )
            return
        if self.ctx.store.stat(key) is None:
            self.report.errors.append(
                f"{rec_id}/{entry.name}: recorded as stored but missing from the store; "
                "not released (check the store)"
            )
            return
        self.check_alive()
        if self._releaser is None:
            self.progress.set(SlotState.RELEASING, recording=rec_id)
        receipt = ReleaseReceipt.sign(
            self._dock_key(), self.device_id, rec_id, entry.name, entry.sha256
        )
        try:
            self.link.release(receipt)
            how = "receipt"
        except RemoteNotFound:
            how = "gone from the camera after a receipt"
        except ReceiptRejected as exc:
            self.report.errors.append(
                f"{rec_id}/{entry.name}: camera refused the release: {exc.message}"
            )
            return
        fault_point("after-release")
        ledger.mark_released(self.device_id, rec_id, entry.name, entry.sha256, how=how)
        self.report.released += 1

    # --- quarantine --------------------------------------------------------------------------

    def _quarantine_file(
        self,
        rec_id: str,
        name: str,
        size: int,
        entry: ManifestEntry | None,
        reason: str,
        spooled: Path | None = None,
    ) -> None:
        """Put one failing file in the store's quarantine; it stays on the camera."""
        assert self._spool is not None and self.source is not None
        path = spooled
        if path is None or not path.exists():
            allowance = self._evidence_allowance()
            if allowance == 0:
                self._evidence_refused(rec_id, name, size, entry, reason)
                return
            path = self._spool / rec_id / f"{name}.quarantine"
            path.parent.mkdir(parents=True, exist_ok=True)
            # Evidence is bounded too: what the manifest signs, or what the format allows.
            limit = entry.size if entry is not None else _EVIDENCE_LIMITS.get(name, MAX_EVIDENCE)
            limit = min(limit, allowance)
            with open(path, "wb") as out:
                end, reported = self.source.copy(
                    f"recordings/{rec_id}/{name}", out, 0, lambda v: None, limit
                )
            reported = max(reported, size)  # the listed size, when nothing was read
            if reported > end:
                reason += f" (the first {end} of {reported} bytes kept as evidence)"
        else:
            end = path.stat().st_size  # a verified copy already made: counted, kept whole
        self._count_evidence(end)
        data_sha = sha256_file(path)
        qkey = object_key(self.ctx.site, self.device_id, rec_id, name, data_sha)
        now = self.ctx.clock.now()
        with self.ctx.uploads:
            stored = self.ctx.store.quarantine(
                qkey,
                path,
                reason,
                now=now,
                details={
                    "device_id": self.device_id,
                    "recording_id": rec_id,
                    "file": name,
                    "manifest_sha256": entry.sha256 if entry else None,
                    "slot": self.slot.name,
                },
                retain_until=retain_until(now, now, self.ctx.store.retention_days),
            )
        path.unlink(missing_ok=True)
        self.ctx.ledger.mark_quarantined(
            self.device_id,
            rec_id,
            name,
            entry.sha256 if entry else data_sha,
            size,
            reason,
            stored.key,
        )
        self.report.quarantined.append(f"{rec_id}/{name}: {reason}")
        self.progress.set(SlotState.QUARANTINED, message=f"{rec_id}/{name}: {reason}")
        log.error("camera %s: %s/%s quarantined: %s", self.device_id, rec_id, name, reason)

    def _evidence_day(self) -> str:
        return dt.datetime.fromtimestamp(self.ctx.clock.now(), dt.UTC).date().isoformat()

    def _evidence_allowance(self) -> int:
        """Bytes of evidence this docking may still copy: per docking and per camera-day."""
        today = self.ctx.ledger.evidence_bytes(self.device_id, self._evidence_day())
        return max(
            0,
            min(
                MAX_EVIDENCE_PER_SESSION - self._evidence_bytes,
                MAX_EVIDENCE_PER_CAMERA_DAY - today,
            ),
        )

    def _count_evidence(self, n: int) -> None:
        self._evidence_bytes += n
        self.ctx.ledger.add_evidence_bytes(self.device_id, self._evidence_day(), n)

    def _evidence_refused(
        self, rec_id: str, name: str, size: int, entry: ManifestEntry | None, reason: str
    ) -> None:
        """Quarantined in the ledger (never released), nothing copied: the allowance is spent."""
        reason += (
            f" (not copied as evidence: this camera's quarantine allowance of"
            f" {MAX_EVIDENCE_PER_CAMERA_DAY >> 20} MiB a day, {MAX_EVIDENCE_PER_SESSION >> 20}"
            " MiB a docking, is used up; the file stays on the camera)"
        )
        self.ctx.ledger.mark_quarantined(
            self.device_id, rec_id, name, entry.sha256 if entry else "", size, reason, None
        )
        self.report.quarantined.append(f"{rec_id}/{name}: {reason}")
        self.progress.set(SlotState.QUARANTINED, message=f"{rec_id}/{name}: {reason}")
        log.error("camera %s: %s/%s quarantined: %s", self.device_id, rec_id, name, reason)

    def _quarantine_recording(self, rec_id: str, files: dict[str, int], reason: str) -> None:
        """A recording that fails as a whole: keep the evidence of that, not all of it.

        Header, manifest and the first segment show what was wrong; the rest stays on the
        camera, counted in the reason, so a forged volume cannot fill the quarantine.
        """
        sealed = sorted(n for n in files if not n.endswith(PART_SUFFIX))
        small = [n for n in sealed if n in _EVIDENCE_LIMITS]
        rest = [n for n in sealed if n not in _EVIDENCE_LIMITS]
        taken = small + rest[:EVIDENCE_SEGMENTS]
        left = rest[EVIDENCE_SEGMENTS:]
        if self._evidence_allowance() == 0:
            taken, left = [], sealed
            self._note(
                f"{rec_id}: quarantined, nothing copied as evidence: camera"
                f" {self.device_id} used up its quarantine allowance"
                f" ({MAX_EVIDENCE_PER_CAMERA_DAY >> 20} MiB a day,"
                f" {MAX_EVIDENCE_PER_SESSION >> 20} MiB a docking); it stays on the camera"
            )
        file_reason = reason
        if left:
            file_reason += (
                f"; {len(left)} more file(s), {sum(files[n] for n in left)} bytes,"
                " left on the camera, not copied"
            )
        for name in taken:
            self.check_alive()
            before = len(self.report.quarantined)
            self._quarantine_file(rec_id, name, files[name], None, file_reason)
            del self.report.quarantined[before:]
        self.ctx.ledger.quarantine_recording(self.device_id, rec_id, file_reason)
        self.report.quarantined.append(f"{rec_id}: {reason}")

    # --- event log -----------------------------------------------------------------------------

    def _offload_events(self) -> None:
        """Store the event log from where the last docking stopped, in whole lines.

        Idempotent: a piece stored before a kill, whose end the ledger never recorded,
        is found in the store and adopted instead of stored again overlapping. The
        camera's signed `segment_released` lines settle segments the ledger still
        holds as stored (a kill between RELEASE and its ledger write).
        """
        assert self.source is not None
        ledger = self.ctx.ledger
        offset = ledger.events_offset(self.device_id)
        limit = self.ctx.event_log_piece
        data = self.source.event_log(offset, limit)  # at most `limit` bytes are read
        cut = data.rfind(b"\n") + 1  # whole lines only; the rest comes next time
        if cut <= 0:
            if len(data) >= limit:
                self._note(
                    f"event log: no whole line in {limit} bytes from byte {offset}; "
                    "not offloaded (check the camera's event log)"
                )
            return
        if len(data) >= limit:
            self._note(
                f"event log: {cut} bytes offloaded from byte {offset}; more remains for "
                "the next docking"
            )
        lines = data[:cut]
        self._settle_releases(lines)
        piece, start = lines, offset
        for end, key in self._stored_pieces(offset):
            n = end - start
            if n > len(piece) or not hmac.compare_digest(_sha_of(piece[:n]), split_name(key)[1]):
                break
            log.info(
                "camera %s: event log %d..%d was stored before, adopted", self.device_id, start, end
            )
            ledger.set_events_offset(self.device_id, end, key)
            piece, start = piece[n:], end
        if not piece:
            return
        key = events_key(self.ctx.site, self.device_id, start, start + len(piece), _sha_of(piece))
        now = self.ctx.clock.now()
        with self.ctx.uploads:
            self.ctx.store.put_bytes(
                key, piece, retain_until=retain_until(now, now, self.ctx.store.retention_days)
            )
        fault_point("events-stored")
        ledger.set_events_offset(self.device_id, start + len(piece), key)

    def _stored_pieces(self, offset: int) -> list[tuple[int, str]]:
        """(end, key) of stored event log pieces chained from `offset`, in order."""
        by_start: dict[int, tuple[int, str]] = {}
        for key in self.ctx.store.list(events_prefix(self.ctx.site, self.device_id)):
            piece = events_range(key)
            if piece is not None and piece[0] >= offset:
                by_start.setdefault(piece[0], (piece[1], key))
        chain: list[tuple[int, str]] = []
        while offset in by_start:
            end, key = by_start[offset]
            chain.append((end, key))
            offset = end
        return chain

    def _settle_releases(self, lines: bytes) -> None:
        """Mark released what the camera's signed log says it deleted against a receipt."""
        from formats.eventlog import EventLogError, signed_by_device, verify_event_piece

        try:
            # Hashes and links of every line; the signature (~0.4 ms) only of lines used.
            events = verify_event_piece(
                lines, self.device_public, signatures=False, origin=f"event log of {self.device_id}"
            )
        except EventLogError as exc:
            self.report.notes.append(
                f"event log does not verify, releases not settled from it: {exc}"
            )
            log.error("camera %s: %s", self.device_id, exc)
            return
        ledger = self.ctx.ledger
        for event in events:
            if event.kind != "segment_released":
                continue
            rec_id, name, sha = (event.fields.get(k) for k in ("recording_id", "segment", "sha256"))
            if not all(isinstance(v, str) for v in (rec_id, name, sha)):
                continue
            seg = ledger.segment(self.device_id, str(rec_id), str(name))
            if seg is None or seg.state != STORED or not hmac.compare_digest(seg.sha256, str(sha)):
                continue
            if not signed_by_device(event, self.device_public):
                self.report.notes.append(
                    f"event log line {event.seq} is not signed by the "
                    "camera; release not settled from it"
                )
                continue
            ledger.mark_released(
                self.device_id, seg.recording_id, seg.name, seg.sha256, how="camera event log"
            )
            log.info(
                "camera %s: %s/%s released (camera's signed event log)",
                self.device_id,
                seg.recording_id,
                seg.name,
            )


__all__ = [
    "MAX_EVENT_LOG_PIECE",
    "CameraIngest",
    "CameraRefused",
    "DockContext",
    "IngestAborted",
    "SlotGone",
    "Stopping",
]
