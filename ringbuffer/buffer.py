"""The pre-record buffer: the last `seconds` of encoded packets a camera holds in standby.

Layout. One preallocated numpy ``uint8`` arena holds the packet bytes and one numpy
structured index (a ring of records: offset, size, pts, duration, stream, flags) describes
them; a second small ring holds the index slots of the video keyframes, one per group of
pictures (GOP). Nothing else is kept per packet, so memory is fixed at construction
(`nbytes`) and an append costs one copy of the packet plus one index record.

The arena is used as a FIFO: a packet is written after the newest one, or at offset 0 when
it does not fit before the end (the tail of the arena is then left unused until the oldest
data wraps too). A packet is never split across the wrap, so the held bytes are at most two
contiguous runs: from the oldest packet to the end of the last one before the wrap, and
from 0 to the end of the newest. Whether the data has wrapped follows from the two offsets
(the newest packet ends at or before the oldest one's start).

Eviction works on whole GOPs from the oldest end, so the oldest retained packet is always
a video keyframe:

* by time: the oldest GOP goes as soon as the GOPs after it still cover `seconds`, so the
  retained span is at least `seconds` once that much has been captured and less than
  `seconds` plus the oldest GOP;
* by memory: when a packet does not fit in the arena (or the index is full) the oldest GOP
  goes even though that cuts into the last `seconds`, because memory is the hard bound;
  each such eviction is counted in `undersized_evictions` so the camera can report it. If
  the GOP in progress alone fills the buffer, it goes too and the buffer waits for the
  next keyframe.

Audio packets (stream 1) are kept in capture order beside the video and leave by time with
the GOP they belong to: an evicted GOP takes the audio captured before its successor's
keyframe with it, and audio whose pts lies before the oldest retained keyframe (audio
that lags the video) is never handed out and is dropped on arrival.

Timestamps are stored as given and handed back unchanged (never re-based).

Reading. `snapshot()` and `drain()` copy the held bytes out in one piece (one copy of at
most two runs) and hand out read-only views into that private copy: what a reader got
never changes, however many packets arrive afterwards, so a stale read cannot happen.

`freeze()` is the record press's read: no copy at all (a 120 s pre-roll at 1080p is about
100 MB, whose copy alone stalls a capture loop for a tenth of a second). It hands out a
`FrozenPreRoll` whose packets are read-only views straight into the arena, and the buffer
refuses every append (`BufferFrozen`) until `FrozenPreRoll.release()` empties it, so the
views cannot go stale either; memory still never grows. The packets are made lazily, as
the reader iterates, so the press itself costs a copy of the (small) index only.

Thread safety: one lock guards every method, for one writer (the encoder) and any number
of readers (the record trigger, status).
"""

from __future__ import annotations

import logging
import math
import operator
import struct
import threading
from fractions import Fraction
from numbers import Rational

import numpy as np
import numpy.typing as npt

from ringbuffer.errors import (
    BufferConfigError,
    BufferFrozen,
    InvalidPacket,
    NonMonotonicPts,
    PacketTooLarge,
)
from ringbuffer.frozen import FLAG_KEYFRAME, FrozenPreRoll, Records
from ringbuffer.packet import STREAM_AUDIO as STREAM_AUDIO  # re-exported by ringbuffer/__init__
from ringbuffer.packet import STREAM_VIDEO as STREAM_VIDEO
from ringbuffer.packet import EncodedPacket

log = logging.getLogger(__name__)


MIN_SECONDS = 30
MAX_SECONDS = 120
MIN_HEADROOM = 1.0
MAX_HEADROOM = 10.0
MAX_BITRATE_BPS = 1_000_000_000
# The default index size assumes the fastest video a profile allows plus AAC at 48 kHz
# (1024 samples a packet = 46.9 packets/s), times the same headroom as the bytes.
MAX_VIDEO_FPS = 60
MAX_AUDIO_PACKETS_PER_SECOND = 50

INDEX_DTYPE = np.dtype(
    [
        ("offset", "<i8"),
        ("size", "<u4"),
        ("pts", "<i8"),
        ("duration", "<u4"),
        ("stream", "u1"),
        ("flags", "u1"),
    ]
)

# Records are written with one struct call into the index's bytes: assigning a tuple to a
# numpy record costs about as much as the rest of an append together.
_RECORD = struct.Struct("<qIqIBB")
if _RECORD.size != INDEX_DTYPE.itemsize:  # a guard for later edits of either
    raise ImportError("ringbuffer: _RECORD and INDEX_DTYPE disagree")

