"""`freeze()`: the record press's read of the buffer, without a copy."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from ringbuffer import STREAM_AUDIO, STREAM_VIDEO, BufferFrozen, PreRecordBuffer

TB = Fraction(1, 90_000)
FRAME = 3000  # 30 fps


def feed(buf: PreRecordBuffer, frames: range, gop: int = 30, audio: bool = False) -> None:
    for n in frames:
        key = n % gop == 0
        buf.append(n.to_bytes(4, "big") * 25, pts=n * FRAME, duration=FRAME, keyframe=key)
        if audio:
            buf.append(b"a" * 10, pts=n * FRAME + 10, duration=FRAME, stream=STREAM_AUDIO)


def as_tuples(packets: object) -> list[tuple[bytes, int, int, int, bool]]:
    return [(bytes(p.data), p.pts, p.duration, p.stream, p.keyframe) for p in packets]  # type: ignore[attr-defined]


def test_freeze_hands_out_what_drain_would_without_a_copy() -> None:
    a = PreRecordBuffer(30, TB, bitrate_bps=80_000)
    b = PreRecordBuffer(30, TB, bitrate_bps=80_000)
    for buf in (a, b):
        feed(buf, range(0, 2000), audio=True)  # wrapped and evicted many times over
    frozen = a.freeze()
    drained = b.drain()
    assert as_tuples(frozen) == as_tuples(drained)
    assert len(frozen) == len(drained) == frozen.count()
    assert frozen.count(STREAM_VIDEO) + frozen.count(STREAM_AUDIO) == len(frozen)
    keys = frozen.keyframes()
    assert keys[0] == 0 and frozen.pts(keys[0]) == drained[0].pts
    assert as_tuples(frozen.packets(keys[-1])) == as_tuples(drained[keys[-1] :])
    # The packets are read-only views of the buffer's own arena: nothing was copied.
    first = next(iter(frozen)).data
    assert isinstance(first, memoryview) and first.readonly
    assert np.shares_memory(np.frombuffer(first, np.uint8), a._arena)
    frozen.release()


def test_a_frozen_buffer_refuses_packets_until_released_then_starts_empty() -> None:
    buf = PreRecordBuffer(30, TB, bitrate_bps=80_000)
    feed(buf, range(0, 100))
    frozen = buf.freeze()
    held = as_tuples(frozen)
    assert buf.frozen and len(buf) == 0 and buf.snapshot() == []
    with pytest.raises(BufferFrozen, match="frozen"):
        buf.append(b"x" * 100, pts=100 * FRAME, duration=FRAME, keyframe=True)
    with pytest.raises(BufferFrozen):
        buf.freeze()
    assert as_tuples(frozen) == held  # the refused packet changed nothing it hands out
    frozen.release()
    frozen.release()  # idempotent
    assert frozen.released and not buf.frozen and len(buf) == 0
    # Timestamps start afresh, as after a drain: the recording's last GOP may come back.
    feed(buf, range(90, 130))
    assert [p.pts for p in buf.snapshot()][0] == 90 * FRAME


def test_clear_ends_a_freeze_and_an_empty_freeze_is_empty() -> None:
    buf = PreRecordBuffer(30, TB, bitrate_bps=80_000)
    frozen = buf.freeze()
    assert len(frozen) == 0 and list(frozen) == [] and frozen.keyframes() == []
    buf.clear()
    assert not buf.frozen
    feed(buf, range(0, 10))
    frozen.release()  # late: does not empty the buffer that took packets since
    assert len(buf) == 10
