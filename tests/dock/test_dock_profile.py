"""Pushing a staged, signed profile to a docked camera during ingest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dock_support import Dock, profile_toml, register
from fake_camera import FakeCamera

from dock.ingest import CameraIngest, DockContext
from dock.ledger import Ledger
from dock.slots import Slot
from firmware.profile_store import ProfileStore
from formats.profile_sign import sign_profile
from store import FileStore


def stage(directory: Path, cam: FakeCamera, raw: bytes, signer: Any) -> None:
    directory.mkdir(exist_ok=True)
    (directory / f"{cam.device_id}.toml").write_bytes(raw)
    (directory / f"{cam.device_id}.toml.sig").write_bytes(sign_profile(raw, signer).to_bytes())


def run(tmp_path: Path, docks: Dock, ledger: Ledger, dock_keys: Any) -> Any:
    ctx = DockContext(
        store=FileStore(tmp_path / "store"),
        ledger=ledger,
        dock_key=dock_keys.dock,
        profiles_dir=tmp_path / "profiles",
    )
    return CameraIngest(Slot("slot-1", docks.slots / "slot-1"), ctx).run()


def test_staged_profile_is_flashed_once(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    cam: FakeCamera = make_cam()
    ProfileStore(cam.home / "profiles").provision_integrator(dock_keys.integrator.public_bytes())
    cam.record(1)
    register(ledger, cam)
    new = profile_toml([dock_keys.dock.public_bytes()], dock_keys.vault.public_bytes(), version=2)
    stage(tmp_path / "profiles", cam, new, dock_keys.integrator)
    docks.dock(cam, "slot-1")
    report = run(tmp_path, docks, ledger, dock_keys)
    assert report.ok, report.summary()
    assert cam.activated == [new]
    assert "profile test-site v2 flashed" in report.notes
    docks.undock("slot-1")
    docks.dock(cam, "slot-1")
    again = run(tmp_path, docks, ledger, dock_keys)
    assert again.ok and cam.activated == [new]  # already running it: not flashed twice


def test_profile_that_drops_this_dock_is_flashed_after_the_transfer(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    cam: FakeCamera = make_cam()
    ProfileStore(cam.home / "profiles").provision_integrator(dock_keys.integrator.public_bytes())
    cam.record(2)
    register(ledger, cam)
    moved = profile_toml(
        [dock_keys.other_dock.public_bytes()], dock_keys.vault.public_bytes(), version=2
    )
    stage(tmp_path / "profiles", cam, moved, dock_keys.integrator)
    docks.dock(cam, "slot-1")
    report = run(tmp_path, docks, ledger, dock_keys)
    assert report.ok, report.summary()
    assert cam.segment_files() == []  # released before the new profile took over
    assert cam.activated == [moved]


def test_profile_signed_by_a_stranger_is_refused_and_ingest_goes_on(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    cam: FakeCamera = make_cam()
    ProfileStore(cam.home / "profiles").provision_integrator(dock_keys.integrator.public_bytes())
    cam.record(1)
    register(ledger, cam)
    raw = profile_toml([dock_keys.dock.public_bytes()], dock_keys.vault.public_bytes(), version=2)
    stage(tmp_path / "profiles", cam, raw, dock_keys.other_dock)
    docks.dock(cam, "slot-1")
    report = run(tmp_path, docks, ledger, dock_keys)
    assert cam.segment_files() == [] and cam.activated == []
    assert any("staged profile refused by the camera" in e for e in report.errors)
