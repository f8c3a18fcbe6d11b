"""Where encoded packets go: outputs behind one small interface (picamera2's encoder/output split).

```
standby = PreRecordOutput(PreRecordBuffer(...), keep_audio=False)
standby.write(packets)                       # the encoder's packets of one frame
pre_roll = standby.take_preroll()            # record pressed: frozen, not copied
recording = RecordingOutput(recorder, sealed, keep_audio=True, max_pending_frames=120)
recording.start(pre_roll, live_pts)          # returns at once: a worker writes the pre-roll
recording.write(packets)                     # live frames queue behind the pre-roll
summary = recording.finish(utc, "stop pressed")  # drains the queue, seals, joins the worker
standby.write(recording.carry)               # the group of pictures in progress (pre-roll released)
```

The encoder does not know where its packets go; the camera hands each frame's
packets to the output its state selects. Both outputs keep the packets'
capture timestamps.

`RecordingOutput` muxes and seals on a worker thread of its own, so a record
press with 120 s of pre-roll does not hold the capture loop while that pre-roll
is written: the press only freezes the buffer (no copy: the packets are views
into its arena, made as the worker reads them; the buffer takes no packet until
the worker has written them and released it), copies the group of pictures in
progress for after the recording, and starts the worker. The worker opens the
sealed recording (key wrapping, header, signed manifest start) and drains the
pre-roll in slices, handing the interpreter lock back to capture after every
packet and sleeping a moment after every slice, at a lower OS priority. Live
frames queue behind the pre-roll in capture order (bounded: when the worker is
`max_pending_frames` behind, capture waits for it rather than growing without
bound). The worker touches only the recorder; what it learns
(segments sealed, a failure) the capture thread picks up, so the event log and
the state machine are driven from one thread. A failure on the worker is
re-raised on the capture thread by the next `write()`/`check()`/`finish()`;
a `BaseException` that is not an `Exception` (a simulated power cut,
KeyboardInterrupt) comes back as itself.

`KeyframeWatch` makes an encoder that stops flagging keyframes a loud failure:
the pre-record buffer would otherwise silently hold nothing (it keeps whole
groups of pictures only) and a press would record an empty pre-roll.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from firmware.state import CameraError
from ringbuffer.frozen import FrozenPreRoll
from ringbuffer.packet import STREAM_AUDIO, STREAM_VIDEO, EncodedPacket

if TYPE_CHECKING:
    from firmware.recorder import Recorder, RecordingSummary, SegmentSummary
    from ringbuffer import PreRecordBuffer

log = logging.getLogger(__name__)

# Counts at which a buffer counter or refusals reach the event log: every change would
# flood it (a bitrate above the buffer's budget evicts at every keyframe).
_REPORT_AT = frozenset(10**k for k in range(10))
# The recording worker's nice value relative to capture: muxing and sealing can wait
# (the queue holds seconds of frames), a late frame cannot.
WORKER_NICE = 5
# The worker drains a pre-roll this many packets at a time, pausing between slices.
PREROLL_SLICE = 32
PREROLL_PAUSE = 0.0005


class Output(Protocol):
    """Where the packets of one captured frame go (capture order, original timestamps)."""

    def write(self, packets: Sequence[EncodedPacket]) -> None: ...


class NoKeyframe(CameraError):
    """The encoder produced video without a keyframe for longer than its GOP allows."""


class KeyframeWatch:
    """Raises `NoKeyframe` once `limit_frames` video packets in a row are not keyframes."""

    def __init__(self, gop_frames: int) -> None:
        # Twice the configured GOP: an encoder keeping its keyframe interval never gets there.
        self.limit_frames = 2 * max(1, int(gop_frames))
        self._since_keyframe = 0
        self._seen_keyframe = False

    def check(self, packets: Sequence[EncodedPacket]) -> None:
        for pkt in packets:
            if pkt.stream != STREAM_VIDEO:
                continue
            if pkt.keyframe:
                self._since_keyframe = 0
                self._seen_keyframe = True
                continue
            self._since_keyframe += 1
            if self._since_keyframe >= self.limit_frames:
                what = "since the last one" if self._seen_keyframe else "since the encoder started"
                raise NoKeyframe(
                    f"the encoder flagged no keyframe in {self._since_keyframe} video frames "
                    f"{what} (a keyframe is due every {self.limit_frames // 2}): "
                    f"the pre-record buffer cannot hold a playable pre-roll"
                )


@dataclass(frozen=True)
class BufferReport:
    """An event the pre-record output has for the event log (`kind`, `fields`)."""

    kind: str
    fields: dict[str, object]


class PreRecordOutput:
    """Standby: packets into the pre-record ring buffer; counts what the buffer would not keep."""

    def __init__(self, buffer: PreRecordBuffer, *, keep_audio: bool) -> None:
        self._buffer = buffer
        self._keep_audio = keep_audio
        self.refused = 0
        self.last_refusal: str | None = None
        self._reported: dict[str, int] = {}

    @property
    def span_seconds(self) -> float:
        return float(self._buffer.span_seconds)

    def write(self, packets: Sequence[EncodedPacket]) -> None:
        for pkt in packets:
            if pkt.stream == STREAM_AUDIO and not self._keep_audio:
                continue
            try:
                self._buffer.append(
                    pkt.data,
                    pts=pkt.pts,
                    duration=pkt.duration,
                    stream=pkt.stream,
                    keyframe=bool(pkt.keyframe),
                )
            except ValueError as exc:  # PacketTooLarge, NonMonotonicPts: lose the packet only
                self.refused += 1
                self.last_refusal = f"{type(exc).__name__}: {exc}"
                if self.refused in _REPORT_AT:
                    log.warning(
                        "pre-record buffer refused a packet (%d so far): %s", self.refused, exc
                    )

    def take_preroll(self) -> FrozenPreRoll:
        """Everything buffered, in capture order from a keyframe, frozen (not copied).

        The one place the camera reads the buffer. The packets are views into its arena;
        the buffer refuses packets until the recording that takes them releases it
        (`RecordingOutput` does, once its worker has written them).
        """
        return self._buffer.freeze()

    def clear(self) -> None:
        self._buffer.clear()

    def counters(self) -> dict[str, int | str | None]:
        """What the buffer would not keep (totals since the pipeline started)."""
        return {
            "dropped_before_keyframe": int(self._buffer.dropped_before_keyframe),
            "undersized_evictions": int(self._buffer.undersized_evictions),
            "refused": self.refused,
            "last_refusal": self.last_refusal,
        }

    def reports(self) -> list[BufferReport]:
        """Events due for the log: a counter reached 1, 10, 100, ... since the last call."""
        out: list[BufferReport] = []
        counts = self.counters()
        for name in ("dropped_before_keyframe", "undersized_evictions", "refused"):
            value = counts[name]
            assert isinstance(value, int)
            before = self._reported.get(name, 0)
            if value > before and any(before < mark <= value for mark in _REPORT_AT):
                fields: dict[str, object] = dict(counts)
                fields["counter"] = name
                kind = "prerecord_refused" if name == "refused" else "prerecord_buffer"
                out.append(BufferReport(kind, fields))
            self._reported[name] = value
        return out


class RecordingOutput:
    """Recording: packets into a `Recorder` (muxer + sealing) on a worker thread of its own."""

    def __init__(
        self,
        recorder: Recorder,
        sealed: queue.SimpleQueue[SegmentSummary],
        *,
        keep_audio: bool,
        carry_audio: bool,
        max_pending_frames: int,
    ) -> None:
        self.recorder = recorder
        self._sealed = sealed
        self._keep_audio = keep_audio
        self._carry_audio = carry_audio
        self._max_pending = max(1, int(max_pending_frames))
        self._cond = threading.Condition()
        self._pending: deque[list[EncodedPacket]] = deque()
        self._closing = False
        self._cut = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.carry: list[EncodedPacket] = []
        self.worker_seconds = 0.0
        self.preroll_packets = 0
        self.preroll_written = 0  # pre-roll packets the worker has written so far
        self._frozen: FrozenPreRoll | None = None
        self._preroll_done = threading.Event()

    @property
    def summary(self) -> RecordingSummary:
        return self.recorder.summary

    # --- capture thread -------------------------------------------------------------------

    def start(self, preroll: FrozenPreRoll | Sequence[EncodedPacket], live_pts: int) -> None:
        """Hand over the pre-roll and start the worker; returns without writing anything.

        A `FrozenPreRoll` is released by the worker once written (or by `finish()` /
        `abandon()`), so the buffer takes packets again only after the recording.
        """
        if isinstance(preroll, FrozenPreRoll):
            keys = preroll.keyframes()
            if keys:
                self.recorder.mark_start(preroll.pts(keys[0]))
            self.preroll_packets = preroll.count(None if self._keep_audio else STREAM_VIDEO)
            tail: Sequence[EncodedPacket] = preroll.packets(keys[-1]) if keys else []
            self._frozen = preroll
        else:
            packets = [p for p in preroll if p.stream != STREAM_AUDIO or self._keep_audio]
            first = next((p for p in packets if p.stream == STREAM_VIDEO and p.keyframe), None)
            if first is not None:
                self.recorder.mark_start(first.pts)
            self.preroll_packets = len(packets)
            last_key = max(
                (i for i, p in enumerate(packets) if p.stream == STREAM_VIDEO and p.keyframe),
                default=None,
            )
            tail = packets[last_key:] if last_key is not None else []
            preroll = packets
        self.recorder.mark_live(live_pts)
        # The group of pictures in progress, copied: the pre-roll's views die with the
        # buffer's next append, and these packets seed the buffer after the recording.
        for pkt in tail:
            if pkt.stream != STREAM_AUDIO or self._keep_audio:
                self._carry(pkt)
        self._thread = threading.Thread(
            target=self._work,
            args=(preroll,),
            name=f"camera-recording-{self.recorder.summary.recording_id}",
            daemon=True,
        )
        self._thread.start()

    def write(self, packets: Sequence[EncodedPacket]) -> None:
        """Queue one frame's packets behind the pre-roll (waits if the worker is far behind)."""
        batch = [p for p in packets if p.stream != STREAM_AUDIO or self._keep_audio]
        for pkt in batch:
            self._carry(pkt)
        with self._cond:
            while len(self._pending) >= self._max_pending and self._error is None and not self._cut:
                self._cond.wait()
            self._raise_failure()
            self._pending.append(batch)
            self._cond.notify_all()

    def check(self) -> None:
        """Raise what the worker failed with, if it did."""
        with self._cond:
            self._raise_failure()

    def sealed(self) -> list[SegmentSummary]:
        """Segments the worker sealed since the last call."""
        out: list[SegmentSummary] = []
        while True:
            try:
                out.append(self._sealed.get_nowait())
            except queue.Empty:
                return out

    def finish(self, ended_utc: float, reason: str) -> RecordingSummary:
        """Let the worker write everything queued, join it, then seal the end of the recording.

        A worker failure that is an `Exception` (storage full or failing) does not stop
        the finish: what the recorder holds is sealed inside its reserve. Anything else
        (a power cut) is raised.
        """
        self._join(cut=False)
        if self._error is not None and not isinstance(self._error, Exception):
            raise self._error
        return self.recorder.finish(ended_utc, reason)

    def abandon(self) -> None:
        """Power cut: the worker stops after the packet it is writing (any point of a write
        is one the volume recovers from); recovery at boot seals what was durable."""
        self._join(cut=True)
        self.recorder.abandon()

    # --- worker ---------------------------------------------------------------------------

    @property
    def preroll_done(self) -> bool:
        """The worker has written the whole pre-roll (and released a frozen buffer)."""
        return self._preroll_done.is_set()

    def _work(self, preroll: Iterable[EncodedPacket]) -> None:
        _lower_priority()
        try:
            started = time.perf_counter()
            self.recorder.open()
            for n, pkt in enumerate(preroll, 1):
                if self._cut:
                    return
                if pkt.stream == STREAM_AUDIO and not self._keep_audio:
                    continue
                self.recorder.write(pkt)
                self.preroll_written += 1
                # Hand the interpreter lock to the capture thread if it waits for it: a
                # 120 s pre-roll is seconds of muxing, capture must not queue behind it.
                # Every slice also pauses a moment, so capture (encoding on the other
                # core) finds the lock free rather than waiting out a switch interval.
                time.sleep(PREROLL_PAUSE if n % PREROLL_SLICE == 0 else 0)
            self._release_preroll()
            self._preroll_done.set()
            self.worker_seconds += time.perf_counter() - started
            while True:
                with self._cond:
                    while not self._pending and not self._closing and not self._cut:
                        self._cond.wait()
                    if self._cut or not self._pending:
                        return
                    batch = self._pending.popleft()
                    self._cond.notify_all()
                started = time.perf_counter()
                for pkt in batch:
                    if self._cut:
                        return
                    self.recorder.write(pkt)
                self.worker_seconds += time.perf_counter() - started
        except BaseException as exc:  # handed to the capture thread; nothing is lost silently
            self._release_preroll()
            if not isinstance(exc, Exception):
                log.warning("recording worker stopped: %r", exc)
            with self._cond:
                self._error = exc
                self._pending.clear()
                self._cond.notify_all()

    def _join(self, *, cut: bool) -> None:
        with self._cond:
            self._closing = True
            self._cut = self._cut or cut
            self._cond.notify_all()
        thread = self._thread
        if thread is not None:
            thread.join()
            self._thread = None
        self._release_preroll()

    def _release_preroll(self) -> None:
        frozen, self._frozen = self._frozen, None
        if frozen is not None:
            frozen.release()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def _carry(self, pkt: EncodedPacket) -> None:
        """Keep the group of pictures in progress, to seed the buffer when recording stops."""
        if isinstance(pkt.data, memoryview):
            pkt = pkt._replace(data=bytes(pkt.data))
        if pkt.stream == STREAM_VIDEO:
            if pkt.keyframe:
                self.carry = [pkt]
            elif self.carry:
                self.carry.append(pkt)
        elif self.carry and self._carry_audio:
            self.carry.append(pkt)


def _lower_priority() -> None:
    """Run the calling thread below capture's priority (Linux: a thread has its own nice)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)
    except (AttributeError, OSError) as exc:  # not Linux, or not allowed: only slower
        log.debug("recording worker keeps the capture thread's priority: %s", exc)
