"""Pre-record buffer append throughput against two baselines measured in the same run.

Workload: a 720p30 H.264 stream at about 4 Mbit/s (a keyframe every second, about ten
times the size of a P frame, sizes jittered +-25 %) into a 60 s buffer, in two variants:

* video only: what the buffer holds with the profile default (``prerecord.audio = false``);
* with audio: plus the camera's AAC (mono, 48 kHz, 64 kbit/s: 46.9 packets/s of about
  170 bytes), interleaved in capture order as the encoder emits them.

The stream is ten times longer than the buffer, so the arena wraps round and every append
also evicts. Packets arrive as views into the encoder's output buffer (PyAV hands packets
over in buffers it reuses), so whatever keeps a packet has to copy it once. Three ways of
keeping the last 60 s are timed on the same packets:

* ``PreRecordBuffer.append``: the ring buffer (lock, checks, GOP-wise eviction, index);
* deque baseline: ``collections.deque`` of ``bytes`` copies behind the same append()
  call, evicting the oldest packet by time (no lock, no checks, no GOPs: only favours it);
* raw copy baseline: ``numpy`` copy of the same bytes into a preallocated array as large
  as the arena, wrapping to 0; no index, no eviction, no call: the ceiling.

Targets: append at least as fast as the deque, at least 50 % of the raw copy's MB/s, and
an index of at most 1 % of the arena. Each figure is the median of several runs with the
methods interleaved. A deque that keeps references without copying is shown for context
only: it cannot keep packets whose buffer the encoder reuses.

Run: .venv/bin/python benchmarks/ringbuffer_bench.py [--seconds-of-stream N] [--repeat N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ringbuffer import STREAM_AUDIO, STREAM_VIDEO, PreRecordBuffer  # noqa: E402

TICKS = 90_000
FPS = 30
FRAME = TICKS // FPS
GOP = 30
VIDEO_BPS = 4_000_000
AUDIO_BPS = 64_000  # firmware.encoder.AUDIO_BITRATE
AUDIO_TICKS = 1024 * TICKS // 48_000  # 1920 ticks per AAC packet
BUFFER_SECONDS = 60
SOURCE_BYTES = 16 << 20  # the encoder's output buffer the packets are views of

Packet = tuple[memoryview, int, int, int, bool]
RECORD = struct.Struct(
    "<qIqIBB"
)  # the ring buffer's index record  # data, pts, duration, stream, keyframe


def make_stream(seconds: int, with_audio: bool, seed: int = 7) -> tuple[list[Packet], int]:
    """Packets in capture order and their total size."""
    rng = random.Random(seed)
    source = np.random.default_rng(seed).integers(0, 256, SOURCE_BYTES, np.uint8).data
    per_gop = VIDEO_BPS // 8 * GOP // FPS
    p_size = per_gop // (GOP - 1 + 10)  # a keyframe is about ten P frames
    audio_size = AUDIO_BPS // 8 * AUDIO_TICKS // TICKS
    packets: list[Packet] = []
    total = 0
    at = 0
    sent = 0  # audio packets

    def take(size: int) -> memoryview:
        nonlocal at, total
        if at + size > SOURCE_BYTES:
            at = 0
        view = source[at : at + size]
        at += size
        total += size
        return view

    for n in range(seconds * FPS):
        key = n % GOP == 0
        size = int((p_size * 10 if key else p_size) * rng.uniform(0.75, 1.25))
        packets.append((take(size), n * FRAME, FRAME, STREAM_VIDEO, key))
        while with_audio and sent * AUDIO_TICKS < (n + 1) * FRAME:
            size = int(audio_size * rng.uniform(0.9, 1.1))
            packets.append((take(size), sent * AUDIO_TICKS, AUDIO_TICKS, STREAM_AUDIO, True))
            sent += 1
    return packets, total


def new_buffer() -> PreRecordBuffer:
    return PreRecordBuffer(
        seconds=BUFFER_SECONDS, time_base=Fraction(1, TICKS), bitrate_bps=VIDEO_BPS
    )


def feed(append: Callable[..., object], packets: list[Packet]) -> float:
    """Seconds to append `packets` one by one (the same loop for every method)."""
    start = time.perf_counter()
    for data, pts, duration, stream, key in packets:
        append(data, pts=pts, duration=duration, stream=stream, keyframe=key)
    return time.perf_counter() - start


def run_ring(warm: list[Packet], timed: list[Packet]) -> float:
    buf = new_buffer()
    feed(buf.append, warm)  # a full buffer: from here on every append also evicts
    elapsed = feed(buf.append, timed)
    assert buf.span_seconds >= BUFFER_SECONDS and buf.undersized_evictions == 0
    return elapsed


class DequeBuffer:
    """The obvious pre-record buffer: a deque of packet copies, the oldest dropped by time.

    Same append() interface as PreRecordBuffer, so both pay the same call; it has no
    lock, no checks and no GOP bookkeeping, which only favours it.
    """

    def __init__(self, seconds: int, copy: bool = True) -> None:
        self.span = seconds * TICKS
        self.copy = copy
        self.kept: deque[tuple[bytes | memoryview, int, int, int, bool]] = deque()

    def append(
        self, data: memoryview, *, pts: int, duration: int, stream: int, keyframe: bool
    ) -> None:
        kept = self.kept
        kept.append((bytes(data) if self.copy else data, pts, duration, stream, keyframe))
        while pts - kept[0][1] > self.span:
            kept.popleft()


def run_deque(warm: list[Packet], timed: list[Packet], copy: bool = True) -> float:
    buf = DequeBuffer(BUFFER_SECONDS, copy)
    feed(buf.append, warm)  # full, and the allocator has the memory it recycles
    return feed(buf.append, timed)


class LockedCopyWithRecord:
    """Context: the least any thread-safe, indexed arena does per packet in Python.

    A lock, the copy and one index record, and nothing else: no checks, no eviction.
    """

    def __init__(self, capacity: int, slots: int) -> None:
        self.lock = threading.Lock()
        self.arena = np.zeros(capacity, dtype=np.uint8)
        self.view = self.arena.data
        self.index = np.zeros(slots * RECORD.size, dtype=np.uint8)
        self.index_view = self.index.data
        self.capacity, self.slots, self.at, self.count = capacity, slots, 0, 0

    def append(
        self, data: memoryview, *, pts: int, duration: int, stream: int, keyframe: bool
    ) -> None:
        size = len(data)
        with self.lock:
            at = self.at if self.at + size <= self.capacity else 0
            self.view[at : at + size] = data
            slot = self.count % self.slots
            RECORD.pack_into(self.index_view, slot * 26, at, size, pts, duration, stream, keyframe)
            self.count += 1
            self.at = at + size


def run_floor(warm: list[Packet], timed: list[Packet], capacity: int, slots: int) -> float:
    buf = LockedCopyWithRecord(capacity, slots)
    feed(buf.append, warm)
    return feed(buf.append, timed)


def run_raw(warm: list[Packet], timed: list[Packet], capacity: int) -> float:
    arena = np.empty(capacity, dtype=np.uint8)
    arena.fill(0)  # touched, like the ring buffer's arena
    frombuffer, u8 = np.frombuffer, np.uint8
    at = 0

    def copy(packets: list[Packet]) -> float:
        nonlocal at
        start = time.perf_counter()
        for data, _pts, _duration, _stream, _key in packets:
            size = len(data)
            if at + size > capacity:
                at = 0
            arena[at : at + size] = frombuffer(data, u8)
            at += size
        return time.perf_counter() - start

    copy(warm)
    return copy(timed)


def measure(
    packets: list[Packet], capacity: int, slots: int, repeat: int
) -> dict[str, tuple[float, float]]:
    """Median packets/s and bytes/s of each method once the buffer is full (steady state)."""
    split = next(i for i, p in enumerate(packets) if p[1] >= BUFFER_SECONDS * TICKS)
    warm, timed = packets[:split], packets[split:]
    count, total = len(timed), sum(len(p[0]) for p in timed)
    methods: dict[str, Callable[[], float]] = {
        "PreRecordBuffer.append": lambda: run_ring(warm, timed),
        "deque of bytes (baseline)": lambda: run_deque(warm, timed),
        "raw numpy copy (baseline)": lambda: run_raw(warm, timed, capacity),
        "context: lock+copy+record only": lambda: run_floor(warm, timed, capacity, slots),
        "context: deque, no copy": lambda: run_deque(warm, timed, copy=False),
    }
    times: dict[str, list[float]] = {name: [] for name in methods}
    for run in methods.values():  # warm-up
        run()
    for _ in range(repeat):
        for name, run in methods.items():
            times[name].append(run())
    return {
        name: (count / statistics.median(t), total / statistics.median(t))
        for name, t in times.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds-of-stream", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)

    probe = new_buffer()
    capacity = probe.capacity_bytes
    print(
        f"{args.seconds_of_stream} s of 720p30 H.264 at {VIDEO_BPS / 1e6:g} Mbit/s into a "
        f"{BUFFER_SECONDS} s buffer ({capacity / 1e6:.1f} MB arena); median of "
        f"{args.repeat} runs"
    )
    checks: list[tuple[str, bool, str]] = []
    for label, with_audio in (("with AAC audio", True), ("video only", False)):
        packets, total = make_stream(args.seconds_of_stream, with_audio)
        rates = measure(packets, capacity, probe.max_packets, args.repeat)
        video = sum(1 for p in packets if p[3] == STREAM_VIDEO)
        print(
            f"\n{label}: {len(packets):,} packets ({len(packets) - video:,} audio), "
            f"{total / 1e6:.1f} MB, {total / len(packets) / 1e3:.1f} kB a packet"
        )
        ring, deq, raw = (rates[n][1] for n in list(rates)[:3])
        print(f"{'method':31} {'packets/s':>12} {'MB/s':>9} {'vs deque':>9} {'vs raw':>8}")
        for name, (pps, bps) in rates.items():
            print(f"{name:31} {pps:12,.0f} {bps / 1e6:9.1f} {bps / deq:8.2f}x {bps / raw:7.1%}")
        checks.append((f"{label}: append >= deque", ring >= deq, f"{ring / deq:.2f}x"))
        checks.append((f"{label}: append >= 50 % of raw", ring >= 0.5 * raw, f"{ring / raw:.1%}"))
    share = probe.index_nbytes / probe.capacity_bytes
    print(
        f"\nindex: {probe.index_nbytes:,} bytes for {probe.max_packets:,} packets = "
        f"{share:.2%} of the arena; total {probe.nbytes:,} bytes, fixed at construction"
    )
    checks.append(("index <= 1 % of the arena", share <= 0.01, f"{share:.2%}"))
    for label, ok, figure in checks:
        print(f"target: {label:38} {figure:>8}  {'ok' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
