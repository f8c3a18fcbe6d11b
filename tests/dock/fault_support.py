"""Fault injection for crash and reliability tests: seeded, event-driven, reproducible.

Nothing here waits for a guessed time. A fault fires on an event of the system under
test, chosen by a seeded random generator, so a failing run reproduces from its seed:

- `DockProcess` runs a real `python -m dock run` (through `dock_fault_child.py`) that
  kills itself (SIGKILL) right after the n-th call of a chosen operation (`os.link`,
  `os.fsync`, `os.replace`, `os.unlink`, the dock's own fault points), or pauses before
  the n-th upload until the test lets it go (`pause-put:n`);
- `ChangeWatch` wakes a waiter on every inotify event under some folders (the ledger's
  WAL, a camera's volume), so the test acts on a ledger state or a file event;
- `UnplugAt` (serial) and `UnplugProgress` (mass storage) pull the camera out after a
  given number of bytes has crossed the wire or the volume;
- `check_cameras` checks invariant 1 for docked cameras against ledger and store and
  counts segments checked, lost and released without a durable copy.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from dock.ledger import RELEASED, Ledger
from dock.slots import SlotProgress
from firmware.control import CameraControlServer
from sim.pty import PtySerialPort

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("dock_fault_child.py")
FAULT_ENV = "BODYCAM_DOCK_FAULT"  # "point:n": read by CHILD only (dock/faults.py points)
KILL_ENV = "BODYCAM_TEST_KILL"  # "op:n": SIGKILL right after the n-th call of op
PAUSE_ENV = "BODYCAM_TEST_PAUSE_DIR"  # where pause-put markers are written

# What the child can be killed after. The dock's own fault points (dock.faults.fault_point)
# come first; a point this dock does not have is never reached, and its round simply runs
# to the end without a kill.
DOCK_FAULT_POINTS = ("after-store", "after-ledger", "after-release", "events-stored")
FILE_STORE_POINTS = ("store-linked",)  # the object has its final name, staging not unlinked
S3_POINTS = ("s3-put-sent",)  # the PUT was answered, nothing after it ran
SYSCALL_POINTS = ("link", "fsync", "replace", "unlink")
# Killed from outside the moment the ledger holds n more segments than at the start:
# wherever the dock then is (copying, uploading, releasing), woken by the ledger's writes.
LEDGER_POINT = "ledger"
ANY_STATE = ("copied", "stored", "released", "quarantined")


SEED_ENV = "BODYCAM_SEED"
FRESH = "fresh"  # BODYCAM_SEED=fresh: draw a new seed (what `make reliability` does)
# Without BODYCAM_SEED (`make test`) every run on every machine meets the same faults. With
# this seed the camera's power is cut once between a recording's header and its first
# whole chunk (tests/reliability/test_power_cut_ingest.py).
FIXED_SEED = 12
_session_seed: list[tuple[int, str]] = []


def session_seed() -> int:
    """The run's seed, chosen once per process: BODYCAM_SEED=N, a new one with
    BODYCAM_SEED=fresh, else FIXED_SEED. Raises ValueError for anything else."""
    if not _session_seed:
        raw = os.environ.get(SEED_ENV, "").strip()
        if raw == FRESH:
            _session_seed.append((random.SystemRandom().randrange(1 << 32), "fresh"))
        elif raw:
            _session_seed.append((int(raw), f"from {SEED_ENV}"))
        else:
            _session_seed.append((FIXED_SEED, "fixed"))
    return _session_seed[0][0]


def seed_origin() -> str:
    """Where the run's seed came from: "fixed", "fresh" or "from BODYCAM_SEED"."""
    session_seed()
    return _session_seed[0][1]


