"""The encoded packet type, the stream ids and the 1/90000 media clock (one definition each).

What every part of the camera's media path agrees on: the encoder makes these packets,
the pre-record buffer holds and hands them back, the recorder muxes them. Pure
definitions, no I/O; in the bottom layer so the buffer and the firmware share them.

```python
from ringbuffer.packet import EncodedPacket, STREAM_VIDEO, frame_pts
pkt = EncodedPacket(data, pts=frame_pts(n, fps), duration=3000, stream=STREAM_VIDEO, keyframe=True)
```
"""

from __future__ import annotations

from fractions import Fraction
from typing import NamedTuple

TICKS_PER_SECOND = 90_000  # the MPEG-TS clock: every media timestamp is in these ticks
TIME_BASE = Fraction(1, TICKS_PER_SECOND)
STREAM_VIDEO = 0
STREAM_AUDIO = 1


class EncodedPacket(NamedTuple):
    """One compressed video frame or audio frame; timestamps in 1/90000 s.

    `data` is `bytes` when the encoder made the packet and a read-only `memoryview`
    when the pre-record buffer hands it back (see `ringbuffer.buffer` for how long
    such a view stays valid).
    """

    data: bytes | memoryview
    pts: int
    duration: int
    stream: int  # STREAM_VIDEO or STREAM_AUDIO
    keyframe: bool


def frame_pts(frame_number: int, fps: int) -> int:
    """The 1/90000 pts of a frame number: the rule camera and encoder share."""
    return frame_number * TICKS_PER_SECOND // fps
