"""`bodycam device run`: the emulated camera in a terminal, by lines and by keys."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crypto.keys import SigningKey, VaultKey
from crypto.verify import verify_recording
from firmware.camera import Camera
from formats.eventlog import events_path, verify_event_log
from formats.profile import default_profile, derive_profile
from sim.board import SimBoard
from sim.clock import FastForwardClock
from sim.terminal import run_device, status_line

ROOT = Path(__file__).resolve().parents[2]
SMALL = {
    "video": {"width": 160, "height": 120, "fps": 10, "gop_frames": 10, "bitrate_kbps": 300},
    "recording": {"audio": False, "segment_seconds": 4},
}


def profile_bytes() -> bytes:
    base = default_profile(
        vault_recipients=[VaultKey.generate().public_bytes().hex()],
        trusted_docks=[SigningKey.generate().public_bytes().hex()],
    )
    return derive_profile(base, SMALL, source="test")[0]


class FakeServer:
    def __init__(self, camera: Camera, port: object = None) -> None:
        self.running = False

    def start(self) -> str:
        self.running = True
        return "/dev/pts/fake"

    def stop(self) -> None:
        self.running = False


def test_commands_by_line_in_fast_forward(tmp_path: Path) -> None:
    from formats.profile import parse_profile

    raw = profile_bytes()
    cam = Camera(
        tmp_path / "home",
        parse_profile(raw, source="t"),
        SimBoard(FastForwardClock()),
        profile_raw=raw,
        control_factory=FakeServer,
    )
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"wait 40\nr\nwait 5\ns\nx\nd\nr\nd\nwait 1\nq\nr\n")
    os.close(write_fd)
    out = io.StringIO()
    slots = tmp_path / "slots"
    try:
        assert run_device(cam, stdin_fd=read_fd, out=out, slots=slots, slot_name="s1") == 0
    finally:
        os.close(read_fd)
    text = out.getvalue()
    assert "recording 20" in text
    assert "stopped 20" in text and "pre-roll 3" in text
    assert "unknown command 'x'" in text
    assert f"docked in {slots / 's1'}, serial /dev/pts/fake" in text
    assert "record refused: take the camera out of its dock first" in text
    assert "undocked" in text
    assert text.count("recording 20") == 1  # the r after q was never read
    assert cam.state.value == "off" and not (slots / "s1").exists()
    rec = cam.recordings[0]
    assert verify_recording(rec.path, cam.device_public).complete
    kinds = [e.kind for e in verify_event_log(events_path(cam.volume), cam.device_public).events]
    assert kinds[-1] == "power_off"


def test_status_line_shows_what_the_officer_needs() -> None:
    # Changed with the screen: while recording it shows the recording time and the
    # pre-roll kept, not the (empty) standby buffer; every signal of the moment shows.
    status = {
        "state": "recording",
        "device_id": "BC-12345678",
        "buffer_seconds": 0,
        "buffer_target_seconds": 30,
        "recording_seconds": 75.4,
        "recording_prerecord_seconds": 28.5,
        "storage_free_bytes": 2_000_000_000,
        "indicators": {
            "led": True,
            "last": "vibrate: recording started",
            "recent": ["led on", "beep: recording started", "vibrate: recording started"],
        },
    }
    line = status_line(status)
    assert line.startswith("BC-12345678 RECORDING")
    assert "buffer" not in line and "rec 01:15 + pre-roll 28.5s" in line
    # storage in MiB, the unit of the profile's storage_capacity_mb
    assert "free 1,907 MiB" in line and "LED on" in line
    assert "beep+vibrate: recording started" in line
    narrow = status_line(status, width=40)
    assert len(narrow) < 40 and narrow.endswith("~") and narrow.startswith("BC-12345678")
    standby = status_line({**status, "state": "standby", "buffer_seconds": 12.25})
    assert "pre-roll  12.2/30s" in standby or "pre-roll  12.3/30s" in standby


def test_status_line_keeps_led_and_signals_on_a_narrow_terminal_and_drops_stale_ones() -> None:
    status = {
        "state": "docked",
        "device_id": "BC-12345678",
        "storage_free_bytes": 16_384 * 1024 * 1024,  # storage_capacity_mb = 16384, empty
        "indicators": {
            "led": False,
            "recent": ["led off", "beep: recording stopped", "vibrate: recording stopped"],
            "recent_age_seconds": 1.0,
        },
    }
    docked = "offload done: 1 recording released"
    line = status_line(status, docked=docked)
    assert "free 16,384 MiB" in line and " MB" not in line
    # cut from the right: state, LED and the signals of the moment come first and stay
    narrow = status_line(status, width=70, docked=docked)
    assert narrow.startswith("BC-12345678 DOCKED") and narrow.endswith("~")
    assert "LED off" in narrow and "beep+vibrate: recording stopped" in narrow
    # minutes later the beep is long over: its text goes, the offload stays
    later = {**status, "indicators": {**status["indicators"], "recent_age_seconds": 60.0}}
    line = status_line(later, docked=docked)
    assert "recording stopped" not in line and "LED off" in line and docked in line


def _bodycam(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys, bodycam_cli; sys.exit(bodycam_cli.main())", *args]


def test_device_run_real_time_from_a_script(tmp_path: Path) -> None:
    profile = tmp_path / "profile.toml"
    profile.write_bytes(profile_bytes())
    home = tmp_path / "home"
    done = subprocess.run(
        _bodycam("device", "run", "--profile", str(profile), "--home", str(home)),
        input="r\nwait 1.2\ns\nq\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "recording 20" in done.stdout and "stopped 20" in done.stdout
    recordings = list((home / "volume" / "recordings").iterdir())
    assert len(recordings) == 1
    from crypto.device_info import read_device_info

    public = bytes.fromhex(read_device_info(home / "volume" / "DEVICE.json")["public_key"])
    assert verify_recording(recordings[0], public).complete


def test_device_run_bad_profile_is_one_line(tmp_path: Path) -> None:
    profile = tmp_path / "bad.toml"
    profile.write_text("[prerecord]\nseconds = 5\n")
    done = subprocess.run(
        _bodycam("device", "run", "--profile", str(profile), "--home", str(tmp_path / "h")),
        input="q\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("bodycam: error:") and done.stderr.count("\n") == 1


def _read_until(fd: int, wanted: bytes, seen: bytearray, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{wanted!r} never appeared in {bytes(seen[-400:])!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError(f"output ended before {wanted!r}: {bytes(seen[-400:])!r}")
            seen += chunk


@pytest.mark.parametrize("slots", [False, True])
def test_device_run_keys_on_a_terminal(tmp_path: Path, slots: bool) -> None:
    """Keys act without Enter: the camera is driven through a real pty as its terminal."""
    profile = tmp_path / "profile.toml"
    profile.write_bytes(profile_bytes())
    args = ["device", "run", "--profile", str(profile), "--home", str(tmp_path / "home")]
    if slots:
        args += ["--slots", str(tmp_path / "slots"), "--slot-name", "cam"]
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        _bodycam(*args), stdin=slave, stdout=slave, stderr=subprocess.PIPE, cwd=ROOT
    )
    os.close(slave)
    seen = bytearray()
    try:
        _read_until(master, b"keys: r record", seen)
        _read_until(master, b"STANDBY", seen)
        os.write(master, b"r")
        _read_until(master, b"RECORDING", seen)
        os.write(master, b"s")
        _read_until(master, b"stopped 20", seen)
        if slots:
            os.write(master, b"d")
            _read_until(master, b"DOCKED", seen)
            slot = tmp_path / "slots" / "cam"
            assert (slot / "volume").resolve() == (tmp_path / "home" / "volume").resolve()
            assert os.readlink(slot / "serial").startswith("/dev/pts/")
        os.write(master, b"q")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        os.close(master)
    assert b"\x1b[K" in seen  # the status line is redrawn in place
    assert not (tmp_path / "slots" / "cam").exists()
