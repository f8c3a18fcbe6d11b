"""The pre-record ring buffer: the last 30-120 s of encoded packets a camera keeps in standby.

```python
from ringbuffer import PreRecordBuffer, STREAM_VIDEO
buf = PreRecordBuffer(seconds=60, time_base=Fraction(1, 90000), bitrate_bps=4_000_000)
buf.append(data, pts=pts, duration=3000, stream=STREAM_VIDEO, keyframe=True)
pre_roll = buf.drain()   # capture order, original pts, first packet a video keyframe
frame = buf.freeze()     # the same without a copy: views into the buffer until released
frame.release()
```

Pure library: no I/O, no threads of its own, no knowledge of cameras. See
`ringbuffer.buffer` for the layout and the eviction rules.
"""

from ringbuffer.buffer import (
    INDEX_DTYPE,
    MAX_SECONDS,
    MIN_SECONDS,
    STREAM_AUDIO,
    STREAM_VIDEO,
    BufferedPacket,
    PreRecordBuffer,
)
from ringbuffer.errors import (
    BufferConfigError,
    BufferFrozen,
    InvalidPacket,
    NonMonotonicPts,
    PacketTooLarge,
)
from ringbuffer.frozen import FLAG_KEYFRAME, FrozenPreRoll

__all__ = [
    "FLAG_KEYFRAME",
    "INDEX_DTYPE",
    "MAX_SECONDS",
    "MIN_SECONDS",
    "STREAM_AUDIO",
    "STREAM_VIDEO",
    "BufferConfigError",
    "BufferFrozen",
    "BufferedPacket",
    "FrozenPreRoll",
    "InvalidPacket",
    "NonMonotonicPts",
    "PacketTooLarge",
    "PreRecordBuffer",
]
