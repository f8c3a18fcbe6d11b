"""kill -9 of the dock at seeded points, three cameras, file store and real SeaweedFS.

Each round the dock (a real `python -m dock run --once` process) is killed right after
the n-th call of a seeded operation: one of its own fault points (stored, recorded,
released, ...) or a system call on its way (link, fsync, replace, unlink); or from
outside, the moment the ledger holds n more segments (wherever the dock then is, a PUT
in flight included). After every kill invariant 1 must hold, and a re-run (sometimes
after killing the recovering dock again) must finish with nothing left on the cameras;
a final look finds every segment stored exactly once and verified. Cameras record more
between rounds, as they do between shifts, so every round has work to be killed in.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from dock_support import Dock, decrypt_from_store, register
from fake_camera import FakeCamera
from fault_support import (
    DOCK_FAULT_POINTS,
    FILE_STORE_POINTS,
    LEDGER_POINT,
    S3_POINTS,
    DockProcess,
    check_cameras,
    choose_kill,
    kill_on_ledger,
    segment_shas,
)
from s3_support import WeedServer, s3_client

from dock.ledger import RELEASED, Ledger
from store import FileStore, open_store

SITE = "rel"
SEG_SIZE = 40_000


def _cameras(tmp_path: Path, docks: Dock, make_cam: Any, site_keys: Any) -> list[FakeCamera]:
    (tmp_path / "keys").mkdir()
    site_keys.dock.save(tmp_path / "keys" / "dock.key")
    cams = [make_cam("cam-a"), make_cam("cam-b", transfer="serial"), make_cam("cam-c")]
    with Ledger(tmp_path / "state" / "ledger.sqlite") as led:
        for cam in cams:
            register(led, cam)
    docks.dock(cams[0], "slot-1")
    docks.dock(cams[1], "slot-2", volume=False)
    docks.dock(cams[2], "slot-3")
    return cams


def _record_round(cams: list[FakeCamera], shas: dict[Any, str]) -> int:
    """A shift's worth of recordings on every camera; returns the segments added."""
    added = 0
    for i, cam in enumerate(cams):
        for _ in range(1 + i % 2):
            cam.record(2 + i % 2, size=SEG_SIZE)
            added += 2 + i % 2
        shas.update(segment_shas(cam))
    return added


def _dock_run(
    tmp_path: Path,
    docks: Dock,
    url: str,
    tag: str,
    env: dict[str, str] | None = None,
    *,
    start: bool = True,
) -> DockProcess:
    run = DockProcess(
        tmp_path / "logs",
        docks.slots,
        url,
        tmp_path / "state" / "ledger.sqlite",
        tmp_path / "keys",
        SITE,
        env=env or {},
        tag=tag,
    )
    return run.start() if start else run


def _kill_rounds(
    tmp_path: Path,
    docks: Dock,
    cams: list[FakeCamera],
    url: str,
    store: Any,
    rng: Any,
    tally: Any,
    kills: int,
    points: tuple[str, ...],
) -> dict[Any, str]:
    shas: dict[Any, str] = {}
    ledger = tmp_path / "state" / "ledger.sqlite"
    killed = 0
    chain: list[str] = []  # kills since the last finished re-run
    verified: set[str] = set()  # read back once here; the final look reads all again
    for round_no in range(kills * 3):  # bounded: a seeded point may lie past the work
        if killed >= kills:
            break
        if not any(cam.segment_files() for cam in cams):
            _record_round(cams, shas)
        pending = sum(len(cam.segment_files()) for cam in cams)
        label, env = choose_kill(rng, max(1, pending), points)
        run = _dock_run(tmp_path, docks, url, f"round{round_no}", env, start=False)
        if label.startswith(LEDGER_POINT):
            rc = kill_on_ledger(run, [cam.device_id for cam in cams], int(label.split(":")[1]))
        else:
            rc = run.start().wait()
        check = check_cameras(cams, shas, ledger, store, SITE, verified)
        tally.checked(check.segments, len(check.lost), len(check.false_releases))
        assert not check.false_releases, f"after {label}: {check.false_releases}"
        if rc != -signal.SIGKILL:
            assert rc == 0, f"round {round_no} ({label}): {run.stderr()[-3000:]}"
            continue
        killed += 1
        tally.fault(f"dock kill -9 ({url.split(':')[0]})")
        chain.append(label)
        if killed < kills and rng.random() < 1 / 3:
            continue  # the next round kills the recovering dock again
        # a re-run finishes what the kill(s) interrupted
        rerun = _dock_run(tmp_path, docks, url, f"rerun{round_no}")
        assert rerun.wait() == 0, f"re-run after {chain}: {rerun.stderr()[-3000:]}"
        check = check_cameras(cams, shas, ledger, store, SITE, verified)
        tally.checked(check.segments, len(check.lost), len(check.false_releases))
        assert check.on_camera == 0 and not check.lost and not check.false_releases, (
            f"after {chain} and a re-run: {check}"
        )
        chain = []
    assert killed >= 1, "no seeded kill point was reached"
    return shas


