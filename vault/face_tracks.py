"""The anonymizer's face tracks: detections linked per face, boxes interpolated between
detections and extrapolated (growing) before the first and after the last, and the head
box a detection stands for."""

from __future__ import annotations

import bisect
import logging
import math

from vault.anonymize_settings import (
    VELOCITY_SPAN,
    AnonymizeSettings,
    Box,
)
from vault.face_detector import (
    Detection,
)

log = logging.getLogger("vault.anonymize")  # one logger for the whole anonymizer


def head_box(found: Detection, width: int, height: int, settings: AnonymizeSettings) -> Box:
    """The region to hide for one detected face: the whole head, not only the face.

    A face the network barely found, or a small one, may be larger or elsewhere than its
    box says, so the box grows more the smaller the face and the lower the score. A face
    cut off by the picture's edge is given its full size again, reaching past that edge:
    the part inside stays covered as the face comes in (or goes out).
    """
    x, y, w, h = found.box
    # CenterFace's box runs from the brows to the chin and a bit narrower than the head.
    edge = 2.0
    if x <= edge and w < 0.8 * h:
        x, w = x + w - 0.8 * h, 0.8 * h
    elif x + w >= width - edge and w < 0.8 * h:
        w = 0.8 * h
    if y <= edge and h < 1.25 * w:
        y, h = y + h - 1.25 * w, 1.25 * w
    elif y + h >= height - edge and h < 1.25 * w:
        h = 1.25 * w
    if w < h:  # a head is about as wide as high; a face turned away shows less of it
        x, w = x - (h - w) / 2, h
    size = max(w, h)
    small = max(0.0, 1.0 - size / settings.small_face)
    unsure = max(0.0, (0.6 - found.score) / 0.6)
    pad = settings.head_pad + settings.small_pad * small + settings.unsure_pad * unsure
    x0, x1 = x - pad * w, x + w + pad * w
    # Forehead and hair above the box: more room on top than below the chin.
    y0, y1 = y - (pad + 0.1) * h, y + h + pad * h
    return (math.floor(x0), math.floor(y0), math.ceil(x1 - x0), math.ceil(y1 - y0))


