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

Anything that fails verification is put in the store's quarantine with the reason,
recorded, reported, and never released. The volume is read-only to the dock.
Every step is idempotent against the ledger, so a dock killed at any instant
resumes without uploading twice or releasing anything that is not durable.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import queue
import re
import signal
import stat
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from crypto.errors import FormatError
from crypto.format import (
    HEADER_NAME,
    MANIFEST_MAX_SIZE,
    MANIFEST_NAME,
    PART_SUFFIX,
    REC_HEADER_MAX,
    segment_index_of,
)
from crypto.verify import ManifestEntry, VerifiedRecording, open_listed_segment, verify_manifest
from dock.ingest_record import write_for_recording
from dock.ledger import QUARANTINED, RELEASED, STORED, Ledger, TransitionRefused
from dock.store import (
    Store,
    StoreError,
    StoreFull,
    StoreUnavailable,
    events_key,
    object_key,
    retain_until,
    sha256_file,
)

log = logging.getLogger(__name__)

COPY_BLOCK = 1 << 20
MAX_EVENT_LOG_PIECE = 64 << 20  # bytes of event log taken per docking
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
FAULT_ENV = "BODYCAM_DOCK_FAULT"

# Progress states shown per slot.
WAITING = "waiting"
AUTHENTICATING = "authenticating"
VERIFYING = "verifying"
UPLOADING = "uploading"
RELEASING = "releasing"
DONE = "done"
QUARANTINED_STATE = "quarantined"
ERROR = "error"


class Clock(Protocol):
    def now(self) -> float: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """Wall and monotonic time of the machine (the daemon's default clock)."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class IngestAborted(Exception):
    """The slot's session stopped before it finished; nothing unsafe happened."""


class SlotGone(IngestAborted):
    """The camera was undocked (its slot vanished) mid-transfer; resume at the next docking."""


class Stopping(IngestAborted):
    """The daemon is shutting down (SIGTERM); the current chunk was finished."""


class CameraRefused(Exception):
    """The camera may not be ingested: unknown, re-keyed, or failed authentication."""


class VerificationFailed(Exception):
    """A file does not match the camera's signed manifest; the item goes to quarantine."""


# --- fault injection for crash tests ----------------------------------------------------------

_fault_lock = threading.Lock()
_fault_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Kill this process (SIGKILL) at a named point when BODYCAM_DOCK_FAULT asks for it.

    `BODYCAM_DOCK_FAULT=after-store:3` kills the dock the third time a segment has
    been stored but not yet recorded: how the crash tests reach the narrow windows
    between store, ledger and release deterministically.
    """
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    with _fault_lock:
        _fault_hits[name] = _fault_hits.get(name, 0) + 1
        hit = _fault_hits[name]
    if hit == int(nth or 1):
        log.critical("fault injection: killing the dock at %s (hit %d)", name, hit)
        os.kill(os.getpid(), signal.SIGKILL)


# --- slots ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """A docked camera as the slots root shows it."""

    name: str
    path: Path

    @property
    def volume(self) -> Path | None:
        v = self.path / "volume"
        return v if v.is_dir() else None

    @property
    def serial(self) -> str | None:
        s = self.path / "serial"
        if s.is_symlink():
            return os.path.realpath(s)
        return str(s) if s.exists() else None

    def present(self) -> bool:
        return self.path.is_dir()


# --- progress -----------------------------------------------------------------------------


@dataclass
class SlotProgress:
    """What one slot is doing, for the live view and `dock status`. Thread-safe."""

    slot: str
    clock: Clock
    device_id: str | None = None
    recording: str | None = None
    state: str = WAITING
    bytes_done: int = 0
    bytes_total: int = 0
    message: str = ""
    started: float = 0.0
    rate: float = 0.0  # bytes per second, smoothed
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _last_t: float = 0.0
    _last_bytes: int = 0

    def __post_init__(self) -> None:
        self.started = self._last_t = self.clock.monotonic()

    def set(self, state: str | None = None, **fields: Any) -> None:
        with self._lock:
            if state is not None:
                self.state = state
            for k, v in fields.items():
                setattr(self, k, v)

    def add_total(self, n: int) -> None:
        with self._lock:
            self.bytes_total += n

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self.bytes_done += n
            now = self.clock.monotonic()
            dt = now - self._last_t
            if dt >= 0.25:
                instant = (self.bytes_done - self._last_bytes) / dt
                self.rate = instant if self.rate == 0 else 0.7 * self.rate + 0.3 * instant
                self._last_t, self._last_bytes = now, self.bytes_done

    @property
    def eta(self) -> float | None:
        left = self.bytes_total - self.bytes_done
        if self.rate <= 0 or left <= 0:
            return None
        return left / self.rate

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "slot": self.slot, "device_id": self.device_id, "recording": self.recording,
                "state": self.state, "bytes_done": self.bytes_done,
                "bytes_total": self.bytes_total, "rate": self.rate, "eta": self.eta,
                "message": self.message,
            }


# --- sources of sealed files ------------------------------------------------------------------


class FileSource(Protocol):
    """Where a camera's sealed files are read from: its volume, or its serial channel."""

    kind: str

    def list_files(self) -> dict[str, dict[str, int]]:
        """{recording_id: {file name: size}} of everything under recordings/."""

    def read_small(self, relative: str, limit: int) -> bytes:
        """A whole small file (header, manifest); raises if larger than `limit`."""

    def copy(self, relative: str, out: BinaryIO, start: int,
             on_chunk: Callable[[memoryview], None]) -> int:
        """Copy from `start` to the end into `out`, chunk by chunk; returns the end offset."""

    def event_log(self, offset: int, limit: int) -> bytes:
        """Up to `limit` bytes of the signed event log from `offset`."""


