"""sim.sensor: burned-in frame counter survives real H.264; frames move; file sensor loops."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.sensor import (
    COUNTER_BITS,
    FileSensor,
    FrameCounterError,
    SensorError,
    SyntheticSensor,
    encode_counter_bits,
    read_frame_counter,
    strip_geometry,
)

T0 = 1_790_000_000.0


def h264_round_trip(
    sensor: SyntheticSensor, first: int, count: int, fps: int, kbps: int
) -> list[np.ndarray]:
    """Encode frames first..first+count-1 with libx264 (profile settings), decode them back."""
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = sensor.width, sensor.height, "yuv420p"
    enc.time_base, enc.framerate = Fraction(1, fps), Fraction(fps, 1)
    enc.bit_rate = kbps * 1000
    enc.options = {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "x264-params": f"keyint={fps}:min-keyint={fps}:scenecut=0:repeat-headers=1",
    }
    dec = av.CodecContext.create("h264", "r")
    out = []
    packets = []
    for n in range(first, first + count):
        frame = av.VideoFrame.from_ndarray(sensor.capture(n, T0 + n / fps), format="bgr24")
        frame.pts = n - first
        packets += enc.encode(frame)
    packets += enc.encode(None)
    for packet in [*packets, None]:
        out += [f.to_ndarray(format="bgr24") for f in dec.decode(packet)]
    return out


@pytest.mark.parametrize(
    ("width", "height", "fps", "kbps", "night"),
    [
        (1280, 720, 30, 4000, False),  # the default profile
        (1280, 720, 30, 280, False),  # about the lowest bitrate a profile allows at 720p
        (160, 120, 10, 100, False),  # the smallest picture at the lowest bitrate
        (320, 240, 15, 150, True),  # night mode
    ],
)
def test_frame_counter_survives_h264(
    width: int, height: int, fps: int, kbps: int, night: bool
) -> None:
    sensor = SyntheticSensor(width, height, "BC-1A2B3C4D", night_mode=night)
    first = 2**20 - 7  # crosses a carry over many bits
    decoded = h264_round_trip(sensor, first, 2 * fps, fps, kbps)
    assert [read_frame_counter(f) for f in decoded] == list(range(first, first + 2 * fps))


SMALL = SyntheticSensor(160, 120, "BC-00000000")


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2**COUNTER_BITS - 1))
def test_counter_round_trips_on_raw_frames(n: int) -> None:
    assert read_frame_counter(SMALL.capture(n, T0)) == n


def test_counter_wraps_at_24_bits() -> None:
    sensor = SyntheticSensor(160, 120, "BC-00000000")
    assert read_frame_counter(sensor.capture(2**24 + 5, T0)) == 5


def test_damaged_strip_fails_loudly_instead_of_misreading() -> None:
    sensor = SyntheticSensor(320, 240, "BC-00000000")
    frame = sensor.capture(12345, T0)
    cell_w, cell_h, _ = strip_geometry(320, 240)
    bits = encode_counter_bits(12345)
    col = bits.index(1)  # flip one data cell of the first row from white to black
    assert col < 16
    frame[:cell_h, col * cell_w : (col + 1) * cell_w] = 0
    with pytest.raises(FrameCounterError, match="does not check"):
        read_frame_counter(frame)
    with pytest.raises(FrameCounterError, match="does not check"):
        read_frame_counter(np.full((240, 320, 3), 255, np.uint8))  # all white: CRC fails
    with pytest.raises(FrameCounterError, match="too small"):
        read_frame_counter(np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(FrameCounterError, match="shape"):
        read_frame_counter(np.zeros((4, 240, 320, 3), np.uint8))


def test_grayscale_frames_are_read_too() -> None:
    sensor = SyntheticSensor(320, 240, "BC-00000000")
    assert read_frame_counter(sensor.capture(77, T0)[..., 1].copy()) == 77


def test_frames_move_and_are_deterministic() -> None:
    a = SyntheticSensor(320, 240, "BC-1A2B3C4D")
    b = SyntheticSensor(320, 240, "BC-1A2B3C4D")
    f0, f1 = a.capture(0, T0), a.capture(1, T0 + 1 / 30)
    assert f0.shape == (240, 320, 3) and f0.dtype == np.uint8
    _, _, top = strip_geometry(320, 240)
    picture_change = np.abs(f0[top:].astype(int) - f1[top:].astype(int)).mean()
    assert picture_change > 2  # pan and disc moved: the encoder has motion to code
    assert np.array_equal(b.capture(1, T0 + 1 / 30), f1)
    assert not np.array_equal(SyntheticSensor(320, 240, "BC-FFFFFFFF").capture(1, T0), f1)
    assert a.capture(5, T0) is not a.capture(5, T0)  # a fresh array each time


def test_burned_in_text_changes_with_time_and_id() -> None:
    sensor = SyntheticSensor(640, 360, "BC-1A2B3C4D")
    a, b = sensor.capture(10, T0), sensor.capture(10, T0 + 1.0)
    _, _, top = strip_geometry(640, 360)
    assert np.array_equal(a[:top], b[:top])  # same frame number: same strip
    text_rows = slice(top, top + 360 // 3)
    assert not np.array_equal(a[text_rows], b[text_rows])  # only the time differs
    assert np.array_equal(a[text_rows.stop :], b[text_rows.stop :])
    other = SyntheticSensor(640, 360, "BC-99999999").capture(10, T0)
    id_rows = slice(top, top + 30)
    assert not np.array_equal(other[id_rows, :200], a[id_rows, :200])


def test_night_mode_is_green_tinted_grayscale() -> None:
    day = SyntheticSensor(320, 240, "BC-1A2B3C4D").capture(3, T0)
    night = SyntheticSensor(320, 240, "BC-1A2B3C4D", night_mode=True).capture(3, T0)
    _, _, top = strip_geometry(320, 240)
    b, g, r = (night[top + 60 :, :, c].astype(float).mean() for c in range(3))
    assert g > 1.5 * b and g > 1.5 * r
    day_b, day_g, day_r = (day[top + 60 :, :, c].astype(float).mean() for c in range(3))
    assert not (day_g > 1.5 * day_b)
    assert read_frame_counter(night) == 3


@pytest.mark.parametrize("size", [(10, 10), (1281, 720), (1280, 719), (10000, 720)])
def test_bad_sensor_geometry_is_refused(size: tuple[int, int]) -> None:
    with pytest.raises(SensorError, match="sensor size"):
        SyntheticSensor(*size, "BC-00000000")


def make_video(path: Path, frames: int, size: tuple[int, int] = (96, 64)) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            image = np.full((size[1], size[0], 3), i * 20 % 256, np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        out.mux(stream.encode(None))


def test_file_sensor_plays_loops_and_burns_in(tmp_path: Path) -> None:
    video = tmp_path / "street.mp4"
    make_video(video, frames=7)
    with FileSensor(video, 160, 120, "BC-1A2B3C4D") as sensor:
        frames = [sensor.capture(n, T0 + n / 10) for n in range(17)]
        assert sensor.loops == 2
    assert all(f.shape == (120, 160, 3) for f in frames)
    assert [read_frame_counter(f) for f in frames] == list(range(17))
    # The file's picture is there (uniform gray levels per file frame), looping every 7.
    centre = [int(f[110, 150, 1]) for f in frames]
    assert centre[0:7] == centre[7:14] and len(set(centre[:7])) > 3


def test_file_sensor_refuses_what_it_cannot_play(tmp_path: Path) -> None:
    with pytest.raises(SensorError, match="cannot open"):
        FileSensor(tmp_path / "absent.mp4", 160, 120, "BC-00000000")
    wav = tmp_path / "sound.wav"
    with av.open(str(wav), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000)
        silence = np.zeros((1, 800), np.int16)
        frame = av.AudioFrame.from_ndarray(silence, format="s16", layout="mono")
        frame.sample_rate = 8000
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with pytest.raises(SensorError, match="no video stream"):
        FileSensor(wav, 160, 120, "BC-00000000")


@pytest.mark.parametrize("night", [False, True])
def test_i420_frames_carry_the_same_counter_text_and_motion_after_h264(night: bool) -> None:
    # The camera's sensor draws in I420 for the encoder; what a viewer decodes must show
    # the same counter strip and burned-in text as the BGR picture.
    from firmware.encoder import H264Encoder

    w, h, fps = 320, 240, 30
    bgr = SyntheticSensor(w, h, "BC-1A2B3C4D", night_mode=night)
    yuv = SyntheticSensor(w, h, "BC-1A2B3C4D", night_mode=night, pixel_format="yuv420p")
    raw = yuv.capture(7, T0)
    assert raw.shape == (h * 3 // 2, w) and raw.dtype == np.uint8
    assert not np.array_equal(raw, yuv.capture(8, T0 + 1 / fps))  # it moves
    assert yuv.capture(7, T0 + 1.0)[:h].tolist() != raw[:h].tolist()  # the time is drawn
    enc = H264Encoder(w, h, fps, 2_000_000, fps)
    packets = []
    for n in range(10):
        packets += enc.encode_video(yuv.capture(n, T0 + n / fps), n)
    packets += enc.flush()
    dec = av.CodecContext.create("h264", "r")
    decoded = [f.to_ndarray(format="bgr24") for p in packets for f in dec.decode(av.Packet(p.data))]
    assert [read_frame_counter(f) for f in decoded] == list(range(10))
    # Luma of the text box: the I420 drawing and the BGR drawing agree closely.
    _, _, top = strip_geometry(w, h)
    box = (slice(top, top + h // 4), slice(0, w // 2))
    ref = cv2.cvtColor(bgr.capture(9, T0 + 9 / fps), cv2.COLOR_BGR2GRAY)[box].astype(float)
    got = cv2.cvtColor(decoded[9], cv2.COLOR_BGR2GRAY)[box].astype(float)
    assert np.corrcoef(ref.ravel(), got.ravel())[0, 1] > 0.8


def test_i420_needs_even_sizes_and_a_known_format() -> None:
    with pytest.raises(SensorError, match="even"):
        SyntheticSensor(321, 240, "BC-00000000", pixel_format="yuv420p")
    with pytest.raises(ValueError, match="pixel_format"):
        SyntheticSensor(320, 240, "BC-00000000", pixel_format="rgb")