_NEVER = 1 << 80  # an eviction deadline no int64 timestamp reaches
_NO_PTS = -(1 << 80)  # below every int64 timestamp: the first packet of a stream always passes
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_U32_MAX = (1 << 32) - 1


# A packet out of the buffer is the encoder's packet type, its `data` a read-only view of
# the reader's own copy (see the module docstring).
BufferedPacket = EncodedPacket


def _config_int(name: str, value: object, low: int, high: int | None, unit: str = "") -> int:
    allowed = f"an integer {low}..{high}" if high is not None else f"an integer >= {low}"
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise BufferConfigError(f"{name} must be {allowed}{unit}, got {value!r}")
    number = int(value)
    if number < low or (high is not None and number > high):
        raise BufferConfigError(f"{name} must be {allowed}{unit}, got {number}")
    return number


def _as_byte_view(data: object) -> bytes | bytearray | memoryview:
    """The packet as flat unsigned bytes, without copying it."""
    if isinstance(data, bytes | bytearray):
        return data
    try:
        view = data if isinstance(data, memoryview) else memoryview(data)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidPacket(
            f"packet data must be bytes, bytearray or memoryview, got {type(data).__name__}"
        ) from None
    if view.format != "B" or view.ndim != 1:
        if not view.c_contiguous:
            raise InvalidPacket("packet data must be a contiguous buffer")
        view = view.cast("B")
    return view


def _check_packet(size: int, capacity: int, pts: int, duration: int, stream: int) -> None:
    if size == 0:
        # An empty packet has no picture or sound to keep, and giving it an arena
        # position would blur where the held bytes begin.
        raise InvalidPacket("an empty packet cannot be buffered")
    if size > capacity:
        raise PacketTooLarge(
            f"a packet of {size} bytes does not fit in the {capacity}-byte pre-record "
            f"buffer; give a larger max_bytes (or bitrate_bps/headroom)"
        )
    if stream not in (STREAM_VIDEO, STREAM_AUDIO):
        raise InvalidPacket(
            f"stream must be {STREAM_VIDEO} (video) or {STREAM_AUDIO} (audio), got {stream}"
        )
    if not 0 <= duration <= _U32_MAX:
        raise InvalidPacket(f"duration must be 0..{_U32_MAX} ticks, got {duration}")
    if not _I64_MIN <= pts <= _I64_MAX:
        raise InvalidPacket(f"pts must fit in 64 bits, got {pts}")