class VolumeSource:
    """Reads the camera's volume as mounted in the slot (USB mass storage). Never writes."""

    kind = "volume"

    def __init__(self, volume: Path, check: Callable[[], None]) -> None:
        self.volume = Path(volume)
        self._check = check

    def _open(self, relative: str) -> int:
        path = self.volume / relative
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            self._check()
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise VerificationFailed(f"{relative} is not a regular file")
        return fd

    def list_files(self) -> dict[str, dict[str, int]]:
        root = self.volume / "recordings"
        out: dict[str, dict[str, int]] = {}
        try:
            recs = sorted(os.scandir(root), key=lambda e: e.name)
        except FileNotFoundError:
            self._check()
            return out
        for rec in recs:
            if not rec.is_dir(follow_symlinks=False) or not _NAME.fullmatch(rec.name):
                continue
            files: dict[str, int] = {}
            with os.scandir(rec.path) as it:
                for e in it:
                    if e.is_file(follow_symlinks=False) and _NAME.fullmatch(e.name):
                        files[e.name] = e.stat(follow_symlinks=False).st_size
            out[rec.name] = files
        return out

    def read_small(self, relative: str, limit: int) -> bytes:
        fd = self._open(relative)
        try:
            with os.fdopen(fd, "rb", closefd=False) as f:
                data = f.read(limit + 1)
        finally:
            os.close(fd)
        if len(data) > limit:
            raise VerificationFailed(f"{relative} is larger than the format allows ({limit})")
        return data

    def copy(self, relative: str, out: BinaryIO, start: int,
             on_chunk: Callable[[memoryview], None]) -> int:
        fd = self._open(relative)
        buf = bytearray(COPY_BLOCK)
        view = memoryview(buf)
        offset = start
        try:
            while True:
                self._check()  # between chunks: unplug and shutdown stop here
                n = os.preadv(fd, [view], offset)
                if n <= 0:
                    return offset
                chunk = view[:n]
                on_chunk(chunk)
                out.write(chunk)
                offset += n
        finally:
            os.close(fd)

    def event_log(self, offset: int, limit: int) -> bytes:
        path = self.volume / "events" / "events.jsonl"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return b""
        try:
            return os.pread(fd, limit, offset)
        finally:
            os.close(fd)


