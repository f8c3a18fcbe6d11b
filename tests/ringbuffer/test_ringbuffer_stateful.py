"""Property-based (stateful) tests of the pre-record buffer against a naive reference model.

Random GOPs (random sizes, lengths and durations, audio leading or lagging the video,
streams starting without a keyframe, timestamp jumps), snapshots, drains and clears. After
every step the buffer must agree with the model packet for packet, and the invariants hold
on their own: the first packet is a video keyframe, capture order is kept, bytes are the
ones appended, the span covers `seconds` whenever that much was captured (and less than
one GOP more), and memory never grows.

A coarse time base (1/10 s) keeps the number of packets per test small while the time
rules still see whole minutes.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from ringbuffer_model import (
    AUDIO,
    VIDEO,
    ModelNonMonotonic,
    ModelPacket,
    ModelTooLarge,
    ReferenceBuffer,
)

from ringbuffer import (
    BufferedPacket,
    NonMonotonicPts,
    PacketTooLarge,
    PreRecordBuffer,
)

TIME_BASE = Fraction(1, 10)
TICKS_PER_SECOND = 10

Frame = tuple[int, int, list[tuple[int, int]]]  # size, duration, audio (size, lag) after it

frames = st.lists(
    st.tuples(
        st.integers(1, 300),  # video packet size
        st.integers(1, 60),  # frame duration in ticks
        st.lists(st.tuples(st.integers(1, 60), st.integers(-25, 25)), max_size=3),  # audio
    ),
    min_size=1,
    max_size=12,
)


def payload(stream: int, pts: int, size: int) -> bytes:
    """Bytes that differ from packet to packet, so a wrong slice cannot pass."""
    seed = (pts * 2 + stream).to_bytes(8, "big", signed=True)
    return (seed * (size // 8 + 1))[:size]


class BufferMachine(RuleBasedStateMachine):
    buf: PreRecordBuffer
    model: ReferenceBuffer

    @initialize(
        seconds=st.sampled_from([30, 30, 30, 31, 45, 120]),
        capacity=st.one_of(st.integers(1, 600), st.integers(600, 20_000)),
        max_packets=st.one_of(st.integers(1, 20), st.integers(20, 400)),
    )
    def setup(self, seconds: int, capacity: int, max_packets: int) -> None:
        self.seconds = seconds
        self.span_ticks = seconds * TICKS_PER_SECOND
        self.buf = PreRecordBuffer(
            seconds,
            TIME_BASE,
            bitrate_bps=8000,
            max_bytes=capacity,
            max_packets=max_packets,
        )
        self.model = ReferenceBuffer(self.span_ticks, capacity, max_packets)
        self.nbytes = self.buf.nbytes
        self.video_next = 1000
        self.audio_last = -(10**9)
        self.sent: dict[tuple[int, int], bytes] = {}
        self.order: dict[tuple[int, int], int] = {}
        # "span >= seconds when available": measured from the start of the current run,
        # i.e. since the buffer was last empty or last evicted inside the span.
        self.run_start: int | None = None
        self.run_undersized = 0
        self.video_end = 0
        # Packets handed out earlier with the bytes they had then: later appends, drains
        # and clears must never change them (a stale read is impossible).
        self.handed_out: list[tuple[BufferedPacket, bytes]] = []

    # --- feeding -------------------------------------------------------------------------

    def _send(self, data: bytes, pts: int, duration: int, stream: int, keyframe: bool) -> None:
        expected: object
        try:
            expected = self.model.append(data, pts, duration, stream, keyframe)
        except ModelTooLarge:
            expected = PacketTooLarge
        except ModelNonMonotonic:
            expected = NonMonotonicPts
        if isinstance(expected, bool):
            got = self.buf.append(
                data, pts=pts, duration=duration, stream=stream, keyframe=keyframe
            )
            assert got == expected
        else:
            with pytest.raises(expected):
                self.buf.append(data, pts=pts, duration=duration, stream=stream, keyframe=keyframe)
            return
        if got:
            self.sent[(stream, pts)] = data
            self.order[(stream, pts)] = len(self.order)
            if stream == VIDEO:
                self.video_end = pts + duration
        self._track_run()

    def _track_run(self) -> None:
        if not self.model.packets:
            self.run_start = None
        elif self.run_start is None or self.buf.undersized_evictions != self.run_undersized:
            self.run_start = self.model.first_pts()
            self.run_undersized = self.buf.undersized_evictions

    @rule(
        gops=st.lists(
            st.tuples(
                frames,
                st.sampled_from([True, True, True, False]),  # starts with a keyframe
                st.sampled_from([0, 0, 0, 7, 400]),  # pts gap before it
            ),
            min_size=1,
            max_size=5,
        )
    )
    def append_gops(self, gops: list[tuple[list[Frame], bool, int]]) -> None:
        for gop, keyframe_first, gap in gops:
            self.video_next += gap
            for i, (size, duration, audio) in enumerate(gop):
                pts = self.video_next
                self.video_next += duration
                key = keyframe_first and i == 0
                self._send(payload(VIDEO, pts, size), pts, duration, VIDEO, key)
                for audio_size, lag in audio:
                    apts = max(self.audio_last + 1, pts + lag)
                    self.audio_last = apts
                    self._send(payload(AUDIO, apts, audio_size), apts, 3, AUDIO, True)

    @rule(kind=st.sampled_from(["late video", "late audio", "too large"]), n=st.integers(0, 50))
    def append_bad(self, kind: str, n: int) -> None:
        if kind == "too large":
            pts = self.video_next
            self.video_next += 1
            self._send(bytes(self.model.capacity + 1 + n), pts, 1, VIDEO, True)
            return
        stream = VIDEO if kind == "late video" else AUDIO
        last = self.model.last_pts[stream]
        if last is not None:
            self._send(b"late", last - n, 1, stream, stream == VIDEO)

    # --- reading -------------------------------------------------------------------------

    @rule(how=st.sampled_from(["drain", "clear"]))
    def empty(self, how: str) -> None:
        if how == "clear":
            self.buf.clear()
            self.model.clear()
        else:
            got = self.buf.drain()
            self._compare(got, self.model.drain())
            self.handed_out = [(p, bytes(p.data)) for p in got[-20:]]
            assert self.buf.drain() == []
        self.run_start = None
        assert len(self.buf) == 0 and self.buf.snapshot() == []
        assert self.buf.span_seconds == 0.0 and self.buf.used_bytes == 0

    def _compare(self, got: list[BufferedPacket], want: list[ModelPacket]) -> None:
        assert [(p.stream, p.pts, p.duration, p.keyframe) for p in got] == [
            (p.stream, p.pts, p.duration, p.keyframe) for p in want
        ]
        for packet in got:
            assert bytes(packet.data) == self.sent[(packet.stream, packet.pts)]

    # --- invariants (one snapshot per step keeps the run short) ----------------------

    @invariant()
    def invariants_hold(self) -> None:
        for packet, data in self.handed_out:
            assert bytes(packet.data) == data, "a packet handed out earlier changed"
        packets = self.buf.snapshot()
        self.handed_out = self.handed_out[-20:] + [(p, bytes(p.data)) for p in packets[:20]]
        # The model, packet for packet, and the counters.
        self._compare(packets, self.model.live())
        assert len(self.buf) == len(packets)
        assert self.buf.undersized_evictions == self.model.undersized_evictions
        assert self.buf.dropped_before_keyframe == self.model.dropped_before_keyframe
        assert self.buf.used_bytes == self.model.used_bytes()
        assert self.buf.span_seconds == float(self.model.span_ticks_held() * TIME_BASE)
        # Memory never grows and the bounds hold.
        assert self.buf.nbytes == self.nbytes
        assert self.buf.used_bytes <= self.buf.capacity_bytes
        assert len(self.buf) <= self.buf.max_packets
        self._label_paths()
        if not packets:
            return
        # A video keyframe first; capture order kept; no audio from before it.
        assert packets[0].stream == VIDEO and packets[0].keyframe
        positions = [self.order[(p.stream, p.pts)] for p in packets]
        assert positions == sorted(positions)
        first = packets[0].pts
        assert all(p.pts >= first for p in packets if p.stream == AUDIO)
        # At least `seconds` once captured (without a memory eviction), one GOP more at most.
        if self.run_start is not None and self.video_end - self.run_start >= self.span_ticks:
            assert self.buf.span_seconds >= self.seconds
        keyframes = [p.pts for p in packets if p.stream == VIDEO and p.keyframe]
        if len(keyframes) >= 2:
            assert self.video_end - keyframes[1] < self.span_ticks

    def _label_paths(self) -> None:
        # Shown by --hypothesis-show-statistics: are the interesting paths exercised?
        model = self.model
        offsets = [p.offset for p in model.packets]
        if offsets != sorted(offsets):
            event("arena wrapped")
        if len(model.live()) < len(model.packets):
            event("lagging audio hidden")
        for name in ("time_evictions", "undersized_evictions", "dropped_before_keyframe"):
            if getattr(model, name):
                event(name)
        if len(model.packets) == model.max_packets:
            event("index full")


BufferMachine.TestCase.settings = settings(
    max_examples=250,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPreRecordBufferStateful = BufferMachine.TestCase
