"""Notice docked cameras under a slots root, robust to what watchdog really delivers.

A docked camera is a folder `SLOTS/<slot>/` holding `volume` (the camera's mass
storage) and/or `serial` (its control port). `SlotWatcher` watches the slots root
(not the slots' insides: a filesystem mounted over a watched folder is invisible to
inotify) with a watchdog Observer and turns what it sees into two kinds of events:
`("docked", Slot)` once a slot is ready, `("undocked", name)` when it is gone.

What inotify really does, and how this copes (FIELD-NOTES "watchdog"):

- a folder moved in whole (the simulator's `.NAME.tmp` -> `NAME`) gives one event
  for the folder and none for its files: every event only marks a slot name as
  "look again", and looking is a scan of the folder;
- files may still be written when the first event arrives: a slot is ready only
  when its scan (entries, sizes, modification times, down to the volume's
  recordings) has not changed for `settle` seconds and no event came for it;
- events can be lost (queue overflow is not reported): the whole root is rescanned
  every `rescan_interval` seconds, and polling works without the Observer at all;
- a slot can vanish at any moment (unplug): it is reported "undocked" so its
  transfer can stop cleanly; so is a slot whose `serial` link points at nothing
  (its camera died docked, its port closed with it: `on_gone` is told, and the
  daemon removes such a slot's links); a slot replaced by another
  folder of the same name between two looks is reported undocked, then docked again.

Time comes from the injected clock, so tests drive settling without sleeping.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from dock.clock import SystemClock
from dock.slots import Slot
from formats.clock import Clock

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver

log = logging.getLogger(__name__)

Fingerprint = tuple[object, ...]
# ("docked", the slot) or ("undocked", the slot's name)
WatchEvent = tuple[Literal["docked"], Slot] | tuple[Literal["undocked"], str]


@dataclass
class _Candidate:
    identity: tuple[int, int]  # (st_dev, st_ino) of the slot folder
    fingerprint: Fingerprint | None = None
    stable_since: float = 0.0
    ready: bool = False
    warned: bool = False
    last_event: float = field(default=-1e18)


def _stat_key(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _entries(path: Path) -> list[tuple[str, int, int, bool]]:
    out = []
    with os.scandir(path) as it:
        for e in it:
            st = e.stat(follow_symlinks=False)
            out.append((e.name, st.st_size, st.st_mtime_ns, e.is_symlink()))
    return sorted(out)


def slot_fingerprint(path: Path) -> Fingerprint | None:
    """What must stay unchanged for a slot to count as settled; None if it vanished."""
    try:
        parts: list[object] = [tuple(_entries(path))]
        volume = path / "volume"
        if volume.is_dir():
            device = volume / "DEVICE.json"
            parts.append(_entries(volume))
            if device.exists():
                st = device.stat()
                parts.append(("DEVICE.json", st.st_size, st.st_mtime_ns))
            recordings = volume / "recordings"
            if recordings.is_dir():
                for rec in sorted(os.scandir(recordings), key=lambda e: e.name):
                    if rec.is_dir(follow_symlinks=False):
                        parts.append((rec.name, tuple(_entries(Path(rec.path)))))
        serial = path / "serial"
        parts.append(
            ("serial", os.path.realpath(serial) if serial.is_symlink() else serial.exists())
        )
        return tuple(parts)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None


def _camera_gone(path: Path) -> bool:
    """The slot's serial link points at nothing: its camera died without undocking.

    A killed emulated camera (SIGKILL) cannot withdraw its slot, and its pty closes
    with it; the slot is then reported undocked (gone), not left "done" for ever.
    """
    serial = path / "serial"
    return serial.is_symlink() and not serial.exists()


class SlotWatcher:
    """Turns filesystem activity under the slots root into docked/undocked events."""

    def __init__(
        self,
        root: Path | str,
        *,
        clock: Clock | None = None,
        settle: float = 1.0,
        rescan_interval: float = 5.0,
        use_observer: bool = True,
        on_wake: Callable[[], None] | None = None,
        on_gone: Callable[[str], None] | None = None,
    ) -> None:
        self.root = Path(root)
        self.clock = clock or SystemClock()
        self.settle = settle
        self.rescan_interval = rescan_interval
        self.use_observer = use_observer
        self._on_wake = on_wake
        # Called with the name of a slot whose camera is gone, at every look at it
        # (the daemon removes the slot's links once no session uses it).
        self.on_gone = on_gone
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._touched: set[str] = set()
        self._rescan_all = True
        self._last_rescan = -1e18
        self._candidates: dict[str, _Candidate] = {}
        self._observer: BaseObserver | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the watchdog Observer (joined by stop())."""
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"slots root {self.root} does not exist: create it or pass --slots DIR"
            )
        if not self.use_observer or self._observer is not None:
            return
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                watcher._note(event.src_path)
                dest = getattr(event, "dest_path", "")
                if dest:
                    watcher._note(dest)

        observer = Observer()
        observer.schedule(Handler(), str(self.root), recursive=False)
        observer.daemon = True
        observer.start()
        self._observer = observer
        log.info("watching %s for docked cameras", self.root)

    def stop(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join()
        self._wake.set()

    def __enter__(self) -> SlotWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- events ------------------------------------------------------------------------------

    def _note(self, raw_path: str | bytes) -> None:
        path = Path(os.fsdecode(raw_path))
        try:
            rel = path.relative_to(self.root)
        except ValueError:
            return
        name = rel.parts[0] if rel.parts else ""
        with self._lock:
            if name:
                self._touched.add(name)
            else:
                self._rescan_all = True  # the root itself changed (or overflowed)
        self._wake.set()
        if self._on_wake is not None:
            self._on_wake()

    def request_rescan(self) -> None:
        with self._lock:
            self._rescan_all = True
        self._wake.set()

    def wait(self, timeout: float) -> bool:
        """Block until something happened under the root or `timeout`; True if woken."""
        woken = self._wake.wait(timeout)
        self._wake.clear()
        return woken

    def pending(self) -> list[str]:
        """Slot names seen but not yet settled (for status)."""
        with self._lock:
            return sorted(n for n, c in self._candidates.items() if not c.ready)

    def poll(self) -> list[WatchEvent]:
        """Look at what changed (or everything, when a rescan is due); return events."""
        now = self.clock.monotonic()
        with self._lock:
            touched, self._touched = self._touched, set()
            rescan = self._rescan_all or now - self._last_rescan >= self.rescan_interval
            self._rescan_all = False
        names = set(touched)
        for name in touched:
            if name in self._candidates:
                self._candidates[name].last_event = now
        if rescan:
            self._last_rescan = now
            try:
                listed = {e.name for e in os.scandir(self.root)}
            except FileNotFoundError:
                listed = set()
                log.error("slots root %s vanished", self.root)
            names |= listed | set(self._candidates)
        # Settling slots are looked at on every poll until they are ready.
        names |= {n for n, c in self._candidates.items() if not c.ready}
        events: list[WatchEvent] = []
        for name in sorted(names):
            events.extend(self._look(name, now, event_now=name in touched))
        return events

    def _look(self, name: str, now: float, event_now: bool) -> list[WatchEvent]:
        events: list[WatchEvent] = []
        path = self.root / name
        if name.startswith("."):
            return events  # a slot being assembled (.NAME.tmp): it arrives by rename
        gone = path.is_dir() and _camera_gone(path)
        identity = _stat_key(path) if path.is_dir() and not gone else None
        known = self._candidates.get(name)
        if known is not None and known.identity != identity:
            del self._candidates[name]
            if known.ready:
                events.append(("undocked", name))
                log.info("slot %s: camera undocked", name)
            known = None
        if gone and self.on_gone is not None:
            self.on_gone(name)
        if identity is None:
            return events
        if known is None:
            known = self._candidates[name] = _Candidate(identity, stable_since=now)
            if event_now:
                known.last_event = now
        if known.ready:
            return events
        fingerprint = slot_fingerprint(path)
        if fingerprint is None:
            return events
        if fingerprint != known.fingerprint:
            known.fingerprint = fingerprint
            known.stable_since = now
            return events if self.settle > 0 else self._ready(name, path, known, events)
        quiet = min(now - known.stable_since, now - known.last_event)
        if quiet < self.settle:
            return events
        return self._ready(name, path, known, events)

    def _ready(
        self, name: str, path: Path, known: _Candidate, events: list[WatchEvent]
    ) -> list[WatchEvent]:
        if not (path / "volume").is_dir() and not (path / "serial").exists():
            if not known.warned:
                log.warning("slot %s has neither a volume nor a serial link (yet)", name)
                known.warned = True
            return events
        known.ready = True
        events.append(("docked", Slot(name, path)))
        log.info("slot %s: camera docked", name)
        return events

    def docked(self) -> list[str]:
        return sorted(n for n, c in self._candidates.items() if c.ready)
