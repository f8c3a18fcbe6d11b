"""The recorder (segmenter): encoded packets in, sealed MPEG-TS segments out.

One `Recorder` is one recording. Packets arrive in capture order (first the
pre-roll drained from the ring buffer, then live packets); they go through an
MPEG-TS muxer straight into `crypto.seal`'s segment writer, so no plaintext
byte ever reaches the volume. A new segment starts at the first video keyframe
once the current one holds `segment_seconds`; closing a segment seals its last
chunk, renames it into place atomically and signs the manifest entry (crypto
does that). Every segment therefore starts with a keyframe and SPS/PPS, and the
segments concatenate into one playable stream.

Free space is checked before every packet (from an estimate, refreshed from the
volume at least once per sealing chunk and at every segment start). When the
volume would go below `reserve_bytes` the recorder refuses the packet with
`RecordingStorageFull`; the camera then finishes the recording, which seals the
segment in progress inside that reserve, so nothing already sealed is harmed.

The muxer is injected (`mux_factory(sink)`), so this module does not know the
encoder; the camera passes `firmware.encoder.TsSegmentMuxer`.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ringbuffer.packet import STREAM_VIDEO, TICKS_PER_SECOND, EncodedPacket

if TYPE_CHECKING:
    from crypto.keys import SigningKey
    from crypto.seal import RecordingSealer

log = logging.getLogger(__name__)

MEDIA_TYPE = "video/mp2t"
# Plaintext bytes per sealed chunk (the format allows 64 B..1 MiB, each segment header
# says which). Twice the format's 64 KiB default: each chunk needs its own GCM cipher,
# whose setup costs more than the GCM work on 64 KiB (FIELD-NOTES.md), and 128 KiB is
# still a quarter of a second at 4 Mbit/s: what a power cut can take of a recording.
DEFAULT_CHUNK = 131_072
# Room kept free to close a segment and finish a recording when space runs out: the
# muxer's buffered tail, the last sealed chunk, manifest entries and event log lines.
DEFAULT_RESERVE = 4 * DEFAULT_CHUNK + 256 * 1024
_TS_PAYLOAD = 184  # bytes of payload in a 188-byte TS packet


class RecordingStorageFull(OSError):
    """The volume has no room for the next packet without eating the closing reserve."""


class RecorderClosed(ValueError):
    """A write or finish on a recording that was already finished or abandoned."""


class FreeSpace(Protocol):
    """The part of the device volume (sim.volume.DirectoryVolume) the recorder needs."""

    def free_bytes(self) -> int: ...


class SegmentMuxer(Protocol):
    """One segment's container writer (firmware.encoder.TsSegmentMuxer)."""

    def write(self, pkt: EncodedPacket) -> Any: ...

    def close(self) -> Any: ...


MuxerFactory = Callable[["SealingSink"], SegmentMuxer]


class _SegmentWriter(Protocol):
    def write(self, data: bytes) -> Any: ...

    def close(self) -> Any: ...


@dataclass(frozen=True)
class SegmentSummary:
    """One sealed segment of a recording."""

    index: int
    name: str
    size: int
    sha256: str
    start_pts: int
    end_pts: int
    packets: int

    @property
    def seconds(self) -> float:
        return (self.end_pts - self.start_pts) / TICKS_PER_SECOND


@dataclass
class RecordingSummary:
    """What one recording holds; the camera logs it and the shift runner reports it."""

    recording_id: str
    path: Path
    started_utc: float
    prerecord_configured: float
    ended_utc: float | None = None
    first_pts: int | None = None
    end_pts: int | None = None
    live_pts: int | None = None
    segments: list[SegmentSummary] = field(default_factory=list)
    packets: int = 0
    dropped_leading: int = 0
    stop_reason: str = ""
    complete: bool = False

    @property
    def duration_seconds(self) -> float:
        if self.first_pts is None or self.end_pts is None:
            return 0.0
        return (self.end_pts - self.first_pts) / TICKS_PER_SECOND

    @property
    def prerecord_covered(self) -> float:
        """Seconds of footage before the press (the pre-roll that was in the buffer)."""
        if self.first_pts is None or self.live_pts is None:
            return 0.0
        return max(0.0, (self.live_pts - self.first_pts) / TICKS_PER_SECOND)

    @property
    def prerecord_short(self) -> bool:
        return self.prerecord_covered + 1e-6 < self.prerecord_configured

    @property
    def bytes(self) -> int:
        return sum(s.size for s in self.segments)

    def as_dict(self) -> dict[str, Any]:
        return {
            "recording_id": self.recording_id,
            "path": str(self.path),
            "started_utc": self.started_utc,
            "ended_utc": self.ended_utc,
            "duration_seconds": round(self.duration_seconds, 3),
            "prerecord_configured": self.prerecord_configured,
            "prerecord_covered": round(self.prerecord_covered, 3),
            "prerecord_short": self.prerecord_short,
            "segments": len(self.segments),
            "bytes": self.bytes,
            "packets": self.packets,
            "stop_reason": self.stop_reason,
            "complete": self.complete,
        }


