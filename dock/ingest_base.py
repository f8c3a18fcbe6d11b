"""The ingest session's ground: its errors, what it is given (`DockContext`), and the
state and small helpers every part of `CameraIngest` shares (dock/ingest.py)."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dock.clock import SystemClock
from dock.ledger import Ledger
from dock.names import ListingBounds
from dock.release import ReleaseWorker
from dock.report import CameraReport
from dock.slots import Slot, SlotProgress
from dock.sources import (
    MAX_NAME_NOTES,
    FileSource,
)
from formats.clock import Clock
from formats.protocol import Signer
from store import (
    Store,
)

if TYPE_CHECKING:
    from dock.link import CameraLink, HelloInfo


log = logging.getLogger("dock.ingest")  # one logger for the whole ingest session

MAX_EVENT_LOG_PIECE = 64 << 20  # bytes of event log taken per docking


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


def _sha_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class IngestBase:
    """One docking of one camera: the state the parts of the session share."""

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
