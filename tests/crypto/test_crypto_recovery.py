"""Power cut at any point: recovery seals whole chunks, says so, and loses at most one chunk."""

from __future__ import annotations

import errno
import hashlib
import io
import shutil
import struct
from pathlib import Path

import pytest
from crypto_reference import read_recording
from crypto_support import DEVICE_ID, SMALL_CHUNK, STARTED, CryptoKeys, pattern

import crypto.recovery as recovery_module
import crypto.seal as seal_module
from crypto.errors import Truncated
from crypto.files import write_all
from crypto.format import TAG_SIZE
from crypto.open import decrypt_recording
from crypto.recovery import recover_recordings
from crypto.seal import RecordingSealer
from crypto.verify import verify_recording

FULL = SMALL_CHUNK + TAG_SIZE
RID = "20261122T181500Z-0c0c"


def _sealer(root: Path, ckeys: CryptoKeys, rid: str = RID) -> RecordingSealer:
    return RecordingSealer(
        root / rid, DEVICE_ID, rid, ckeys.device, [ckeys.vault.public_bytes()], STARTED, SMALL_CHUNK
    )


def _decrypt(folder: Path, ckeys: CryptoKeys) -> bytes:
    out = io.BytesIO()
    decrypt_recording(folder, ckeys.vault, ckeys.device.public_bytes(), out)
    return out.getvalue()


