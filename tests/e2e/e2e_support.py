"""Helpers for the end-to-end tests: decrypt, decode, read frame counters, scan volumes."""

from __future__ import annotations

import io
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from crypto.keys import SigningKey, VaultKey
from crypto.open import decrypt_recording
from formats.profile import Profile, default_profile, derive_profile
from sim.sensor import FrameCounterError, read_frame_counter

START = 1_790_000_000.0


class Site:
    """A site's vault and dock keys, and profiles that use them."""

    def __init__(self) -> None:
        self.vault = VaultKey.generate()
        self.dock = SigningKey.generate(kind="dock")

    def profile(self, changes: dict[str, Any]) -> tuple[bytes, Profile]:
        base = default_profile(
            vault_recipients=[self.vault.public_bytes().hex()],
            trusted_docks=[self.dock.public_bytes().hex()],
        )
        return derive_profile(base, changes, source="e2e profile")


def small(
    *,
    prerecord: int = 30,
    audio: bool = False,
    prerecord_audio: bool = False,
    fps: int = 15,
    width: int = 320,
    height: int = 240,
    segment_seconds: int = 4,
    bitrate_kbps: int = 600,
) -> dict[str, Any]:
    return {
        "video": {
            "width": width,
            "height": height,
            "fps": fps,
            "gop_frames": fps,
            "bitrate_kbps": bitrate_kbps,
        },
        "prerecord": {"seconds": prerecord, "audio": prerecord_audio},
        "recording": {"audio": audio, "segment_seconds": segment_seconds},
    }


def decrypt(rec_dir: Path, vault: VaultKey, device_public: bytes, complete: bool = True) -> bytes:
    out = io.BytesIO()
    decrypt_recording(rec_dir, vault, device_public, out, require_complete=complete)
    return out.getvalue()


@dataclass(frozen=True)
class Decoded:
    counters: list[int]  # burned-in frame numbers, in presentation order
    first_packet_keyframe: bool
    video_codec: str
    audio_codec: str | None
    audio_packets: int
    audio_first_pts: int | None  # 1/90000 ticks
    video_first_pts: int | None
    torn_frames: int = 0  # frames FFmpeg flagged corrupt, plus a torn last frame left out


def decode(ts: bytes, *, cut_by_power: bool = False) -> Decoded:
    """Demux and decode an MPEG-TS byte string with PyAV; read every frame's counter.

    `cut_by_power`: the stream ends in a recovered segment, whose last frame may be torn
    (FFmpeg flags it corrupt, its counter strip may not read, or FFmpeg shows the
    previous picture in its place): that last frame alone is left out.
    """
    frames: list[tuple[int | None, bool]] = []  # (counter or None if unreadable, corrupt)
    first_key: bool | None = None
    audio_packets = 0
    audio_first: int | None = None
    video_first: int | None = None
    torn = 0
    with av.open(io.BytesIO(ts), mode="r", format="mpegts") as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        streams = [video] + ([audio] if audio is not None else [])
        for packet in container.demux(*streams):
            if packet.stream.type == "audio":
                if packet.pts is not None:
                    audio_packets += 1
                    ticks = int(packet.pts * packet.time_base * 90_000)
                    audio_first = ticks if audio_first is None else min(audio_first, ticks)
                continue
            if packet.size and first_key is None:
                first_key = bool(packet.is_keyframe)
                if packet.pts is not None:
                    video_first = int(packet.pts * packet.time_base * 90_000)
            for frame in packet.decode():
                assert isinstance(frame, av.VideoFrame)
                try:
                    counter: int | None = read_frame_counter(frame.to_ndarray(format="bgr24"))
                except FrameCounterError:
                    if not cut_by_power:
                        raise
                    counter = None
                frames.append((counter, bool(frame.is_corrupt)))
        if cut_by_power and frames:
            last, corrupt = frames[-1]
            before = frames[-2][0] if len(frames) > 1 else None
            if corrupt or last is None or (before is not None and last != before + 1):
                frames.pop()
                torn = 1
        if any(counter is None for counter, _ in frames):
            raise AssertionError("a frame other than the last one has no readable counter")
        torn += sum(1 for _, corrupt in frames if corrupt)
        counters = [counter for counter, _ in frames if counter is not None]
        return Decoded(
            counters=counters,
            first_packet_keyframe=bool(first_key),
            video_codec=video.codec_context.name,
            audio_codec=audio.codec_context.name if audio is not None else None,
            audio_packets=audio_packets,
            audio_first_pts=audio_first,
            video_first_pts=video_first,
            torn_frames=torn,
        )


