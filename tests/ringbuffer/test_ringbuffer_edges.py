"""Edge cases of the pre-record buffer: empty, oversized, bounds, bad arguments, copies."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from ringbuffer import (
    INDEX_DTYPE,
    STREAM_AUDIO,
    STREAM_VIDEO,
    BufferConfigError,
    InvalidPacket,
    NonMonotonicPts,
    PacketTooLarge,
    PreRecordBuffer,
)

TB = Fraction(1, 90_000)
FRAME = 3000  # 30 fps


def make(seconds: int = 30, **kwargs: object) -> PreRecordBuffer:
    kwargs.setdefault("bitrate_bps", 80_000)
    return PreRecordBuffer(seconds, TB, **kwargs)  # type: ignore[arg-type]


def feed(
    buf: PreRecordBuffer,
    frames: range,
    size: int = 100,
    gop: int = 30,
    key_size: int | None = None,
) -> None:
    for n in frames:
        key = n % gop == 0
        data = (n % (1 << 32)).to_bytes(4, "big") * (((key_size or size) if key else size) // 4)
        buf.append(data, pts=n * FRAME, duration=FRAME, stream=STREAM_VIDEO, keyframe=key)


# --- empty ---------------------------------------------------------------------------------


def test_an_empty_buffer_has_nothing_and_fixed_memory() -> None:
    buf = make()
    assert len(buf) == 0
    assert buf.snapshot() == [] and buf.drain() == []
    assert buf.span_seconds == 0.0 and buf.used_bytes == 0
    assert buf.nbytes == buf.capacity_bytes + buf.index_nbytes > 0
    buf.clear()
    assert len(buf) == 0 and buf.undersized_evictions == 0 and buf.dropped_before_keyframe == 0


def test_packets_before_the_first_keyframe_are_dropped_and_counted() -> None:
    buf = make()
    assert not buf.append(b"p", pts=0, duration=FRAME, stream=STREAM_VIDEO, keyframe=False)
    # Audio is not a GOP start even when the encoder flags it a keyframe.
    assert not buf.append(b"a", pts=10, duration=1920, stream=STREAM_AUDIO, keyframe=True)
    assert buf.dropped_before_keyframe == 2 and len(buf) == 0
    assert buf.append(b"k", pts=FRAME, duration=FRAME, stream=STREAM_VIDEO, keyframe=True)
    assert [p.pts for p in buf.snapshot()] == [FRAME]


# --- GOP eviction by time --------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [30, 120])
def test_span_at_the_bounds_of_seconds(seconds: int) -> None:
    buf = make(seconds)
    frames = (seconds + 10) * 30
    feed(buf, range(frames))
    packets = buf.snapshot()
    assert packets[0].keyframe and packets[0].pts % (30 * FRAME) == 0
    assert seconds <= buf.span_seconds < seconds + 1
    assert packets[-1].pts == (frames - 1) * FRAME
    assert [p.pts for p in packets] == list(range(packets[0].pts, frames * FRAME, FRAME))
    assert buf.undersized_evictions == 0


def test_span_grows_to_seconds_before_anything_leaves() -> None:
    buf = make()
    feed(buf, range(29 * 30))
    assert buf.span_seconds == 29 and buf.snapshot()[0].pts == 0
    feed(buf, range(29 * 30, 31 * 30))
    assert buf.span_seconds == 30 and buf.snapshot()[0].pts == 30 * FRAME


def test_a_timestamp_jump_evicts_every_gop_it_makes_stale() -> None:
    buf = make()
    feed(buf, range(40 * 30))
    jump = 10_000 * 30
    feed(buf, range(jump, jump + 30))
    # Every old GOP but the newest leaves at once: with the newest old GOP the buffer
    # covers 30 s (up to the jump), without it only the GOP after the jump.
    keys = [p.pts for p in buf.snapshot() if p.keyframe]
    assert keys == [(40 * 30 - 30) * FRAME, jump * FRAME]
    assert buf.undersized_evictions == 0


def test_audio_leaves_with_the_gop_it_belongs_to() -> None:
    buf = make()
    for n in range(32 * 30):
        buf.append(b"v" * 50, pts=n * FRAME, duration=FRAME, keyframe=n % 30 == 0)
        # Audio lags the video by 2.5 frames: captured after a keyframe, it may belong
        # to the GOP before.
        lagged = n * FRAME - 7500
        if lagged >= 0:
            buf.append(b"a" * 8, pts=lagged, duration=3000, stream=STREAM_AUDIO)
    packets = buf.snapshot()
    first = packets[0]
    assert first.stream == STREAM_VIDEO and first.keyframe
    audio = [p.pts for p in packets if p.stream == STREAM_AUDIO]
    assert 0 <= audio[0] - first.pts < 3000  # nothing from before the oldest keyframe
    assert audio == list(range(audio[0], audio[-1] + 1, 3000))
    assert len(buf) == len(packets)
    # The lagging audio of the evicted GOP still takes arena room until the head passes.
    assert buf.used_bytes > sum(len(p.data) for p in packets)


def test_audio_from_before_the_oldest_keyframe_is_dropped_on_arrival() -> None:
    buf = make()
    buf.append(b"k", pts=9000, duration=FRAME, keyframe=True)
    assert not buf.append(b"a", pts=6000, duration=1920, stream=STREAM_AUDIO)
    assert buf.append(b"b", pts=9000, duration=1920, stream=STREAM_AUDIO)
    assert buf.dropped_before_keyframe == 1
    assert [(p.stream, p.pts) for p in buf.snapshot()] == [(0, 9000), (1, 9000)]
    assert buf.used_bytes == 2


# --- the byte and packet bounds --------------------------------------------------------------


def test_a_single_gop_larger_than_the_buffer_is_evicted_and_counted() -> None:
    buf = make(max_bytes=1000)
    feed(buf, range(0, 15), size=100, gop=1000)  # one GOP, more bytes than the arena
    assert buf.undersized_evictions == 1
    assert len(buf) == 0  # the GOP went; what follows waits for a keyframe
    dropped = buf.dropped_before_keyframe
    assert dropped == 15 - 10
    feed(buf, range(1000, 1003), size=100, gop=1000)
    packets = buf.snapshot()
    assert [p.pts for p in packets] == [1000 * FRAME, 1001 * FRAME, 1002 * FRAME]
    assert packets[0].keyframe and buf.used_bytes == 300


def test_exact_fits_at_the_end_and_at_the_wrap_use_every_byte() -> None:
    buf = make(max_bytes=1000)
    feed(buf, range(10), size=100, gop=1)  # fills [0, 1000) exactly
    assert len(buf) == 10 and buf.undersized_evictions == 0
    for extra in range(1, 25):  # each needs exactly the room of the one packet it evicts
        feed(buf, range(10 + extra - 1, 10 + extra), size=100, gop=1)
        assert len(buf) == 10 and buf.used_bytes == 1000
        assert buf.undersized_evictions == extra
    assert [p.pts for p in buf.snapshot()] == [n * FRAME for n in range(24, 34)]


def test_the_byte_bound_evicts_inside_the_span_and_counts_it() -> None:
    buf = make(max_bytes=30 * 30 * 100)  # exactly 30 s of 100-byte frames
    feed(buf, range(60 * 30), size=100, key_size=400)
    assert buf.undersized_evictions > 0
    assert buf.span_seconds < 30
    assert buf.used_bytes <= buf.capacity_bytes
    assert buf.snapshot()[0].keyframe


def test_the_index_bound_evicts_like_the_byte_bound() -> None:
    buf = make(max_packets=100)
    feed(buf, range(10 * 30), size=8, gop=30)
    assert len(buf) <= 100
    assert buf.undersized_evictions > 0
    assert buf.snapshot()[0].keyframe
    assert buf.max_packets == 100


def test_a_packet_of_exactly_the_arena_fits_and_one_byte_more_raises() -> None:
    buf = make(max_bytes=4096)
    assert buf.append(bytes(4096), pts=0, duration=FRAME, keyframe=True)
    with pytest.raises(PacketTooLarge, match="4097 bytes.*4096-byte"):
        buf.append(bytes(4097), pts=FRAME, duration=FRAME, keyframe=True)
    assert [len(p.data) for p in buf.snapshot()] == [4096]


def test_sizes_derive_from_bitrate_seconds_and_headroom() -> None:
    buf = PreRecordBuffer(seconds=60, time_base=TB, bitrate_bps=4_000_000)
    assert buf.capacity_bytes == 4_000_000 * 60 * 3 // 2 // 8
    assert buf.max_packets == math.ceil(60 * (60 + 50) * 1.5)
    assert buf.nbytes == buf.capacity_bytes + buf.index_nbytes
    assert buf.index_nbytes <= 0.01 * buf.capacity_bytes  # 720p30 at 4 Mbit/s
    assert INDEX_DTYPE.names == ("offset", "size", "pts", "duration", "stream", "flags")
    given = PreRecordBuffer(seconds=60, time_base=TB, bitrate_bps=4_000_000, max_bytes=12345)
    assert given.capacity_bytes == 12345


# --- timestamps ------------------------------------------------------------------------------


def test_pts_must_increase_within_each_stream() -> None:
    buf = make()
    buf.append(b"k", pts=9000, duration=FRAME, keyframe=True)
    with pytest.raises(NonMonotonicPts, match="video pts 9000 does not follow.*9000"):
        buf.append(b"p", pts=9000, duration=FRAME)
    with pytest.raises(NonMonotonicPts):
        buf.append(b"p", pts=3000, duration=FRAME)
    # Streams are independent: audio may start below the video.
    assert buf.append(b"a", pts=9000, duration=1920, stream=STREAM_AUDIO)
    with pytest.raises(NonMonotonicPts, match="audio"):
        buf.append(b"a", pts=8999, duration=1920, stream=STREAM_AUDIO)
    assert [p.pts for p in buf.snapshot()] == [9000, 9000]


def test_after_a_drain_earlier_pts_may_come_again() -> None:
    # The camera re-seeds the buffer with the GOP in progress when a recording stops,
    # which may repeat packets it drained.
    buf = make()
    feed(buf, range(45))
    drained = [(p.pts, bytes(p.data)) for p in buf.drain()]
    feed(buf, range(30, 50))
    again = [(p.pts, bytes(p.data)) for p in buf.snapshot()]
    assert [pts for pts, _ in again] == [n * FRAME for n in range(30, 50)]
    assert again[:15] == drained[30:]
    buf.clear()
    feed(buf, range(30, 31))
    assert len(buf) == 1


def test_timestamps_are_kept_as_given() -> None:
    buf = make()
    base = 1 << 40  # a camera that has been on for a long time
    feed(buf, range(base, base + 5), gop=1)
    assert [p.pts for p in buf.drain()] == [n * FRAME for n in range(base, base + 5)]
    buf.append(b"k", pts=-90_000, duration=FRAME, keyframe=True)  # negative pts are fine
    assert buf.snapshot()[0].pts == -90_000


# --- bad arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [29, 121, 0, -30, 30.0, 60.5, "60", True, None])
def test_seconds_outside_30_to_120_are_refused_naming_the_range(seconds: object) -> None:
    with pytest.raises(BufferConfigError, match=r"seconds must be an integer 30\.\.120"):
        PreRecordBuffer(seconds, TB, bitrate_bps=4_000_000)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bitrate_bps": -4_000_000}, "bitrate_bps"),
        ({"bitrate_bps": 0}, "bitrate_bps"),
        ({"bitrate_bps": 4e6}, "bitrate_bps"),
        ({"bitrate_bps": True}, "bitrate_bps"),
        ({"bitrate_bps": 10**10}, "bitrate_bps"),
        ({"max_bytes": 0}, "max_bytes"),
        ({"max_bytes": -1}, "max_bytes"),
        ({"max_bytes": 1.5}, "max_bytes"),
        ({"headroom": 0.5}, "headroom"),
        ({"headroom": float("nan")}, "headroom"),
        ({"headroom": float("inf")}, "headroom"),
        ({"headroom": "1.5"}, "headroom"),
        ({"headroom": 11}, "headroom"),
        ({"max_packets": 0}, "max_packets"),
        ({"max_packets": 2.0}, "max_packets"),
        ({"time_base": 0}, "time_base"),
        ({"time_base": Fraction(-1, 90_000)}, "time_base"),
        ({"time_base": 1 / 90_000}, "time_base"),
        ({"time_base": None}, "time_base"),
    ],
)
def test_bad_arguments_are_refused_naming_the_argument(
    kwargs: dict[str, object], match: str
) -> None:
    args: dict[str, object] = {"seconds": 60, "time_base": TB, "bitrate_bps": 4_000_000}
    args.update(kwargs)
    with pytest.raises(BufferConfigError, match=match) as caught:
        PreRecordBuffer(**args)  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError)


def test_bad_packets_are_refused() -> None:
    buf = make(max_bytes=100)
    with pytest.raises(InvalidPacket, match="empty"):
        buf.append(b"", pts=0, duration=FRAME, keyframe=True)
    with pytest.raises(InvalidPacket, match="stream"):
        buf.append(b"x", pts=0, duration=FRAME, stream=2, keyframe=True)
    with pytest.raises(InvalidPacket, match="duration"):
        buf.append(b"x", pts=0, duration=-1, keyframe=True)
    with pytest.raises(InvalidPacket, match="64 bits"):
        buf.append(b"x", pts=1 << 63, duration=1, keyframe=True)
    with pytest.raises(InvalidPacket, match="bytes"):
        buf.append("text", pts=0, duration=FRAME, keyframe=True)  # type: ignore[arg-type]
    with pytest.raises(InvalidPacket, match="contiguous"):
        buf.append(np.zeros(8, np.int16)[::2], pts=0, duration=1, keyframe=True)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        buf.append(b"x", pts=1.5, duration=FRAME, keyframe=True)  # type: ignore[arg-type]
    for error in (BufferConfigError, InvalidPacket, NonMonotonicPts, PacketTooLarge):
        assert issubclass(error, ValueError)
    assert len(buf) == 0 and buf.dropped_before_keyframe == 0  # refusals change nothing
    assert buf.append(b"x", pts=0, duration=FRAME, keyframe=True)  # pts 0 still unused


# --- data in, copies out ----------------------------------------------------------------------


def test_any_contiguous_buffer_goes_in_and_comes_out_as_the_same_bytes() -> None:
    buf = make()
    words = np.arange(6, dtype=np.int16)
    inputs: list[object] = [b"bytes", bytearray(b"bytearray"), memoryview(b"view"), words]
    inputs.append(np.frombuffer(b"uint8 array", np.uint8))
    for n, data in enumerate(inputs):
        buf.append(data, pts=n, duration=1, keyframe=True)  # type: ignore[arg-type]
    got = [bytes(p.data) for p in buf.snapshot()]
    assert got == [b"bytes", b"bytearray", b"view", words.tobytes(), b"uint8 array"]


def test_packets_are_read_only_and_each_read_has_its_own_copy() -> None:
    buf = make()
    feed(buf, range(60))
    one, two = buf.snapshot(), buf.snapshot()
    assert all(p.data.readonly for p in one)
    with pytest.raises(TypeError):
        one[0].data[0] = 1
    a = np.frombuffer(one[7].data, np.uint8)
    b = np.frombuffer(two[7].data, np.uint8)
    assert a.tobytes() == b.tobytes() and not np.shares_memory(a, b)


def test_a_wrapped_snapshot_is_one_copy_of_the_held_bytes() -> None:
    buf = make(max_bytes=1000)
    feed(buf, range(25), gop=1)  # 100 bytes a packet: the arena has wrapped round
    packets = buf.snapshot()
    assert [p.pts for p in packets] == [n * FRAME for n in range(15, 25)]
    assert packets[0].pts // FRAME == int.from_bytes(packets[0].data[:4], "big")
    # Every packet is a view of the same block, the held bytes in capture order.
    owners = {id(p.data.obj) for p in packets}
    assert len(owners) == 1
    block = bytes(packets[0].data.obj)
    assert block == b"".join(bytes(p.data) for p in packets) and len(block) == buf.used_bytes


def test_snapshot_and_drain_results_never_change_when_the_arena_is_overwritten() -> None:
    buf = make(max_bytes=1000)
    feed(buf, range(5), gop=1)
    drained = buf.drain()
    assert len(drained) == 5 and buf.snapshot() == []
    feed(buf, range(5), gop=1)
    taken = buf.snapshot()
    as_array = np.frombuffer(taken[2].data, np.uint8)  # also through another view
    before = [bytes(p.data) for p in drained], [bytes(p.data) for p in taken]
    array_before = as_array.tobytes()
    feed(buf, range(100, 130), size=100, gop=1)  # wraps round over all of it, twice
    assert [bytes(p.data) for p in buf.snapshot()][0][:4] == (120).to_bytes(4, "big")
    assert ([bytes(p.data) for p in drained], [bytes(p.data) for p in taken]) == before
    assert as_array.tobytes() == array_before
    buf.clear()
    assert [bytes(p.data) for p in taken] == before[1]


def test_repr_names_the_sizes_not_the_content() -> None:
    buf = make(max_bytes=1234)
    feed(buf, range(3))
    assert repr(buf) == (
        "PreRecordBuffer(seconds=30, capacity_bytes=1234, max_packets=4950, packets=3)"
    )