class SerialSource:
    """Reads sealed files over the camera's serial channel (transfer mode "serial")."""

    kind = "serial"

    def __init__(self, link: Any, check: Callable[[], None]) -> None:
        self.link = link
        self._check = check

    def list_files(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for listing in self.link.list_recordings():
            out[listing.recording_id] = {f.name: f.size for f in listing.files}
        return out

    def read_small(self, relative: str, limit: int) -> bytes:
        data: bytes = self.link.read(relative, 0, limit + 1)
        if len(data) > limit:
            raise VerificationFailed(f"{relative} is larger than the format allows ({limit})")
        return data

    def copy(self, relative: str, out: BinaryIO, start: int,
             on_chunk: Callable[[memoryview], None]) -> int:
        from firmware.protocol import MAX_DATA

        offset = start
        while True:
            self._check()
            size, data = self.link.read_chunk(relative, offset, MAX_DATA)
            if data:
                view = memoryview(data)
                on_chunk(view)
                out.write(view)
                offset += len(data)
            if offset >= size or not data:
                return offset

    def event_log(self, offset: int, limit: int) -> bytes:
        data: bytes = self.link.event_log(offset)
        return data[:limit]


# --- releasing in the background --------------------------------------------------------------


class _ReleaseWorker:
    """Sends RELEASEs over the serial link while the next segment is copied from the volume.

    The camera hashes and deletes a released segment (and fsyncs its folder); doing that
    in the background overlaps it with the dock's own copying. Only what the ledger
    holds as stored is ever queued. Used when files come from the volume, so the link
    has a single user: this thread.
    """

    def __init__(self, release: Callable[[str, ManifestEntry, str], None]) -> None:
        self._release = release
        self._queue: queue.Queue[tuple[str, ManifestEntry, str] | None] = queue.Queue()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="dock-release", daemon=True)
        self._thread.start()

    def submit(self, rec_id: str, entry: ManifestEntry, key: str) -> None:
        if self.error is not None:
            raise self.error
        self._queue.put((rec_id, entry, key))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self.error is not None:
                continue  # after a failure only drain: nothing more is released
            try:
                self._release(*item)
            except BaseException as exc:  # handed to the session thread
                self.error = exc

    def finish(self) -> None:
        """Wait for every queued release; raise the first failure."""
        self.close()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


# --- the report ---------------------------------------------------------------------------


@dataclass
class CameraReport:
    """The outcome of one docking, and its one-line summary for the operator."""

    slot: str
    device_id: str | None = None
    recordings: int = 0
    recordings_done: int = 0  # every listed segment durable (and released when possible)
    stored: int = 0  # segments stored in this session
    released: int = 0  # segments released in this session
    kept: int = 0  # segments left on the camera
    quarantined: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    refused: str | None = None
    store_problem: str | None = None
    aborted: str | None = None
    released_camera: bool = False

    @property
    def ok(self) -> bool:
        return not (self.quarantined or self.errors or self.refused or self.store_problem
                    or self.aborted) and self.kept == 0

    def summary(self) -> str:
        who = self.device_id or f"slot {self.slot}"
        if self.refused:
            return f"{who}: refused: {self.refused}"
        if self.ok:
            n = self.recordings
            if n == 0:
                return f"{who}: no recordings on the camera"
            noun = "recording" if n == 1 else "recordings"
            return f"{who}: all {n} {noun} stored, camera released"
        parts = [f"{self.recordings_done} of {self.recordings} recordings stored"]
        if self.released_camera:
            parts[0] += ", camera released"
        if self.aborted:
            parts.append(self.aborted)
        if self.store_problem:
            parts.append(self.store_problem)
        parts.extend(f"quarantined {q}" for q in self.quarantined)
        parts.extend(self.errors)
        if self.kept:
            parts.append(f"{self.kept} segment(s) kept on the camera")
        return f"{who}: " + "; ".join(parts)


# --- the dock's shared context ------------------------------------------------------------------


