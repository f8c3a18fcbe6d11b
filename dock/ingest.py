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
enters (dock/names.py, both transfer modes), a refused one is reported and never becomes
a path, no copy reads past the size the signed manifest allows, and every file left on
the camera at the end is named with why. Every note reaches the summary line.

Anything that fails verification is put in the store's quarantine with the reason,
recorded, reported, and never released. The volume is read-only to the dock.
Every step is idempotent against the ledger, so a dock killed at any instant
resumes without uploading twice or releasing anything that is not durable.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import itertools
import logging
import os
import queue
import re
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
from dock.faults import FAULT_ENV, fault_point
from dock.ingest_record import write_for_recording
from dock.ledger import QUARANTINED, RELEASED, STORED, Ledger, TransitionRefused
from dock.names import (
    RECORDINGS_DIR,
    CameraListing,
    ListingBounds,
    ListingBuilder,
    ListingRefused,
    NameRefused,
    check_device_id,
    check_recording_id,
    display_path,
    shown,
)
from dock.store import (
    Store,
    StoreError,
    StoreFull,
    StoreIntegrityError,
    StoreUnavailable,
    events_key,
    object_key,
    retain_until,
    sha256_file,
    split_name,
)

log = logging.getLogger(__name__)

COPY_BLOCK = 1 << 20
MAX_EVENT_LOG_PIECE = 64 << 20  # bytes of event log taken per docking
# A quarantined file without a manifest entry (nothing says how long it may be) is kept
# as evidence up to this many bytes: a camera cannot make the dock copy without end.
MAX_EVIDENCE = 256 << 20
MAX_EVIDENCE_PER_SESSION = 1 << 30  # and all of them together, per docking
MAX_NAME_NOTES = 32  # files left on the camera named in notes; the rest are counted
# What a camera volume holds besides recordings, and what stays on it after a docking.
_EVIDENCE_LIMITS = {HEADER_NAME: REC_HEADER_MAX, MANIFEST_NAME: MANIFEST_MAX_SIZE}
VOLUME_KEEPS = {"DEVICE.json": None, "events": {"events.jsonl"}, RECORDINGS_DIR: None}
_EVENTS_PIECE = re.compile(r"events-(\d{12})-(\d{12})\.jsonl")

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

    def list_files(self) -> CameraListing:
        """Every file under recordings/: accepted names (dock/names.py) with their sizes,
        and what was refused, with why. Raises ListingRefused beyond the bounds."""

    def read_small(self, relative: str, limit: int) -> bytes:
        """A whole small file (header, manifest); raises if larger than `limit`."""

    def copy(self, relative: str, out: BinaryIO, start: int,
             on_chunk: Callable[[memoryview], None], limit: int) -> tuple[int, int]:
        """Copy from `start` into `out`, chunk by chunk, never past byte `limit`.

        Returns (end offset, size of the file as the camera reports it)."""

    def event_log(self, offset: int, limit: int) -> bytes:
        """Up to `limit` bytes of the signed event log from `offset`."""


