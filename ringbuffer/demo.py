"""A demonstration of the pre-record buffer: standby in fast-forward, then record pressed.

Synthetic H.264-sized packets at 30 fps with a keyframe every second go into a 60 s
buffer for 5 minutes of standby; then record is pressed and the drained pre-roll is
described. Each packet carries its frame number, so the demonstration also checks that
the pre-roll holds exactly the right frames, byte for byte.
"""

from __future__ import annotations

import logging
import random
from typing import TextIO

from ringbuffer.buffer import PreRecordBuffer
from ringbuffer.packet import STREAM_VIDEO, TICKS_PER_SECOND, TIME_BASE

log = logging.getLogger(__name__)

FPS = 30
GOP_FRAMES = 30
BITRATE_BPS = 4_000_000
BUFFER_SECONDS = 60
STANDBY_SECONDS = 5 * 60


def synthetic_frame(frame: int, rng: random.Random) -> bytes:
    """One encoded-frame-sized packet that starts with its frame number."""
    per_gop = BITRATE_BPS // 8 * GOP_FRAMES // FPS
    p_size = per_gop // (GOP_FRAMES - 1 + 10)  # a keyframe is about ten P frames
    size = p_size * 10 if frame % GOP_FRAMES == 0 else p_size
    size = max(8, int(size * rng.uniform(0.8, 1.2)))
    return frame.to_bytes(8, "big") + bytes(size - 8)


def run_demo(out: TextIO) -> None:
    """Run the demonstration and write what it shows to `out`."""
    ticks = TICKS_PER_SECOND // FPS
    buf = PreRecordBuffer(
        seconds=BUFFER_SECONDS,
        time_base=TIME_BASE,
        bitrate_bps=BITRATE_BPS,
    )
    rng = random.Random(3)
    frames = STANDBY_SECONDS * FPS
    out.write(
        f"pre-record buffer: {BUFFER_SECONDS} s at {BITRATE_BPS // 1000} kbit/s, "
        f"{buf.capacity_bytes / 1e6:.1f} MB arena + {buf.index_nbytes / 1e6:.2f} MB index "
        f"(fixed: {buf.nbytes} bytes)\n"
    )
    out.write(
        f"standby: {STANDBY_SECONDS} s in fast-forward, {frames} frames at {FPS} fps, "
        f"a keyframe every {GOP_FRAMES} frames\n"
    )
    for frame in range(frames):
        buf.append(
            synthetic_frame(frame, rng),
            pts=frame * ticks,
            duration=ticks,
            stream=STREAM_VIDEO,
            keyframe=frame % GOP_FRAMES == 0,
        )
    press_pts = frames * ticks
    out.write(f"record pressed at pts {press_pts} ({press_pts / TICKS_PER_SECOND:.3f} s)\n")

    pre_roll = buf.drain()
    if not pre_roll:
        out.write("pre-roll: empty\n")
        return
    first, last = pre_roll[0], pre_roll[-1]
    covered = (last.pts + last.duration - first.pts) / TICKS_PER_SECOND
    numbers = [int.from_bytes(p.data[:8], "big") for p in pre_roll]
    exact = numbers == [p.pts // ticks for p in pre_roll] and numbers == list(
        range(numbers[0], frames)
    )
    total = sum(len(p.data) for p in pre_roll)
    out.write("pre-roll:\n")
    out.write(f"  first timestamp  {first.pts} ({first.pts / TICKS_PER_SECOND:.3f} s)\n")
    out.write(f"  last timestamp   {last.pts} ({last.pts / TICKS_PER_SECOND:.3f} s)\n")
    out.write(f"  seconds covered  {covered:.3f} (configured {BUFFER_SECONDS})\n")
    out.write(f"  packets          {len(pre_roll)}\n")
    out.write(f"  bytes            {total}\n")
    out.write(f"  first packet is a keyframe: {'yes' if first.keyframe else 'NO'}\n")
    out.write(f"  frames in order up to the press: {'yes' if exact else 'NO'}\n")
    out.write(
        f"  undersized evictions {buf.undersized_evictions}, "
        f"dropped before a keyframe {buf.dropped_before_keyframe}\n"
    )