@dataclass
class DockContext:
    """What every slot's session shares: store, ledger, keys, limits, the stop flag."""

    store: Store
    ledger: Ledger
    dock_key: Any  # crypto.keys.SigningKey (signs auth and release receipts)
    site: str = "default"
    spool_root: Path | None = None
    clock: Clock = field(default_factory=SystemClock)
    uploads: threading.Semaphore = field(default_factory=lambda: threading.BoundedSemaphore(2))
    stop: threading.Event = field(default_factory=threading.Event)
    profiles_dir: Path | None = None
    link_factory: Callable[[str], Any] | None = None
    link_timeout: float = 2.0

    def spool_dir(self) -> Path:
        staging = self.store.staging_dir
        if staging is not None:
            return staging / "spool"  # same filesystem: the store links, never copies
        if self.spool_root is None:
            raise ValueError("a spool directory is needed for this store (--state DIR)")
        return self.spool_root

    def open_link(self, port: str) -> Any:
        if self.link_factory is not None:
            return self.link_factory(port)
        from dock.link import CameraLink

        return CameraLink(port, timeout=self.link_timeout)


def _sha_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class CameraIngest:
    """One docking of one camera, from HELLO to the summary line."""

    def __init__(self, slot: Slot, ctx: DockContext, progress: SlotProgress | None = None,
                 cancel: threading.Event | None = None) -> None:
        self.slot = slot
        self.ctx = ctx
        self.progress = progress or SlotProgress(slot.name, ctx.clock)
        self.cancel = cancel or threading.Event()
        self.report = CameraReport(slot.name)
        self.link: Any = None
        self.device_id = ""
        self.device_public = b""
        self.source: FileSource | None = None
        self._spool: Path | None = None
        self._hold: set[str] = set()  # segments not to release (see _ingest_recording)
        self._releaser: _ReleaseWorker | None = None
        self._deferred_profile: Any = None

    # --- session ---------------------------------------------------------------------------

    def check_alive(self) -> None:
        """Raise at a chunk boundary if the camera was undocked or the dock is stopping."""
        if self.ctx.stop.is_set():
            raise Stopping("dock shutting down: stopped after the current chunk; resumes at "
                           "the next start")
        if self.cancel.is_set() or not self.slot.present():
            raise SlotGone("undocked during transfer; dock the camera again to resume")
        releaser = self._releaser
        if releaser is not None and releaser.error is not None \
                and threading.current_thread() is not releaser._thread:
            raise releaser.error

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
            self.progress.set(ERROR, message=f"refused: {exc}")
            log.warning("slot %s: camera refused: %s", self.slot.name, exc)
        except IngestAborted as exc:
            self.report.aborted = str(exc)
            self.progress.set(ERROR, message=str(exc))
            log.warning("slot %s: %s", self.slot.name, exc)
        except (StoreUnavailable, StoreFull) as exc:
            self.report.store_problem = f"store problem: {exc}"
            self.progress.set(ERROR, message=f"store: {exc}")
            log.error("slot %s: %s", self.slot.name, exc)
        except (LinkClosed, LinkTimeout) as exc:
            if not self.slot.present() or self.cancel.is_set():
                self.report.aborted = "undocked during transfer; dock the camera again to resume"
            else:
                self.report.errors.append(f"camera stopped answering: {exc}")
            self.progress.set(ERROR, message=self.report.aborted or str(exc))
        except (LinkError, StoreError, TransitionRefused, OSError) as exc:
            if isinstance(exc, OSError) and not self.slot.present():
                self.report.aborted = "undocked during transfer; dock the camera again to resume"
            else:
                self.report.errors.append(f"{type(exc).__name__}: {exc}")
            self.progress.set(ERROR, message=str(exc))
            log.error("slot %s: %s", self.slot.name, exc)
        finally:
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
            self.progress.set(QUARANTINED_STATE, message=r.summary(), recording=None)
        elif r.ok:
            self.progress.set(DONE, message=r.summary(), recording=None)
        else:
            self.progress.set(ERROR, message=r.summary(), recording=None)

    def _connect(self) -> None:
        from dock.link import AuthFailed

        self.progress.set(AUTHENTICATING)
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
            self.source = VolumeSource(volume, self.check_alive)
            self.report.notes.append("no serial link: stored only, nothing released")
            return
        self.link = self.ctx.open_link(serial)
        info = self.link.hello()
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
        if self.ctx.dock_key is None:
            raise CameraRefused("the dock has no dock key (--keys DIR with dock.key)")
        try:
            self.link.auth(self.ctx.dock_key, device.public_key)
        except AuthFailed as exc:
            raise CameraRefused(f"authentication failed: {exc}") from None
        self.device_id, self.device_public = device.device_id, device.public_key
        drift = self.link.set_time(self.ctx.clock.now())
        if abs(drift) > 2.0:
            self.report.notes.append(f"camera clock was off by {drift:+.1f} s, corrected")
        self._push_profile(info)
        if info.transfer_mode == "serial" or volume is None:
            if info.transfer_mode != "serial":
                self.report.notes.append("no volume in the slot: copying over serial")
            self.source = SerialSource(self.link, self.check_alive)
        else:
            if volume_id is not None and volume_id[0] != info.device_id:
                raise CameraRefused(
                    f"the volume in slot {self.slot.name} belongs to {volume_id[0]}, the serial "
                    f"port to {info.device_id}: re-seat the camera"
                )
            self.source = VolumeSource(volume, self.check_alive)

    def _unknown(self, device_id: str) -> str:
        return (
            f"camera {device_id} is not registered; the coordinator registers it with "
            f"`bodycam dock register {self.slot.path}/volume/DEVICE.json --role coordinator`"
        )

    def _volume_identity(self, volume: Path | None) -> tuple[str, bytes] | None:
        if volume is None:
            return None
        from firmware.identity import IdentityError, read_device_info

        try:
            info = read_device_info(volume / "DEVICE.json")
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
        return self.ctx.dock_key.public_bytes().hex() in trusted

    def _push_profile(self, info: Any, *, after_transfer: bool = False) -> None:
        from dock.link import LinkError

        directory = self.ctx.profiles_dir
        if directory is None:
            return
        profile = directory / f"{info.device_id}.toml"
        sig = directory / f"{info.device_id}.toml.sig"
        if not profile.is_file():
            return
        from firmware.protocol import MAX_PROFILE, MAX_SIGNATURE_FILE

        with open(profile, "rb") as f:
            data = f.read(MAX_PROFILE + 1)
        if len(data) > MAX_PROFILE:
            self.report.errors.append(f"staged profile {profile} is larger than {MAX_PROFILE} "
                                      "bytes; not flashed")
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
            self.report.notes.append("staged profile does not trust this dock: flashed after "
                                     "the transfer")
            return
        with open(sig, "rb") as f:
            signature = f.read(MAX_SIGNATURE_FILE + 1)
        try:
            active = self.link.profile_flash(data, signature)
        except LinkError as exc:
            self.report.errors.append(f"staged profile refused by the camera: {exc}")
            return
        self.report.notes.append(f"profile {active.name} v{active.version} flashed")
        log.info("camera %s: flashed profile %s v%d", info.device_id, active.name,
                 active.version)

    # --- recordings --------------------------------------------------------------------------

    def _ingest_all(self) -> None:
        assert self.source is not None
        # Before touching anything: a store that cannot take objects means nothing moves.
        self.ctx.store.check()
        files = self.source.list_files()
        self._spool = self.ctx.spool_dir() / self.ctx.site / self.device_id
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
            self._releaser = _ReleaseWorker(self._release_now)
        for rec_id in sorted(files):
            self.check_alive()
            self.report.recordings += 1
            self.progress.set(VERIFYING, recording=rec_id)
            try:
                if self._ingest_recording(rec_id, files[rec_id]):
                    self.report.recordings_done += 1
            finally:
                self._clean_spool(rec_id)
        if self._releaser is not None:
            releaser, self._releaser = self._releaser, None
            self.progress.set(RELEASING)
            releaser.finish()
        # What is left on the camera now, as the camera itself shows it.
        left = self.source.list_files()
        self.report.kept = sum(
            1 for names in left.values() for n in names if segment_index_of(n) is not None
        )
        self.report.released_camera = self.link is not None and self.report.kept == 0

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
                self.report.notes.append(f"{rec_id}: still being sealed, left on the camera")
                return False
            self._quarantine_recording(rec_id, files, "recording.hdr or manifest.bcm missing: "
                                                      "the recording cannot be verified")
            return False
        spool = self._spool / rec_id
        spool.mkdir(parents=True, exist_ok=True)
        header = self.source.read_small(f"{base}/{HEADER_NAME}", REC_HEADER_MAX)
        manifest = self.source.read_small(f"{base}/{MANIFEST_NAME}", MANIFEST_MAX_SIZE)
        (spool / HEADER_NAME).write_bytes(header)
        (spool / MANIFEST_NAME).write_bytes(manifest)
        try:
            vr = verify_manifest(spool, self.device_public)
        except FormatError as exc:
            self._quarantine_recording(rec_id, files, f"manifest does not verify: {exc}")
            return False
        if vr.device_id != self.device_id or vr.recording_id != rec_id:
            self._quarantine_recording(
                rec_id, files, f"folder {rec_id} holds recording {vr.recording_id} of "
                               f"{vr.device_id}")
            return False
        now = self.ctx.clock.now()
        until = retain_until(vr.started_utc, now, self.ctx.store.retention_days)
        header_key = object_key(self.ctx.site, self.device_id, rec_id, HEADER_NAME,
                                _sha_of(header))
        manifest_key = object_key(self.ctx.site, self.device_id, rec_id, MANIFEST_NAME,
                                  _sha_of(manifest))
        # Header and manifest first: without them no stored segment could be opened.
        with self.ctx.uploads:
            self.ctx.store.put_bytes(header_key, header, retain_until=until)
            self.ctx.store.put_bytes(manifest_key, manifest, retain_until=until)
        ledger.note_recording(self.device_id, rec_id, started_utc=vr.started_utc,
                              complete=vr.complete, segments=len(vr.segments),
                              header_key=header_key, manifest_key=manifest_key)
        listed = {e.name for e in vr.segments} | {HEADER_NAME, MANIFEST_NAME}
        unlisted = sorted(set(files) - listed)
        # Unlisted files first: quarantined before any release can change the folder.
        for name in unlisted:
            self._unlisted_file(vr, name, files[name])
        self._hold = set()
        if vr.complete and any(segment_index_of(n) is not None for n in unlisted):
            # The camera removes a finished recording's folder, every file in it, with its
            # last released segment: keep one listed segment back so the quarantined file
            # stays on the camera as evidence.
            present = [e.name for e in vr.segments if e.name in files]
            if present:
                self._hold = {present[-1]}
        all_durable = True
        for entry in vr.segments:
            self.check_alive()
            if not self._ingest_segment(vr, entry, files.get(entry.name), spool, until):
                all_durable = False
        if all_durable:  # the chain of custody, signed by this dock, next to the footage
            with self.ctx.uploads:
                write_for_recording(self.ctx, vr, header, manifest, until)
        return all_durable

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
            self.report.notes.append(f"{rec_id}/{name}: unsealed leftover, left on the camera")
            return
        if segment_index_of(name) is None:
            self.report.notes.append(f"{rec_id}/{name}: not part of the recording, left alone")
            return
        if not vr.complete:
            # sealed but not yet in the manifest (power cut between the two): the camera's
            # boot recovery adds it; the next docking takes it.
            self.report.notes.append(f"{rec_id}/{name}: not yet in the manifest, left on camera")
            return
        reason = "segment file is not in the signed manifest of a finished recording (spliced)"
        self._quarantine_file(rec_id, name, size, None, reason)

    def _ingest_segment(self, vr: VerifiedRecording, entry: ManifestEntry,
                        camera_size: int | None, spool: Path, until: float) -> bool:
        """Copy, verify, store, record, release one segment. True when it is durable."""
        ledger, store = self.ctx.ledger, self.ctx.store
        rec_id, name = vr.recording_id, entry.name
        key = object_key(self.ctx.site, self.device_id, rec_id, name, entry.sha256)
        seg = ledger.segment(self.device_id, rec_id, name)
        if seg is not None and seg.sha256 != entry.sha256 and seg.state != QUARANTINED:
            self._quarantine_file(rec_id, name, camera_size or 0, entry,
                                  f"the signed manifest now lists sha256 {entry.sha256}, the "
                                  f"ledger recorded {seg.sha256} for this segment")
            return False
        if seg is not None and seg.state == QUARANTINED:
            self.report.quarantined.append(f"{rec_id}/{name}: {seg.reason}")
            return False
        if seg is not None and seg.durable:
            if camera_size is not None:
                self._release(rec_id, entry, key)
            elif seg.state == STORED:
                ledger.mark_released(self.device_id, rec_id, name, entry.sha256,
                                     how="gone from the camera after a receipt")
            return True
        if camera_size is None:
            stored = store.stat(key)
            if stored is not None:
                # Stored before the dock could record it, then released: catch up.
                ledger.mark_stored(self.device_id, rec_id, name, entry.sha256, entry.size, key,
                                   stored.to_json())
                ledger.mark_released(self.device_id, rec_id, name, entry.sha256,
                                     how="gone from the camera after a receipt")
                return True
            self.report.errors.append(
                f"{rec_id}/{name} is listed in the signed manifest but is neither on the camera "
                "nor in the store"
            )
            return False
        self.progress.set(UPLOADING, recording=rec_id)
        part = spool / f"{name}{PART_SUFFIX}"
        try:
            sha, size = self._copy_verified(vr, entry, part)
        except VerificationFailed as exc:
            self._quarantine_file(rec_id, name, camera_size, entry, str(exc), spooled=part)
            return False
        ledger.mark_copied(self.device_id, rec_id, name, sha, size)
        with self.ctx.uploads:
            self.check_alive()
            stored = store.put_file(key, part, sha256=sha, size=size, retain_until=until,
                                    consume=True)
        fault_point("after-store")
        ledger.mark_stored(self.device_id, rec_id, name, sha, size, key, stored.to_json())
        self.report.stored += 1
        fault_point("after-ledger")
        self._release(rec_id, entry, key)
        return True

    def _copy_verified(self, vr: VerifiedRecording, entry: ManifestEntry,
                       part: Path) -> tuple[str, int]:
        """Copy into the spool, hashing while copying, and check against the manifest."""
        assert self.source is not None
        relative = f"recordings/{vr.recording_id}/{entry.name}"
        resume = self.source.kind == "serial"
        for attempt in (1, 2):
            start = part.stat().st_size if resume and part.exists() else 0
            if start > entry.size:
                start = 0
            digest = hashlib.sha256()
            if start:
                with open(part, "rb") as f:
                    while block := f.read(COPY_BLOCK):
                        digest.update(block)
            if part.exists():
                os.chmod(part, 0o644)
            else:
                part.touch(mode=0o644)
            with open(part, "r+b") as out:
                out.seek(start)
                out.truncate(start)

                def on_chunk(view: memoryview, digest: Any = digest) -> None:
                    digest.update(view)
                    self.progress.add_bytes(len(view))

                end = self.source.copy(relative, out, start, on_chunk)
            sha = digest.hexdigest()
            try:
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
    def _check_segment(part: Path, entry: ManifestEntry, vr: VerifiedRecording, sha: str,
                       size: int) -> None:
        if size != entry.size:
            raise VerificationFailed(
                f"{size} bytes, the signed manifest lists {entry.size} (sha256 {sha})")
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
        from firmware.protocol import ReleaseReceipt

        ledger = self.ctx.ledger
        seg = ledger.segment(self.device_id, rec_id, entry.name)
        if seg is None or not seg.durable or seg.sha256 != entry.sha256:
            raise TransitionRefused(f"{rec_id}/{entry.name} is not recorded as stored")
        if self.link is None:
            return
        if entry.name in self._hold:
            self.report.notes.append(
                f"{rec_id}/{entry.name}: stored, held on the camera with the quarantined file")
            return
        if self.ctx.store.stat(key) is None:
            self.report.errors.append(
                f"{rec_id}/{entry.name}: recorded as stored but missing from the store; "
                "not released (check the store)")
            return
        self.check_alive()
        if self._releaser is None:
            self.progress.set(RELEASING, recording=rec_id)
        receipt = ReleaseReceipt.sign(self.ctx.dock_key, self.device_id, rec_id, entry.name,
                                      entry.sha256)
        try:
            self.link.release(receipt)
            how = "receipt"
        except RemoteNotFound:
            how = "gone from the camera after a receipt"
        except ReceiptRejected as exc:
            self.report.errors.append(f"{rec_id}/{entry.name}: camera refused the release: "
                                      f"{exc.message}")
            return
        fault_point("after-release")
        ledger.mark_released(self.device_id, rec_id, entry.name, entry.sha256, how=how)
        self.report.released += 1

    # --- quarantine --------------------------------------------------------------------------

    def _quarantine_file(self, rec_id: str, name: str, size: int, entry: ManifestEntry | None,
                         reason: str, spooled: Path | None = None) -> None:
        """Put one failing file in the store's quarantine; it stays on the camera."""
        assert self._spool is not None and self.source is not None
        path = spooled
        if path is None or not path.exists():
            path = self._spool / rec_id / f"{name}.quarantine"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as out:
                self.source.copy(f"recordings/{rec_id}/{name}", out, 0, lambda v: None)
        data_sha = sha256_file(path)
        qkey = object_key(self.ctx.site, self.device_id, rec_id, name, data_sha)
        now = self.ctx.clock.now()
        with self.ctx.uploads:
            stored = self.ctx.store.quarantine(
                qkey, path, reason, now=now,
                details={"device_id": self.device_id, "recording_id": rec_id, "file": name,
                         "manifest_sha256": entry.sha256 if entry else None,
                         "slot": self.slot.name},
                retain_until=retain_until(now, now, self.ctx.store.retention_days),
            )
        path.unlink(missing_ok=True)
        self.ctx.ledger.mark_quarantined(self.device_id, rec_id, name,
                                         entry.sha256 if entry else data_sha, size, reason,
                                         stored.key)
        self.report.quarantined.append(f"{rec_id}/{name}: {reason}")
        self.progress.set(QUARANTINED_STATE, message=f"{rec_id}/{name}: {reason}")
        log.error("camera %s: %s/%s quarantined: %s", self.device_id, rec_id, name, reason)

    def _quarantine_recording(self, rec_id: str, files: dict[str, int], reason: str) -> None:
        for name in sorted(files):
            if name.endswith(PART_SUFFIX):
                continue
            self.check_alive()
            before = len(self.report.quarantined)
            self._quarantine_file(rec_id, name, files[name], None, reason)
            del self.report.quarantined[before:]
        self.ctx.ledger.quarantine_recording(self.device_id, rec_id, reason)
        self.report.quarantined.append(f"{rec_id}: {reason}")

    # --- event log -----------------------------------------------------------------------------

    def _offload_events(self) -> None:
        assert self.source is not None
        ledger = self.ctx.ledger
        offset = ledger.events_offset(self.device_id)
        data = self.source.event_log(offset, MAX_EVENT_LOG_PIECE)
        cut = data.rfind(b"\n") + 1  # whole lines only; the rest comes next time
        if cut <= 0:
            return
        piece = data[:cut]
        key = events_key(self.ctx.site, self.device_id, offset, offset + cut, _sha_of(piece))
        now = self.ctx.clock.now()
        with self.ctx.uploads:
            self.ctx.store.put_bytes(key, piece, retain_until=retain_until(
                now, now, self.ctx.store.retention_days))
        ledger.set_events_offset(self.device_id, offset + cut, key)


__all__ = [
    "CameraIngest", "CameraRefused", "CameraReport", "DockContext", "Slot", "SlotGone",
    "SlotProgress", "Stopping", "SystemClock", "VolumeSource",
    "SerialSource", "VerificationFailed", "fault_point",
]
