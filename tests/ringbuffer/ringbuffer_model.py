"""A deliberately naive model of the pre-record buffer for the property-based tests.

Packets live in a Python list; the arena is modelled only by each packet's offset, and
"does it fit" is answered by checking the new byte range against every held packet. The
rules are the documented ones, written the obvious way (list slicing, linear scans).
"""

from __future__ import annotations

from dataclasses import dataclass

VIDEO, AUDIO = 0, 1


class ModelTooLarge(Exception):
    pass


class ModelNonMonotonic(Exception):
    pass


@dataclass(frozen=True)
class ModelPacket:
    data: bytes
    pts: int
    duration: int
    stream: int
    keyframe: bool
    offset: int

    @property
    def gop_start(self) -> bool:
        return self.stream == VIDEO and self.keyframe


class ReferenceBuffer:
    def __init__(self, span_ticks: int, capacity: int, max_packets: int) -> None:
        self.span_ticks = span_ticks
        self.capacity = capacity
        self.max_packets = max_packets
        self.packets: list[ModelPacket] = []
        self.tail = 0
        self.last_pts: dict[int, int | None] = {VIDEO: None, AUDIO: None}
        self.undersized_evictions = 0
        self.time_evictions = 0
        self.dropped_before_keyframe = 0

    # --- queries -------------------------------------------------------------------------

    def gop_starts(self) -> list[int]:
        return [i for i, p in enumerate(self.packets) if p.gop_start]

    def first_pts(self) -> int:
        return self.packets[0].pts

    def video_end(self) -> int:
        newest = [p for p in self.packets if p.stream == VIDEO][-1]
        return newest.pts + newest.duration

    def live(self) -> list[ModelPacket]:
        if not self.packets:
            return []
        first = self.first_pts()
        return [p for p in self.packets if p.stream == VIDEO or p.pts >= first]

    def span_ticks_held(self) -> int:
        return self.video_end() - self.first_pts() if self.packets else 0

    def used_bytes(self) -> int:
        return sum(len(p.data) for p in self.packets)

    # --- rules ---------------------------------------------------------------------------

    def _evict_oldest_gop(self) -> None:
        starts = self.gop_starts()
        self.packets = self.packets[starts[1] :] if len(starts) >= 2 else []

    def _evict_by_time(self, end: int) -> None:
        while True:
            starts = self.gop_starts()
            if len(starts) < 2 or end - self.packets[starts[1]].pts < self.span_ticks:
                return
            self._evict_oldest_gop()
            self.time_evictions += 1

    def _place(self, size: int) -> int | None:
        if len(self.packets) >= self.max_packets:
            return None
        held = [(p.offset, p.offset + len(p.data)) for p in self.packets]

        def free(start: int) -> bool:
            stop = start + size
            if stop > self.capacity:
                return False
            return all(stop <= a or start >= b for a, b in held)

        for candidate in (self.tail, 0):
            if free(candidate):
                return candidate
        return None

    def append(self, data: bytes, pts: int, duration: int, stream: int, keyframe: bool) -> bool:
        if len(data) > self.capacity:
            raise ModelTooLarge
        last = self.last_pts[stream]
        if last is not None and pts <= last:
            raise ModelNonMonotonic
        self.last_pts[stream] = pts
        gop_start = stream == VIDEO and keyframe
        if not self.packets and not gop_start:
            self.dropped_before_keyframe += 1
            return False
        if self.packets and stream == AUDIO and pts < self.first_pts():
            self.dropped_before_keyframe += 1
            return False
        end = pts + duration
        if stream == VIDEO and self.packets:
            self._evict_by_time(end)
        while True:
            offset = self._place(len(data))
            if offset is not None:
                break
            self._evict_oldest_gop()
            held_end = end if stream == VIDEO else self.video_end() if self.packets else 0
            span = held_end - self.first_pts() if self.packets else 0
            if span < self.span_ticks:
                self.undersized_evictions += 1
            if not self.packets and not gop_start:
                self.dropped_before_keyframe += 1
                return False
            if stream == AUDIO and pts < self.first_pts():
                # The GOP this audio belongs to just left for room: the audio goes too,
                # and nothing more is evicted for it.
                self.dropped_before_keyframe += 1
                return False
        if self.packets and stream == AUDIO and pts < self.first_pts():
            self.dropped_before_keyframe += 1
            return False
        self.packets.append(ModelPacket(data, pts, duration, stream, keyframe, offset))
        self.tail = offset + len(data)
        if stream == VIDEO:
            self._evict_by_time(self.video_end())
        return True

    def drain(self) -> list[ModelPacket]:
        out = self.live()
        self.clear()
        return out

    def clear(self) -> None:
        self.packets = []
        self.last_pts = {VIDEO: None, AUDIO: None}