class VolumeSource:
    """Reads the camera's volume as mounted in the slot (USB mass storage). Never writes."""

    kind = "volume"

    def __init__(self, volume: Path, check: Callable[[], None],
                 bounds: ListingBounds | None = None) -> None:
        self.volume = Path(volume)
        self._check = check
        self.bounds = bounds

    def _open(self, relative: str) -> int:
        """Open a file below the volume without following any link on the way.

        Listed names are checked already; walking folder by folder with O_NOFOLLOW also
        stops a folder swapped for a symlink after the listing from leading the dock
        outside the volume.
        """
        parts = relative.split("/")
        try:
            fd = os.open(self.volume, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            self._check()
            raise
        try:
            for part in parts[:-1]:
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = nxt
            file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
        except FileNotFoundError:
            self._check()
            raise
        except NotADirectoryError:
            raise VerificationFailed(f"{relative}: a folder on the way is not a folder") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise VerificationFailed(f"{relative} is a symbolic link") from None
            raise
        finally:
            os.close(fd)
        if not stat.S_ISREG(os.fstat(file_fd).st_mode):
            os.close(file_fd)
            raise VerificationFailed(f"{relative} is not a regular file")
        return file_fd

    def _scan(self, folder: Path, builder: ListingBuilder) -> list[os.DirEntry[str]]:
        """A folder's entries, sorted; each one counts against the listing bound."""
        entries: list[os.DirEntry[str]] = []
        with os.scandir(folder) as it:
            for entry in it:
                if len(entries) >= builder.bounds.max_files:
                    raise ListingRefused(
                        f"{shown(folder.name)} on the camera holds more than "
                        f"{builder.bounds.max_files} entries; nothing is taken from it "
                        "(check the camera)")
                entries.append(entry)
        return sorted(entries, key=lambda e: e.name)

    def list_files(self) -> CameraListing:
        builder = ListingBuilder(self.bounds)
        root = self.volume / RECORDINGS_DIR
        try:
            recs = self._scan(root, builder)
        except FileNotFoundError:
            self._check()
            return builder.result()
        for rec in recs:
            if rec.is_symlink():
                builder.refuse(display_path(rec.name), "a symbolic link, not a recording "
                                                       "folder: not followed")
                continue
            if not rec.is_dir(follow_symlinks=False):
                builder.refuse(display_path(rec.name), "not a recording folder")
                continue
            try:
                check_recording_id(rec.name)
            except NameRefused as exc:  # refused whole: nothing inside it is looked at
                builder.refuse(display_path(rec.name), f"name refused: {exc.reason}")
                continue
            try:
                files = self._scan(Path(rec.path), builder)
            except FileNotFoundError:
                continue  # released and removed meanwhile
            if not files:
                builder.refuse(display_path(rec.name), "an empty folder")
            for e in files:
                if e.is_symlink() or not e.is_file(follow_symlinks=False):
                    kind = "a symbolic link" if e.is_symlink() else "not a regular file"
                    builder.refuse(display_path(rec.name, e.name), f"{kind}: not taken")
                    continue
                try:
                    size = e.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue
                builder.add(rec.name, e.name, size)
        return builder.result()

    def others(self) -> dict[str, str]:
        """What the volume holds outside recordings/ beyond what a camera keeps there."""
        found: dict[str, str] = {}
        try:
            with os.scandir(self.volume) as it:
                top = sorted(itertools.islice(it, MAX_NAME_NOTES * 10), key=lambda e: e.name)
        except FileNotFoundError:
            return found
        for entry in top:
            name = entry.name if len(entry.name) <= 64 else shown(entry.name)
            if entry.name not in VOLUME_KEEPS:
                found[name] = "not part of a camera volume"
                continue
            keeps = VOLUME_KEEPS[entry.name]
            if keeps is None or entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
                continue
            with os.scandir(entry.path) as it:
                inside = sorted(e.name for e in itertools.islice(it, MAX_NAME_NOTES * 10))
            for inner in inside:
                if inner not in keeps:
                    found[f"{name}/{shown(inner) if len(inner) > 64 else inner}"] = \
                        "not part of a camera volume"
        return found

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
             on_chunk: Callable[[memoryview], None], limit: int) -> tuple[int, int]:
        fd = self._open(relative)
        buf = bytearray(COPY_BLOCK)
        view = memoryview(buf)
        offset = start
        try:
            while offset < limit:
                self._check()  # between chunks: unplug and shutdown stop here
                want = min(COPY_BLOCK, limit - offset)
                n = os.preadv(fd, [view[:want]], offset)
                if n <= 0:
                    break
                chunk = view[:n]
                on_chunk(chunk)
                out.write(chunk)
                offset += n
            return offset, os.fstat(fd).st_size
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

    def __init__(self, link: Any, check: Callable[[], None],
                 bounds: ListingBounds | None = None) -> None:
        self.link = link
        self._check = check
        self.bounds = bounds

    def list_files(self) -> CameraListing:
        listing: CameraListing = self.link.list_files(self.bounds)
        return listing

    def read_small(self, relative: str, limit: int) -> bytes:
        data: bytes = self.link.read(relative, 0, limit + 1)
        if len(data) > limit:
            raise VerificationFailed(f"{relative} is larger than the format allows ({limit})")
        return data

    def copy(self, relative: str, out: BinaryIO, start: int,
             on_chunk: Callable[[memoryview], None], limit: int) -> tuple[int, int]:
        from firmware.protocol import MAX_DATA

        offset, size = start, start
        while offset < limit:
            self._check()
            size, data = self.link.read_chunk(relative, offset, min(MAX_DATA, limit - offset))
            if data:
                view = memoryview(data)
                on_chunk(view)
                out.write(view)
                offset += len(data)
            if offset >= size or not data:
                break
        return offset, size

    def event_log(self, offset: int, limit: int) -> bytes:
        data: bytes = self.link.event_log(offset, limit)
        return data


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
    # Files left on the camera besides kept segments (display path -> why): refused
    # names, odd files, unsealed leftovers. Each is in `notes` as well.
    left: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.quarantined or self.errors or self.refused or self.store_problem
                    or self.aborted or self.left) and self.kept == 0

    def summary(self) -> str:
        """One line: the outcome, then every note the session made."""
        who = self.device_id or f"slot {self.slot}"
        notes = f"; notes: {'; '.join(self.notes)}" if self.notes else ""
        if self.refused:
            return f"{who}: refused: {self.refused}{notes}"
        if self.ok:
            n = self.recordings
            if n == 0:
                return f"{who}: no recordings on the camera{notes}"
            noun = "recording" if n == 1 else "recordings"
            return f"{who}: all {n} {noun} stored, camera released{notes}"
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
        if self.left:
            parts.append(f"{len(self.left)} other file(s) left on the camera")
        return f"{who}: " + "; ".join(parts) + notes


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
    listing_bounds: ListingBounds = field(default_factory=ListingBounds)
    event_log_piece: int = MAX_EVENT_LOG_PIECE  # bytes of event log read per docking

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
        # (recording, segment) not to release (see _ingest_recording). Keyed by recording
        # and never reset: the release worker may act on a recording after the next began.
        self._hold: set[tuple[str, str]] = set()
        self._unfinished: set[str] = set()  # recordings without END in their manifest
        self._evidence_bytes = 0  # copied for quarantine in this session
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
            self.progress.set(ERROR, message=f"refused: {exc}")
            log.warning("slot %s: camera refused: %s", self.slot.name, exc)
        except IngestAborted as exc:
            self.report.aborted = str(exc)
            self.progress.set(ERROR, message=str(exc))
            log.warning("slot %s: %s", self.slot.name, exc)
        except ListingRefused as exc:
            self.report.errors.append(f"listing refused: {exc}")
            self.progress.set(ERROR, message=str(exc))
            log.error("slot %s: camera %s: %s", self.slot.name, self.device_id, exc)
        except NameRefused as exc:
            # Names are checked where they enter (list_files); one reaching a key or a
            # path unchecked is a bug, reported here rather than taking the daemon down.
            self.report.errors.append(f"name refused: {exc}")
            self.progress.set(ERROR, message=str(exc))
            log.error("slot %s: camera %s: %s", self.slot.name, self.device_id, exc)
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
        if self.ctx.dock_key is None:
            raise CameraRefused("the dock has no dock key (--keys DIR with dock.key)")
        try:
            self.link.auth(self.ctx.dock_key, device.public_key)
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
        from firmware.protocol import CLOCK_JUMP_SECONDS

        try:
            drift = self.link.set_time(self.ctx.clock.now())
        except ClockRefused as exc:
            # The camera's profile bounds how far a dock may move its clock: the footage
            # still comes off, but a person has to look at that camera's time.
            off = f"{exc.drift:+.1f} s" if exc.drift is not None else "too far"
            limit = f"{exc.limit} s" if exc.limit is not None else "its profile's limit"
            self._note(f"camera clock is off by {off}, more than its profile lets a dock "
                       f"correct ({limit}): not corrected, check the camera's clock")
            return
        if abs(drift) > CLOCK_JUMP_SECONDS:
            self._note(f"camera clock was off by {drift:+.1f} s, corrected")
        elif abs(drift) > 2.0:
            self.report.notes.append(f"camera clock was off by {drift:+.1f} s, corrected")
            log.info("slot %s: camera %s: camera clock was off by %+.1f s, corrected",
                     self.slot.name, self.device_id, drift)

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
            self._note("staged profile does not trust this dock: flashed after the transfer")
            return
        with open(sig, "rb") as f:
            signature = f.read(MAX_SIGNATURE_FILE + 1)
        try:
            active = self.link.profile_flash(data, signature)
        except LinkError as exc:
            self.report.errors.append(f"staged profile refused by the camera: {exc}")
            return
        self._note(f"profile {active.name} v{active.version} flashed")
        log.info("camera %s: flashed profile %s v%d", info.device_id, active.name,
                 active.version)

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
            for name in sorted(names):
                path = display_path(rec_id, name)
                if name.endswith(PART_SUFFIX):
                    self._left_file(path, "unsealed leftover (.part): the camera's recovery "
                                          "seals or removes it, the next docking takes it")
                elif segment_index_of(name) is None and not segments \
                        and rec_id not in self._unfinished:
                    # An unfinished recording keeps its header and manifest by design; a
                    # finished one goes with its last segment unless something else is there.
                    self._left_file(path, "the camera kept this finished recording's folder "
                                          "(it holds files the camera does not remove)")
        if isinstance(self.source, VolumeSource):
            for path, reason in self.source.others().items():
                self._left_file(path, reason)
        self.report.kept = kept
        self.report.released_camera = (self.link is not None and kept == 0
                                       and not self.report.left)

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
        if not vr.complete:
            self._unfinished.add(rec_id)
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
        if vr.complete and any(segment_index_of(n) is not None for n in unlisted):
            # The camera removes a finished recording's folder, every file in it, with its
            # last released segment: keep one listed segment back so the quarantined file
            # stays on the camera as evidence.
            present = [e.name for e in vr.segments if e.name in files]
            if present:
                self._hold.add((rec_id, present[-1]))
        all_durable = True
        for entry in vr.segments:
            self.check_alive()
            if not self._ingest_segment(vr, entry, files.get(entry.name), spool, until):
                all_durable = False
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
            log.info("camera %s: dropped the spool of %s (%d file(s)), no longer on the "
                     "camera", self.device_id, entry.name, removed)

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
            self._left_file(display_path(rec_id, name), "unsealed leftover (.part): the "
                            "camera's recovery seals or removes it, the next docking takes it")
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
            if camera_size is None:
                if seg.state == STORED:
                    ledger.mark_released(self.device_id, rec_id, name, entry.sha256,
                                         how="gone from the camera after a receipt")
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
        if camera_size != entry.size:
            # Refused before a byte is copied: a camera listing 2 GiB for a segment the
            # manifest signs at 2 MiB must not make the dock copy 2 GiB first.
            self._quarantine_file(rec_id, name, camera_size, entry,
                                  f"the camera lists {camera_size} bytes, the signed manifest "
                                  f"{entry.size}")
            return False
        self.progress.set(UPLOADING, recording=rec_id)
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
                stored = store.put_file(key, part, sha256=sha, size=size, retain_until=until,
                                        consume=True)
        except StoreIntegrityError as exc:
            # The store holds other bytes under this content's name and cannot replace them
            # (S3 under Object Lock): keep our verified copy in quarantine, never release.
            self._quarantine_file(rec_id, name, size, entry, f"store integrity: {exc}",
                                  spooled=part)
            return False
        fault_point("after-store")
        ledger.mark_stored(self.device_id, rec_id, name, sha, size, key, stored.to_json())
        self.report.stored += 1
        fault_point("after-ledger")
        self._release(rec_id, entry, key)
        return True

    def _intact(self, key: str) -> bool:
        """Whether the store holds `key` with the content its name promises (hash checked)."""
        return self._verified_or_none(key) is not None

    def _verified_or_none(self, key: str) -> Any:
        try:
            return self.ctx.store.verified(key)
        except StoreIntegrityError as exc:
            log.error("camera %s: %s", self.device_id, exc)
            self.report.notes.append(f"{key}: the store held other bytes under this name; "
                                     "not trusted")
            return None

    def _copy_verified(self, vr: VerifiedRecording, entry: ManifestEntry,
                       part: Path) -> tuple[str, int]:
        """Copy into the spool, hashing while copying, and check against the manifest."""
        assert self.source is not None
        relative = f"recordings/{vr.recording_id}/{entry.name}"
        resume = self.source.kind == "serial"
        _drop_if_shared(part)
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

                # Never more than the manifest signs, whatever size the camera claims.
                end, reported = self.source.copy(relative, out, start, on_chunk, entry.size)
            sha = digest.hexdigest()
            try:
                if reported != entry.size:
                    raise VerificationFailed(f"the camera reports {reported} bytes, the signed "
                                             f"manifest lists {entry.size}")
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
        if (rec_id, entry.name) in self._hold:
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
            # Evidence is bounded too: what the manifest signs, or what the format allows.
            limit = entry.size if entry is not None else _EVIDENCE_LIMITS.get(name, MAX_EVIDENCE)
            limit = min(limit, max(0, MAX_EVIDENCE_PER_SESSION - self._evidence_bytes))
            with open(path, "wb") as out:
                end, reported = self.source.copy(f"recordings/{rec_id}/{name}", out, 0,
                                                 lambda v: None, limit)
            self._evidence_bytes += end
            reported = max(reported, size)  # the listed size, when nothing was read
            if reported > end:
                reason += f" (the first {end} of {reported} bytes kept as evidence)"
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
                self._note(f"event log: no whole line in {limit} bytes from byte {offset}; "
                           "not offloaded (check the camera's event log)")
            return
        if len(data) >= limit:
            self._note(f"event log: {cut} bytes offloaded from byte {offset}; more remains for "
                       "the next docking")
        lines = data[:cut]
        self._settle_releases(lines)
        piece, start = lines, offset
        for end, key in self._stored_pieces(offset):
            n = end - start
            if n > len(piece) or not hmac.compare_digest(_sha_of(piece[:n]),
                                                         split_name(key)[1]):
                break
            log.info("camera %s: event log %d..%d was stored before, adopted", self.device_id,
                     start, end)
            ledger.set_events_offset(self.device_id, end, key)
            piece, start = piece[n:], end
        if not piece:
            return
        key = events_key(self.ctx.site, self.device_id, start, start + len(piece),
                         _sha_of(piece))
        now = self.ctx.clock.now()
        with self.ctx.uploads:
            self.ctx.store.put_bytes(key, piece, retain_until=retain_until(
                now, now, self.ctx.store.retention_days))
        fault_point("events-stored")
        ledger.set_events_offset(self.device_id, start + len(piece), key)

    def _stored_pieces(self, offset: int) -> list[tuple[int, str]]:
        """(end, key) of stored event log pieces chained from `offset`, in order."""
        prefix = f"{self.ctx.site}/{self.device_id}/events/"
        by_start: dict[int, tuple[int, str]] = {}
        for key in self.ctx.store.list(prefix):
            m = _EVENTS_PIECE.fullmatch(split_name(key)[0])
            if m is not None and int(m[1]) >= offset:
                by_start.setdefault(int(m[1]), (int(m[2]), key))
        chain: list[tuple[int, str]] = []
        while offset in by_start:
            end, key = by_start[offset]
            chain.append((end, key))
            offset = end
        return chain

    def _settle_releases(self, lines: bytes) -> None:
        """Mark released what the camera's signed log says it deleted against a receipt."""
        from firmware.eventlog import EventLogError, signed_by_device, verify_event_piece

        try:
            # Hashes and links of every line; the signature (~0.4 ms) only of lines used.
            events = verify_event_piece(lines, self.device_public, signatures=False,
                                        origin=f"event log of {self.device_id}")
        except EventLogError as exc:
            self.report.notes.append(f"event log does not verify, releases not settled from "
                                     f"it: {exc}")
            log.error("camera %s: %s", self.device_id, exc)
            return
        ledger = self.ctx.ledger
        for event in events:
            if event.kind != "segment_released":
                continue
            rec_id, name, sha = (event.fields.get(k) for k in ("recording_id", "segment",
                                                                "sha256"))
            if not all(isinstance(v, str) for v in (rec_id, name, sha)):
                continue
            seg = ledger.segment(self.device_id, str(rec_id), str(name))
            if seg is None or seg.state != STORED or not hmac.compare_digest(seg.sha256,
                                                                             str(sha)):
                continue
            if not signed_by_device(event, self.device_public):
                self.report.notes.append(f"event log line {event.seq} is not signed by the "
                                         "camera; release not settled from it")
                continue
            ledger.mark_released(self.device_id, seg.recording_id, seg.name, seg.sha256,
                                 how="camera event log")
            log.info("camera %s: %s/%s released (camera's signed event log)", self.device_id,
                     seg.recording_id, seg.name)


