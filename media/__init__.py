"""What every part of the camera's media path agrees on: the encoded packet and its clock.

```python
from media import EncodedPacket, STREAM_VIDEO, TICKS_PER_SECOND
pkt = EncodedPacket(data, pts=frame_pts(n, fps), duration=3000, stream=STREAM_VIDEO, keyframe=True)
```

The encoder makes these packets, the pre-record buffer holds and hands them back, the
recorder muxes them. Pure definitions: no I/O, no dependencies; the bottom layer beside
`ringbuffer/` and `crypto/`.
"""

from media.packet import (
    STREAM_AUDIO,
    STREAM_VIDEO,
    TICKS_PER_SECOND,
    TIME_BASE,
    EncodedPacket,
    frame_pts,
)

__all__ = [
    "STREAM_AUDIO",
    "STREAM_VIDEO",
    "TICKS_PER_SECOND",
    "TIME_BASE",
    "EncodedPacket",
    "frame_pts",
]
