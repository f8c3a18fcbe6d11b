"""STATUS, SET_TIME, LIST_RECORDINGS, READ (resumable), EVENT_LOG and RELEASE over a real pty."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from serial_support import FakeCamera, Keys, random_recording

from dock.link import CameraLink, LinkClosed, LinkError, ReceiptRejected, RemoteNotFound
from firmware.control import CameraControlServer
from formats.protocol import MAX_DATA, ErrorCode, ReleaseReceipt
from sim.pty import PtySerialPort


def test_status_and_set_time_logs_the_drift(session: CameraLink, camera: FakeCamera) -> None:
    before = session.status()
    assert before["utc"] == camera.clock.now()
    assert before["profile"]["version"] == 1
    drift = session.set_time(camera.clock.now() - 12.5)
    assert drift == pytest.approx(12.5)
    syncs = [f for k, f in camera.events if k == "clock_sync"]
    assert syncs == [{"dock_utc": camera.clock.now(), "drift_seconds": pytest.approx(12.5)}]
    with pytest.raises(LinkError) as exc:
        session.set_time(float("1e300"))
    assert exc.value.code == ErrorCode.BAD_MESSAGE


def test_list_recordings_pages_through_every_file(session: CameraLink, camera: FakeCamera) -> None:
    expected = {}
    for r in range(3):
        rid = f"20261122T18150{r}Z-ab1{r}"
        for i in range(110):  # 330 files: more than one page
            name = f"seg-{i:06d}.bcs"
            camera.add_file(rid, name, b"x" * (i + r))
            expected[(rid, name)] = i + r
    (camera.volume / "recordings" / "stray-file").write_bytes(b"not a recording folder")
    listing = session.list_recordings()
    got = {(f.recording_id, f.name): f.size for rec in listing for f in rec.files}
    assert got == expected
    assert [rec.recording_id for rec in listing] == sorted({rid for rid, _ in expected})
    assert listing[0].files[0].path == f"recordings/{listing[0].recording_id}/seg-000000.bcs"


def test_read_returns_ranges_and_short_reads_at_the_end(
    session: CameraLink, camera: FakeCamera
) -> None:
    (path,) = random_recording(camera, "20261122T181500Z-0001", [150_000])
    data = path.read_bytes()
    rel = "recordings/20261122T181500Z-0001/seg-000000.bcs"
    assert session.read(rel, 0, 100) == data[:100]
    assert session.read(rel, 70_000, MAX_DATA) == data[70_000 : 70_000 + MAX_DATA]
    assert session.read(rel, 149_990, 1000) == data[149_990:]
    assert session.read(rel, 10**9, 10) == b""
    assert session.read(rel, 1, 3 * MAX_DATA) == data[1:]  # several READs, EOF before length
    assert session.read(rel, 5, 2 * MAX_DATA + 7) == data[5 : 5 + 2 * MAX_DATA + 7]
    with pytest.raises(ValueError):
        session.read_chunk(rel, 0, MAX_DATA + 1)  # one READ: refused locally (camera: below)


def test_read_length_is_bounded_by_the_camera(session: CameraLink) -> None:
    from formats.protocol import MessageType

    with pytest.raises(LinkError) as exc:
        session.call(MessageType.READ, {"path": "x", "offset": 0, "length": MAX_DATA + 1})
    assert exc.value.code == ErrorCode.BAD_MESSAGE


def test_read_file_to_resumes_after_an_unplug(
    camera: FakeCamera, keys: Keys, tmp_path: Path
) -> None:
    (path,) = random_recording(camera, "20261122T181500Z-0002", [600_000])
    rel = "recordings/20261122T181500Z-0002/seg-000000.bcs"
    out_path = tmp_path / "copy.part"
    progress: list[tuple[int, int]] = []
    srv = CameraControlServer(camera, PtySerialPort())
    srv.start()
    assert srv.path is not None
    try:
        with CameraLink(srv.path, timeout=0.2, retries=1) as link, out_path.open("ab") as out:
            link.hello()
            link.auth(keys.dock, keys.device.public_bytes())

            def unplug_midway(done: int, total: int) -> None:
                progress.append((done, total))
                if done >= 200_000:
                    srv.stop()  # the camera goes away mid-transfer

            with pytest.raises((LinkClosed, TimeoutError)):
                link.read_file_to(rel, out, 0, progress=unplug_midway)
    finally:
        srv.stop()
    held = out_path.stat().st_size
    assert 0 < held < 600_000 and held % MAX_DATA == 0
    with CameraControlServer(camera, PtySerialPort()) as srv2:
        assert srv2.path is not None
        with CameraLink(srv2.path, timeout=0.5) as link, out_path.open("ab") as out:
            link.hello()
            link.auth(keys.dock, keys.device.public_bytes())
            size = link.read_file_to(rel, out, start_offset=held)
    assert size == 600_000
    assert out_path.read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    "bad_path",
    [
        "../device.key",
        "/etc/passwd",
        "recordings/../../device.key",
        "./events",
        ".hidden",
        "recordings//x",
        "a\\b",
        "x" * 300,
        "",
    ],
)
def test_read_refuses_paths_that_are_not_plain_volume_paths(
    session: CameraLink, bad_path: str
) -> None:
    with pytest.raises(LinkError) as exc:
        session.read(bad_path, 0, 10)
    assert exc.value.code == ErrorCode.BAD_MESSAGE


def test_read_refuses_links_out_of_the_volume_and_non_files(
    session: CameraLink, camera: FakeCamera
) -> None:
    rec = camera.volume / "recordings" / "20261122T181500Z-0003"
    rec.mkdir(parents=True)
    (rec / "key-link").symlink_to(camera.home / "device.key")
    (camera.volume / "home-link").symlink_to(camera.home)
    for rel in ("recordings/20261122T181500Z-0003/key-link", "home-link/device.key"):
        with pytest.raises(LinkError) as exc:
            session.read(rel, 0, 100)
        assert exc.value.code == ErrorCode.FORBIDDEN
    with pytest.raises(LinkError) as exc:
        session.read("recordings/20261122T181500Z-0003", 0, 10)
    assert exc.value.code == ErrorCode.FORBIDDEN
    with pytest.raises(RemoteNotFound):
        session.read("recordings/nothing-here", 0, 10)


def test_event_log_is_read_whole_and_verifies(
    session: CameraLink, camera: FakeCamera, keys: Keys, tmp_path: Path
) -> None:
    from formats.eventlog import verify_event_log

    for i in range(90):  # > 2 READ-sized pages of signed events
        camera.event_log.append("indicator", n=i, note="x" * 1500)
    data = session.event_log()
    assert len(data) > 2 * MAX_DATA
    assert data == (camera.volume / "events" / "events.jsonl").read_bytes()
    copy = tmp_path / "offloaded.jsonl"
    copy.write_bytes(data)
    report = verify_event_log(copy, keys.device.public_bytes())
    assert report.of_kind("dock_authenticated") and report.count == 91
    assert session.event_log(offset=1000) == data[1000:]


# --- RELEASE ---------------------------------------------------------------------------

RID = "20261122T181500Z-00aa"


def _segment(camera: FakeCamera) -> tuple[Path, str]:
    (path,) = random_recording(camera, RID, [70_000])
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_release_with_a_valid_receipt_deletes_the_segment(
    session: CameraLink, camera: FakeCamera, keys: Keys
) -> None:
    path, sha = _segment(camera)
    receipt = ReleaseReceipt.sign(keys.dock, camera.device_id, RID, path.name, sha)
    session.release(receipt)
    assert not path.exists()
    released = [f for k, f in camera.events if k == "segment_released"]
    assert released and released[0]["segment"] == path.name and released[0]["sha256"] == sha
    with pytest.raises(RemoteNotFound):
        session.release(receipt)  # a new request (not a retry): the segment is gone


def test_release_with_the_wrong_hash_is_refused(
    session: CameraLink, camera: FakeCamera, keys: Keys
) -> None:
    path, sha = _segment(camera)
    wrong = hashlib.sha256(b"another file").hexdigest()
    receipt = ReleaseReceipt.sign(keys.dock, camera.device_id, RID, path.name, wrong)
    with pytest.raises(ReceiptRejected, match="sha256 on the camera"):
        session.release(receipt)
    assert path.exists()
    assert "release_refused" in camera.kinds()


@pytest.mark.parametrize("flaw", ["untrusted-dock", "other-device", "other-segment", "bad-sig"])
def test_release_without_a_valid_receipt_is_refused(
    session: CameraLink, camera: FakeCamera, keys: Keys, flaw: str
) -> None:
    path, sha = _segment(camera)
    if flaw == "untrusted-dock":
        receipt = ReleaseReceipt.sign(keys.other_dock, camera.device_id, RID, path.name, sha)
    elif flaw == "other-device":
        receipt = ReleaseReceipt.sign(keys.dock, "BC-FFFFFFFF", RID, path.name, sha)
    elif flaw == "other-segment":
        signed = ReleaseReceipt.sign(keys.dock, camera.device_id, RID, "seg-000001.bcs", sha)
        receipt = ReleaseReceipt(RID, path.name, sha, signed.dock_public, signed.signature)
    else:
        good = ReleaseReceipt.sign(keys.dock, camera.device_id, RID, path.name, sha)
        receipt = ReleaseReceipt(RID, path.name, sha, good.dock_public, bytes(64))
    with pytest.raises(ReceiptRejected):
        session.release(receipt)
    assert path.exists()


def test_release_needs_a_session_and_cannot_name_files_outside_recordings(
    link: CameraLink, camera: FakeCamera, keys: Keys
) -> None:
    path, sha = _segment(camera)
    receipt = ReleaseReceipt.sign(keys.dock, camera.device_id, RID, path.name, sha)
    link.hello()
    with pytest.raises(LinkError) as exc:
        link.release(receipt)
    assert exc.value.code == ErrorCode.NOT_AUTHENTICATED
    link.auth(keys.dock, keys.device.public_bytes())
    sneaky = ReleaseReceipt.sign(keys.dock, camera.device_id, "..", "device.key", sha)
    with pytest.raises(LinkError) as exc:
        link.release(sneaky)
    assert exc.value.code == ErrorCode.BAD_MESSAGE
    assert path.exists() and (camera.home / "device.key").exists()


def test_sealed_files_stay_byte_identical_after_reads(
    session: CameraLink, camera: FakeCamera
) -> None:
    paths = random_recording(camera, RID, [1000, 65_536, 65_537])
    before = [p.read_bytes() for p in paths]
    for p in paths:
        buf = io.BytesIO()
        session.read_file_to(f"recordings/{RID}/{p.name}", buf)
        assert buf.getvalue() == p.read_bytes()
    assert [p.read_bytes() for p in paths] == before
    assert sorted(os.listdir(camera.volume / "recordings" / RID)) == sorted(p.name for p in paths)


def _sealed_recording(camera: FakeCamera, recording_id: str, segments: int, finish: bool) -> Path:
    from crypto.keys import VaultKey
    from crypto.seal import RecordingSealer

    rec_dir = camera.volume / "recordings" / recording_id
    sealer = RecordingSealer(
        rec_dir,
        camera.device_id,
        recording_id,
        camera.device_key,
        [VaultKey.generate().public_bytes()],
        started_utc=1_790_000_000.0,
    )
    for i in range(segments):
        seg = sealer.begin_segment(i, "video/mp2t", i * 900_000, 1_790_000_000.0 + 10 * i)
        seg.write(os.urandom(5000))
        seg.close()
    if finish:
        sealer.finish(1_790_000_000.0 + 10 * segments)
    return rec_dir


def _release_all(session: CameraLink, camera: FakeCamera, keys: Keys, rec_dir: Path) -> list[bool]:
    from crypto.verify import verify_recording

    verified = verify_recording(rec_dir, keys.device.public_bytes())  # what a dock does first
    removed = []
    for entry in verified.segments:
        receipt = ReleaseReceipt.sign(
            keys.dock, camera.device_id, rec_dir.name, entry.name, entry.sha256
        )
        removed.append(session.release(receipt))
    return removed


def test_releasing_the_last_segment_of_a_finished_recording_removes_its_folder(
    session: CameraLink, camera: FakeCamera, keys: Keys
) -> None:
    rec_dir = _sealed_recording(camera, "20261122T181500Z-0c01", 3, finish=True)
    assert _release_all(session, camera, keys, rec_dir) == [False, False, True]
    assert not rec_dir.exists()
    assert session.list_recordings() == []


def test_an_unfinished_recording_keeps_its_folder(
    session: CameraLink, camera: FakeCamera, keys: Keys
) -> None:
    rec_dir = _sealed_recording(camera, "20261122T181500Z-0c02", 2, finish=False)
    assert _release_all(session, camera, keys, rec_dir) == [False, False]
    assert sorted(p.name for p in rec_dir.iterdir()) == ["manifest.bcm", "recording.hdr"]


def test_only_segments_can_be_released(session: CameraLink, camera: FakeCamera, keys: Keys) -> None:
    rec_dir = _sealed_recording(camera, "20261122T181500Z-0c03", 1, finish=True)
    manifest = rec_dir / "manifest.bcm"
    sha = hashlib.sha256(manifest.read_bytes()).hexdigest()
    receipt = ReleaseReceipt.sign(keys.dock, camera.device_id, rec_dir.name, manifest.name, sha)
    with pytest.raises(LinkError, match="only sealed segments") as exc:
        session.release(receipt)
    assert exc.value.code == ErrorCode.FORBIDDEN
    assert manifest.exists()


def test_a_finished_recording_holding_an_unlisted_segment_keeps_it(
    session: CameraLink, camera: FakeCamera, keys: Keys
) -> None:
    # A segment the manifest does not list is what the dock quarantines: releasing every
    # listed segment must not take it with the folder.
    from crypto.verify import verify_recording

    rec_dir = _sealed_recording(camera, "20261122T181500Z-0c04", 2, finish=True)
    verified = verify_recording(rec_dir, keys.device.public_bytes())
    stray = rec_dir / "seg-000007.bcs"
    stray.write_bytes(b"sealed elsewhere")
    for entry in verified.segments:
        receipt = ReleaseReceipt.sign(
            keys.dock, camera.device_id, rec_dir.name, entry.name, entry.sha256
        )
        assert session.release(receipt) is False
    assert stray.read_bytes() == b"sealed elsewhere"
    assert sorted(p.name for p in rec_dir.iterdir()) == [
        "manifest.bcm",
        "recording.hdr",
        "seg-000007.bcs",
    ]
