"""Camera power cut at seeded write points (tests/e2e/test_e2e_power_cut.py), then a full ingest.

The e2e test cuts power at every write and checks the camera's recovery; here a seeded
sample of the writes to the recording's own files (the same cut for a seed on every run)
goes on through the whole chain: boot, dock on a real pty, ingest by the real dock into
the store. Everything sealed before the cut must be stored unchanged and released;
nothing may be left on the camera.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from e2e_support import START, Site, small
from test_e2e_power_cut import PowerCut, _record_once, cut_power_at_write

from dock.ingest import CameraIngest, DockContext
from dock.ledger import Ledger
from dock.slots import Slot
from firmware.camera import Camera
from firmware.control import CameraControlServer
from formats.profile import parse_profile
from sim.board import SimBoard
from sim.clock import FastForwardClock
from store import FileStore, object_key

SITE = "rel"


def _sealed(volume: Path) -> dict[tuple[str, str], str]:
    return {
        (p.parent.name, p.name): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((volume / "recordings").glob("*/seg-*.bcs"))
    }


# PyAV reports an exception raised inside its write callback as "unraisable" when it
# meets it again while flushing; the cut still reaches the test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_power_cut_at_seeded_writes_then_full_ingest(
    tmp_path: Path, rng: Any, tally: Any, count: Any
) -> None:
    site = Site()
    raw, profile = site.profile(
        small(prerecord=30, fps=10, width=160, height=120, segment_seconds=2, bitrate_kbps=300)
    )
    base = tmp_path / "prepared"
    cam = Camera(base, profile, SimBoard(FastForwardClock(START)), profile_raw=raw, chunk_size=4096)
    cam.power_on()
    cam.power_off()
    ledger = Ledger(tmp_path / "state" / "ledger.sqlite")
    store = FileStore(tmp_path / "store")
    ctx = DockContext(
        store=store, ledger=ledger, dock_key=site.dock, site=SITE, spool_root=tmp_path / "spool"
    )
    slots = tmp_path / "slots"
    slots.mkdir()
    try:
        # Writes to the recording's own files are counted (the event log's, from another
        # thread, interleave by timing): about 66 in such a run; a point past the last is no
        # cut. 1-2: the recording never started; 3-4: cut before its first whole chunk.
        for n, write in enumerate(sorted(rng.sample(range(1, 72), count(2, 10)))):
            home = tmp_path / f"cut{write}"
            shutil.copytree(base, home)
            with cut_power_at_write(write, under=(home / "volume" / "recordings").resolve()):
                try:
                    _record_once(home, raw)
                except PowerCut:
                    tally.fault("camera power cut at a write")
            before = _sealed(home / "volume")
            cam = Camera(
                home,
                parse_profile(raw, source="test"),
                SimBoard(FastForwardClock(START + 3600)),
                profile_raw=raw,
                control_factory=CameraControlServer,
            )
            cam.power_on()
            try:
                if ledger.active_device(cam.device_id) is None:
                    ledger.register_device(
                        cam.device_id,
                        cam.device_public,
                        model="BC-SIM-1",
                        registered_by="test-coordinator",
                        role="coordinator",
                    )
                cam.dock()
                assert cam.serial_path is not None
                tmp = slots / f".slot-{n}.tmp"
                tmp.mkdir()
                os.symlink(home / "volume", tmp / "volume")
                os.symlink(cam.serial_path, tmp / "serial")
                os.rename(tmp, slots / f"slot-{n}")
                report = CameraIngest(Slot(f"slot-{n}", slots / f"slot-{n}"), ctx).run()
                assert report.ok, f"power cut at write {write}: {report.summary()}"
            finally:
                cam.power_off()
            assert _sealed(home / "volume") == {}
            left = sorted(str(p.relative_to(home)) for p in (home / "volume/recordings").rglob("*"))
            assert not left, f"power cut at write {write}: left on the camera: {left}"
            lost = [
                f"{rec}/{name}"
                for (rec, name), sha in before.items()
                if store.stat(object_key(SITE, cam.device_id, rec, name, sha)) is None
            ]
            tally.checked(len(before), len(lost))
            assert not lost, f"power cut at write {write}: sealed but not stored: {lost}"
    finally:
        ledger.close()