def _final_run_and_check(
    tmp_path: Path,
    docks: Dock,
    cams: list[FakeCamera],
    url: str,
    store: Any,
    shas: dict[Any, str],
    tally: Any,
) -> None:
    run = _dock_run(tmp_path, docks, url, "final")
    assert run.wait() == 0, run.stderr()[-3000:]
    assert "Traceback" not in run.stderr()
    for cam in cams:
        assert cam.segment_files() == [], f"{cam.device_id} still holds segments"
    check = check_cameras(cams, shas, tmp_path / "state" / "ledger.sqlite", store, SITE)
    tally.checked(check.segments, len(check.lost), len(check.false_releases))
    assert check.segments == len(shas) and not check.lost and not check.false_releases
    stored_segments = [k for k in store.list(f"{SITE}/") if "/seg-" in k]
    assert sorted(stored_segments) == sorted(set(stored_segments))
    assert len(stored_segments) == len(shas)  # each exactly once, nothing extra
    for cam in cams:
        for rec, plain in cam.plaintexts.items():
            assert decrypt_from_store(store, SITE, cam, rec, tmp_path / "out") == plain


def test_dock_kill_9_at_seeded_points_file_store(
    tmp_path: Path, docks: Dock, make_cam: Any, site_keys: Any, rng: Any, tally: Any, count: Any
) -> None:
    cams = _cameras(tmp_path, docks, make_cam, site_keys)
    url = f"file://{tmp_path}/store"
    store = FileStore(tmp_path / "store")
    shas = _kill_rounds(
        tmp_path,
        docks,
        cams,
        url,
        store,
        rng,
        tally,
        count(5, 24),
        (
            *DOCK_FAULT_POINTS,
            *FILE_STORE_POINTS,
            "link",
            "fsync",
            "replace",
            "unlink",
            LEDGER_POINT,
        ),
    )
    _final_run_and_check(tmp_path, docks, cams, url, store, shas, tally)


def test_dock_kill_9_at_seeded_points_s3(
    tmp_path: Path,
    docks: Dock,
    make_cam: Any,
    site_keys: Any,
    rng: Any,
    tally: Any,
    count: Any,
    weed: WeedServer,
    aws_env: dict[str, str],
) -> None:
    cams = _cameras(tmp_path, docks, make_cam, site_keys)
    prefix = f"kill-{rng.randrange(1 << 30):08x}"
    url = f"s3://bodycam-rel/{prefix}?endpoint={weed.endpoint}&region=us-east-1"
    store = open_store(url)
    try:
        shas = _kill_rounds(
            tmp_path,
            docks,
            cams,
            url,
            store,
            rng,
            tally,
            count(3, 24),
            (*DOCK_FAULT_POINTS, *S3_POINTS, "fsync", "replace", "unlink", LEDGER_POINT),
        )
        _final_run_and_check(tmp_path, docks, cams, url, store, shas, tally)
        client = s3_client(weed.endpoint)
        try:
            listed = client.list_object_versions(Bucket="bodycam-rel", Prefix=prefix + "/")
            keys = [v["Key"] for v in listed.get("Versions", [])]
        finally:
            client.close()
        segment_versions = [k for k in keys if "/seg-" in k]
        # under COMPLIANCE lock a second version could never be deleted: none may exist
        assert len(segment_versions) == len(set(segment_versions)) == len(shas)
    finally:
        store.close()


