"""The pre-record buffer as a camera feels it: flat memory, cheap appends, a quick drain.

Workload: the profile's 4 Mbit/s video at 30 fps (a keyframe every second, about ten
times a P frame, sizes jittered +-25 %) plus AAC audio (46.9 packets/s of ~170 bytes),
handed over as `bytes` as the encoder does, into a buffer of `--seconds` (default 120,
the profile maximum).

Three figures, each against a baseline measured in the same run:

1. Memory over a long standby: `--hours` (default 12) of stream time fed as fast as the
   buffer takes it. The process RSS is sampled once the buffer is full (warm-up) and at
   every simulated hour; the growth after warm-up must be 0 (the arena and index are
   allocated and touched at construction). Baseline for scale: the buffer's own `nbytes`.
2. Append cost per frame interval (one video packet plus the audio captured with it), in
   CPU time, as a share of the 33.3 ms frame interval. Baseline: a bare numpy copy of the
   same bytes into a preallocated array (no index, no eviction, no lock: the floor).
3. Drain latency for a full pre-roll (`--seconds` of video and audio): `drain()` time as a
   share of the frame interval. Baseline: one numpy copy of the same number of bytes.

Rounds interleave product and baseline; figures are medians of `--rounds` (>= 5).
Goals: RSS growth 0 after warm-up; append < 1 % of the frame interval; drain < 1 frame
interval.

Run: python benchmarks/ringbuffer_bench.py [--hours 12] [--seconds 120] [--quick]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import tracemalloc
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ringbuffer import STREAM_AUDIO, STREAM_VIDEO, PreRecordBuffer  # noqa: E402

TICKS = 90_000
FPS = 30
FRAME = TICKS // FPS
FRAME_S = 1 / FPS
GOP = 30
VIDEO_BPS = 4_000_000
AUDIO_BPS = 64_000  # firmware.encoder.AUDIO_BITRATE
AUDIO_TICKS = 1024 * TICKS // 48_000  # 1920 ticks per AAC packet
PAGE = 4096

# (data, pts offset within the cycle, duration, stream, keyframe)
Packet = tuple[bytes, int, int, int, bool]


def make_cycle(seconds: int, seed: int = 7) -> tuple[list[Packet], int]:
    """`seconds` of packets in capture order (pts from 0) and their total size.

    The benchmark repeats this cycle with its pts shifted, so hours of stream cost no
    more memory in the benchmark itself than one cycle.
    """
    rng = random.Random(seed)
    per_gop = VIDEO_BPS // 8 * GOP // FPS
    p_size = per_gop // (GOP - 1 + 10)  # a keyframe is about ten P frames
    audio_size = AUDIO_BPS // 8 * AUDIO_TICKS // TICKS
    packets: list[Packet] = []
    total = 0
    sent = 0
    for n in range(seconds * FPS):
        key = n % GOP == 0
        size = int((p_size * 10 if key else p_size) * rng.uniform(0.75, 1.25))
        packets.append((rng.randbytes(size), n * FRAME, FRAME, STREAM_VIDEO, key))
        total += size
        while sent * AUDIO_TICKS < (n + 1) * FRAME:
            size = int(audio_size * rng.uniform(0.9, 1.1))
            packets.append(
                (rng.randbytes(size), sent * AUDIO_TICKS, AUDIO_TICKS, STREAM_AUDIO, True)
            )
            total += size
            sent += 1
    return packets, total


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def new_buffer(seconds: int) -> PreRecordBuffer:
    return PreRecordBuffer(seconds=seconds, time_base=Fraction(1, TICKS), bitrate_bps=VIDEO_BPS)


def feed(buf: PreRecordBuffer, cycle: list[Packet], shift: int) -> None:
    append = buf.append
    for data, pts, duration, stream, key in cycle:
        append(data, pts=pts + shift, duration=duration, stream=stream, keyframe=key)


def floor_copy(arena: np.ndarray, cycle: list[Packet]) -> None:
    """The baseline: copy the same bytes into a preallocated array, wrapping to 0."""
    at = 0
    cap = len(arena)
    for data, *_ in cycle:
        n = len(data)
        if at + n > cap:
            at = 0
        arena[at : at + n] = np.frombuffer(data, np.uint8)
        at += n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=12.0, help="standby stream time")
    parser.add_argument("--seconds", type=int, default=120, help="pre-record length")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="1 h of standby, 5 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.hours, args.rounds = 1.0, 5
    rounds = max(5, args.rounds)

    cycle_s = 60  # 1800 frames, 2812.5 audio packets: pts shifted by whole cycles below
    cycle, cycle_bytes = make_cycle(cycle_s)
    # Shift by a span that keeps both streams monotonic: the cycle's own end rounded up.
    shift_step = max(cycle_s * TICKS, (cycle[-1][1] + cycle[-1][2]))
    frames_per_cycle = cycle_s * FPS

    # 1. Memory over a long standby --------------------------------------------------------
    buf = new_buffer(args.seconds)
    warm_cycles = -(-2 * args.seconds // cycle_s)  # twice the buffer: full and wrapped
    total_cycles = max(warm_cycles + 1, round(args.hours * 3600 / cycle_s))
    shift = 0
    for _ in range(warm_cycles):
        feed(buf, cycle, shift)
        shift += shift_step
    rss_warm = rss_bytes()
    samples: list[tuple[float, int]] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for c in range(warm_cycles, total_cycles):
        feed(buf, cycle, shift)
        shift += shift_step
        if (c + 1) * cycle_s % 3600 == 0 or c == total_cycles - 1:
            samples.append(((c + 1) * cycle_s / 3600, rss_bytes()))
    standby_cpu = time.process_time() - cpu0
    standby_wall = time.perf_counter() - wall0
    growth = max(r for _, r in samples) - rss_warm
    steady = samples[-1][1] - samples[0][1]  # from the first hour's sample to the end
    fed_hours = total_cycles * cycle_s / 3600
    assert buf.undersized_evictions == 0 and buf.span_seconds >= args.seconds
    # What the buffer's own code keeps allocated on the Python heap over 10 more minutes.
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(600 // cycle_s):
        feed(buf, cycle, shift)
        shift += shift_step
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    mine = [tracemalloc.Filter(True, "*/ringbuffer/*")]
    heap_growth = sum(
        d.size_diff
        for d in after.filter_traces(mine).compare_to(before.filter_traces(mine), "filename")
    )

    # 2. Append cost, interleaved with the floor copy ---------------------------------------
    arena = np.zeros(buf.capacity_bytes, np.uint8)
    append_cpu: list[float] = []
    floor_cpu: list[float] = []
    for _ in range(rounds):
        c = time.process_time()
        feed(buf, cycle, shift)
        append_cpu.append(time.process_time() - c)
        shift += shift_step
        c = time.process_time()
        floor_copy(arena, cycle)
        floor_cpu.append(time.process_time() - c)
    per_frame = statistics.median(append_cpu) / frames_per_cycle
    floor_per_frame = statistics.median(floor_cpu) / frames_per_cycle

    # 3. Drain latency for a full pre-roll, interleaved with one copy of as many bytes -------
    drain_t: list[float] = []
    drain_cpu: list[float] = []
    copy_t: list[float] = []
    copy_cpu: list[float] = []
    source = np.frombuffer(np.random.default_rng(1).bytes(buf.capacity_bytes), np.uint8)
    held = 0
    for _ in range(rounds):
        for _ in range(-(-args.seconds // cycle_s) + 1):  # refill after the last drain
            feed(buf, cycle, shift)
            shift += shift_step
        held = buf.used_bytes
        span = buf.span_seconds
        c, w = time.process_time(), time.perf_counter()
        packets = buf.drain()
        drain_cpu.append(time.process_time() - c)
        drain_t.append(time.perf_counter() - w)
        assert packets and packets[0].keyframe and span >= args.seconds
        del packets
        c, w = time.process_time(), time.perf_counter()
        dst = source[:held].copy()
        copy_cpu.append(time.process_time() - c)
        copy_t.append(time.perf_counter() - w)
        del dst
    drain_s = statistics.median(drain_t)
    drain_c = statistics.median(drain_cpu)
    copy_s = statistics.median(copy_t)
    copy_c = statistics.median(copy_cpu)

    mb = 1 << 20
    print(
        f"stream: {VIDEO_BPS / 1e6:.0f} Mbit/s video at {FPS} fps + AAC, "
        f"{cycle_bytes / cycle_s / 1e3:.0f} kB/s; buffer {args.seconds} s, "
        f"nbytes {buf.nbytes / mb:.1f} MiB; {rounds} interleaved rounds, medians"
    )
    print(
        f"1. standby {fed_hours:.1f} h of stream fed in {standby_wall:.1f} s wall "
        f"({standby_cpu:.1f} s CPU, {fed_hours * 3600 / standby_cpu:.0f}x real time): "
        f"RSS after warm-up {rss_warm / mb:.1f} MiB, growth {growth / 1024:+.0f} KiB = "
        f"{growth / buf.nbytes:.2%} of nbytes  {'ok' if growth <= 0 else 'NOT FLAT'}"
    )
    print(
        f"   Python heap held by ringbuffer/ code over 10 more minutes (tracemalloc): "
        f"{heap_growth:+d} B"
    )
    print(
        f"   from hour {samples[0][0]:g} to {samples[-1][0]:g}: {steady / 1024:+.0f} KiB; RSS "
        "by hour (MiB): " + ", ".join(f"{h:g}h {r / mb:.1f}" for h, r in samples)
    )
    print(
        f"2. append per frame interval (video + audio, CPU): {per_frame * 1e6:.1f} us = "
        f"{per_frame / FRAME_S:.3%} of {FRAME_S * 1e3:.1f} ms; floor (bare numpy copy) "
        f"{floor_per_frame * 1e6:.1f} us; ratio {per_frame / floor_per_frame:.2f}x the floor"
        f"  {'ok' if per_frame / FRAME_S < 0.01 else 'ABOVE 1 %'}"
    )
    print(
        f"3. drain of {held / mb:.1f} MiB ({args.seconds} s pre-roll): {drain_s * 1e3:.1f} ms "
        f"wall = {drain_s / FRAME_S:.2f} frame intervals, {drain_c * 1e3:.1f} ms CPU = "
        f"{drain_c / FRAME_S:.2f}; one bare copy of the bytes {copy_s * 1e3:.1f} ms wall, "
        f"{copy_c * 1e3:.1f} ms CPU; ratio {drain_c / copy_c:.2f}x (CPU)"
    )
    print(
        "   (the recording worker drains; capture does not wait for it: see the press gap "
        "in camera_bench.py)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