def rng_for(seed: int, name: str) -> random.Random:
    """A generator for one test, fixed by the session seed and the test's name alone."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def choose_kill(
    rng: random.Random, max_hit: int, points: Iterable[str] | None = None
) -> tuple[str, dict[str, str]]:
    """A seeded kill point: its label and the environment that makes the dock die there."""
    options = list(points or (*DOCK_FAULT_POINTS, *SYSCALL_POINTS))
    point = rng.choice(options)
    nth = rng.randint(1, max_hit)
    if point == LEDGER_POINT:
        return f"{point}:{nth}", {}  # the test kills from outside: see kill_on_ledger
    if point not in SYSCALL_POINTS:  # one of the dock's own fault points
        return f"{point}:{nth}", {FAULT_ENV: f"{point}:{nth}"}
    return f"{point}:{nth}", {KILL_ENV: f"{point}:{nth}"}


# --- the dock as a process -----------------------------------------------------------------


@dataclass
class DockProcess:
    """One run of the dock daemon in its own process; its output goes to files in `logs`."""

    logs: Path
    slots: Path
    store_url: str
    ledger: Path
    keys: Path
    site: str
    once: bool = True
    env: dict[str, str] = field(default_factory=dict)
    tag: str = "run"
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DockProcess:
        cmd = [
            sys.executable,
            str(CHILD),
            "run",
            "--slots",
            str(self.slots),
            "--store",
            self.store_url,
            "--ledger",
            str(self.ledger),
            "--keys",
            str(self.keys),
            "--site",
            self.site,
            "--settle",
            "0",
            "--no-live",
            "--json-logs",
            # every run may be the first on its store (a kill can come before any write)
            "--create",
        ]
        if self.once:
            cmd.append("--once")
        env = {k: v for k, v in os.environ.items() if k not in (FAULT_ENV, KILL_ENV, PAUSE_ENV)}
        # A private TMPDIR: the dock's temporary files are its own (no other program on the
        # machine may clean them away mid-upload), and a test can look for leftovers.
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        env.update({"PYTHONPATH": str(ROOT), "TMPDIR": str(self.tmpdir), **self.env})
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL
            )
        return self

    @property
    def tmpdir(self) -> Path:
        return self.logs / "tmp"

    @property
    def out_path(self) -> Path:
        return self.logs / f"dock-{self.tag}.out"

    @property
    def err_path(self) -> Path:
        return self.logs / f"dock-{self.tag}.err"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float = 90.0) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"dock run {self.tag} did not finish in {timeout} s: "
                f"{self.err_path.read_text()[-3000:]}"
            ) from None

    def kill(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait()

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")


# --- waking on events ----------------------------------------------------------------------


class _Wake(FileSystemEventHandler):
    def __init__(self, changed: threading.Event) -> None:
        self.changed = changed

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.changed.set()


class ChangeWatch:
    """Wakes `wait_for` on every file event under the given folders (inotify via watchdog).

    `wait_for(predicate)` checks the predicate after each event, so the test acts on a
    state (a ledger row, a file on the volume) as soon as it exists, not after a guessed
    delay. A slow re-check (`recheck`) only guards against a missed event.
    """

    def __init__(self, *folders: Path, recursive: bool = False) -> None:
        self.changed = threading.Event()
        self._observer = Observer()
        for folder in folders:
            self._observer.schedule(_Wake(self.changed), str(folder), recursive=recursive)

    def __enter__(self) -> ChangeWatch:
        self._observer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._observer.stop()
        self._observer.join()

    def wait_for(
        self,
        predicate: Callable[[], bool],
        *,
        alive: Callable[[], bool],
        timeout: float = 60.0,
        recheck: float = 0.25,
    ) -> bool:
        """True once `predicate()` holds; False if `alive()` turns false first or on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            self.changed.clear()
            if predicate():
                return True
            if not alive():
                return predicate()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.changed.wait(min(recheck, left))


def ledger_count(path: Path, device_ids: Iterable[str], *states: str) -> int:
    """Segments of these cameras in any of `states` (durable means stored or released)."""
    ids = list(device_ids)
    try:
        with Ledger(path, readonly=True) as led:
            n = 0
            for dev in ids:
                for seg in led.segments(dev):
                    if seg.state in states or ("durable" in states and seg.durable):
                        n += 1
            return n
    except Exception:  # the dock may be creating or migrating it right now: count none
        return 0


def kill_on_ledger(
    run: DockProcess, device_ids: Iterable[str], more: int, timeout: float = 60.0
) -> int:
    """Start `run`, SIGKILL it once `more` segments have entered its ledger; its exit code."""
    ids = list(device_ids)
    base = ledger_count(run.ledger, ids, *ANY_STATE)
    with ChangeWatch(run.ledger.parent) as watch:
        run.start()
        watch.wait_for(
            lambda: ledger_count(run.ledger, ids, *ANY_STATE) >= base + more,
            alive=run.running,
            timeout=timeout,
        )
        return run.kill()


