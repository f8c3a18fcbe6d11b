"""The S3 server goes down while the dock holds an upload, and comes back: nothing lost.

A SeaweedFS of this test's own (not the suite's, which other tests share) is stopped
while the dock process holds its n-th upload (seeded) at the pause point of
`dock_fault_child.py`, then let go against a dead server, then the server restarts
on the same ports and data. The dock retries and must finish by itself: every segment
stored exactly once (one version under Object Lock), verified, and released.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from dock_support import Dock, decrypt_from_store, register
from fault_support import PAUSE_ENV, DockProcess, check_cameras, segment_shas, wait_pause_marker
from s3_support import s3_client, start_weed

from dock.ledger import Ledger
from store import open_store

SITE = "rel"


def test_s3_server_stopped_and_restarted_mid_upload(
    tmp_path: Path,
    docks: Dock,
    make_cam: Any,
    site_keys: Any,
    rng: Any,
    tally: Any,
    count: Any,
    aws_env: dict[str, str],
) -> None:
    (tmp_path / "keys").mkdir()
    site_keys.dock.save(tmp_path / "keys" / "dock.key")
    ledger = tmp_path / "state" / "ledger.sqlite"
    cams = [make_cam("cam-a"), make_cam("cam-b", transfer="serial")]
    with Ledger(ledger) as led:
        for cam in cams:
            register(led, cam)
    with tempfile.TemporaryDirectory(prefix="bodycam-outage-weed-") as weed_dir:
        weed = start_weed(Path(weed_dir))
        try:
            url = f"s3://bodycam-outage/o?endpoint={weed.endpoint}&region=us-east-1"
            shas: dict[Any, str] = {}
            for outage in range(count(1, 3)):
                for cam in cams:
                    cam.record(2, size=30_000)
                    shas.update(segment_shas(cam))
                docks.dock(cams[0], "slot-1")
                docks.dock(cams[1], "slot-2", volume=False)
                # uploads per round: header, manifest and 2 segments per camera (8)
                nth = rng.randint(1, 8)
                pause = tmp_path / f"pause{outage}"
                pause.mkdir()
                run = DockProcess(
                    tmp_path / "logs",
                    docks.slots,
                    url,
                    ledger,
                    tmp_path / "keys",
                    SITE,
                    tag=f"outage{outage}",
                    env={"BODYCAM_TEST_KILL": f"pause-put:{nth}", PAUSE_ENV: str(pause)},
                ).start()
                marker = wait_pause_marker(pause, nth, alive=run.running)
                assert marker is not None, f"upload {nth} never started: {run.stderr()[-2000:]}"
                weed.stop()  # the server dies with the upload about to go out
                marker.unlink()  # the dock sends into a dead server and starts retrying
                weed.start()  # same ports, same data
                tally.fault("S3 server stopped and restarted mid-upload")
                assert run.wait(timeout=120) == 0, run.stderr()[-3000:]
                assert "Traceback" not in run.stderr()
                assert "retry 1 in" in run.stderr()  # the outage was met, and ridden out
                store = open_store(url)
                try:
                    check = check_cameras(cams, shas, ledger, store, SITE)
                    tally.checked(check.segments, len(check.lost), len(check.false_releases))
                    assert check.on_camera == 0 and not check.lost and not check.false_releases
                    for cam in cams:
                        for rec, plain in cam.plaintexts.items():
                            assert (
                                decrypt_from_store(
                                    store, SITE, cam, rec, tmp_path / "out" / str(outage)
                                )
                                == plain
                            )
                finally:
                    store.close()
                docks.close()
            client = s3_client(weed.endpoint)
            try:
                listed = client.list_object_versions(Bucket="bodycam-outage", Prefix="o/")
            finally:
                client.close()
            versions = [v["Key"] for v in listed.get("Versions", []) if "/seg-" in v["Key"]]
            assert len(versions) == len(set(versions)) == len(shas)
        finally:
            weed.stop()
