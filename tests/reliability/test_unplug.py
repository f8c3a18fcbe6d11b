"""Unplug at seeded byte offsets in both transfer modes; the next docking completes.

Mass storage: the camera leaves its slot once the dock has read a seeded number of
bytes from the volume. Serial: the camera's cable is pulled after a seeded number of
bytes has left it, in the middle of a frame. Either way the session stops cleanly,
nothing is released without a durable copy, and docking again finishes the job.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from dock_support import Dock, decrypt_from_store, register
from fake_camera import FakeCamera
from fault_support import UnplugAt, UnplugProgress, check_cameras, segment_shas

from dock.clock import SystemClock
from dock.ingest import CameraIngest, DockContext
from dock.ledger import Ledger
from dock.slots import Slot
from store import FileStore

SITE = "rel"


def _dock_serial_unplugging(docks: Dock, cam: FakeCamera, slot: str, limit: int) -> UnplugAt:
    final = docks.slots / slot
    server = UnplugAt(cam, limit, final)
    path = server.start()
    docks.servers[slot] = server
    tmp = docks.slots / f".{slot}.tmp"
    tmp.mkdir()
    os.symlink(path, tmp / "serial")
    os.rename(tmp, final)
    return server


@pytest.mark.parametrize("mode", ["mass-storage", "serial"])
def test_unplug_at_seeded_byte_offsets_then_redock_completes(
    tmp_path: Path,
    docks: Dock,
    make_cam: Any,
    site_keys: Any,
    rng: Any,
    tally: Any,
    count: Any,
    mode: str,
) -> None:
    cam: FakeCamera = make_cam("cam-a", transfer=mode)
    ledger = Ledger(tmp_path / "state" / "ledger.sqlite")
    register(ledger, cam)
    store = FileStore(tmp_path / "store")
    ctx = DockContext(
        store=store,
        ledger=ledger,
        dock_key=site_keys.dock,
        site=SITE,
        spool_root=tmp_path / "spool",
        link_timeout=0.5,
    )
    shas: dict[Any, str] = {}
    slot = Slot("slot-1", docks.slots / "slot-1")
    try:
        for round_no in range(count(3, 12)):
            for _ in range(2):
                cam.record(3, size=rng.choice([20_000, 70_000, 150_000]))
            shas.update(segment_shas(cam))
            pending = sum(p.stat().st_size for p in cam.segment_files())
            limit = rng.randint(1, pending * 9 // 10)
            if mode == "serial":
                server = _dock_serial_unplugging(docks, cam, slot.name, limit)
                report = CameraIngest(slot, ctx).run()
                assert server.unplugged.is_set(), f"round {round_no}: cable never pulled"
                docks.undock(slot.name)
            else:
                docks.dock(cam, slot.name)
                progress = UnplugProgress(
                    slot.name, SystemClock(), limit, lambda: docks.undock(slot.name)
                )
                report = CameraIngest(slot, ctx, progress).run()
                assert progress.unplugged, f"round {round_no}: never unplugged"
            tally.fault(f"unplug at a byte offset ({mode})")
            assert not report.ok and (report.aborted or report.errors), report.summary()
            check = check_cameras([cam], shas, ledger.path, store, SITE)
            tally.checked(check.segments, len(check.lost), len(check.false_releases))
            assert not check.false_releases, f"unplug after {limit} bytes: {check}"

            docks.dock(cam, slot.name, volume=mode != "serial")
            report = CameraIngest(slot, ctx).run()
            docks.undock(slot.name)
            assert report.ok, f"redock after an unplug at byte {limit}: {report.summary()}"
            assert cam.segment_files() == []
            check = check_cameras([cam], shas, ledger.path, store, SITE)
            tally.checked(check.segments, len(check.lost), len(check.false_releases))
            assert not check.lost and not check.false_releases
        for rec, plain in cam.plaintexts.items():
            assert decrypt_from_store(store, SITE, cam, rec, tmp_path / "out") == plain
    finally:
        ledger.close()
