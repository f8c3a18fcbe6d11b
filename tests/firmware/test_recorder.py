"""The segmenter on its own: keyframe cuts, sealing, storage full, power cut (fake muxer)."""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any

import pytest

from crypto.keys import SigningKey, VaultKey
from crypto.open import decrypt_recording
from crypto.seal import recover_recordings
from crypto.verify import verify_recording
from firmware.recorder import (
    Recorder,
    RecorderClosed,
    RecordingStorageFull,
    SegmentSummary,
)
from ringbuffer.packet import STREAM_AUDIO, STREAM_VIDEO, EncodedPacket

FPS = 30
TPF = 90_000 // FPS
_REC = struct.Struct(">qIBBI")


class FakeMuxer:
    """Writes each packet as a small framed record (the test reads them back)."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.closed = False

    def write(self, pkt: EncodedPacket) -> None:
        data, pts, duration, stream, keyframe = pkt
        self.sink.write(_REC.pack(pts, duration, stream, keyframe, len(data)) + bytes(data))

    def close(self) -> None:
        self.closed = True


def parse(stream: bytes) -> list[tuple[int, int, bool, bytes]]:
    out = []
    pos = 0
    while pos < len(stream):
        pts, _dur, st, key, n = _REC.unpack_from(stream, pos)
        pos += _REC.size
        out.append((pts, st, bool(key), stream[pos : pos + n]))
        pos += n
    return out


class DirVolume:
    """Free space = capacity minus what the folder holds (like sim.volume.DirectoryVolume)."""

    def __init__(self, root: Path, capacity: int) -> None:
        self.root = root
        self.capacity = capacity
        self.calls = 0

    def free_bytes(self) -> int:
        self.calls += 1
        used = sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())
        return self.capacity - used


@pytest.fixture
def keys() -> tuple[SigningKey, VaultKey]:
    return SigningKey.generate(kind="device"), VaultKey.generate()


def make(
    root: Path, keys: tuple[SigningKey, VaultKey], **kw: Any
) -> tuple[Recorder, list[SegmentSummary]]:
    signer, vault = keys
    sealed: list[SegmentSummary] = []
    rec = Recorder(
        recordings_root=root,
        device_id="BC-00000001",
        recording_id="20260101T000000Z-abcd",
        signer=signer,
        vault_recipients=[vault.public_bytes()],
        started_utc=1_790_000_000.0,
        mux_factory=FakeMuxer,
        pts_to_utc=lambda pts: 1_790_000_000.0 + pts / 90_000,
        on_segment=sealed.append,
        **kw,
    )
    return rec, sealed


def frame(n: int, size: int = 2000) -> bytes:
    return n.to_bytes(4, "big") * (size // 4)


def feed(rec: Recorder, frames: range, gop: int = FPS, audio: bool = False) -> None:
    for n in frames:
        rec.write(EncodedPacket(frame(n), n * TPF, TPF, STREAM_VIDEO, n % gop == 0))
        if audio:
            rec.write(EncodedPacket(b"a" * 100, n * TPF, TPF, STREAM_AUDIO, True))


def test_segments_cut_at_keyframes_and_decrypt_in_order(
    tmp_path: Path, keys: tuple[SigningKey, VaultKey]
) -> None:
    rec, sealed = make(tmp_path, keys, segment_seconds=10.0, chunk_size=4096)
    feed(rec, range(0, 25 * FPS + 7), audio=True)
    rec.mark_live(10 * TPF)
    summary = rec.finish(1_790_000_030.0, "stop pressed")
    assert [s.start_pts for s in summary.segments] == [0, 10 * FPS * TPF, 20 * FPS * TPF]
    assert sealed == summary.segments
    assert summary.complete and summary.stop_reason == "stop pressed"
    assert summary.duration_seconds == pytest.approx(25 + 7 / FPS)
    assert summary.prerecord_covered == pytest.approx(10 / FPS)
    assert summary.packets == 2 * (25 * FPS + 7)

    verified = verify_recording(rec.path, keys[0].public_bytes())
    assert verified.complete
    assert [s.name for s in verified.segments] == [s.name for s in summary.segments]
    assert [s.sha256 for s in verified.segments] == [s.sha256 for s in summary.segments]
    out = io.BytesIO()
    decrypt_recording(rec.path, keys[1], keys[0].public_bytes(), out)
    packets = parse(out.getvalue())
    video = [p for p in packets if p[1] == STREAM_VIDEO]
    assert [p[0] // TPF for p in video] == list(range(25 * FPS + 7))
    assert all(p[3] == frame(p[0] // TPF) for p in video)


def test_segment_waits_for_a_keyframe(tmp_path: Path, keys: tuple[SigningKey, VaultKey]) -> None:
    """With keyframes every 45 frames and 1 s segments, each cut is at the next keyframe."""
    rec, _ = make(tmp_path, keys, segment_seconds=2.0)
    feed(rec, range(0, 200), gop=45)
    summary = rec.finish(1.0, "stop")
    assert [s.start_pts // TPF for s in summary.segments] == [0, 90, 180]


def test_leading_packets_before_a_keyframe_are_dropped(
    tmp_path: Path, keys: tuple[SigningKey, VaultKey]
) -> None:
    rec, _ = make(tmp_path, keys)
    rec.write(EncodedPacket(b"a", 0, TPF, STREAM_AUDIO, True))
    feed(rec, range(5, 40))  # frames 5..29 are not keyframes; 30 is
    summary = rec.finish(1.0, "stop")
    assert summary.dropped_leading == 26
    assert summary.first_pts == 30 * TPF


def test_storage_full_refuses_before_the_reserve_and_what_is_sealed_stays(
    tmp_path: Path, keys: tuple[SigningKey, VaultKey]
) -> None:
    capacity = 600_000
    volume = DirVolume(tmp_path, capacity)
    rec, _ = make(
        tmp_path, keys, segment_seconds=2.0, volume=volume, reserve_bytes=80_000, chunk_size=8192
    )
    n = 0
    with pytest.raises(RecordingStorageFull, match="dock the camera"):
        while True:
            rec.write(EncodedPacket(frame(n, 4000), n * TPF, TPF, STREAM_VIDEO, n % FPS == 0))
            n += 1
    summary = rec.finish(2.0, "storage full")
    used = capacity - volume.free_bytes()
    assert used <= capacity
    verified = verify_recording(rec.path, keys[0].public_bytes())
    assert verified.complete and len(verified.segments) == len(summary.segments) >= 2
    out = io.BytesIO()
    decrypt_recording(rec.path, keys[1], keys[0].public_bytes(), out)
    assert [p[0] // TPF for p in parse(out.getvalue())] == list(range(n))
    with pytest.raises(RecorderClosed):
        rec.write(EncodedPacket(b"x", 0, 1, STREAM_VIDEO, True))


def test_no_room_at_all_refuses_the_recording(
    tmp_path: Path, keys: tuple[SigningKey, VaultKey]
) -> None:
    with pytest.raises(RecordingStorageFull):
        make(tmp_path, keys, volume=DirVolume(tmp_path, 1000))


def test_abandoned_recording_is_recovered_at_boot(
    tmp_path: Path, keys: tuple[SigningKey, VaultKey]
) -> None:
    rec, _ = make(tmp_path, keys, segment_seconds=2.0, chunk_size=4096)
    feed(rec, range(0, 100))
    rec.abandon()
    reports = recover_recordings(tmp_path, keys[0])
    assert len(reports) == 1 and reports[0].closed
    verified = verify_recording(rec.path, keys[0].public_bytes())
    assert verified.complete
    assert any(s.recovered for s in verified.segments)
    out = io.BytesIO()
    decrypt_recording(rec.path, keys[1], keys[0].public_bytes(), out)
    frames = [p[0] // TPF for p in parse_prefix(out.getvalue())]
    assert frames == list(range(len(frames))) and len(frames) >= 60  # two sealed segments


def parse_prefix(stream: bytes) -> list[tuple[int, int, bool, bytes]]:
    """Like parse, but stops at a record cut short (a recovered segment ends mid-record)."""
    out = []
    pos = 0
    while pos + _REC.size <= len(stream):
        pts, _dur, st, key, n = _REC.unpack_from(stream, pos)
        if pos + _REC.size + n > len(stream):
            break
        out.append((pts, st, bool(key), stream[pos + _REC.size : pos + _REC.size + n]))
        pos += _REC.size + n
    return out


def test_needs_a_vault_recipient(tmp_path: Path, keys: tuple[SigningKey, VaultKey]) -> None:
    with pytest.raises(ValueError, match="vault recipient"):
        Recorder(
            recordings_root=tmp_path,
            device_id="BC-00000001",
            recording_id="r",
            signer=keys[0],
            vault_recipients=[],
            started_utc=0.0,
            mux_factory=FakeMuxer,
            pts_to_utc=float,
        )
