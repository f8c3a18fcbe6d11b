"""The camera serves the real control channel while docked (firmware.control over a pty)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from crypto.keys import SigningKey, VaultKey
from dock.link import CameraLink
from firmware.camera import Camera
from firmware.control import CameraControlServer
from firmware.state import CameraState
from formats.eventlog import events_path, verify_event_log
from formats.profile import default_profile, derive_profile
from formats.protocol import ReleaseReceipt
from sim.board import SimBoard
from sim.clock import FastForwardClock

START = 1_790_000_000.0


def make(tmp_path: Path) -> tuple[Camera, SigningKey]:
    dock = SigningKey.generate(kind="dock")
    base = default_profile(
        vault_recipients=[VaultKey.generate().public_bytes().hex()],
        trusted_docks=[dock.public_bytes().hex()],
    )
    raw, profile = derive_profile(
        base,
        {
            "video": {"width": 160, "height": 120, "fps": 10, "gop_frames": 10},
            "recording": {"audio": False, "segment_seconds": 4},
        },
    )
    cam = Camera(
        tmp_path / "home",
        profile,
        SimBoard(FastForwardClock(START)),
        profile_raw=raw,
        control_factory=CameraControlServer,
    )
    return cam, dock


def test_docked_camera_answers_the_dock(tmp_path: Path) -> None:
    cam, dock_key = make(tmp_path)
    cam.power_on()
    cam.run_for(2)
    rec_id = cam.press_record().recording_id
    cam.run_for(6)
    cam.press_stop()
    cam.dock()
    assert cam.serial_path is not None and cam.serial_path.startswith("/dev/")
    try:
        with CameraLink(cam.serial_path, timeout=5.0) as link:
            hello = link.hello()
            assert hello.device_id == cam.device_id
            assert hello.device_public == cam.device_public
            link.auth(dock_key, cam.device_public)
            status: dict[str, Any] = link.status()
            assert status["camera"]["state"] == "docked"
            assert status["camera"]["charging"] is True
            drift = link.set_time(START + 8 - 12.5)
            assert drift == pytest.approx(12.5, abs=0.01)
            assert cam.clock.now() == pytest.approx(START - 4.5, abs=0.01)
            listing = link.list_recordings()
            assert [r.recording_id for r in listing] == [rec_id]
            seg = next(f for f in listing[0].files if f.name.endswith(".bcs"))
            data = link.read(f"recordings/{rec_id}/{seg.name}", 0, seg.size)
            digest = hashlib.sha256(data).hexdigest()
            log_bytes = link.event_log()
            receipt = ReleaseReceipt.sign(dock_key, cam.device_id, rec_id or "", seg.name, digest)
            assert link.release(receipt) is False  # other segments of it remain
    finally:
        cam.undock()
    assert cam.serial_path is None
    assert not (cam.recordings_root / (rec_id or "") / seg.name).exists()
    cam.power_off()
    assert cam.state is CameraState.OFF
    # The log the dock read verifies on its own, and the camera logged the dock's actions.
    offloaded = tmp_path / "offloaded.jsonl"
    offloaded.write_bytes(log_bytes)
    assert verify_event_log(offloaded, cam.device_public).count > 5
    report = verify_event_log(events_path(cam.volume), cam.device_public)
    kinds = [e.kind for e in report.events]
    for kind in ("dock_authenticated", "clock_sync", "segment_released", "serial_down"):
        assert kind in kinds