def wait_pause_marker(
    pause_dir: Path, nth: int, *, alive: Callable[[], bool], timeout: float = 60.0
) -> Path | None:
    """The marker the child writes when it holds the n-th upload; None if it never comes."""
    marker = pause_dir / f"put-{nth}.held"
    with ChangeWatch(pause_dir) as watch:
        if watch.wait_for(marker.exists, alive=alive, timeout=timeout):
            return marker
    return None


# --- unplugging ------------------------------------------------------------------------------


class UnplugAt(CameraControlServer):
    """A camera control server whose cable is pulled after `limit` bytes have been sent.

    The reply that crosses the limit is cut at the exact byte; then the slot folder is
    removed and the pty closed, as when the camera leaves its dock mid-frame.
    """

    def __init__(self, services: Any, limit: int, slot_path: Path) -> None:
        super().__init__(services, PtySerialPort())
        self.limit = limit
        self.sent = 0
        self.slot_path = slot_path
        self.unplugged = threading.Event()

    def handle(self, item: Any) -> bytes:
        reply = super().handle(item)
        if self.unplugged.is_set() or self.sent + len(reply) < self.limit:
            self.sent += len(reply)
            return reply
        from firmware.hardware import LineStopped

        keep = self.limit - self.sent
        transport: Any = self._line
        if keep > 0:
            transport.write(reply[:keep])
        self.sent += keep
        self.unplugged.set()
        shutil.rmtree(self.slot_path, ignore_errors=True)
        # The master side goes away with the cable; stop() later finds it already closed.
        os.close(transport.master)
        transport.master = -1
        raise LineStopped


class UnplugProgress(SlotProgress):
    """Slot progress that pulls the camera (its slot folder) once `limit` bytes were copied."""

    def __init__(self, slot: str, clock: Any, limit: int, unplug: Callable[[], None]) -> None:
        super().__init__(slot, clock)
        self.limit = limit
        self.copied = 0
        self._unplug = unplug
        self.unplugged = False

    def add_bytes(self, n: int) -> None:
        super().add_bytes(n)
        self.copied += n
        if not self.unplugged and self.copied >= self.limit:
            self.unplugged = True
            self._unplug()


# --- invariant 1 -------------------------------------------------------------------------------


@dataclass
class Check:
    """What one look at cameras, ledger and store found."""

    segments: int = 0
    on_camera: int = 0
    lost: list[str] = field(default_factory=list)  # neither on the camera nor stored
    false_releases: list[str] = field(default_factory=list)  # gone without a durable copy
    not_released: list[str] = field(default_factory=list)  # ledger not at released at the end


def read_object(store: Any, key: str) -> bytes:
    with store.open(key) as f:
        return bytes(f.read())


def segment_shas(camera: Any) -> dict[tuple[str, str, str], str]:
    """SHA-256 of every sealed segment on a camera, taken before the dock sees it."""
    return {
        (camera.device_id, p.parent.name, p.name): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in camera.segment_files()
    }


def check_cameras(
    cameras: Iterable[Any],
    shas: dict[tuple[str, str, str], str],
    ledger_path: Path,
    store: Any,
    site: str,
    verified: set[str] | None = None,
) -> Check:
    """Invariant 1: every segment gone from a camera is durable in the ledger and in the store,
    with the content the signed manifest names (its SHA-256 checked by reading it back).

    `verified`: keys already read back in an earlier look (skipped, then added to).
    """
    from store import object_key

    result = Check()
    with Ledger(ledger_path, readonly=True) as led:
        for cam in cameras:
            on_camera = {(p.parent.name, p.name) for p in cam.segment_files()}
            held = {(s.recording_id, s.name): s for s in led.segments(cam.device_id)}
            for rec, names in cam.segment_names.items():
                for name in names:
                    result.segments += 1
                    where = f"{cam.device_id}/{rec}/{name}"
                    if (rec, name) in on_camera:
                        result.on_camera += 1
                        continue
                    seg = held.get((rec, name))
                    sha = shas.get((cam.device_id, rec, name))
                    key = object_key(site, cam.device_id, rec, name, sha) if sha else None
                    stored = key is not None and store.stat(key) is not None
                    if stored and key is not None and (verified is None or key not in verified):
                        stored = hashlib.sha256(read_object(store, key)).hexdigest() == sha
                        if stored and verified is not None:
                            verified.add(key)
                    if not stored:
                        result.lost.append(where)
                        result.false_releases.append(where)
                    elif seg is None or not seg.durable:
                        result.false_releases.append(f"{where} (not recorded in the ledger)")
                    elif seg.state != RELEASED:
                        result.not_released.append(where)
    return result