def _drop_if_shared(part: Path) -> None:
    """Never write through a spool name that is another name of a stored object.

    An earlier version of the dock could leave the spool name hard-linked to the stored
    object after a kill; reopening it for writing would change the stored bytes.
    """
    try:
        if part.lstat().st_nlink > 1 or not stat.S_ISREG(part.lstat().st_mode):
            part.unlink()
    except FileNotFoundError:
        pass


def remove_spool_folder(folder: Path) -> int:
    """Remove one recording's spool folder (flat: spooled files only); files removed."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.is_file(follow_symlinks=False) or entry.is_symlink():
            os.unlink(entry.path)
            removed += 1
    try:
        folder.rmdir()
    except OSError:
        pass  # something unexpected in it: left for a person to look at
    return removed


def clean_spool_at_start(spool: Path) -> int:
    """Start-up check of the spool: drop any file that shares its inode with another name.

    Only an earlier version of the dock, killed between storing and unlinking, left
    such spool names (a second name of a stored object); no writer makes them now,
    so this never disturbs another dock sharing the store. Everything else a killed
    session left is dropped at the camera's next docking (`_tidy_spool`), when its
    listing says what is still needed.
    """
    removed = 0
    for dirpath, _, filenames in os.walk(spool):
        for name in filenames:
            path = Path(dirpath) / name
            try:
                if path.lstat().st_nlink > 1:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
    if removed:
        log.warning("spool %s: removed %d spool name(s) shared with stored objects", spool,
                    removed)
    return removed


__all__ = [
    "CameraIngest", "CameraRefused", "CameraReport", "DockContext", "Slot", "SlotGone",
    "SlotProgress", "Stopping", "SystemClock", "VolumeSource",
    "SerialSource", "VerificationFailed", "FAULT_ENV", "clean_spool_at_start", "fault_point",
]
