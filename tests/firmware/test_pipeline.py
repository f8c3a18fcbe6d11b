"""The recording output's worker: the press returns while the pre-roll is still being written."""

from __future__ import annotations

import queue
import threading
from fractions import Fraction
from types import SimpleNamespace
from typing import Any

import pytest

from firmware.pipeline import PreRecordOutput, RecordingOutput
from ringbuffer import BufferFrozen, PreRecordBuffer
from ringbuffer.packet import STREAM_AUDIO, STREAM_VIDEO, EncodedPacket

FRAME = 3000  # 30 fps


class SlowRecorder:
    """Records what it is given; each write waits for the test to let it through."""

    def __init__(self) -> None:
        self.summary = SimpleNamespace(recording_id="rec", first_pts=None, live_pts=None)
        self.written: list[tuple[int, int, bytes]] = []
        self.gate = threading.Event()
        self.first_write = threading.Event()

    def open(self) -> None:
        pass

    def mark_start(self, pts: int) -> None:
        self.summary.first_pts = pts

    def mark_live(self, pts: int) -> None:
        self.summary.live_pts = pts

    def write(self, pkt: EncodedPacket) -> None:
        self.first_write.set()
        assert self.gate.wait(60), "the test never let the worker go"
        self.written.append((pkt.stream, pkt.pts, bytes(pkt.data)))

    def finish(self, ended_utc: float, reason: str) -> Any:
        return self.summary

    def abandon(self) -> None:
        pass


def packets(n: int) -> list[EncodedPacket]:
    out = [EncodedPacket(n.to_bytes(4, "big") * 50, n * FRAME, FRAME, STREAM_VIDEO, n % 30 == 0)]
    out.append(EncodedPacket(b"a" * 20, n * FRAME + 5, FRAME, STREAM_AUDIO, False))
    return out


def standby(frames: range) -> tuple[PreRecordBuffer, PreRecordOutput]:
    buf = PreRecordBuffer(30, Fraction(1, 90_000), bitrate_bps=400_000)
    out = PreRecordOutput(buf, keep_audio=True)
    for n in frames:
        out.write(packets(n))
    return buf, out


@pytest.mark.parametrize("keep_audio", [True, False])
def test_press_returns_while_the_preroll_drains_and_no_frame_is_lost(keep_audio: bool) -> None:
    buf, pre = standby(range(0, 95))  # 3 GOPs and a bit
    recorder = SlowRecorder()
    recording = RecordingOutput(
        recorder,  # type: ignore[arg-type]
        queue.SimpleQueue(),
        keep_audio=keep_audio,
        carry_audio=True,
        max_pending_frames=1000,
    )
    frozen = pre.take_preroll()
    recording.start(frozen, live_pts=95 * FRAME)
    # The press is over, the worker is held at its first packet: nothing written yet.
    assert recorder.first_write.wait(60)
    assert recorder.written == [] and not recording.preroll_done
    assert recorder.summary.first_pts == 0 and recorder.summary.live_pts == 95 * FRAME
    # The buffer is frozen while the worker reads it (its packets are views into it).
    assert buf.frozen
    with pytest.raises(BufferFrozen):
        buf.append(b"x", pts=10**9, duration=FRAME, keyframe=True)
    # Capture goes on: live frames queue behind the pre-roll.
    for n in range(95, 130):
        recording.write(packets(n))
    recorder.gate.set()
    recording.finish(0.0, "stop pressed")
    assert recording.preroll_done and not buf.frozen
    video = [pts for stream, pts, _ in recorder.written if stream == STREAM_VIDEO]
    assert video == [n * FRAME for n in range(0, 130)]  # every frame once, in order
    assert all(
        data == (pts // FRAME).to_bytes(4, "big") * 50
        for stream, pts, data in recorder.written
        if stream == STREAM_VIDEO
    )
    audio = [pts for stream, pts, _ in recorder.written if stream == STREAM_AUDIO]
    assert audio == ([n * FRAME + 5 for n in range(0, 130)] if keep_audio else [])
    assert recording.preroll_packets == (190 if keep_audio else 95)
    # The group of pictures in progress seeds the buffer again, as copies.
    assert [p.pts for p in recording.carry if p.stream == STREAM_VIDEO][0] == 120 * FRAME
    pre.write(recording.carry)
    assert len(buf) > 0


def test_abandon_releases_the_frozen_buffer() -> None:
    buf, pre = standby(range(0, 40))
    recorder = SlowRecorder()
    recording = RecordingOutput(
        recorder,  # type: ignore[arg-type]
        queue.SimpleQueue(),
        keep_audio=True,
        carry_audio=True,
        max_pending_frames=10,
    )
    recording.start(pre.take_preroll(), live_pts=40 * FRAME)
    assert recorder.first_write.wait(60)
    recorder.gate.set()
    recording.abandon()
    assert not buf.frozen
