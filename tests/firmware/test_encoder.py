"""firmware.encoder: keyframes and SPS/PPS every GOP, 1/90000 timestamps, AAC, MPEG-TS segments.

The muxed segments are checked by an independent reader: /usr/bin/ffprobe and ffmpeg.
"""

from __future__ import annotations

import io
import json
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from firmware.encoder import (
    EncoderClosed,
    EncoderError,
    H264Encoder,
    MuxError,
    TsSegmentMuxer,
)
from ringbuffer.packet import STREAM_AUDIO, STREAM_VIDEO, EncodedPacket, frame_pts
from sim.audio import SyntheticMicrophone
from sim.sensor import SyntheticSensor, read_frame_counter

FFPROBE = "/usr/bin/ffprobe"
FFMPEG = "/usr/bin/ffmpeg"
T0 = 1_790_000_000.0


class WriteOnlySink:
    """Like the sealing writer: write() and nothing else (no seek, no tell, no read)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, chunk: bytes) -> int:
        self.data += chunk
        return len(chunk)


class FailingSink(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, chunk: Any) -> int:
        raise OSError(28, "No space left on device")


def nal_types(data: bytes) -> list[int]:
    """NAL unit types in an Annex B packet (start codes 00 00 01 / 00 00 00 01)."""
    types = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        types.append(data[i + 3] & 0x1F)
        i = data.find(b"\x00\x00\x01", i + 3)
    return types


def encode(
    enc: H264Encoder,
    frames: range | list[int],
    mic: SyntheticMicrophone | None = None,
    flush: bool = True,
) -> list[EncodedPacket]:
    sensor = SyntheticSensor(enc.width, enc.height, "BC-1A2B3C4D")
    packets: list[EncodedPacket] = []
    for n in frames:
        packets += enc.encode_video(sensor.capture(n, T0 + n / enc.fps), n)
        if mic is not None:
            packets += enc.encode_audio(mic.capture(enc.sample_rate // enc.fps))
    if flush:
        packets += enc.flush()
    return packets


def decode_counters(packets: list[EncodedPacket]) -> list[int]:
    dec: Any = av.CodecContext.create("h264", "r")
    out = []
    for pkt in [*(av.Packet(p.data) for p in packets if p.stream == STREAM_VIDEO), None]:
        out += [read_frame_counter(f.to_ndarray(format="bgr24")) for f in dec.decode(pkt)]
    return out


def mux_segments(enc: H264Encoder, packets: list[EncodedPacket]) -> list[bytes]:
    """Cut at every video keyframe into TS segments (the recorder's rule, one GOP each)."""
    segments: list[bytes] = []
    sink: WriteOnlySink | None = None
    mux: TsSegmentMuxer | None = None
    for p in packets:
        if p.stream == STREAM_VIDEO and p.keyframe:
            if mux is not None and sink is not None:
                mux.close()
                segments.append(bytes(sink.data))
            sink = WriteOnlySink()
            mux = TsSegmentMuxer(sink, enc)
        if mux is not None:
            mux.write(p)
    assert mux is not None and sink is not None
    mux.close()
    mux.close()  # twice is harmless
    segments.append(bytes(sink.data))
    return segments


def ffprobe(path: Path) -> tuple[dict[str, Any], str]:
    result = subprocess.run(
        [FFPROBE, "-v", "warning", "-count_frames", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(result.stdout), result.stderr


@pytest.mark.parametrize(("fps", "gop"), [(10, 10), (10, 5), (30, 30)])
def test_keyframe_every_gop_with_sps_pps(fps: int, gop: int) -> None:
    enc = H264Encoder(160, 120, fps, 300_000, gop)
    frames = range(100, 100 + 3 * gop + 2)
    packets = encode(enc, frames)
    assert [p.pts for p in packets] == [frame_pts(n, fps) for n in frames]
    for n, p in zip(frames, packets, strict=True):
        assert isinstance(p.data, bytes) and p.stream == STREAM_VIDEO
        types = nal_types(p.data)
        if (n - 100) % gop == 0:
            assert p.keyframe, f"frame {n} should be a keyframe"
            assert types[:2] == [7, 8] and 5 in types  # SPS, PPS, then the IDR slice
        else:
            assert not p.keyframe and 7 not in types and 5 not in types


def test_timestamps_follow_frame_numbers_in_90khz_ticks() -> None:
    enc = H264Encoder(160, 120, 30, 300_000, 30)
    packets = encode(enc, [0, 1, 2, 7, 8, 30_000])  # late frames were skipped by the camera
    assert [(p.pts, p.duration) for p in packets] == [
        (0, 3000),
        (3000, 3000),
        (6000, 3000),
        (21000, 3000),
        (24000, 3000),
        (90_000_000, 3000),
    ]
    odd = encode(H264Encoder(160, 120, 7, 300_000, 7), range(8))  # 7 does not divide 90000
    assert [p.pts for p in odd] == [n * 90_000 // 7 for n in range(8)]
    assert all(a.pts + a.duration == b.pts for a, b in zip(odd, odd[1:], strict=False))


@pytest.mark.parametrize(
    ("width", "height", "fps", "bitrate"),
    [(1280, 720, 30, 4_000_000), (160, 120, 10, 100_000)],
    ids=["720p-4mbit", "160x120-100kbit"],
)
def test_frame_counter_survives_the_encoder(
    width: int, height: int, fps: int, bitrate: int
) -> None:
    enc = H264Encoder(width, height, fps, bitrate, fps)
    frames = range(5000, 5000 + fps + 5)
    assert decode_counters(encode(enc, frames)) == list(frames)


def test_audio_is_aac_in_90khz_ticks_from_the_first_frame() -> None:
    enc = H264Encoder(160, 120, 10, 300_000, 10, audio=True, sample_rate=48_000)
    packets = encode(enc, range(300, 320), SyntheticMicrophone())
    audio = [p for p in packets if p.stream == STREAM_AUDIO]
    assert audio[0].pts == frame_pts(300, 10)  # sample 0 is at the first frame's pts
    assert all(a.pts + a.duration == b.pts for a, b in zip(audio, audio[1:], strict=False))
    assert audio[0].duration == 1920  # 1024 samples at 48 kHz
    total = audio[-1].pts + audio[-1].duration - audio[0].pts
    assert total == 20 * 4800 * 90_000 // 48_000  # 2 s of samples, nothing lost or added
    assert all(isinstance(p.data, bytes) and p.keyframe for p in audio)


def test_concatenated_segments_play_in_ffprobe(tmp_path: Path) -> None:
    enc = H264Encoder(320, 240, 15, 600_000, 15, audio=True)
    frames = range(45, 45 + 4 * 15 + 7)  # 4 whole GOPs and a short last one
    packets = encode(enc, frames, SyntheticMicrophone())
    segments = mux_segments(enc, packets)
    assert len(segments) == 5
    for i, seg in enumerate(segments):
        assert len(seg) % 188 == 0 and seg[0] == 0x47  # whole TS packets
        path = tmp_path / f"seg{i}.ts"
        path.write_bytes(seg)
        info, warnings = ffprobe(path)
        video = [s for s in info["streams"] if s["codec_type"] == "video"][0]
        assert int(video["nb_read_frames"]) == (15 if i < 4 else 7)
        assert warnings == ""
    whole = tmp_path / "recording.ts"
    whole.write_bytes(b"".join(segments))
    info, warnings = ffprobe(whole)
    assert warnings == ""
    streams = {s["codec_type"]: s for s in info["streams"]}
    assert streams["video"]["codec_name"] == "h264"
    assert int(streams["video"]["nb_read_frames"]) == len(frames)
    assert (streams["video"]["width"], streams["video"]["height"]) == (320, 240)
    assert float(streams["video"]["start_time"]) == pytest.approx(45 / 15)  # capture pts kept
    assert streams["audio"]["codec_name"] == "aac"
    assert (int(streams["audio"]["sample_rate"]), int(streams["audio"]["channels"])) == (48_000, 1)
    audio_frames = sum(1 for p in packets if p.stream == STREAM_AUDIO)
    assert int(streams["audio"]["nb_read_frames"]) == audio_frames
    decoded = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(whole), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert decoded.returncode == 0 and decoded.stderr == ""
    with av.open(str(whole)) as container:
        counters = [
            read_frame_counter(f.to_ndarray(format="bgr24")) for f in container.decode(video=0)
        ]
    assert counters == list(frames)


def test_audio_track_without_audio_packets(tmp_path: Path) -> None:
    # A pre-roll recorded without sound in a recording with sound: video only at first.
    enc = H264Encoder(160, 120, 10, 300_000, 10, audio=True)
    packets = encode(enc, range(20))  # no encode_audio at all
    sink = WriteOnlySink()
    mux = TsSegmentMuxer(sink, enc)
    for p in packets:
        mux.write(p)
    mux.close()
    path = tmp_path / "video-only.ts"
    path.write_bytes(bytes(sink.data))
    info, _ = ffprobe(path)
    video = [s for s in info["streams"] if s["codec_type"] == "video"][0]
    assert int(video["nb_read_frames"]) == 20


def test_bad_input_is_refused() -> None:
    enc = H264Encoder(160, 120, 10, 300_000, 10)
    frame = np.zeros((120, 160, 3), np.uint8)
    with pytest.raises(EncoderError, match="expected \\(120, 160, 3\\) uint8"):
        enc.encode_video(np.zeros((120, 161, 3), np.uint8), 0)
    with pytest.raises(EncoderError, match="uint8"):
        enc.encode_video(frame.astype(np.float32), 0)
    enc.encode_video(frame, 5)
    with pytest.raises(EncoderError, match="must rise"):
        enc.encode_video(frame, 5)
    with pytest.raises(EncoderError, match="audio=False"):
        enc.encode_audio(np.zeros(100, np.float32))
    enc.flush()
    with pytest.raises(EncoderClosed):
        enc.encode_video(frame, 6)
    with pytest.raises(EncoderClosed):
        enc.flush()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"width": 161},
        {"height": 0},
        {"fps": 0},
        {"bitrate_bps": 10},
        {"gop_frames": 0},
        {"audio": True, "sample_rate": 12_345},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"width": 160, "height": 120, "fps": 10}
    args.update(bitrate_bps=300_000, gop_frames=10)
    args.update(kwargs)
    with pytest.raises(EncoderError):
        H264Encoder(**args)


def test_muxer_refuses_streams_it_does_not_have() -> None:
    enc = H264Encoder(160, 120, 10, 300_000, 10)
    mux = TsSegmentMuxer(WriteOnlySink(), enc)
    with pytest.raises(MuxError, match="stream 1"):
        mux.write(EncodedPacket(b"\x00" * 10, 0, 1920, STREAM_AUDIO, True))
    mux.close()
    with pytest.raises(MuxError, match="closed"):
        mux.write(EncodedPacket(b"\x00" * 10, 0, 9000, STREAM_VIDEO, True))


def test_a_failing_sink_is_not_swallowed() -> None:
    enc = H264Encoder(160, 120, 10, 300_000, 10)
    packets = encode(enc, range(30))
    mux = TsSegmentMuxer(FailingSink(), enc)
    with pytest.raises(OSError):
        for p in packets:
            mux.write(p)
        mux.close()


def test_encoder_time_base_is_the_ts_clock() -> None:
    assert H264Encoder(160, 120, 10, 300_000, 10).time_base == Fraction(1, 90_000)


def test_a_recording_cut_mid_frame_still_numbers_its_last_frame() -> None:
    # A power cut can end a recovered segment in the middle of a frame. FFmpeg then
    # conceals the missing rows with an older picture; the counter strip is in the part
    # coded first (the top rows), so the torn frame still reads as itself unless the
    # cut falls inside the strip's own macroblocks (then FFmpeg flags the frame
    # corrupt: readers of torn recordings skip frames with `is_corrupt`).
    enc = H264Encoder(320, 240, 15, 600_000, 15)
    ts = b"".join(mux_segments(enc, encode(enc, range(40))))
    tail_packets = 30
    for cut in range(len(ts) - 188 * tail_packets, len(ts), 188):
        with av.open(io.BytesIO(ts[:cut]), mode="r", format="mpegts") as container:
            frames = list(container.decode(video=0))
        counters = [read_frame_counter(f.to_ndarray(format="bgr24")) for f in frames]
        assert counters == list(range(len(counters))), f"cut at byte {cut}"
        assert len(counters) >= 37  # the last 30 TS packets hold about two frames
        assert not any(f.is_corrupt for f in frames[:-1])
