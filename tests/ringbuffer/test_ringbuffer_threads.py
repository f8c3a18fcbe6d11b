"""One writer thread (the encoder) and one reader thread (the record trigger) at once.

The writer hands the reader the turn at fixed points (a handshake, not a sleep), so the
reader is sure to read and drain while the writer is mid-stream; between those points both
run freely, with a short GIL switch interval to interleave as much as possible. Every pre-roll
the reader sees must be whole: a keyframe first, frames without gaps, audio in order,
every byte the one written for that timestamp.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from fractions import Fraction

import pytest

from ringbuffer import STREAM_AUDIO, STREAM_VIDEO, BufferedPacket, PreRecordBuffer

FRAME = 3000
AUDIO = 1920
GOP = 30
FRAMES = 30 * 60 * 4  # four minutes at 30 fps
HANDSHAKES = 12
WAIT = 60.0  # only a guard against a deadlock; never reached when the test passes


def payload(stream: int, pts: int) -> bytes:
    size = 40 + pts % 97 if stream == STREAM_VIDEO else 12
    return (pts * 2 + stream).to_bytes(8, "big") * (size // 8 + 1)


@pytest.fixture
def fast_switching() -> Iterator[None]:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def check_preroll(packets: list[BufferedPacket]) -> None:
    if not packets:
        return
    first = packets[0]
    assert first.stream == STREAM_VIDEO and first.keyframe
    video = [p.pts for p in packets if p.stream == STREAM_VIDEO]
    assert video == list(range(first.pts, first.pts + FRAME * len(video), FRAME))
    audio = [p.pts for p in packets if p.stream == STREAM_AUDIO]
    assert audio == sorted(set(audio)) and all(a >= first.pts for a in audio)
    for p in packets:
        assert bytes(p.data) == payload(p.stream, p.pts)


def test_one_writer_and_one_reader(fast_switching: None) -> None:
    buf = PreRecordBuffer(30, Fraction(1, 90_000), bitrate_bps=8000, max_bytes=120_000)
    errors: list[BaseException] = []
    done = threading.Event()
    turn = threading.Event()
    taken = threading.Event()
    reads = {"snapshots": 0, "drains": 0, "packets": 0}

    def writer() -> None:
        try:
            audio = 0
            for n in range(FRAMES):
                pts = n * FRAME
                buf.append(
                    payload(STREAM_VIDEO, pts),
                    pts=pts,
                    duration=FRAME,
                    stream=STREAM_VIDEO,
                    keyframe=n % GOP == 0,
                )
                while audio * AUDIO < pts + FRAME:
                    apts = audio * AUDIO
                    buf.append(payload(STREAM_AUDIO, apts), pts=apts, duration=AUDIO, stream=1)
                    audio += 1
                if n % (FRAMES // HANDSHAKES) == FRAMES // HANDSHAKES - 1:
                    taken.clear()
                    turn.set()
                    if not taken.wait(WAIT):
                        raise RuntimeError("the reader did not take its turn")
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            done.set()
            turn.set()

    def reader() -> None:
        try:
            turns = 0
            while not done.is_set():
                if not turn.is_set():
                    check_preroll(buf.snapshot())
                    reads["snapshots"] += 1
                    continue
                turn.clear()
                # Every other turn is a record press. The writer has written a whole
                # stretch (many GOPs) since the last one, so there is a pre-roll.
                turns += 1
                if turns % 2:
                    packets = buf.snapshot()
                else:
                    packets = buf.drain()
                    reads["drains"] += 1
                assert packets, "a pre-roll was written before this turn"
                check_preroll(packets)
                reads["packets"] += len(packets)
                taken.set()
            check_preroll(buf.snapshot())
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            taken.set()

    threads = [threading.Thread(target=writer, name="encoder"), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert reads["drains"] == HANDSHAKES // 2 and reads["packets"] > 0
    assert buf.nbytes == buf.capacity_bytes + buf.index_nbytes
