"""The one media layer (`vault/media.py`) on recordings made to its edge cases.

The corpus test (tests/e2e/test_every_recording_every_path.py) runs real shifts; these
build the MPEG-TS directly so each case is small and exact: sound that starts past
ffmpeg's default 5 MB probe window, no sound, an audio stream that never carries a
packet, and input that is not a recording at all.
"""

from __future__ import annotations

import io
import json
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vault.media import MediaError, measure, reencode_video, remux_to_mp4

FPS = 15
TB = Fraction(1, 90_000)
ORIGIN = 7 * 90_000  # the camera's clock: 7 s since power-on at the first frame


def make_ts(
    path: Path, *, seconds: float, sound_from: float | None, noise: bool, declare_audio: bool = True
) -> None:
    """H.264 (noise compresses badly: ~100 kB a frame) and, from `sound_from`, AAC."""
    rng = np.random.default_rng(7)
    with av.open(str(path), "w", format="mpegts") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        video.options = {"preset": "ultrafast", "x264-params": f"keyint={FPS}:scenecut=0"}
        video.codec_context.time_base = Fraction(1, FPS)
        audio = out.add_stream("aac", rate=48_000) if declare_audio else None
        if audio is not None:
            audio.codec_context.time_base = Fraction(1, 48_000)
        frames = int(seconds * FPS)
        samples_sent = 0
        for n in range(frames):
            img = (
                rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
                if noise
                else np.full((240, 320, 3), n % 256, np.uint8)
            )
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts = n + ORIGIN * FPS // 90_000
            for packet in video.encode(frame):
                out.mux(packet)
            t = (n + 1) / FPS
            while audio is not None and sound_from is not None and t >= sound_from:
                start = sound_from + samples_sent / 48_000
                if start >= t:
                    break
                chunk = av.AudioFrame.from_ndarray(
                    np.full((1, 1024), 0.1, np.float32), format="fltp", layout="mono"
                )
                chunk.sample_rate = 48_000
                chunk.pts = round((ORIGIN / 90_000 + start) * 48_000)
                samples_sent += 1024
                for packet in audio.encode(chunk):
                    out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if audio is not None:
            for packet in audio.encode():
                out.mux(packet)


def probe(path: Path) -> dict[str, dict[str, str]]:
    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return {s["codec_type"]: s for s in json.loads(proc.stdout)["streams"]}


def test_sound_that_starts_past_the_default_probe_window_is_kept_in_its_place(
    tmp_path: Path,
) -> None:
    ts = tmp_path / "late.ts"
    make_ts(ts, seconds=10, sound_from=8.0, noise=True)
    assert ts.stat().st_size * 0.8 > 5_500_000  # past ffmpeg's default 5 MB probe window
    # The default window does not reach the sound: this is the case the layer exists for.
    with av.open(str(ts)) as plain:
        assert plain.streams.audio[0].codec_context.sample_rate == 0
    mp4 = tmp_path / "late.mp4"
    result = remux_to_mp4(ts, mp4, name="late")
    assert result.video_packets == 10 * FPS and result.audio_packets > 80
    streams = probe(mp4)
    assert float(streams["video"]["start_time"]) == 0.0
    assert float(streams["audio"]["start_time"]) == pytest.approx(8.0, abs=0.03)
    assert float(streams["video"]["duration"]) == pytest.approx(10.0, abs=1 / FPS)
    facts, prints = measure(mp4, fingerprint=True)
    sealed, sealed_prints = measure(ts, container_format="mpegts", fingerprint=True)
    assert facts == sealed and facts.audio_streams == 1
    assert [d for _, d in prints.audio] == [d for _, d in sealed_prints.audio]


def test_the_viewing_encoder_copies_late_sound_into_a_fragmented_mp4(tmp_path: Path) -> None:
    ts = tmp_path / "late.ts"
    make_ts(ts, seconds=6, sound_from=4.0, noise=True)
    out = io.BytesIO()
    frames = reencode_video(
        ts.read_bytes(),
        out,
        lambda img, seconds: img,
        name="late",
        x264_options={"preset": "ultrafast"},
        mp4_options={"movflags": "frag_keyframe+empty_moov+default_base_moof"},
    )
    assert frames == 6 * FPS
    with av.open(io.BytesIO(out.getvalue())) as c:
        assert c.streams.audio and c.streams.audio[0].codec_context.sample_rate == 48_000
        times = [float(p.pts * p.time_base) for p in c.demux(c.streams.audio[0]) if p.pts]
    assert min(times) == pytest.approx(4.0, abs=0.03)


def test_no_sound_and_a_silent_audio_stream_give_an_mp4_without_sound(tmp_path: Path) -> None:
    for name, declare in (("none", False), ("silent", True)):
        ts = tmp_path / f"{name}.ts"
        make_ts(ts, seconds=2, sound_from=None, noise=False, declare_audio=declare)
        mp4 = tmp_path / f"{name}.mp4"
        result = remux_to_mp4(ts, mp4, name=name)
        assert result.audio_packets == 0 and result.video_packets == 2 * FPS
        assert set(probe(mp4)) == {"video"}


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "not a readable recording"),
        (b"\x47" + bytes(187) * 3, "not a readable recording"),
        (b"not a recording at all" * 100, "not a readable recording"),
    ],
)
def test_what_cannot_be_read_is_one_line_naming_the_recording(
    tmp_path: Path, data: bytes, reason: str
) -> None:
    src = tmp_path / "bad.ts"
    src.write_bytes(data)
    with pytest.raises(MediaError) as caught:
        remux_to_mp4(src, tmp_path / "bad.mp4", name="BC-1/20261122T170050Z-98f1")
    text = str(caught.value)
    assert text.startswith("BC-1/20261122T170050Z-98f1: ") and reason in text
    assert "\n" not in text and "Errno" not in text and "returned" not in text


def test_a_truncated_recording_still_remuxes_what_it_holds(tmp_path: Path) -> None:
    ts = tmp_path / "cut.ts"
    make_ts(ts, seconds=3, sound_from=0.0, noise=False)
    data = ts.read_bytes()
    ts.write_bytes(data[: len(data) * 2 // 3 // 188 * 188 + 100])  # a power cut mid-packet
    mp4 = tmp_path / "cut.mp4"
    result = remux_to_mp4(ts, mp4, name="cut")
    assert 0 < result.video_packets < 3 * FPS
    assert "video" in probe(mp4)
