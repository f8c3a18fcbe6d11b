"""Ingesting one docked camera: verify, copy, store, record, release; refusals; quarantine."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from dock_support import Dock, decrypt_from_store, register
from fake_camera import FakeCamera

from crypto.recovery import recover_recordings
from dock.ingest import CameraIngest, DockContext
from dock.ledger import QUARANTINED, RELEASED, Ledger
from dock.slots import Slot
from store import FileStore

SITE = "test-site"


def context(tmp_path: Path, ledger: Ledger, dock_keys: Any, **kw: Any) -> DockContext:
    store = kw.pop("store", None) or FileStore(tmp_path / "store")
    return DockContext(
        store=store,
        ledger=ledger,
        dock_key=dock_keys.dock,
        site=SITE,
        spool_root=tmp_path / "spool",
        **kw,
    )


def ingest(docks: Dock, slot: str, ctx: DockContext) -> Any:
    return CameraIngest(Slot(slot, docks.slots / slot), ctx).run()


def test_mass_storage_camera_is_stored_then_released(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    cam: FakeCamera = make_cam()
    recs = [cam.record(3), cam.record(2)]
    register(ledger, cam)
    docks.dock(cam, "slot-1")
    ctx = context(tmp_path, ledger, dock_keys)
    report = ingest(docks, "slot-1", ctx)
    # the camera's clock (T0) is months behind the dock's, beyond what its profile lets a dock
    # correct: left alone, and said so
    assert report.summary() == (
        f"{cam.device_id}: all 2 recordings stored, camera released; notes: " + report.notes[0]
    )
    assert len(report.notes) == 1 and report.notes[0].startswith("camera clock is off by -")
    assert report.ok and report.stored == 5 and report.released == 5
    assert cam.segment_files() == []
    assert list(cam.recordings.iterdir()) == []  # finished recordings go with their last segment
    assert [s.state for s in ledger.segments(cam.device_id)] == [RELEASED] * 5
    for rec in recs:
        assert (
            decrypt_from_store(ctx.store, SITE, cam, rec, tmp_path / "out") == cam.plaintexts[rec]
        )
    events = [k for k in ctx.store.list() if "/events/" in k]
    assert len(events) == 1
    log = (cam.volume / "events" / "events.jsonl").read_bytes()
    assert log.startswith(ctx.store.get_bytes(events[0]))


def test_serial_transfer_resumes_at_the_last_byte_held(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    cam: FakeCamera = make_cam(transfer="serial")
    rec = cam.record(2, size=150_000)
    register(ledger, cam)
    docks.dock(cam, "slot-1", volume=False)
    ctx = context(tmp_path, ledger, dock_keys)
    seg0, seg1 = cam.segment_files()
    # an earlier docking got half of segment 0 and a damaged prefix of segment 1
    spool = ctx.spool_dir() / SITE / cam.device_id / rec
    spool.mkdir(parents=True)
    half = seg0.stat().st_size // 2
    (spool / "seg-000000.bcs.part").write_bytes(seg0.read_bytes()[:half])
    (spool / "seg-000001.bcs.part").write_bytes(b"\0" * 1000)
    size0, size1 = seg0.stat().st_size, seg1.stat().st_size
    ingest_run = CameraIngest(Slot("slot-1", docks.slots / "slot-1"), ctx)
    report = ingest_run.run()
    assert report.ok, report.summary()
    # segment 0 resumed after `half` bytes; segment 1 resumed after the damaged 1000, failed
    # to verify, and was copied again from its start
    assert ingest_run.progress.bytes_done == (size0 - half) + (size1 - 1000) + size1
    assert cam.segment_files() == []
    assert decrypt_from_store(ctx.store, SITE, cam, rec, tmp_path / "out") == cam.plaintexts[rec]


def test_unknown_or_rekeyed_camera_is_refused_and_keeps_everything(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    cam: FakeCamera = make_cam()
    cam.record(2)
    docks.dock(cam, "slot-1")
    ctx = context(tmp_path, ledger, dock_keys, takes_registry=True)
    report = ingest(docks, "slot-1", ctx)
    assert report.refused and "not registered" in report.refused
    assert "bodycam vault camera add" in report.summary()
    assert len(cam.segment_files()) == 2 and list(ctx.store.list()) == []
    # a dock without --registry-key: the back office may list the camera already, so
    # the refusal names the dock's missing key, not the coordinator's work
    bare = ingest(docks, "slot-1", context(tmp_path, ledger, dock_keys))
    assert bare.refused and "this dock runs without a registry key" in bare.refused
    assert "--registry-key FILE" in bare.refused and "vault camera add" not in bare.refused
    assert ledger.segments() == []

    impostor = make_cam("cam2")
    ledger.register_device(
        cam.device_id, impostor.public_key, registered_by="c", role="coordinator"
    )
    report = ingest(docks, "slot-1", ctx)
    assert report.refused and "differs from the registered" in report.refused
    assert len(cam.segment_files()) == 2 and list(ctx.store.list()) == []


def test_camera_that_does_not_trust_this_dock_is_refused(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    cam: FakeCamera = make_cam(trusted=[dock_keys.other_dock.public_bytes()])
    cam.record(1)
    register(ledger, cam)
    docks.dock(cam, "slot-1")
    report = ingest(docks, "slot-1", context(tmp_path, ledger, dock_keys))
    assert report.refused and "authentication failed" in report.refused
    assert len(cam.segment_files()) == 1


def test_tampered_segment_is_quarantined_never_released(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    cam: FakeCamera = make_cam()
    rec = cam.record(3)
    register(ledger, cam)
    bad = cam.recordings / rec / "seg-000001.bcs"
    raw = bytearray(bad.read_bytes())
    raw[-5] ^= 0x40
    bad.write_bytes(bytes(raw))
    docks.dock(cam, "slot-1")
    ctx = context(tmp_path, ledger, dock_keys)
    report = ingest(docks, "slot-1", ctx)
    assert not report.ok
    assert cam.segment_files() == [bad] and bad.read_bytes() == bytes(raw)
    assert f"quarantined {rec}/seg-000001.bcs: SHA-256" in report.summary()
    assert "1 segment(s) kept on the camera" in report.summary()
    states = {s.name: s.state for s in ledger.segments(cam.device_id)}
    assert states == {
        "seg-000000.bcs": RELEASED,
        "seg-000001.bcs": QUARANTINED,
        "seg-000002.bcs": RELEASED,
    }
    quarantined = list(ctx.store.list("quarantine/"))
    assert len(quarantined) == 2  # the bytes and the reason
    data_key = next(k for k in quarantined if ".reason.json" not in k)
    assert ctx.store.get_bytes(data_key) == bytes(raw)
    assert ctx.store.legal_hold(data_key)
    # docking again changes nothing: still kept, still quarantined, nothing duplicated
    report2 = ingest(docks, "slot-1", ctx)
    assert cam.segment_files() == [bad] and not report2.ok
    assert list(ctx.store.list("quarantine/")) == quarantined


def test_manifest_not_signed_by_the_camera_quarantines_the_whole_recording(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    cam: FakeCamera = make_cam()
    other: FakeCamera = make_cam("other")
    good = cam.record(1)
    foreign = other.record(2)
    # another camera's recording appears on this camera's volume
    (other.recordings / foreign).rename(cam.recordings / foreign)
    register(ledger, cam)
    docks.dock(cam, "slot-1")
    ctx = context(tmp_path, ledger, dock_keys)
    report = ingest(docks, "slot-1", ctx)
    assert f"quarantined {foreign}: manifest does not verify" in report.summary()
    assert report.recordings == 2 and report.recordings_done == 1
    assert not (cam.recordings / good).exists()
    assert sorted(p.name for p in (cam.recordings / foreign).iterdir()) == [
        "manifest.bcm",
        "recording.hdr",
        "seg-000000.bcs",
        "seg-000001.bcs",
    ]
    # Only the evidence of what is wrong is copied: header, manifest, the first segment.
    q = [k for k in ctx.store.list("quarantine/") if ".reason.json" not in k]
    assert sorted(k.split("/")[-1].rsplit(".", 1)[0] for k in q) == [
        "manifest.bcm",
        "recording.hdr",
        "seg-000000.bcs",
    ]
    held = ledger.recording(cam.device_id, foreign)
    assert held is not None and held["quarantine_reason"]
    assert "1 more file(s)" in held["quarantine_reason"]


def test_spliced_segment_in_a_finished_recording_is_quarantined(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    cam: FakeCamera = make_cam()
    a = cam.record(2)
    b = cam.record(1)
    # a segment of recording b copied into recording a under the next free name
    spliced = cam.recordings / a / "seg-000002.bcs"
    spliced.write_bytes((cam.recordings / b / "seg-000000.bcs").read_bytes())
    register(ledger, cam)
    docks.dock(cam, "slot-1")
    ctx = context(tmp_path, ledger, dock_keys)
    report = ingest(docks, "slot-1", ctx)
    # the last listed segment is stored but held back: releasing it would make the camera
    # remove the folder, the quarantined file with it
    assert cam.segment_files() == [cam.recordings / a / "seg-000001.bcs", spliced]
    assert (
        f"quarantined {a}/seg-000002.bcs: segment file is not in the signed manifest"
        in report.summary()
    )
    assert report.recordings_done == 2 and report.kept == 2
    last = ledger.segment(cam.device_id, a, "seg-000001.bcs")
    assert last is not None and last.state == "stored"
    q = [k for k in ctx.store.list("quarantine/") if ".reason.json" not in k]
    assert [ctx.store.get_bytes(k) for k in q] == [spliced.read_bytes()]


def test_unfinished_recording_segments_are_released_folder_stays(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    cam: FakeCamera = make_cam()
    rec = cam.record(2, finish=False)
    register(ledger, cam)
    docks.dock(cam, "slot-1")
    report = ingest(docks, "slot-1", context(tmp_path, ledger, dock_keys))
    assert report.ok, report.summary()
    assert cam.segment_files() == []
    assert sorted(p.name for p in (cam.recordings / rec).iterdir()) == [
        "manifest.bcm",
        "recording.hdr",
    ]
    again = ingest(docks, "slot-1", context(tmp_path, ledger, dock_keys))
    assert again.ok and again.recordings_done == 1 and again.stored == 0


def test_a_finished_recording_without_footage_is_named_not_counted_as_stored(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    """A signed manifest that lists no segment (what a camera left when a power cut came
    before a recording's first chunk): nothing to store or release, and the summary says
    so instead of counting it as stored."""
    cam: FakeCamera = make_cam()
    empty = cam.record(0)
    cam.record(2)
    alone: FakeCamera = make_cam("cam2")
    only = alone.record(0)
    for c in (cam, alone):
        register(ledger, c)
    docks.dock(cam, "slot-1")
    docks.dock(alone, "slot-2")
    ctx = context(tmp_path, ledger, dock_keys)
    report = ingest(docks, "slot-1", ctx)
    assert report.summary().startswith(
        f"{cam.device_id}: 1 of 1 recordings stored, 1 recording without footage "
        "(no segment to store); 1 other file(s) left on the camera; notes: "
    )
    assert (report.recordings, report.recordings_done, report.empty) == (2, 1, 1)
    assert (report.stored, report.released) == (2, 2)
    assert list(report.left) == [f"recordings/{empty}"]
    assert "no segment to release" in report.left[f"recordings/{empty}"]
    assert not report.ok and not report.released_camera
    assert [p.name for p in cam.recordings.iterdir()] == [empty]
    report = ingest(docks, "slot-2", ctx)
    assert report.summary().startswith(
        f"{alone.device_id}: 1 recording without footage (no segment to store); "
        "1 other file(s) left on the camera; notes: "
    )
    assert (report.recordings, report.recordings_done, report.empty, report.stored) == (1, 0, 1, 0)
    assert list(report.left) == [f"recordings/{only}"]
    # The camera's boot recovery removes such a folder; the next docking finds nothing.
    [removed] = recover_recordings(alone.recordings, alone.device_key)
    assert removed.removed_recording
    docks.undock("slot-2")
    docks.dock(alone, "slot-2")
    again = ingest(docks, "slot-2", ctx)
    assert again.ok and again.summary().startswith(f"{alone.device_id}: no recordings on the")


def test_store_unavailable_keeps_everything_on_the_camera(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    cam: FakeCamera = make_cam()
    rec = cam.record(2)
    register(ledger, cam)
    docks.dock(cam, "slot-1")
    mount = tmp_path / "nas"
    store = FileStore(mount / "bodycam", create=False)  # the NAS is not mounted
    ctx = context(tmp_path, ledger, dock_keys, store=store)
    report = ingest(docks, "slot-1", ctx)
    assert report.store_problem and "mounted" in report.store_problem
    assert len(cam.segment_files()) == 2 and ledger.segments() == []
    (mount / "bodycam").mkdir(parents=True)  # mounted again
    FileStore(mount / "bodycam").check()  # the store made at first start, marker and all
    report = ingest(docks, "slot-1", ctx)
    assert report.ok, report.summary()
    assert decrypt_from_store(store, SITE, cam, rec, tmp_path / "out") == cam.plaintexts[rec]


def test_volume_without_serial_link_is_stored_but_not_released(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    cam: FakeCamera = make_cam()
    cam.record(2)
    register(ledger, cam)
    docks.dock(cam, "slot-1", serial=False)
    report = ingest(docks, "slot-1", context(tmp_path, ledger, dock_keys))
    assert report.stored == 2 and report.released == 0 and not report.ok
    assert len(cam.segment_files()) == 2
    assert "2 segment(s) kept on the camera" in report.summary()


def test_event_log_is_offloaded_in_whole_lines_without_repeats(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    cam: FakeCamera = make_cam()
    register(ledger, cam)
    docks.dock(cam, "slot-1")
    ctx = context(tmp_path, ledger, dock_keys)
    assert ingest(docks, "slot-1", ctx).ok
    cam.event_log.append("undock")
    cam.record(1)
    assert ingest(docks, "slot-1", ctx).ok
    pieces = sorted(k for k in ctx.store.list() if "/events/" in k)
    assert len(pieces) == 2
    joined = b"".join(ctx.store.get_bytes(k) for k in pieces)
    log = (cam.volume / "events" / "events.jsonl").read_bytes()
    assert log.startswith(joined) and joined.endswith(b"\n")
    assert ledger.events_offset(cam.device_id) == len(joined)


class Crash(BaseException):
    """Stands in for kill -9 in-process: nothing after the fault point runs."""


@pytest.mark.parametrize("point", ["after-store", "after-ledger", "after-release"])
@pytest.mark.parametrize("nth", [1, 2])
def test_crash_at_each_window_resumes_without_duplicates_or_early_release(
    tmp_path: Path,
    docks: Dock,
    make_cam: Any,
    ledger: Ledger,
    dock_keys: Any,
    monkeypatch: pytest.MonkeyPatch,
    point: str,
    nth: int,
) -> None:
    cam: FakeCamera = make_cam()
    rec = cam.record(3)
    register(ledger, cam)
    docks.dock(cam, "slot-1")
    store = FileStore(tmp_path / "store")
    puts: list[str] = []
    real_put = store.put_file

    def counting_put(key: str, path: Path, **kw: Any) -> Any:
        receipt = real_put(key, path, **kw)
        if not receipt.already_present:
            puts.append(key)
        return receipt

    monkeypatch.setattr(store, "put_file", counting_put)
    hits: list[str] = []

    def crash_at(name: str) -> None:
        if name == point:
            hits.append(name)
            if len(hits) == nth:
                # at this instant: whatever the ledger says stored must be in the store,
                # and nothing the ledger does not hold as stored may be gone from the camera
                on_camera = {p.name for p in cam.segment_files()}
                for seg in ledger.segments(cam.device_id):
                    if seg.durable:
                        assert seg.store_key and store.stat(seg.store_key) is not None
                for name_ in ("seg-000000.bcs", "seg-000001.bcs", "seg-000002.bcs"):
                    held = ledger.segment(cam.device_id, rec, name_)
                    if name_ not in on_camera:
                        assert held is not None and held.durable
                raise Crash(name)

    monkeypatch.setattr("dock.faults.fault_point", crash_at)
    ctx = context(tmp_path, ledger, dock_keys, store=store)
    with pytest.raises(Crash):
        ingest(docks, "slot-1", ctx)
    monkeypatch.setattr("dock.faults.fault_point", lambda name: None)
    report = ingest(docks, "slot-1", context(tmp_path, ledger, dock_keys, store=store))
    assert report.ok, report.summary()
    assert cam.segment_files() == []
    segment_puts = [k for k in puts if "/seg-" in k]
    assert len(segment_puts) == len(set(segment_puts)) == 3  # each uploaded exactly once
    assert decrypt_from_store(store, SITE, cam, rec, tmp_path / "out") == cam.plaintexts[rec]


def test_undock_mid_transfer_aborts_cleanly_and_resumes(
    tmp_path: Path,
    docks: Dock,
    make_cam: Any,
    ledger: Ledger,
    dock_keys: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cam: FakeCamera = make_cam()
    rec = cam.record(3)
    register(ledger, cam)
    docks.dock(cam, "slot-1")
    store = FileStore(tmp_path / "store")
    real_put = store.put_file
    done: list[str] = []

    def put_then_unplug(key: str, path: Path, **kw: Any) -> Any:
        receipt = real_put(key, path, **kw)
        if "/seg-" in key:
            done.append(key)
            if len(done) == 2:
                docks.undock("slot-1")  # pulled out right after the second upload
        return receipt

    monkeypatch.setattr(store, "put_file", put_then_unplug)
    ctx = context(tmp_path, ledger, dock_keys, store=store)
    report = ingest(docks, "slot-1", ctx)
    assert report.aborted and "undocked" in report.aborted
    assert "dock the camera again" in report.summary()
    # segment 0 may or may not have been released (releases run in the background) before
    # the unplug; 1 was stored but not released; 2 was never touched
    states = {s.name: s.state for s in ledger.segments(cam.device_id)}
    on_camera = {p.name for p in cam.segment_files()}
    assert states["seg-000001.bcs"] == "stored" and "seg-000002.bcs" not in states
    assert {"seg-000001.bcs", "seg-000002.bcs"} <= on_camera
    # (the camera may even have deleted it with the reply lost in the unplug: then the
    # ledger still says stored, and the next docking notices it is gone)
    assert states["seg-000000.bcs"] in ("stored", RELEASED)
    if states["seg-000000.bcs"] == RELEASED:
        assert "seg-000000.bcs" not in on_camera
    docks.dock(cam, "slot-1")
    report = ingest(docks, "slot-1", ctx)
    assert report.ok, report.summary()
    assert len(done) == 3  # the stored one was released without a second upload
    assert decrypt_from_store(store, SITE, cam, rec, tmp_path / "out") == cam.plaintexts[rec]


def test_shutdown_finishes_the_chunk_and_stops(
    tmp_path: Path,
    docks: Dock,
    make_cam: Any,
    ledger: Ledger,
    dock_keys: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cam: FakeCamera = make_cam()
    cam.record(2)
    register(ledger, cam)
    docks.dock(cam, "slot-1")
    stop = threading.Event()
    store = FileStore(tmp_path / "store")
    real_put = store.put_file

    def put_then_sigterm(key: str, path: Path, **kw: Any) -> Any:
        receipt = real_put(key, path, **kw)
        if "/seg-" in key:
            stop.set()
        return receipt

    monkeypatch.setattr(store, "put_file", put_then_sigterm)
    report = ingest(docks, "slot-1", context(tmp_path, ledger, dock_keys, store=store, stop=stop))
    assert report.aborted and "shutting down" in report.aborted
    assert [s.state for s in ledger.segments(cam.device_id)] == ["stored"]
    assert len(cam.segment_files()) == 2
