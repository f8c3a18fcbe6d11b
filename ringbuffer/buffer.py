"""The pre-record buffer: the last `seconds` of encoded packets a camera holds in standby.

Layout. One preallocated numpy ``uint8`` arena holds the packet bytes and one numpy
structured index (a ring of records: offset, size, pts, duration, stream, flags) describes
them; a second small ring holds the index slots of the video keyframes, one per group of
pictures (GOP). Nothing else is kept per packet, so memory is fixed at construction
(`nbytes`) and an append costs one ``memcpy`` plus one index record.

The arena is used as a FIFO: a packet is written after the newest one, or at offset 0 when
it does not fit before the end (the tail of the arena is then left unused until the oldest
data wraps too). A packet is never split across the wrap, so every packet handed out by
`snapshot()`/`drain()` is a zero-copy view into the arena.

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

Thread safety: one lock guards every method, for one writer (the encoder) and one reader
(the record trigger). Views returned by `snapshot()`/`drain()` point into the arena and
stay valid until the next `append()`/`clear()`; a reader on another thread than the
writer passes ``copy=True``.
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

from media import STREAM_AUDIO as STREAM_AUDIO  # re-exported by ringbuffer/__init__
from media import STREAM_VIDEO as STREAM_VIDEO
from media import EncodedPacket
from ringbuffer.errors import BufferConfigError, InvalidPacket, NonMonotonicPts, PacketTooLarge

log = logging.getLogger(__name__)

FLAG_KEYFRAME = 1

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

# The append path writes a record with one struct call into the index's bytes (several
# times cheaper than assigning a tuple to a numpy record); the layout is INDEX_DTYPE's.
_RECORD = struct.Struct("<qIqIBB")
if _RECORD.size != INDEX_DTYPE.itemsize:  # a guard for later edits of either
    raise ImportError("ringbuffer: _RECORD and INDEX_DTYPE disagree")

_RECORD_SIZE = _RECORD.size
_NEVER = 1 << 80  # an eviction deadline no int64 timestamp reaches
_NO_PTS = -(1 << 80)  # below every int64 timestamp: the first packet of a stream always passes
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_U32_MAX = (1 << 32) - 1


# A packet out of the buffer is the encoder's packet type with `data` a read-only view
# into the arena (see the module docstring for how long it stays valid).
BufferedPacket = EncodedPacket


def _config_int(name: str, value: object, low: int, high: int | None, unit: str = "") -> int:
    allowed = f"an integer {low}..{high}" if high is not None else f"an integer >= {low}"
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise BufferConfigError(f"{name} must be {allowed}{unit}, got {value!r}")
    number = int(value)
    if number < low or (high is not None and number > high):
        raise BufferConfigError(f"{name} must be {allowed}{unit}, got {number}")
    return number


def _order_message(video: bool, pts: int, last: int) -> str:
    kind = "video" if video else "audio"
    return (
        f"{kind} pts {pts} does not follow the previous {kind} pts {last}; "
        f"timestamps must increase within a stream"
    )


def _as_byte_view(data: object) -> memoryview:
    """A flat unsigned-byte view of any buffer, without copying it."""
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


class PreRecordBuffer:
    """Fixed-memory circular buffer of encoded packets, evicting whole GOPs by time."""

    # Slots: cheaper attribute access on the append path, and no per-instance dict.
    __slots__ = (
        "seconds",
        "time_base",
        "bitrate_bps",
        "headroom",
        "undersized_evictions",
        "dropped_before_keyframe",
        "_span_ticks",
        "_cap",
        "_slots",
        "_arena",
        "_index",
        "_kf",
        "_write_view",
        "_read_view",
        "_index_bytes",
        "_pack",
        "_offsets",
        "_pts",
        "_lock",
        "_last_pts",
        "_tail_off",
        "_head",
        "_count",
        "_kf_head",
        "_kf_count",
        "_head_off",
        "_wrapped",
        "_wrap_slot",
        "_first_pts",
        "_video_end",
        "_evict_at",
        "_room",
    )

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
        # Touch every page now: the memory is really in use from construction on and the
        # append path never takes a page fault.
        self._arena = np.empty(capacity, dtype=np.uint8)
        self._arena.fill(0)
        self._index = np.zeros(slots, dtype=INDEX_DTYPE)
        self._kf = np.zeros(slots, dtype=np.int32)  # ring of index slots, one per GOP
        self._write_view = self._arena.data
        self._read_view = self._write_view.toreadonly()
        self._index_bytes = self._index.view(np.uint8).data
        self._pack = _RECORD.pack_into
        self._offsets = self._index["offset"]
        self._pts = self._index["pts"]
        self._lock = threading.Lock()

        self.undersized_evictions = 0
        self.dropped_before_keyframe = 0
        self._last_pts = [_NO_PTS, _NO_PTS]
        self._tail_off = 0  # where the next packet goes if it fits
        self._head = 0
        self._count = 0
        self._kf_head = 0
        self._kf_count = 0
        self._head_off = 0
        self._wrapped = False  # data runs from _head_off to the arena's end, then from 0
        self._wrap_slot = 0  # the first slot written at offset 0 when it wrapped
        self._first_pts = 0  # pts of the oldest retained keyframe
        self._video_end = 0  # pts + duration of the newest video packet
        self._evict_at = _NEVER  # video end at which the oldest GOP leaves by time
        # Free bytes from _tail_off on, or -1 when the next packet must take the slow
        # path (empty buffer, full index): one comparison decides the common case.
        self._room = -1
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
        return int(self._arena.nbytes + self._index.nbytes + self._kf.nbytes)

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
        return int(self._index.nbytes + self._kf.nbytes)

    @property
    def used_bytes(self) -> int:
        """Bytes of the packets in the arena (at most `capacity_bytes`)."""
        with self._lock:
            if self._count == 0:
                return 0
            return int(self._window()["size"].sum(dtype=np.int64))

    @property
    def span_seconds(self) -> float:
        """Seconds of video held: oldest keyframe's pts to the end of the newest frame."""
        with self._lock:
            if self._count == 0:
                return 0.0
            return float((self._video_end - self._first_pts) * self.time_base)

    def __len__(self) -> int:
        with self._lock:
            if self._count == 0:
                return 0
            return int(np.count_nonzero(self._live(self._window())))

    def __repr__(self) -> str:
        return (
            f"PreRecordBuffer(seconds={self.seconds}, capacity_bytes={self._cap}, "
            f"max_packets={self._slots}, packets={self._count})"
        )

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
        # The common case (bytes, plain ints, a packet that fits after the newest one)
        # runs straight through; everything else goes to the helpers below.
        if type(data) is bytes:
            size = len(data)
        elif type(data) is memoryview and data.c_contiguous:
            size = data.nbytes  # any item format: the copy below casts if it must
        else:
            data = _as_byte_view(data)
            size = len(data)
        if type(pts) is not int or type(duration) is not int or type(stream) is not int:
            pts, duration, stream = (operator.index(v) for v in (pts, duration, stream))
        if not (
            0 < size <= self._cap
            and 0 <= duration <= _U32_MAX
            and (stream == STREAM_VIDEO or stream == STREAM_AUDIO)
            and _I64_MIN <= pts <= _I64_MAX
        ):
            self._refuse(size, pts, duration, stream)
        video = stream == STREAM_VIDEO
        lock = self._lock
        lock.acquire()
        try:
            last_pts = self._last_pts
            if pts <= last_pts[stream]:
                raise NonMonotonicPts(_order_message(video, pts, last_pts[stream]))
            last_pts[stream] = pts
            end = pts + duration
            if video:
                if end >= self._evict_at:
                    self._evict_by_time(end)
            elif self._count == 0 or pts < self._first_pts:
                # Audio before any keyframe, or lagging behind the oldest one: its GOP
                # is not (or no longer) held.
                self.dropped_before_keyframe += 1
                return False
            room = self._room
            if room >= size:
                offset = self._tail_off
            else:
                offset = self._make_room(size, pts, video, video and bool(keyframe))
                if offset < 0:
                    return False
                room = self._room
            slot = self._head + self._count
            if slot >= self._slots:
                slot -= self._slots
            try:
                self._write_view[offset : offset + size] = data
            except (TypeError, ValueError):  # a view of other items than unsigned bytes
                self._write_view[offset : offset + size] = data.cast("B")  # type: ignore[union-attr]
            flags = FLAG_KEYFRAME if keyframe else 0
            self._pack(
                self._index_bytes, slot * _RECORD_SIZE, offset, size, pts, duration, stream, flags
            )
            count = self._count + 1
            self._count = count
            self._tail_off = offset + size
            self._room = room - size if count < self._slots else -1
            if video:
                self._video_end = end
                if keyframe:
                    # A second GOP sets the time at which the first may leave.
                    self._add_gop(slot, pts)
                    if end >= self._evict_at:
                        self._evict_by_time(end)
            return True
        finally:
            lock.release()

    def _refuse(self, size: int, pts: int, duration: int, stream: int) -> None:
        if size == 0:
            # An empty packet has no picture or sound to keep, and giving it an arena
            # position would blur where the held bytes begin.
            raise InvalidPacket("an empty packet cannot be buffered")
        if size > self._cap:
            raise PacketTooLarge(
                f"a packet of {size} bytes does not fit in the {self._cap}-byte pre-record "
                f"buffer; give a larger max_bytes (or bitrate_bps/headroom)"
            )
        if stream != STREAM_VIDEO and stream != STREAM_AUDIO:
            raise InvalidPacket(
                f"stream must be {STREAM_VIDEO} (video) or {STREAM_AUDIO} (audio), got {stream}"
            )
        if not 0 <= duration <= _U32_MAX:
            raise InvalidPacket(f"duration must be 0..{_U32_MAX} ticks, got {duration}")
        raise InvalidPacket(f"pts must fit in 64 bits, got {pts}")

    def _make_room(self, size: int, pts: int, video: bool, gop_start: bool) -> int:
        """Where a packet goes that does not fit after the newest one; -1: dropped.

        Starts a new run in an empty buffer, wraps to offset 0, or evicts GOPs for room;
        leaves `_room` as the free bytes from the returned offset on.
        """
        tail = self._tail_off
        while True:
            count = self._count
            if count == 0:
                if not gop_start:
                    self.dropped_before_keyframe += 1
                    return -1
                offset = tail if self._cap - tail >= size else 0
                self._head_off = offset
                self._first_pts = pts
                self._kf_head = 0
                self._kf_count = 0
                self._room = self._cap - offset
                return offset
            if count < self._slots:
                if self._wrapped:
                    if self._head_off - tail >= size:
                        self._room = self._head_off - tail
                        return tail
                elif self._cap - tail >= size:
                    self._room = self._cap - tail
                    return tail
                elif self._head_off >= size:
                    self._wrapped = True
                    self._wrap_slot = (self._head + count) % self._slots
                    self._room = self._head_off
                    return 0
            self._evict_for_room()
            if self._count and not video and pts < self._first_pts:
                self.dropped_before_keyframe += 1  # its GOP was just evicted for room
                return -1

    def _add_gop(self, slot: int, pts: int) -> None:
        self._kf[(self._kf_head + self._kf_count) % self._slots] = slot
        self._kf_count += 1
        if self._kf_count == 2:
            self._evict_at = pts + self._span_ticks

    def _evict_by_time(self, end: int) -> None:
        # One iteration per GOP (normally exactly one); packets leave by moving the head.
        while end >= self._evict_at:
            self._drop_gops(1)

    def _evict_for_room(self) -> None:
        # Eviction by time has already run for the incoming packet, so the oldest GOP is
        # still needed for the span: taking it for room always cuts into the last seconds.
        self._drop_gops(1)
        self.undersized_evictions += 1
        level = logging.WARNING if self.undersized_evictions == 1 else logging.DEBUG
        log.log(
            level,
            "pre-record buffer full: evicted a GOP inside the last %d s (%d such evictions); "
            "the stream exceeds the byte or packet bound",
            self.seconds,
            self.undersized_evictions,
        )

    def _drop_gops(self, gops: int) -> None:
        """Forget the oldest `gops` GOPs with the audio captured among them."""
        if gops >= self._kf_count:
            self._make_empty()
            return
        position = (self._kf_head + gops) % self._slots
        new_head = int(self._kf[position])
        removed = (new_head - self._head) % self._slots
        if self._wrapped and (self._wrap_slot - self._head) % self._slots <= removed:
            self._wrapped = False
        self._head = new_head
        self._count -= removed
        self._head_off = int(self._offsets[new_head])
        self._first_pts = int(self._pts[new_head])
        self._kf_head = position
        self._kf_count -= gops
        if self._kf_count >= 2:
            following = int(self._kf[(position + 1) % self._slots])
            self._evict_at = int(self._pts[following]) + self._span_ticks
        else:
            self._evict_at = _NEVER
        if self._count < self._slots:
            self._room = (self._head_off if self._wrapped else self._cap) - self._tail_off
        else:
            self._room = -1

    def _make_empty(self) -> None:
        # The write position stays where it is, so views handed out by drain() live on
        # until the arena wraps round to them.
        self._head = (self._head + self._count) % self._slots
        self._count = 0
        self._kf_count = 0
        self._head_off = self._tail_off
        self._wrapped = False
        self._evict_at = _NEVER
        self._room = -1  # an empty buffer takes only a keyframe: the slow path decides

    # --- reading -------------------------------------------------------------------------

    def _window(self) -> np.ndarray:
        """Index records of the buffered packets in capture order (a copy)."""
        start, stop = self._head, self._head + self._count
        if stop <= self._slots:
            return self._index[start:stop].copy()
        return np.concatenate((self._index[start:], self._index[: stop - self._slots]))

    def _live(self, records: np.ndarray) -> np.ndarray:
        # Audio lagging behind the video may still sit after the oldest keyframe in capture
        # order while its time belongs to an evicted GOP: it is not handed out.
        return (records["stream"] != STREAM_AUDIO) | (records["pts"] >= self._first_pts)

    def _packets(self, copy: bool) -> list[BufferedPacket]:
        if self._count == 0:
            return []
        records = self._window()
        records = records[self._live(records)]
        view = self._read_view
        out: list[BufferedPacket] = []
        for offset, size, pts, duration, stream, flags in records.tolist():
            data = view[offset : offset + size]
            if copy:
                data = memoryview(data.tobytes())
            out.append(BufferedPacket(data, pts, duration, stream, bool(flags & FLAG_KEYFRAME)))
        return out

    def snapshot(self, *, copy: bool = False) -> list[BufferedPacket]:
        """The buffered pre-roll in capture order, original timestamps; the buffer keeps it.

        Views by default; ``copy=True`` gives packets that survive later appends.
        """
        with self._lock:
            return self._packets(copy)

    def drain(self, *, copy: bool = False) -> list[BufferedPacket]:
        """Like `snapshot()`, then empty the buffer.

        The live stream after a drain goes elsewhere (the recorder), so pts tracking
        starts afresh: packets from before the drain may be appended again afterwards.
        """
        with self._lock:
            packets = self._packets(copy)
            self._make_empty()
            self._last_pts = [_NO_PTS, _NO_PTS]
            return packets

    def clear(self) -> None:
        """Drop everything buffered; the counters keep their totals."""
        with self._lock:
            self._make_empty()
            self._last_pts = [_NO_PTS, _NO_PTS]
