"""SIGKILL of a recording camera process at seeded moments, then boot recovery and full ingest.

The camera (tests/e2e/powercut_child.py: a real `firmware.camera.Camera` recording in
fast-forward) is killed when a seeded event happens on its volume: the k-th segment
sealed, or the next segment's first bytes written. The camera then boots (recovery),
docks with its control server on a real pty, and the real dock ingests it: every
segment sealed before the kill reaches the store unchanged, the camera is emptied, and
the stored recording decrypts to consecutive frames.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from e2e_support import START, Site, assert_consecutive, decode, small
from fault_support import ChangeWatch

from crypto.open import decrypt_recording
from dock.ingest import CameraIngest, DockContext
from dock.ledger import Ledger
from dock.slots import Slot
from firmware.camera import Camera
from firmware.control import CameraControlServer
from formats.profile import parse_profile
from sim.board import SimBoard
from sim.clock import FastForwardClock
from store import FileStore, fetch_recording, object_key

CHILD = Path(__file__).resolve().parents[1] / "e2e" / "powercut_child.py"
SITE = "rel"


def _sealed(volume: Path) -> dict[str, str]:
    return {
        f"{p.parent.name}/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((volume / "recordings").glob("*/seg-*.bcs"))
    }


def _kill_camera_on_event(home: Path, profile: Path, k: int, mid_write: bool) -> dict[str, str]:
    """Run the camera until its k-th sealed segment (and the next one's first bytes)."""
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(home), str(profile)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("recording "), f"camera said {line!r}"
        rec_dir = home / "volume" / "recordings" / line.split()[1]

        def reached() -> bool:
            sealed = len(list(rec_dir.glob("seg-*.bcs")))
            if not mid_write:
                return sealed >= k
            return sealed >= k and any(
                p.stat().st_size > 0 for p in rec_dir.glob("*.part") if p.exists()
            )

        # The recording worker makes the folder after the press: watch the recordings root.
        with ChangeWatch(rec_dir.parent, recursive=True) as watch:
            hit = watch.wait_for(reached, alive=lambda: proc.poll() is None, timeout=120)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert hit, f"the camera never sealed {k} segment(s)"
    return _sealed(home / "volume")


def test_camera_sigkill_at_seeded_moments_then_recovery_and_full_ingest(
    tmp_path: Path, rng: Any, tally: Any, count: Any
) -> None:
    site = Site()
    raw, _ = site.profile(
        small(prerecord=30, fps=10, width=160, height=120, segment_seconds=2, bitrate_kbps=300)
    )
    profile = tmp_path / "profile.toml"
    profile.write_bytes(raw)
    ledger = Ledger(tmp_path / "state" / "ledger.sqlite")
    store = FileStore(tmp_path / "store")
    ctx = DockContext(
        store=store, ledger=ledger, dock_key=site.dock, site=SITE, spool_root=tmp_path / "spool"
    )
    slots = tmp_path / "slots"
    slots.mkdir()
    try:
        for n in range(count(2, 8)):
            home = tmp_path / f"home{n}"
            k, mid_write = rng.randint(1, 3), rng.random() < 0.5
            before = _kill_camera_on_event(home, profile, k, mid_write)
            tally.fault("camera process SIGKILL")
            assert len(before) >= k

            cam = Camera(
                home,
                parse_profile(raw, source="test"),
                SimBoard(FastForwardClock(START + 3600)),
                profile_raw=raw,
                control_factory=CameraControlServer,
            )
            cam.power_on()  # boot: recovery of the cut recording
            try:
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
                assert report.ok, f"kill at segment {k} (mid-write {mid_write}): {report.summary()}"
            finally:
                cam.power_off()
            assert _sealed(home / "volume") == {}, "segments left on the camera"
            lost = []
            for where, sha in before.items():
                rec, name = where.split("/")
                if store.stat(object_key(SITE, cam.device_id, rec, name, sha)) is None:
                    lost.append(where)
            tally.checked(len(before), len(lost))
            assert not lost, f"sealed before the kill, not stored unchanged: {lost}"
            for rec in {w.split("/")[0] for w in before}:
                folder = fetch_recording(store, SITE, cam.device_id, rec, tmp_path / "out" / rec)
                out = io.BytesIO()
                decrypt_recording(folder, site.vault, cam.device_public, out)
                assert_consecutive(decode(out.getvalue(), cut_by_power=True).counters)
    finally:
        ledger.close()