class PreRecordBuffer:
    """Fixed-memory circular buffer of encoded packets, evicting whole GOPs by time."""

    def __init__(
        self,
        seconds: int,
        time_base: Fraction,
        bitrate_bps: int,
        max_bytes: int | None = None,
        headroom: float = 1.5,
        *,
        max_packets: int | None = None,
    ) -> None:
        self.seconds = _config_int("seconds", seconds, MIN_SECONDS, MAX_SECONDS, " seconds")
        if isinstance(time_base, bool) or not isinstance(time_base, Rational) or time_base <= 0:
            raise BufferConfigError(
                f"time_base must be a positive Fraction such as Fraction(1, 90000), "
                f"got {time_base!r}"
            )
        self.time_base = Fraction(time_base)
        self.bitrate_bps = _config_int("bitrate_bps", bitrate_bps, 1, MAX_BITRATE_BPS, " bit/s")
        if isinstance(headroom, bool) or not isinstance(headroom, int | float | np.floating):
            raise BufferConfigError(
                f"headroom must be a number {MIN_HEADROOM}..{MAX_HEADROOM}, got {headroom!r}"
            )
        self.headroom = float(headroom)
        if not (MIN_HEADROOM <= self.headroom <= MAX_HEADROOM):  # also refuses NaN
            raise BufferConfigError(
                f"headroom must be a number {MIN_HEADROOM}..{MAX_HEADROOM}, got {headroom!r}"
            )
        if max_bytes is None:
            capacity = math.ceil(self.bitrate_bps * self.seconds * self.headroom / 8)
        else:
            capacity = _config_int("max_bytes", max_bytes, 1, None, " bytes")
        if max_packets is None:
            rate = MAX_VIDEO_FPS + MAX_AUDIO_PACKETS_PER_SECOND
            slots = math.ceil(self.seconds * rate * self.headroom)
        else:
            slots = _config_int("max_packets", max_packets, 1, None)

        self._span_ticks = math.ceil(self.seconds / self.time_base)
        self._cap = capacity
        self._slots = slots
        # Touch every page now: the memory is really in use from construction on.
        self._arena = np.empty(capacity, dtype=np.uint8)
        self._arena.fill(0)
        self._arena_bytes = self._arena.data  # the arena as a writable memoryview
        self._index = np.zeros(slots, dtype=INDEX_DTYPE)
        self._index_bytes = self._index.view(np.uint8).data
        self._gops = np.zeros(slots, dtype=np.int32)  # ring of index slots, one per GOP
        self._lock = threading.Lock()
        self._frozen: FrozenPreRoll | None = None

        self.undersized_evictions = 0
        self.dropped_before_keyframe = 0
        self._last_pts = [_NO_PTS, _NO_PTS]  # per stream
        self._head = 0  # index slot of the oldest packet
        self._count = 0  # packets held, lagging audio included
        self._gop_head = 0
        self._gop_count = 0
        self._head_off = 0  # arena offset of the oldest packet
        self._tail_off = 0  # arena offset after the newest packet
        self._used = 0  # bytes of the packets held
        self._hidden = 0  # lagging audio held but not handed out
        self._first_pts = 0  # pts of the oldest retained keyframe
        self._video_end = 0  # pts + duration of the newest video packet
        self._evict_at = _NEVER  # video end at which the oldest GOP leaves by time
        log.debug(
            "pre-record buffer: %d s, arena %d bytes, index %d packets",
            self.seconds,
            capacity,
            slots,
        )

    # --- sizes ---------------------------------------------------------------------------

    @property
    def nbytes(self) -> int:
        """Memory the buffer holds (arena plus index), fixed at construction."""
        return int(self._arena.nbytes + self._index.nbytes + self._gops.nbytes)

    @property
    def capacity_bytes(self) -> int:
        """Size of the byte arena: the hard bound on buffered packet bytes."""
        return self._cap

    @property
    def max_packets(self) -> int:
        """Size of the index: the hard bound on buffered packets."""
        return self._slots

    @property
    def index_nbytes(self) -> int:
        """Memory of the index and the keyframe ring (the overhead beside the arena)."""
        return int(self._index.nbytes + self._gops.nbytes)

    @property
    def used_bytes(self) -> int:
        """Bytes of the packets in the arena (at most `capacity_bytes`)."""
        with self._lock:
            return self._used

    @property
    def span_seconds(self) -> float:
        """Seconds of video held: oldest keyframe's pts to the end of the newest frame."""
        with self._lock:
            if self._count == 0:
                return 0.0
            return float((self._video_end - self._first_pts) * self.time_base)

    def __len__(self) -> int:
        """Packets `snapshot()` would hand out."""
        with self._lock:
            return self._count - self._hidden

    def __repr__(self) -> str:
        return (
            f"PreRecordBuffer(seconds={self.seconds}, capacity_bytes={self._cap}, "
            f"max_packets={self._slots}, packets={self._count})"
        )

    @property
    def _wrapped(self) -> bool:
        """The held bytes run from the oldest packet to the arena's end, then from 0."""
        return self._count > 0 and self._tail_off <= self._head_off

    # --- writing -------------------------------------------------------------------------

    def append(
        self,
        data: bytes | bytearray | memoryview,
        *,
        pts: int,
        duration: int,
        stream: int = STREAM_VIDEO,
        keyframe: bool = False,
    ) -> bool:
        """Copy one packet in, evicting old GOPs as needed.

        Returns False when the packet was dropped (counted in `dropped_before_keyframe`):
        no keyframe precedes it in the buffer, or it is audio from before the oldest
        retained keyframe. Raises PacketTooLarge, NonMonotonicPts, or InvalidPacket (an
        empty packet, a stream other than 0/1, a duration outside 0..2**32-1).
        """
        view = _as_byte_view(data)
        size = len(view)
        pts, duration, stream = (
            operator.index(pts),
            operator.index(duration),
            operator.index(stream),
        )
        _check_packet(size, self._cap, pts, duration, stream)
        video = stream == STREAM_VIDEO
        with self._lock:
            if self._frozen is not None:
                raise BufferFrozen(
                    "the pre-record buffer is frozen: a recording still reads its pre-roll "
                    "(release() the FrozenPreRoll first)"
                )
            last = self._last_pts[stream]
            if pts <= last:
                kind = "video" if video else "audio"
                raise NonMonotonicPts(
                    f"{kind} pts {pts} does not follow the previous {kind} pts {last}; "
                    f"timestamps must increase within a stream"
                )
            self._last_pts[stream] = pts
            end = pts + duration
            if video:
                self._evict_by_time(end)
            elif self._count == 0 or pts < self._first_pts:
                # Audio before any keyframe, or lagging behind the oldest one: its GOP
                # is not (or no longer) held.
                self.dropped_before_keyframe += 1
                return False
            offset = self._make_room(size, pts, video and bool(keyframe))
            if offset is None:
                self.dropped_before_keyframe += 1
                return False
            slot = (self._head + self._count) % self._slots
            self._arena_bytes[offset : offset + size] = view
            flags = FLAG_KEYFRAME if keyframe else 0
            _RECORD.pack_into(
                self._index_bytes, slot * _RECORD.size, offset, size, pts, duration, stream, flags
            )
            if self._count == 0:
                self._head_off = offset
                self._first_pts = pts
            self._count += 1
            self._used += size
            self._tail_off = offset + size
            if video:
                self._video_end = end
                if keyframe:
                    self._add_gop(slot, pts)
                    self._evict_by_time(end)  # a second GOP may let the first one go
            return True

    def _free_offset(self, size: int) -> int | None:
        """Where `size` bytes fit without evicting anything, or None."""
        if self._count == 0:
            return self._tail_off if self._cap - self._tail_off >= size else 0
        if self._count == self._slots:
            return None
        if self._wrapped:
            return self._tail_off if self._head_off - self._tail_off >= size else None
        if self._cap - self._tail_off >= size:
            return self._tail_off
        return 0 if self._head_off >= size else None

    def _make_room(self, size: int, pts: int, gop_start: bool) -> int | None:
        """The arena offset for a new packet, evicting GOPs for room; None: dropped.

        An empty buffer takes only a packet that starts a GOP; audio whose GOP leaves
        for room leaves with it.
        """
        while True:
            if self._count == 0 and not gop_start:
                return None
            offset = self._free_offset(size)
            if offset is not None:
                return offset
            self._evict_for_room()
            if self._count and pts < self._first_pts:
                return None  # audio: its GOP was just evicted for room

    def _add_gop(self, slot: int, pts: int) -> None:
        self._gops[(self._gop_head + self._gop_count) % self._slots] = slot
        self._gop_count += 1
        if self._gop_count == 2:
            self._evict_at = pts + self._span_ticks

    def _evict_by_time(self, end: int) -> None:
        while end >= self._evict_at:
            self._drop_oldest_gop()

    def _evict_for_room(self) -> None:
        # Eviction by time has already run for the incoming packet, so the oldest GOP is
        # still needed for the span: taking it for room always cuts into the last seconds.
        self._drop_oldest_gop()
        self.undersized_evictions += 1
        level = logging.WARNING if self.undersized_evictions == 1 else logging.DEBUG
        log.log(
            level,
            "pre-record buffer full: evicted a GOP inside the last %d s (%d such evictions); "
            "the stream exceeds the byte or packet bound",
            self.seconds,
            self.undersized_evictions,
        )

    def _drop_oldest_gop(self) -> None:
        """Forget the oldest GOP with the audio captured during it."""
        if self._gop_count <= 1:
            self._make_empty()
            return
        self._gop_head = (self._gop_head + 1) % self._slots
        self._gop_count -= 1
        new_head = int(self._gops[self._gop_head])
        removed = (new_head - self._head) % self._slots
        self._used -= sum(int(part["size"].sum()) for part in self._records(removed))
        self._head = new_head
        self._count -= removed
        oldest = self._index[new_head]
        self._head_off = int(oldest["offset"])
        self._first_pts = int(oldest["pts"])
        if self._gop_count >= 2:
            following = int(self._gops[(self._gop_head + 1) % self._slots])
            self._evict_at = int(self._index[following]["pts"]) + self._span_ticks
        else:
            self._evict_at = _NEVER
        # Audio that lags the video may now lie before the oldest keyframe: count it, so
        # len() stays one subtraction. Once a GOP (a second), vectorised.
        self._hidden = sum(int(np.count_nonzero(self._lagging(p))) for p in self._records())

    def _make_empty(self) -> None:
        # The write position stays where it is: the next GOP goes after the last packet,
        # exactly as if the buffer had evicted everything by time.
        self._head = (self._head + self._count) % self._slots
        self._count = 0
        self._gop_count = 0
        self._head_off = self._tail_off
        self._used = 0
        self._hidden = 0
        self._evict_at = _NEVER

    # --- reading -------------------------------------------------------------------------

    def _records(self, count: int | None = None) -> list[Records]:
        """Views of the first `count` index records (default: all held), in capture order."""
        start = self._head
        stop = start + (self._count if count is None else count)
        if stop <= self._slots:
            return [self._index[start:stop]]
        return [self._index[start:], self._index[: stop - self._slots]]

    def _lagging(self, records: Records) -> npt.NDArray[np.bool_]:
        # Audio lagging behind the video may still sit after the oldest keyframe in capture
        # order while its time belongs to an evicted GOP: it is held but not handed out.
        lagging: npt.NDArray[np.bool_] = (records["stream"] == STREAM_AUDIO) & (
            records["pts"] < self._first_pts
        )
        return lagging

    def _held_records(self) -> Records:
        """A copy of the index records handed out (lagging audio left out), capture order."""
        records = np.concatenate(self._records())
        return records[~self._lagging(records)]

    def _copy_out(self) -> list[BufferedPacket]:
        """The packets handed out, backed by one private copy of the held bytes."""
        if self._count == 0:
            return []
        records = np.concatenate(self._records())
        offsets = records["offset"]
        first_run = offsets >= self._head_off  # the others come after the wrap, from 0
        ends = offsets + records["size"]
        first_end = int(ends[first_run].max())
        runs = [self._arena[self._head_off : first_end]]
        if self._wrapped:
            runs.append(self._arena[: self._tail_off])
        # One numpy copy: numpy asks for huge pages for a block this size, which makes it
        # about 3x faster than bytes() of the same views (page faults dominate).
        blob = np.concatenate(runs)
        blob.flags.writeable = False
        first_len = first_end - self._head_off
        records["offset"] = np.where(first_run, offsets - self._head_off, offsets + first_len)
        view = blob.data
        return [
            BufferedPacket(
                view[offset : offset + size], pts, duration, stream, bool(flags & FLAG_KEYFRAME)
            )
            for offset, size, pts, duration, stream, flags in records[
                ~self._lagging(records)
            ].tolist()
        ]

    def snapshot(self) -> list[BufferedPacket]:
        """The buffered pre-roll in capture order, original timestamps; the buffer keeps it.

        The packets are the caller's own: later appends do not change them.
        """
        with self._lock:
            return self._copy_out()

    def drain(self) -> list[BufferedPacket]:
        """Like `snapshot()`, then empty the buffer.

        The live stream after a drain goes elsewhere (the recorder), so pts tracking
        starts afresh: packets from before the drain may be appended again afterwards.
        """
        with self._lock:
            packets = self._copy_out()
            self._make_empty()
            self._last_pts = [_NO_PTS, _NO_PTS]
            return packets

    def freeze(self) -> FrozenPreRoll:
        """The buffered pre-roll without copying it; the buffer takes no packet until released.

        Like `drain()` (capture order, original pts, first packet a video keyframe, the
        buffer empty afterwards) except that the packets are views into the arena, valid
        until `release()`; until then `append()` raises `BufferFrozen`.
        """
        with self._lock:
            if self._frozen is not None:
                raise BufferFrozen("the pre-record buffer is already frozen")
            records = self._held_records() if self._count else np.zeros(0, INDEX_DTYPE)
            arena = self._arena.data.toreadonly()
            frozen = FrozenPreRoll(self, records, arena)
            self._frozen = frozen
            # Empty from now on, as after a drain; nothing is written until the release.
            self._make_empty()
            self._last_pts = [_NO_PTS, _NO_PTS]
            return frozen

    @property
    def frozen(self) -> bool:
        """A `FrozenPreRoll` is out: appends are refused until it is released."""
        with self._lock:
            return self._frozen is not None

    def _thaw(self, frozen: FrozenPreRoll) -> None:
        with self._lock:
            if self._frozen is not frozen:
                return  # released before, or the buffer was cleared meanwhile
            self._frozen = None

    def clear(self) -> None:
        """Drop everything buffered (and a freeze); the counters keep their totals.

        A caller that clears a frozen buffer must be done with the frozen packets.
        """
        with self._lock:
            self._frozen = None
            self._make_empty()
            self._last_pts = [_NO_PTS, _NO_PTS]
