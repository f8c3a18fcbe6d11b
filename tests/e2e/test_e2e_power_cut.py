"""Power cuts during recording: a killed process, and a cut injected at every write.

After the next boot, everything that was sealed before the cut must still
verify and decrypt, the recording must be closed (recovered), its frames must
be consecutive, and nothing on the volume may be plaintext.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from e2e_support import START, Site, assert_consecutive, decode, decrypt, scan_volume, small

from crypto.verify import verify_recording
from firmware.camera import Camera
from formats.eventlog import events_path, verify_event_log
from sim.board import SimBoard
from sim.clock import FastForwardClock

CHILD = Path(__file__).with_name("powercut_child.py")


def sealed_segments(volume: Path) -> dict[str, str]:
    """sha256 of every sealed (final-named) segment file on the volume."""
    return {
        str(p.relative_to(volume)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((volume / "recordings").glob("*/seg-*.bcs"))
    }


def boot_and_check(home: Path, site: Site, raw: bytes, before: dict[str, str]) -> list[int]:
    """Boot a camera on `home`, let it recover, check every recording; returns frame counters."""
    from formats.profile import parse_profile

    cam = Camera(
        home,
        parse_profile(raw, source="test"),
        SimBoard(FastForwardClock(START + 3600)),
        profile_raw=raw,
    )
    cam.power_on()
    cam.power_off()
    volume = home / "volume"
    after = sealed_segments(volume)
    for name, digest in before.items():
        assert after.get(name) == digest, f"{name} changed or vanished after the power cut"
    assert not list(volume.rglob("*.part"))
    assert scan_volume(volume) == {}
    report = verify_event_log(events_path(volume), cam.device_public)
    assert [e.fields["clean_shutdown"] for e in report.of_kind("boot")][-1] is False
    counters: list[int] = []
    for rec_dir in sorted((volume / "recordings").iterdir()):
        verified = verify_recording(rec_dir, cam.device_public)
        assert verified.complete
        # A recording without footage is not kept: no release would ever remove it.
        assert verified.segments, f"{rec_dir.name} holds no segment and was kept"
        decoded = decode(decrypt(rec_dir, site.vault, cam.device_public), cut_by_power=True)
        assert decoded.first_packet_keyframe
        assert_consecutive(decoded.counters)
        counters.extend(decoded.counters)
    return counters


def test_sigkill_at_random_points_while_recording(tmp_path: Path) -> None:
    site = Site()
    raw, _ = site.profile(small(prerecord=30, fps=15, segment_seconds=2))
    profile_path = tmp_path / "profile.toml"
    profile_path.write_bytes(raw)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    for attempt in range(3):
        home = tmp_path / f"home{attempt}"
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(home), str(profile_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("recording "), f"child said {line!r}"
            # Wait until at least one segment is sealed, then cut at a random moment.
            deadline = time.monotonic() + 60
            while not sealed_segments(home / "volume") and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.8))
            before = sealed_segments(home / "volume")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        assert before, f"seed {seed}: nothing was sealed before the cut"
        counters = boot_and_check(home, site, raw, before)
        # Every frame of every segment sealed before the cut is in the decrypted output.
        assert len(counters) >= len(before) * 2 * 15, f"seed {seed}"


class PowerCut(BaseException):
    """Raised from inside a write: nothing above may catch it (like losing power)."""


@contextmanager
def cut_power_at_write(n: int, under: Path | None = None) -> Iterator[list[int]]:
    """os.write raises PowerCut from its n-th call on; the n-th writes half its bytes first.

    Every later write fails too (the power stays off), so a library that turns the
    first exception into its own error cannot write on afterwards. With `under`, only
    writes to files below that folder count: the camera's threads (capture and event log,
    recording worker) write in an order that timing decides, the worker's own files in
    one order, so the n-th of those is the same cut on every run.
    """
    real_write = os.write
    calls = [0]

    def counts(fd: int) -> bool:
        if under is None:
            return True
        try:
            return Path(os.readlink(f"/proc/self/fd/{fd}")).is_relative_to(under)
        except OSError:
            return False

    def write(fd: int, data: bytes) -> int:
        if calls[0] >= n:
            raise PowerCut(f"power cut at write {n}")  # the power stays off
        if not counts(fd):
            return real_write(fd, data)
        calls[0] += 1
        if calls[0] == n:
            view = memoryview(data)
            keep = len(view) // 2
            if keep:
                real_write(fd, view[:keep])  # a torn write
            raise PowerCut(f"power cut at write {n}")
        return real_write(fd, data)

    os.write = write  # type: ignore[assignment]
    try:
        yield calls
    finally:
        os.write = real_write


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Site, bytes, Path]:
    """A provisioned camera home (powered off) to copy for every injected cut."""
    site = Site()
    raw, profile = site.profile(
        small(prerecord=30, fps=10, width=160, height=120, segment_seconds=2, bitrate_kbps=300)
    )
    home = tmp_path_factory.mktemp("prepared") / "home"
    cam = Camera(home, profile, SimBoard(FastForwardClock(START)), profile_raw=raw, chunk_size=4096)
    cam.power_on()
    cam.power_off()
    return site, raw, home


def _record_once(home: Path, raw: bytes) -> None:
    from formats.profile import parse_profile

    cam = Camera(
        home,
        parse_profile(raw, source="test"),
        SimBoard(FastForwardClock(START)),
        profile_raw=raw,
        chunk_size=4096,
    )
    try:
        cam.power_on()
        cam.run_for(1.5)
        cam.press_record()
        cam.run_for(4.6)
        cam.press_stop()
        cam.power_off()
    except PowerCut:
        cam.power_cut()  # release what the dead process would have lost
        raise


# PyAV reports an exception raised inside its write callback as "unraisable" when it
# meets it again while flushing; the cut still reaches the test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_power_cut_injected_at_every_write(
    tmp_path: Path, prepared: tuple[Site, bytes, Path]
) -> None:
    site, raw, base = prepared
    # Cut at write 1, 2, 3, ... until a run gets through without reaching the cut: every
    # write of a whole run (boot, standby, record, stop, power off) has been a cut point.
    # (The count is not fixed in advance: x264's output size may differ slightly.)
    n = 0
    while True:
        n += 1
        assert n < 1000, "a run never finished"
        home = tmp_path / f"cut{n}"
        shutil.copytree(base, home)
        with cut_power_at_write(n):
            try:
                _record_once(home, raw)
            except PowerCut:
                pass
            else:
                break
        before = sealed_segments(home / "volume")
        if before:
            boot_and_check(home, site, raw, before)
        else:
            _boot_only(home, raw)
        shutil.rmtree(home)
    assert n > 50  # boot, several segments and the log: many writes were cut


def _boot_only(home: Path, raw: bytes) -> None:
    from formats.profile import parse_profile

    cam = Camera(
        home,
        parse_profile(raw, source="test"),
        SimBoard(FastForwardClock(START + 3600)),
        profile_raw=raw,
    )
    cam.power_on()
    cam.power_off()
    volume = home / "volume"
    verify_event_log(events_path(volume), cam.device_public)
    for rec_dir in sorted((volume / "recordings").iterdir()):
        verified = verify_recording(rec_dir, cam.device_public)
        assert verified.complete
        # Cut before its first whole chunk: no footage, and no folder left behind (none
        # of its segments would ever be released, and with that the folder never removed).
        assert verified.segments, f"{rec_dir.name} holds no segment and was kept"
    assert scan_volume(volume) == {}


class PowerFailsInWorker:
    """The device volume; once a segment is sealed, power fails while the recording worker
    checks free space (in the middle of writing the pre-roll), after the test had its look."""

    def __init__(self, root: Path, capacity: int) -> None:
        from sim.volume import DirectoryVolume

        self.inner = DirectoryVolume(root, capacity)
        self.capacity_bytes = capacity
        self.held = threading.Event()
        self.cut = threading.Event()

    def free_bytes(self) -> int:
        worker = threading.current_thread().name.startswith("camera-recording")
        if worker and list((self.inner.root / "recordings").glob("*/seg-*.bcs")):
            self.held.set()
            assert self.cut.wait(60), "the test never cut the power"
            raise PowerCut("power cut while the pre-roll was being written")
        return self.inner.free_bytes()

    def used_bytes(self) -> int:
        return self.inner.used_bytes()


def test_power_cut_while_the_worker_writes_the_preroll(
    tmp_path: Path, prepared: tuple[Site, bytes, Path]
) -> None:
    from formats.profile import parse_profile

    site, raw, base = prepared
    home = tmp_path / "home"
    shutil.copytree(base, home)
    volume = PowerFailsInWorker(home / "volume", 256 * 1024 * 1024)
    cam = Camera(
        home,
        parse_profile(raw, source="test"),
        SimBoard(FastForwardClock(START), storage=volume),
        profile_raw=raw,
        chunk_size=4096,
    )
    cam.power_on()
    cam.run_for(20)  # 20 s of pre-roll at 2 s segments: the worker has ten segments to write
    try:
        assert cam.press_record().accepted
        assert volume.held.wait(60)  # one segment sealed, the rest of the pre-roll pending
        before = sealed_segments(home / "volume")
        captured = cam.frames_captured
        cam.run_for(1)
        assert cam.frames_captured == captured + 10  # capture is not waiting for the worker
        assert 1 <= len(before) < 10
    finally:
        volume.cut.set()
    cam.power_cut()
    assert not [t for t in threading.enumerate() if t.name.startswith("camera-recording")]
    counters = boot_and_check(home, site, raw, before)
    assert len(counters) >= len(before) * 2 * 10  # every frame of every sealed segment