class SealingSink(io.RawIOBase):
    """The write-only file the muxer writes into: every byte goes to the sealer."""

    def __init__(self, segment: _SegmentWriter) -> None:
        super().__init__()
        self._segment = segment
        self.bytes_written = 0
        self.seconds = 0.0
        self.dead = False
        self.error: BaseException | None = None

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data: Any) -> int:
        size = len(data)
        if self.dead or not size:
            # After a power cut nothing reaches the volume any more.
            return size
        if self.error is not None:
            # Sticky: the muxer may call again after a failed write (PyAV does); the
            # first error is the one that says what went wrong.
            raise self.error
        start = time.perf_counter()
        try:
            self._segment.write(data)
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self.seconds += time.perf_counter() - start
        self.bytes_written += size
        return size


class Recorder:
    """Writes one recording as sealed, keyframe-aligned MPEG-TS segments."""

    def __init__(
        self,
        *,
        recordings_root: Path,
        device_id: str,
        recording_id: str,
        signer: SigningKey,
        vault_recipients: list[bytes],
        started_utc: float,
        mux_factory: MuxerFactory,
        pts_to_utc: Callable[[int], float],
        prerecord_configured: float = 0.0,
        segment_seconds: float = 10.0,
        volume: FreeSpace | None = None,
        reserve_bytes: int = DEFAULT_RESERVE,
        chunk_size: int = DEFAULT_CHUNK,
        on_segment: Callable[[SegmentSummary], None] | None = None,
    ) -> None:
        if not vault_recipients:
            raise ValueError("a recording needs at least one vault recipient key")
        self.path = Path(recordings_root) / recording_id
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._mux_factory = mux_factory
        self._pts_to_utc = pts_to_utc
        self._segment_ticks = round(segment_seconds * TICKS_PER_SECOND)
        self._volume = volume
        self._reserve = reserve_bytes
        self._chunk = chunk_size
        self._on_segment = on_segment
        self.summary = RecordingSummary(
            recording_id=recording_id,
            path=self.path,
            started_utc=started_utc,
            prerecord_configured=prerecord_configured,
        )
        self._segment: _SegmentWriter | None = None
        self._sink: SealingSink | None = None
        self._mux: SegmentMuxer | None = None
        self._seg_index = 0
        self._seg_start_pts = 0
        self._seg_end_pts = 0
        self._seg_packets = 0
        self._free_estimate = 0
        self._since_check = 0
        self._closed = False
        self.mux_seconds = 0.0
        self.seal_seconds = 0.0
        self._checked_space(force=True, need=self._chunk)
        self._sealer_args = (device_id, recording_id, signer, vault_recipients, started_utc)
        self._sealer: RecordingSealer | None = None

    def open(self) -> None:
        """Write the recording's header (key wrapping, signing): the first write does it too.

        Apart from construction so that the camera's recording worker, not the record
        press, spends the time.
        """
        if self._sealer is not None:
            return
        from crypto.seal import RecordingSealer

        device_id, recording_id, signer, recipients, started_utc = self._sealer_args
        self._sealer = RecordingSealer(
            self.path,
            device_id,
            recording_id,
            signer,
            recipients,
            started_utc,
            chunk_size=self._chunk,
        )

    # --- space ---------------------------------------------------------------------------

    def _checked_space(self, *, force: bool, need: int) -> None:
        if self._volume is None:
            return
        if force or self._since_check >= self._chunk or self._free_estimate - need < self._reserve:
            self._free_estimate = int(self._volume.free_bytes())
            self._since_check = 0
        if self._free_estimate - need < self._reserve:
            raise RecordingStorageFull(
                f"device storage is full ({self._free_estimate} bytes free, "
                f"{self._reserve} kept to close the recording): dock the camera to offload"
            )

    @staticmethod
    def _volume_cost(size: int) -> int:
        """Upper estimate of what `size` payload bytes cost on the volume once muxed."""
        packets = size // _TS_PAYLOAD + 2  # PES header, adaptation field, partial packets
        return packets * 188 + 32  # plus the sealer's per-chunk tag, amortised

    # --- writing -------------------------------------------------------------------------

    def mark_start(self, pts: int) -> None:
        """Where the recording will start (the pre-roll's first keyframe), known before the
        pre-roll is written: the press reports its coverage while a worker still writes it."""
        if self.summary.first_pts is None:
            self.summary.first_pts = pts

    def mark_live(self, pts: int) -> None:
        """Where the pre-roll ends: the pts of the first packet captured after the press."""
        if self.summary.live_pts is None:
            self.summary.live_pts = pts

    def write(self, pkt: EncodedPacket) -> None:
        """Add one packet; may start a new segment (at a video keyframe)."""
        data, pts, duration, stream, keyframe = pkt
        if self._closed:
            raise RecorderClosed(f"recording {self.summary.recording_id} is already closed")
        is_video = stream == STREAM_VIDEO
        if self._mux is None:
            if not (is_video and keyframe):
                # A segment (and so the recording) must start at a keyframe.
                self.summary.dropped_leading += 1
                return
            self._begin_segment(pts)
        elif (
            is_video
            and keyframe
            and pts - self._seg_start_pts >= self._segment_ticks
            and self._seg_packets
        ):
            self._end_segment()
            self._begin_segment(pts)
        cost = self._volume_cost(len(data))
        self._checked_space(force=False, need=cost)
        assert self._mux is not None and self._sink is not None
        sealing_before = self._sink.seconds
        start = time.perf_counter()
        self._mux.write(pkt)
        elapsed = time.perf_counter() - start
        if self._sink.error is not None:  # the muxer may have swallowed it
            raise self._sink.error
        sealing = self._sink.seconds - sealing_before
        self.mux_seconds += elapsed - sealing
        self.seal_seconds += sealing
        self._free_estimate -= cost
        self._since_check += cost
        self._seg_packets += 1
        self.summary.packets += 1
        if self.summary.first_pts is None:
            self.summary.first_pts = pts
        end = pts + duration
        if is_video:
            # Recording time is counted on the video stream (audio may lead or lag a frame).
            self._seg_end_pts = max(self._seg_end_pts, end)
            self.summary.end_pts = max(self.summary.end_pts or end, end)

    def _begin_segment(self, pts: int) -> None:
        self._checked_space(force=True, need=self._chunk)
        self.open()
        assert self._sealer is not None
        segment = self._sealer.begin_segment(
            self._seg_index, MEDIA_TYPE, pts, float(self._pts_to_utc(pts))
        )
        self._segment = segment
        self._sink = SealingSink(segment)
        self._mux = self._mux_factory(self._sink)
        self._seg_start_pts = pts
        self._seg_end_pts = pts
        self._seg_packets = 0

    def _end_segment(self) -> None:
        mux, segment, sink = self._mux, self._segment, self._sink
        assert mux is not None and segment is not None and sink is not None
        self._mux = self._segment = self._sink = None
        sealing_before = sink.seconds
        start = time.perf_counter()
        mux.close()
        elapsed = time.perf_counter() - start
        if sink.error is not None:  # a muxer's close may swallow a failed write
            raise sink.error
        sealing = sink.seconds - sealing_before
        self.mux_seconds += elapsed - sealing
        start = time.perf_counter()
        info = segment.close()
        self.seal_seconds += sealing + time.perf_counter() - start
        seg = SegmentSummary(
            index=self._seg_index,
            name=str(info.name),
            size=int(info.size),
            sha256=str(info.sha256),
            start_pts=self._seg_start_pts,
            end_pts=self._seg_end_pts,
            packets=self._seg_packets,
        )
        self.summary.segments.append(seg)
        self._seg_index += 1
        log.debug("sealed %s/%s (%d bytes)", self.summary.recording_id, seg.name, seg.size)
        if self._on_segment is not None:
            self._on_segment(seg)

    def finish(self, ended_utc: float, reason: str) -> RecordingSummary:
        """Seal the segment in progress and sign the end of the recording."""
        if self._closed:
            raise RecorderClosed(f"recording {self.summary.recording_id} is already closed")
        self._closed = True
        if self._mux is not None:
            self._end_segment()
        self.open()  # a recording that got no packet still has a header and an end
        assert self._sealer is not None
        self._sealer.finish(ended_utc)
        self.summary.ended_utc = ended_utc
        self.summary.stop_reason = reason
        self.summary.complete = True
        log.info(
            "recording %s finished (%s): %.1f s, %d segments, %d bytes",
            self.summary.recording_id,
            reason,
            self.summary.duration_seconds,
            len(self.summary.segments),
            self.summary.bytes,
        )
        return self.summary

    def abandon(self) -> None:
        """A power cut: stop at once, write nothing more (recovery seals the rest at boot)."""
        self._closed = True
        if self._sink is not None:
            self._sink.dead = True
        if self._sealer is not None:
            self._sealer.abandon()  # whole chunks stay in .part; recovery seals them at boot
        self._mux = self._segment = self._sink = None
