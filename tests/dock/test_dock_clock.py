"""The dock's clock correction: logged on both sides, bounded by the camera's profile.

Real camera control server on a pty, real keys and signed event log; the dock's clock is
injected so the camera's drift is exact.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from dock_support import Dock, register
from fake_camera import FakeCamera

from dock.ingest import CameraIngest, DockContext
from dock.ledger import Ledger
from dock.slots import Slot
from formats.eventlog import events_path, verify_event_log
from sim.clock import FastForwardClock
from store import FileStore

SITE = "clock-site"


def _events(cam: FakeCamera) -> list[tuple[str, dict[str, Any]]]:
    report = verify_event_log(events_path(cam.volume), cam.public_key)
    return [(e.kind, e.fields) for e in report.events]


def _ingest(
    tmp_path: Path, docks: Dock, ledger: Ledger, dock_keys: Any, cam: FakeCamera, dock_now: float
) -> Any:
    ctx = DockContext(
        store=FileStore(tmp_path / "store"),
        ledger=ledger,
        dock_key=dock_keys.dock,
        site=SITE,
        spool_root=tmp_path / "spool",
        clock=FastForwardClock(start=dock_now),
    )
    return CameraIngest(Slot("slot-1", docks.slots / "slot-1"), ctx).run()


def test_a_correction_beyond_the_profile_bound_is_refused_noted_and_logged(
    tmp_path: Path,
    docks: Dock,
    make_cam: Any,
    ledger: Ledger,
    dock_keys: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cam: FakeCamera = make_cam()
    cam.record(2)
    register(ledger, cam)
    docks.dock(cam, "slot-1")
    camera_time = cam.clock.now()
    with caplog.at_level(logging.WARNING, logger="dock.ingest"):
        report = _ingest(tmp_path, docks, ledger, dock_keys, cam, camera_time + 2 * 86400)
    # The footage still comes off; the clock stays as it was, and everyone is told.
    assert report.ok and report.released == 2, report.summary()
    assert cam.clock.now() == camera_time
    (note,) = [n for n in report.notes if "clock" in n]
    assert "off by -172800.0 s" in note and "86400 s" in note and "not corrected" in note
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(cam.device_id in w and "not corrected" in w for w in warnings), warnings
    refused = [f for k, f in _events(cam) if k == "clock_sync_refused"]
    assert refused == [
        {
            "dock_utc": camera_time + 2 * 86400,
            "drift_seconds": pytest.approx(-172800.0),
            "limit_seconds": 86400,
        }
    ]
    assert "clock_sync" not in [k for k, _ in _events(cam)]


def test_a_large_correction_within_the_bound_is_applied_and_logged_as_a_jump(
    tmp_path: Path,
    docks: Dock,
    make_cam: Any,
    ledger: Ledger,
    dock_keys: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cam: FakeCamera = make_cam()
    cam.record(1)
    register(ledger, cam)
    docks.dock(cam, "slot-1")
    camera_time = cam.clock.now()
    with caplog.at_level(logging.INFO, logger="dock.ingest"):
        report = _ingest(tmp_path, docks, ledger, dock_keys, cam, camera_time + 600)
    assert report.ok, report.summary()
    assert cam.clock.now() == pytest.approx(camera_time + 600)
    assert "camera clock was off by -600.0 s, corrected" in report.notes
    assert any(
        r.levelno == logging.WARNING and "corrected" in r.getMessage() for r in caplog.records
    )
    kinds = [k for k, _ in _events(cam)]
    assert kinds.count("clock_sync") == 1 and kinds.count("clock_jump") == 1
