"""The pre-roll a record press froze: the buffer's packets read in place, never copied.

`PreRecordBuffer.freeze()` hands one out; the buffer takes no new packets until the
recording's worker has written them and calls `release()` (finishing a recording and a
power cut release it too), so memory never grows and the packets never move under it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ringbuffer.packet import STREAM_VIDEO, EncodedPacket

if TYPE_CHECKING:
    from ringbuffer.buffer import PreRecordBuffer

FLAG_KEYFRAME = 1
Records = npt.NDArray[np.void]
BufferedPacket = EncodedPacket


class FrozenPreRoll:
    """A frozen buffer's pre-roll: packets as views into the arena, made as they are read.

    Sized and indexable without making packet objects; `release()` empties the buffer and
    lets it take packets again (after which the views must not be used).
    """

    def __init__(self, buffer: PreRecordBuffer, records: Records, arena: memoryview) -> None:
        self._buffer: PreRecordBuffer | None = buffer
        self._records = records
        self._arena = arena

    def __len__(self) -> int:
        return len(self._records)

    def _packets(self, records: Records) -> list[BufferedPacket]:
        arena = self._arena
        return [
            BufferedPacket(
                arena[offset : offset + size], pts, duration, stream, bool(flags & FLAG_KEYFRAME)
            )
            for offset, size, pts, duration, stream, flags in records.tolist()
        ]

    def __iter__(self) -> Iterator[BufferedPacket]:
        # In slices: a reader on another thread gets going at once and makes the packet
        # objects of 120 s a few hundred at a time.
        for start in range(0, len(self._records), 256):
            yield from self._packets(self._records[start : start + 256])

    def packets(self, start: int = 0, stop: int | None = None) -> list[BufferedPacket]:
        """The packets `start:stop` (capture order)."""
        return self._packets(self._records[start:stop])

    def count(self, stream: int | None = None) -> int:
        """Packets held, or those of one stream."""
        if stream is None:
            return len(self._records)
        return int(np.count_nonzero(self._records["stream"] == stream))

    def keyframes(self) -> list[int]:
        """Positions of the video keyframes, in order."""
        r = self._records
        mask = (r["stream"] == STREAM_VIDEO) & ((r["flags"] & FLAG_KEYFRAME) != 0)
        return [int(i) for i in np.flatnonzero(mask)]

    def pts(self, position: int) -> int:
        return int(self._records[position]["pts"])

    @property
    def released(self) -> bool:
        return self._buffer is None

    def release(self) -> None:
        """Done with the packets: the buffer is emptied and takes packets again. Idempotent."""
        buffer, self._buffer = self._buffer, None
        if buffer is not None:
            buffer._thaw(self)

    def __repr__(self) -> str:
        state = "released" if self._buffer is None else "frozen"
        return f"FrozenPreRoll({len(self._records)} packets, {state})"