def ffprobe(path: Path) -> dict[str, Any]:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def assert_consecutive(counters: list[int]) -> None:
    """No gap and no duplicate: every frame number once, in order."""
    assert counters, "no frames decoded"
    expected = list(range(counters[0], counters[0] + len(counters)))
    if counters != expected:
        bad = next(i for i, (a, b) in enumerate(zip(counters, expected, strict=True)) if a != b)
        raise AssertionError(
            f"frame {bad}: counter {counters[bad]} where {expected[bad]} was expected "
            f"(around {counters[max(0, bad - 3) : bad + 3]})"
        )


_PLAUSIBLE_NAL = {1, 5, 6, 7, 8, 9}
_METADATA = {"manifest.bcm", "recording.hdr", "manifest.bcm.part", "recording.hdr.part"}


def plaintext_findings(data: bytes, *, metadata: bool = False) -> list[str]:
    """Signs of unencrypted video: H.264 start codes with NAL headers, TS sync at 188 stride.

    `metadata`: a file that is plaintext by design (manifest, header, JSON) and whose
    integers may look like start codes: only the structural signs (SPS+PPS pair, TS
    sync stride) count there.
    """
    found: list[str] = []
    # x264 (repeat-headers) puts SPS then PPS before every keyframe: a start code with NAL
    # header 0x67 followed within a few bytes by one with 0x68. Integers in plaintext
    # metadata (a manifest's sizes) can hold one such 5-byte run, never the pair.
    at = data.find(b"\x00\x00\x01\x67")
    while at >= 0:
        if data.find(b"\x00\x00\x01\x68", at + 4, at + 96) >= 0:
            found.append(f"H.264 SPS and PPS start codes at {at}")
            break
        at = data.find(b"\x00\x00\x01\x67", at + 4)
    # Many start codes with plausible NAL types (video has several per frame): random
    # data has ~0.01 per MiB, integers in metadata a few at most.
    count = 0
    pos = data.find(b"\x00\x00\x01")
    while pos >= 0 and pos + 3 < len(data):
        header = data[pos + 3]
        if header & 0x80 == 0 and header & 0x1F in _PLAUSIBLE_NAL:
            count += 1
        pos = data.find(b"\x00\x00\x01", pos + 3)
    if not metadata and count > 16 + len(data) // (1 << 20):
        found.append(f"{count} H.264 start codes")
    # MPEG-TS: 0x47 every 188 bytes, 4 times in a row (2^-32 per position at random).
    arr = np.frombuffer(data, dtype=np.uint8)
    if len(arr) >= 4 * 188:
        for offset in range(188):
            col = arr[offset::188] == 0x47
            if len(col) >= 4 and bool((col[:-3] & col[1:-2] & col[2:-1] & col[3:]).any()):
                found.append(f"TS sync bytes at stride 188 from offset {offset}")
                break
    return found


def scan_volume(volume: Path) -> dict[str, list[str]]:
    """Every file on the volume with signs of plaintext video."""
    bad: dict[str, list[str]] = {}
    for path in sorted(volume.rglob("*")):
        if path.is_file() and not path.is_symlink():
            meta = path.name in _METADATA or path.suffix in (".json", ".jsonl")
            findings = plaintext_findings(path.read_bytes(), metadata=meta)
            if findings:
                bad[str(path.relative_to(volume))] = findings
    return bad