def _kinds(folder: Path) -> list[int]:
    man = (folder / "manifest.bcm").read_bytes()
    return [man[16 + 165 * i] for i in range((len(man) - 16) // 165)]


@pytest.fixture(scope="module")
def cut_template(tmp_path_factory: pytest.TempPathFactory, ckeys: CryptoKeys) -> tuple[Path, int]:
    """A recording cut while writing segment 1: 4 whole chunks on disk; (root, header_len)."""
    root = tmp_path_factory.mktemp("cut") / "recordings"
    sealer = _sealer(root, ckeys)
    with sealer.begin_segment(0, "video/mp2t", 0, STARTED) as seg:
        seg.write(pattern("s0", 100))
    seg = sealer.begin_segment(1, "video/mp2t", 900_000, STARTED + 10)
    seg.write(pattern("s1", 4 * SMALL_CHUNK + 20))  # 4 chunks written, 20 bytes wait in RAM
    sealer.abandon()
    part = root / RID / "seg-000001.bcs.part"
    header_len = struct.unpack(">H", part.read_bytes()[10:12])[0]
    assert part.stat().st_size == header_len + 4 * FULL
    return root, header_len


def _offsets(header_len: int) -> list[tuple[str, int]]:
    cases = [
        ("empty", 0),
        ("inside magic", 3),
        ("inside header", header_len - 1),
        ("header only", header_len),
    ]
    for k in range(4):
        base = header_len + k * FULL
        cases += [
            (f"{k} chunks + 1 byte", base + 1),
            (f"{k} chunks + ciphertext", base + 40),
            (f"{k} chunks + part of tag", base + FULL - 1),
        ]
        if k:
            cases.append((f"{k} chunk boundary", base))
    cases.append(("4 chunk boundary", header_len + 4 * FULL))
    return cases


def test_power_cut_at_every_offset_class(
    cut_template: tuple[Path, int], ckeys: CryptoKeys, tmp_path: Path
) -> None:
    template, header_len = cut_template
    s0, s1 = pattern("s0", 100), pattern("s1", 4 * SMALL_CHUNK + 20)
    for label, size in _offsets(header_len):
        root = tmp_path / label.replace(" ", "_") / "recordings"
        shutil.copytree(template, root)
        folder = root / RID
        part = folder / "seg-000001.bcs.part"
        with open(part, "r+b") as f:
            f.truncate(size)
        reports = recover_recordings(root, ckeys.device)
        assert len(reports) == 1, label
        report = reports[0]
        assert report.closed and not report.problems, (label, report)
        assert not part.exists()
        whole = max(0, (size - header_len) // FULL) if size >= header_len else 0
        if whole == 0:
            assert report.discarded == ["seg-000001.bcs.part"], label
            assert any("no complete chunk" in line for line in report.actions)
            assert _kinds(folder) == [1, 2, 5]
            assert _decrypt(folder, ckeys) == s0
        else:
            assert report.recovered_segments == [("seg-000001.bcs", whole)], label
            assert any(f"recovered, {whole} chunks" in line for line in report.actions)
            assert _kinds(folder) == [1, 2, 3, 5]
            vr = verify_recording(folder, ckeys.device.public_bytes())
            assert vr.complete and vr.recovered and vr.segments[1].recovered
            assert vr.segments[1].chunks == whole and vr.ended_utc is None
            # At most the chunk being written is lost.
            assert _decrypt(folder, ckeys) == s0 + s1[: whole * SMALL_CHUNK], label
            ref = read_recording(folder, ckeys.device.public_bytes(), ckeys.vault.private_bytes())
            assert ref.segments[1].plaintext == s1[: whole * SMALL_CHUNK] and ref.complete
        # Recovery is done once: a second boot finds nothing to do.
        assert recover_recordings(root, ckeys.device) == []


def test_recovered_chunks_open_only_with_the_recovered_entry(
    cut_template: tuple[Path, int], ckeys: CryptoKeys, tmp_path: Path
) -> None:
    template, _ = cut_template
    root = tmp_path / "recordings"
    shutil.copytree(template, root)
    folder = root / RID
    recover_recordings(root, ckeys.device)
    man = (folder / "manifest.bcm").read_bytes()
    entries = [man[16 + 165 * i : 16 + 165 * (i + 1)] for i in range(4)]
    # Re-sign the manifest with the device key claiming segment 1 closed normally:
    # the chunks lack the last-chunk flag, so decryption must refuse it.
    prev = b""
    forged = []
    for i, e in enumerate(entries):
        body = bytearray(e[:101])
        if i == 2:
            body[0] = 2  # SEGMENT instead of RECOVERED_SEGMENT
        if i:
            body[69:101] = prev
        prev = hashlib.sha256(bytes(body)).digest()
        forged.append(bytes(body) + ckeys.device.sign(b"bodycam-manifest-v1\0" + bytes(body)))
    (folder / "manifest.bcm").write_bytes(man[:16] + b"".join(forged))
    with pytest.raises(Truncated, match="without the last-chunk flag"):
        _decrypt(folder, ckeys)


def test_cut_between_rename_and_manifest_update(ckeys: CryptoKeys, tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    sealer = _sealer(root, ckeys)
    folder = root / RID
    plain = [pattern(f"p{i}", 150 + i) for i in range(3)]
    for i in range(2):
        with sealer.begin_segment(i, "video/mp2t", i, STARTED + i) as seg:
            seg.write(plain[i])
    before = (folder / "manifest.bcm").read_bytes()
    with sealer.begin_segment(2, "video/mp2t", 2, STARTED + 2) as seg:
        seg.write(plain[2])
    sealer.abandon()
    # The power cut hit after the rename, before the new manifest was renamed in:
    (folder / "manifest.bcm").write_bytes(before)
    (folder / "manifest.bcm.part").write_bytes(b"half a manifest")
    [report] = recover_recordings(root, ckeys.device)
    assert report.restored_segments == ["seg-000002.bcs"] and report.closed
    assert "removed manifest.bcm.part left by an interrupted update" in report.actions
    assert _kinds(folder) == [1, 2, 2, 2, 5]  # a complete segment is not "recovered"
    assert _decrypt(folder, ckeys) == b"".join(plain)


def test_cut_between_segments(ckeys: CryptoKeys, tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    a = _sealer(root, ckeys, "20261122T181500Z-000a")
    with a.begin_segment(0, "video/mp2t", 0, STARTED) as seg:
        seg.write(b"x" * 70)
    a.abandon()
    done = _sealer(root, ckeys, "20261122T181500Z-000c")
    with done.begin_segment(0, "video/mp2t", 0, STARTED) as seg:
        seg.write(b"y" * 70)
    done.finish(STARTED + 1)
    [report] = recover_recordings(root, ckeys.device)
    assert report.recording_id == "20261122T181500Z-000a"
    assert report.closed and not report.recovered_segments and not report.removed_recording
    assert _decrypt(root / "20261122T181500Z-000a", ckeys) == b"x" * 70
    assert _decrypt(root / "20261122T181500Z-000c", ckeys) == b"y" * 70


def test_a_recording_without_footage_is_removed(ckeys: CryptoKeys, tmp_path: Path) -> None:
    """Cut between the recording's first writes and its first whole chunk, or finished
    without a segment: nothing to keep, and no release would ever remove the folder."""
    root = tmp_path / "recordings"
    _sealer(root, ckeys, "20261122T181500Z-0e01").abandon()  # header and START only
    cut = _sealer(root, ckeys, "20261122T181500Z-0e02")
    cut.begin_segment(0, "video/mp2t", 0, STARTED).write(b"z" * (SMALL_CHUNK // 2))
    cut.abandon()  # seg-000000.bcs.part: its header, no whole chunk
    _sealer(root, ckeys, "20261122T181500Z-0e03").finish(STARTED + 1)  # END, no segment
    kept = _sealer(root, ckeys, "20261122T181500Z-0e04")
    kept.abandon()
    (root / "20261122T181500Z-0e04" / "notes.txt").write_bytes(b"not the camera's")
    reports = {r.recording_id: r for r in recover_recordings(root, ckeys.device)}
    assert sorted(reports) == [f"20261122T181500Z-0e0{i}" for i in (1, 2, 3, 4)]
    for i in (1, 2, 3):
        report = reports[f"20261122T181500Z-0e0{i}"]
        assert report.removed_recording and not report.closed and not report.problems
    assert "discarded seg-000000.bcs.part" in reports["20261122T181500Z-0e02"].actions[0]
    # A folder holding anything else is not the camera's to judge: closed, kept.
    assert reports["20261122T181500Z-0e04"].closed
    assert not reports["20261122T181500Z-0e04"].removed_recording
    assert [p.name for p in root.iterdir()] == ["20261122T181500Z-0e04"]
    assert recover_recordings(root, ckeys.device) == []  # nothing left to do


class _Cut(BaseException):
    """The power goes while recovery removes a folder."""


def test_a_cut_while_removing_a_recording_without_footage(
    ckeys: CryptoKeys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest goes first: a cut then leaves a folder that never started, which the
    next recovery removes (the header alone would leave a manifest nothing can verify)."""
    root = tmp_path / "recordings"
    _sealer(root, ckeys).abandon()
    real = recovery_module.fsync_dir

    def cut(directory: Path) -> None:
        real(directory)
        raise _Cut

    monkeypatch.setattr(recovery_module, "fsync_dir", cut)
    with pytest.raises(_Cut):
        recover_recordings(root, ckeys.device)
    monkeypatch.undo()
    assert [p.name for p in (root / RID).iterdir()] == ["recording.hdr"]
    [report] = recover_recordings(root, ckeys.device)
    assert report.removed_recording and list(root.iterdir()) == []


def test_cut_while_the_recording_was_being_created(ckeys: CryptoKeys, tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    for name, files in {
        "20261122T181500Z-0001": {"recording.hdr.part": b"BCAM"},
        "20261122T181500Z-0002": {"recording.hdr": b"BCAMREC\n\0\1", "manifest.bcm.part": b""},
    }.items():
        (root / name).mkdir(parents=True)
        for fname, data in files.items():
            (root / name / fname).write_bytes(data)
    reports = recover_recordings(root, ckeys.device)
    assert len(reports) == 2 and all(r.removed_recording for r in reports)
    assert list(root.iterdir()) == []


def test_recovery_leaves_what_it_cannot_vouch_for(
    cut_template: tuple[Path, int], ckeys: CryptoKeys, tmp_path: Path
) -> None:
    template, _ = cut_template
    root = tmp_path / "recordings"
    shutil.copytree(template, root)
    folder = root / RID
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    [report] = recover_recordings(root, ckeys.other_device)  # not this camera's key
    assert report.problems and "does not verify" in report.problems[0] and not report.closed
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    # Segment files without any manifest are not deleted either.
    orphan = tmp_path / "r2" / "20261122T181500Z-0bad"
    orphan.mkdir(parents=True)
    (orphan / "seg-000000.bcs").write_bytes(b"footage?")
    [report] = recover_recordings(orphan.parent, ckeys.device)
    assert report.problems and (orphan / "seg-000000.bcs").exists()


def test_write_error_seals_the_whole_chunks_and_recording_continues(
    ckeys: CryptoKeys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "recordings"
    sealer = _sealer(root, ckeys)
    calls = {"n": 0}
    real = write_all  # what crypto.seal calls; replaced there below

    def flaky(fd: int, data: bytes | bytearray | memoryview) -> None:
        calls["n"] += 1
        if calls["n"] == 4:  # header, chunk 0, chunk 1, then the disk fails
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(seal_module, "write_all", flaky)
    s0 = pattern("w0", 5 * SMALL_CHUNK)
    with pytest.raises(OSError, match="No space"):
        with sealer.begin_segment(0, "video/mp2t", 0, STARTED) as seg:
            seg.write(s0)
    monkeypatch.setattr(seal_module, "write_all", real)
    assert sealer.segments[-1].chunks == 2 and sealer.next_index == 1
    with sealer.begin_segment(1, "video/mp2t", 1, STARTED + 1) as seg:
        seg.write(b"after")
    sealer.finish(STARTED + 2)
    assert _kinds(root / RID) == [1, 3, 2, 4]
    assert _decrypt(root / RID, ckeys) == s0[: 2 * SMALL_CHUNK] + b"after"
