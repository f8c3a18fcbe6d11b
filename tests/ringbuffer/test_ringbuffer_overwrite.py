"""Overwrite test: four hours of standby at 30 fps with audio, fast-forward.

Small packets keep it quick while the arena still wraps round hundreds of times. At sampled
moments the pre-roll must be exactly what a camera expects: from the newest keyframe that
leaves at least `seconds` of video, every frame and every audio packet since, byte for
byte, with the original timestamps. Twice, record is pressed (drain) and standby resumes
after the recording.
"""

from __future__ import annotations

import random
from fractions import Fraction

from ringbuffer import STREAM_AUDIO, STREAM_VIDEO, BufferedPacket, PreRecordBuffer

TICKS = 90_000
FPS = 30
FRAME = TICKS // FPS  # 3000 ticks
GOP = 30  # a keyframe every second
AUDIO = 1920  # 1024 AAC samples at 48 kHz, in 90 kHz ticks
SECONDS = 30
SPAN = SECONDS * TICKS
HOURS = 4
CAPACITY = 60_000  # about 40 s of these small packets: the arena wraps every ~40 s

FILL = bytes(range(256)) * 2


def video_payload(frame: int) -> bytes:
    size = 200 if frame % GOP == 0 else 20 + frame % 17
    return frame.to_bytes(8, "big") + FILL[: size - 8]


def audio_payload(index: int) -> bytes:
    return (index | 1 << 62).to_bytes(8, "big") + FILL[index % 5 : index % 5 + 4]


class Camera:
    """Feeds the buffer like the encoder in standby: each frame, then the audio up to it."""

    def __init__(self, buf: PreRecordBuffer) -> None:
        self.buf = buf
        self.frame = 0
        self.audio = 0
        self.appended_bytes = 0

    def standby(self, frames: int) -> None:
        append = self.buf.append
        for _ in range(frames):
            n = self.frame
            data = video_payload(n)
            append(data, pts=n * FRAME, duration=FRAME, stream=STREAM_VIDEO, keyframe=n % GOP == 0)
            self.appended_bytes += len(data)
            self.frame = n + 1
            # Audio runs slightly ahead of the video: it covers the frame period just shot.
            while self.audio * AUDIO < self.frame * FRAME:
                a = self.audio
                data = audio_payload(a)
                append(data, pts=a * AUDIO, duration=AUDIO, stream=STREAM_AUDIO, keyframe=True)
                self.appended_bytes += len(data)
                self.audio = a + 1

    def skip(self, frames: int) -> None:
        """Time passes without the buffer (recording): frames and audio go elsewhere."""
        self.frame += frames
        self.audio = -(-self.frame * FRAME // AUDIO)


def expected_preroll(standby_from: int, frame_end: int) -> list[tuple[int, int, bytes]]:
    """(stream, pts, data) a camera must get after standby over frames [from, end)."""
    end = frame_end * FRAME
    first_key = -(-standby_from // GOP) * GOP  # the first keyframe of this standby
    if end - first_key * FRAME >= SPAN:
        # The newest keyframe that still leaves SECONDS of video after it.
        first_key = (end - SPAN) // FRAME // GOP * GOP
    first_pts = first_key * FRAME
    out: list[tuple[int, int, bytes]] = []
    a = -(-first_pts // AUDIO)
    for n in range(first_key, frame_end):
        out.append((STREAM_VIDEO, n * FRAME, video_payload(n)))
        while a * AUDIO < (n + 1) * FRAME:
            out.append((STREAM_AUDIO, a * AUDIO, audio_payload(a)))
            a += 1
    return out


def as_tuples(packets: list[BufferedPacket]) -> list[tuple[int, int, bytes]]:
    return [(p.stream, p.pts, bytes(p.data)) for p in packets]


def test_four_hours_of_standby_keep_an_exact_preroll() -> None:
    buf = PreRecordBuffer(SECONDS, Fraction(1, TICKS), bitrate_bps=8000, max_bytes=CAPACITY)
    nbytes = buf.nbytes
    cam = Camera(buf)
    rng = random.Random(4)
    total = HOURS * 3600 * FPS
    # Sample every ~10 minutes at a random frame (inside a GOP, at a keyframe, ...).
    moments = sorted({rng.randrange(i, i + 600 * FPS) for i in range(0, total, 600 * FPS)})
    moments += [total]
    presses = {moments[5], moments[15]}
    standby_from = 0
    checked = 0
    for moment in moments:
        cam.standby(moment - cam.frame)
        want = expected_preroll(standby_from, cam.frame)
        if moment in presses:
            got = as_tuples(buf.drain())
        else:
            got = as_tuples(buf.snapshot())
        assert got == want, f"pre-roll differs at frame {cam.frame}"
        assert got[0][0] == STREAM_VIDEO and got[0][1] % (GOP * FRAME) == 0
        assert buf.nbytes == nbytes and buf.used_bytes <= buf.capacity_bytes
        checked += 1
        if moment in presses:
            cam.skip(rng.randrange(5 * FPS, 300 * FPS))  # a recording of 5 s to 5 min
            standby_from = cam.frame
    assert buf.undersized_evictions == 0
    assert buf.dropped_before_keyframe > 0  # after each recording, until the next keyframe
    assert checked == len(moments) >= 24
    # Hundreds of wrap-arounds, so the moments above saw every arena position.
    assert cam.appended_bytes > 300 * buf.capacity_bytes


def test_span_is_seconds_plus_less_than_one_gop() -> None:
    buf = PreRecordBuffer(SECONDS, Fraction(1, TICKS), bitrate_bps=8000, max_bytes=CAPACITY)
    cam = Camera(buf)
    # Frames 0..8998: the newest GOP (8970..) lacks its last frame, so the GOP at 8070
    # is still needed: 30 s plus one GOP minus one frame.
    cam.standby(5 * 60 * FPS - 1)
    assert buf.span_seconds == float(Fraction(SECONDS * FPS + GOP - 1, FPS))
    assert as_tuples(buf.snapshot()) == expected_preroll(0, cam.frame)
    # Frame 8999 completes 30 s after keyframe 8100: the GOP at 8070 leaves.
    cam.standby(1)
    assert buf.span_seconds == SECONDS
    assert as_tuples(buf.snapshot()) == expected_preroll(0, cam.frame)
    assert buf.snapshot()[0].pts == 8100 * FRAME