def iou(a: Box | tuple[float, ...], b: Box | tuple[float, ...]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


class _Track:
    """One face over time: its detections by frame number, and the best score among them."""

    def __init__(self, frame: int, box: Box, score: float = 1.0) -> None:
        self.frames: list[int] = [frame]
        self.boxes: list[Box] = [box]
        self.best = score

    @property
    def first(self) -> int:
        return self.frames[0]

    @property
    def last(self) -> int:
        return self.frames[-1]

    def add(self, frame: int, box: Box, score: float = 1.0) -> None:
        self.frames.append(frame)
        self.boxes.append(box)
        self.best = max(self.best, score)

    def _velocity(self, at_end: bool) -> tuple[float, float]:
        """Centre motion per frame from detections at one end, VELOCITY_SPAN frames apart
        where the track is that long (detections on neighbouring frames jitter); capped."""
        if len(self.frames) < 2:
            return 0.0, 0.0
        if at_end:
            j = len(self.frames) - 1
            i = max(0, bisect.bisect_right(self.frames, self.frames[j] - VELOCITY_SPAN) - 1)
        else:
            i = 0
            j = min(
                len(self.frames) - 1,
                bisect.bisect_left(self.frames, self.frames[0] + VELOCITY_SPAN),
            )
        (ax, ay, aw, ah), (bx, by, bw, bh) = self.boxes[i], self.boxes[j]
        dt = self.frames[j] - self.frames[i]
        vx = ((bx + bw / 2) - (ax + aw / 2)) / dt
        vy = ((by + bh / 2) - (ay + ah / 2)) / dt
        cap = 0.25 * max(bw, bh)  # a detector jitter must not fling the box away
        return max(-cap, min(cap, vx)), max(-cap, min(cap, vy))

    def box_at(self, frame: int, grow_per_frame: float) -> tuple[float, float, float, float]:
        """The face's box at `frame`: detected, interpolated or extrapolated (grown)."""
        k = bisect.bisect_left(self.frames, frame)
        if k < len(self.frames) and self.frames[k] == frame:
            x, y, w, h = self.boxes[k]
            return float(x), float(y), float(w), float(h)
        if 0 < k < len(self.frames):
            f0, f1 = self.frames[k - 1], self.frames[k]
            t = (frame - f0) / (f1 - f0)
            a, b = self.boxes[k - 1], self.boxes[k]
            box = [a[i] + (b[i] - a[i]) * t for i in range(4)]
            # Grow with the distance to the nearer detection: the face may not move linearly.
            gap = min(frame - f0, f1 - frame)
            return _grown((box[0], box[1], box[2], box[3]), gap * grow_per_frame)
        at_end = k >= len(self.frames)
        x, y, w, h = self.boxes[-1] if at_end else self.boxes[0]
        dt = frame - (self.last if at_end else self.first)  # negative before the first
        vx, vy = self._velocity(at_end)
        moved = (x + vx * dt, y + vy * dt, float(w), float(h))
        return _grown(moved, abs(dt) * grow_per_frame)


def _grown(
    box: tuple[float, float, float, float], share: float
) -> tuple[float, float, float, float]:
    x, y, w, h = box
    dx, dy = w * share / 2, h * share / 2
    return x - dx, y - dy, w + 2 * dx, h + 2 * dy


class FaceTracks:
    """Detections linked over frames; answers which regions to obscure on a given frame.

    A track seen once with a score below `confirm_score` is a guess: it is searched around
    on the next frames but obscured only once it is seen again (or had a confident score).
    One stray low-score detection would otherwise blur a patch of wall for a whole second.
    """

    def __init__(
        self, hold_frames: int, grow_per_frame: float = 0.04, confirm_score: float = 0.0
    ) -> None:
        self.hold = max(0, int(hold_frames))
        self.grow = grow_per_frame
        self.confirm = confirm_score
        self._tracks: list[_Track] = []
        self.tracks_made = 0
        self.detections = 0

    def add(self, frame: int, boxes: list[Box], scores: list[float] | None = None) -> None:
        """Detections on `frame` (frames must come in increasing order)."""
        self.detections += len(boxes)
        given = scores if scores is not None else [1.0] * len(boxes)
        for box, score in sorted(zip(boxes, given, strict=True), key=lambda d: -d[0][2] * d[0][3]):
            best: _Track | None = None
            best_score = 0.0
            for track in self._tracks:
                if frame - track.last > 2 * self.hold + 1:
                    continue  # too long unseen to be the same face for sure; start anew
                if track.last == frame:
                    # One detection per face and frame: a second, smaller one overlapping it
                    # (an ear, a hand, a low-score guess) gets a track of its own rather
                    # than widening this one into the union of both.
                    continue
                predicted = track.box_at(frame, 0.0)
                px, py, pw, ph = predicted
                if not 0.5 <= (box[2] * box[3]) / max(1.0, pw * ph) <= 2.0:
                    continue  # not the same face: twice the size (or half) from one frame
                overlap = iou(predicted, box)
                cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
                if overlap == 0.0 and px <= cx <= px + pw and py <= cy <= py + ph:
                    overlap = 0.01  # centre inside the prediction: a scale change
                if overlap > best_score:
                    best, best_score = track, overlap
            # A low-score detection joins a track only where it overlaps it well: otherwise a
            # guess at the chin below a covered face would drag the face's track away.
            needed = 0.01 if score >= self.confirm else 0.3
            if best is not None and best_score >= needed:
                best.add(frame, box, score)
            else:
                self._tracks.append(_Track(frame, box, score))
                self.tracks_made += 1

    def boxes_at(self, frame: int, guesses: bool = False) -> list[tuple[float, ...]]:
        """Every region that must be obscured on `frame` (without the margin); with
        `guesses`, also the unconfirmed tracks (where to search next)."""
        return [
            track.box_at(frame, self.grow)
            for track in self._tracks
            if track.first - self.hold <= frame <= track.last + self.hold
            and (guesses or len(track.frames) > 1 or track.best >= self.confirm)
        ]

    def forget_before(self, frame: int) -> None:
        """Drop tracks that can no longer cover `frame` or any later one."""
        self._tracks = [t for t in self._tracks if t.last + 2 * self.hold + 1 >= frame]