def test_ledger_ends_exact_after_a_kill_between_release_and_ledger(
    tmp_path: Path, docks: Dock, make_cam: Any, site_keys: Any, tally: Any
) -> None:
    (tmp_path / "keys").mkdir()
    site_keys.dock.save(tmp_path / "keys" / "dock.key")
    cam = make_cam("cam-a", transfer="serial")
    cam.record(2, size=SEG_SIZE)
    shas = segment_shas(cam)
    ledger = tmp_path / "state" / "ledger.sqlite"
    with Ledger(ledger) as led:
        register(led, cam)
    docks.dock(cam, "slot-1", volume=False)
    url = f"file://{tmp_path}/store"
    # serial mode releases in order: the 2nd release is the recording's last segment
    run = _dock_run(tmp_path, docks, url, "killed", {"BODYCAM_DOCK_FAULT": "after-release:2"})
    assert run.wait() == -signal.SIGKILL
    tally.fault("dock kill -9 (file)")
    assert _dock_run(tmp_path, docks, url, "final").wait() == 0
    check = check_cameras([cam], shas, ledger, FileStore(tmp_path / "store"), SITE)
    tally.checked(check.segments, len(check.lost), len(check.false_releases))
    assert not check.lost and not check.false_releases
    with Ledger(ledger, readonly=True) as led:
        states = {s.name: s.state for s in led.segments(cam.device_id)}
    assert states == {name: RELEASED for name in cam.segment_names[next(iter(cam.plaintexts))]}


def test_stored_object_never_changes_after_a_kill_right_after_the_link(
    tmp_path: Path, docks: Dock, make_cam: Any, site_keys: Any, tally: Any
) -> None:
    (tmp_path / "keys").mkdir()
    site_keys.dock.save(tmp_path / "keys" / "dock.key")
    cam = make_cam("cam-a", transfer="serial")
    cam.record(2, size=SEG_SIZE)
    shas = segment_shas(cam)
    ledger = tmp_path / "state" / "ledger.sqlite"
    with Ledger(ledger) as led:
        register(led, cam)
    docks.dock(cam, "slot-1", volume=False)
    url = f"file://{tmp_path}/store"
    # links 1 and 2 store the recording's header and manifest, link 3 its first segment
    run = _dock_run(tmp_path, docks, url, "killed", {"BODYCAM_TEST_KILL": "link:3"})
    assert run.wait() == -signal.SIGKILL
    tally.fault("dock kill -9 (file)")
    objects = [p for p in (tmp_path / "store").rglob("seg-*") if ".staging" not in p.parts]
    assert len(objects) == 1
    before = objects[0].read_bytes()
    # the next docking copies over serial again (resume): the stored object must not move
    cam.record(1, size=SEG_SIZE)
    shas.update(segment_shas(cam))
    assert _dock_run(tmp_path, docks, url, "final").wait() == 0
    assert objects[0].read_bytes() == before
    st = objects[0].stat()
    assert st.st_nlink == 1 and st.st_mode & 0o777 == 0o444
    check = check_cameras([cam], shas, ledger, FileStore(tmp_path / "store"), SITE)
    tally.checked(check.segments, len(check.lost), len(check.false_releases))
    assert not check.lost and not check.false_releases


def test_no_temporary_file_outlives_a_kill_in_the_staging_area(
    tmp_path: Path, docks: Dock, make_cam: Any, site_keys: Any, tally: Any
) -> None:
    (tmp_path / "keys").mkdir()
    site_keys.dock.save(tmp_path / "keys" / "dock.key")
    cam = make_cam("cam-a")
    cam.record(2, size=SEG_SIZE)
    shas = segment_shas(cam)
    ledger = tmp_path / "state" / "ledger.sqlite"
    with Ledger(ledger) as led:
        register(led, cam)
    docks.dock(cam, "slot-1")
    url = f"file://{tmp_path}/store"
    # the first link is the recording header's, stored by put_bytes through .staging
    run = _dock_run(tmp_path, docks, url, "killed", {"BODYCAM_TEST_KILL": "link:1"})
    assert run.wait() == -signal.SIGKILL
    tally.fault("dock kill -9 (file)")
    assert _dock_run(tmp_path, docks, url, "final").wait() == 0
    check = check_cameras([cam], shas, ledger, FileStore(tmp_path / "store"), SITE)
    tally.checked(check.segments, len(check.lost), len(check.false_releases))
    assert not check.lost and not check.false_releases and cam.segment_files() == []
    assert list((tmp_path / "store" / ".staging").rglob("*.tmp")) == []
