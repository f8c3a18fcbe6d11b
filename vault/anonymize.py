"""Training footage made unrecognizable: every face blurred on every frame, sound dropped.

```
report = anonymize_recording(Path("rec.ts"), Path("training.mp4"))   # decrypted MP4 or MPEG-TS
report.frames, report.detections, report.tracks, report.frames_obscured
```

The input is a decrypted recording (what `bodycam vault decrypt` writes); the output is an
H.264 MP4 (libx264) of the same size and frame rate, timestamps from 0, with no audio
track: voices are not made unrecognizable, they are removed. The burned-in device id and
time stay as they are, unless a face box covers them.

How a face is kept hidden on every frame, not only on the frames where it was found:

- Detection: OpenCV's Haar cascades from `cv2.data.haarcascades` (frontal, profile, and
  profile on the mirrored picture for faces turned the other way), on the luma plane
  scaled down to `detect_width` and histogram-equalized, with a low `min_neighbors`: a
  missed face is worse than a blurred wall.
  The whole picture is searched once per `hold_seconds` (`full_scan_every`); on the
  `detect_every` frames between, only the surroundings of the faces already tracked, at
  the sizes they can have by then: most of the cost of a whole-picture search is the
  small sizes over the whole frame. A face coming into view is found by the next
  whole-picture search, and the frames before are covered by its track held back in
  time (below); settings whose search intervals the tracks do not cover are refused.
- Tracking: detections are linked into tracks. Between two detections of a track the box
  is interpolated; for `hold_seconds` after the last detection and before the first one
  it is extrapolated with the track's velocity and grows with every frame. A face hidden
  behind something for a moment, or missed by the detector for a few frames, stays
  blurred; so do the frames just before it was first detected (walking into the picture,
  coming out from behind a bar). That last part is why frames are written with a delay
  of `hold_seconds`: a frame leaves only when every detection that could still cover it
  is known. Memory: that many decoded frames (about 1.4 MB each at 1280x720).
- Obscuring: the face box, widened by `margin` on every side, is scaled down so the face
  spans `cells` pixels and scaled back up with bilinear interpolation. What remains is a
  smooth colour gradient: no edges, no texture, no high frequencies to sharpen back.
  The work is done on the Y, U and V planes as decoded, with no conversion to RGB.

The back office's service layer decides whether a recording may be anonymized (policy,
consent, audit) and then calls `anonymize_recording`; this module knows nothing of
Django, people or policy. Output appears under its name only when complete (written to
a temporary file in the same folder, fsynced, renamed), mode 0600.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt

from vault.media import MediaError, OpenRecording, open_recording

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]  # x, y, width, height in pixels of the full frame
Plane = npt.NDArray[np.uint8]

FRONTAL_CASCADE = "haarcascade_frontalface_alt2.xml"
PROFILE_CASCADE = "haarcascade_profileface.xml"
MAX_FRAME_PIXELS = 7680 * 4320
DEFAULT_FPS = Fraction(30)


class AnonymizeError(ValueError):
    """Footage cannot be anonymized; the message says why."""


class AnonymizeInputError(AnonymizeError):
    """The input is not a readable video (missing, not a media file, no video, damaged)."""


class FaceModelError(AnonymizeError):
    """A face cascade is missing or does not load (wrong OpenCV build)."""


@dataclass(frozen=True)
class DetectorSettings:
    """How faces are searched for. Lower `min_neighbors` finds more (and more walls)."""

    # Wider frames are scaled down to this before detection: at 1280x720 the smallest face
    # found is then min_face * 1280 / 480 = 53 px; raise it for crowds far away.
    detect_width: int = 480
    min_face: int = 20  # smallest face, in pixels of the scaled-down picture (cascade: 20)
    scale_factor: float = 1.2  # 1.1 costs twice as much and found no more faces in tests
    min_neighbors: int = 2
    frontal: tuple[str, ...] = (FRONTAL_CASCADE,)
    profiles: bool = True  # profile cascade on the picture and on its mirror image
    equalize: bool = True

    def __post_init__(self) -> None:
        if not 64 <= self.detect_width <= 7680:
            raise AnonymizeError(f"detect_width {self.detect_width} out of range 64..7680")
        if not 12 <= self.min_face <= 512:
            raise AnonymizeError(f"min_face {self.min_face} out of range 12..512")
        if not 1.01 <= self.scale_factor <= 2.0:
            raise AnonymizeError(f"scale_factor {self.scale_factor} out of range 1.01..2.0")
        if not 0 <= self.min_neighbors <= 20:
            raise AnonymizeError(f"min_neighbors {self.min_neighbors} out of range 0..20")
        if not self.frontal and not self.profiles:
            raise AnonymizeError("no cascade: give a frontal cascade or enable profiles")


@dataclass(frozen=True)
class AnonymizeSettings:
    """Detection, tracking, obscuring and output encoding for one run."""

    detector: DetectorSettings = field(default_factory=DetectorSettings)
    # Detection on every n-th frame; the tracks' interpolation covers the frames between.
    # On most of those frames only the surroundings of the faces already tracked are
    # searched; the whole picture every `full_scan_every` frames, which finds a face that
    # comes into view (the frames before are covered by holding its track back in time,
    # so this must not exceed hold_seconds). None: once per hold_seconds, the longest gap
    # the tracks cover (the whole-picture search is most of the anonymizer's cost).
    detect_every: int = 2
    full_scan_every: int | None = None
    hold_seconds: float = 0.5  # a track covers this long before its first/after its last hit
    margin: float = 0.35  # the box is widened by this share of its size on every side
    # The obscured face keeps this many pixels across its width. At 4 a sensitive Haar
    # cascade still finds a face-shaped blob on some frames; at 2 it finds none.
    cells: int = 2
    grow_per_frame: float = 0.04  # an extrapolated box grows by this share per frame
    crf: int = 21
    preset: str = "veryfast"

    def __post_init__(self) -> None:
        if not 1 <= self.detect_every <= 30:
            raise AnonymizeError(f"detect_every {self.detect_every} out of range 1..30")
        if self.full_scan_every is not None and not 1 <= self.full_scan_every <= 30:
            raise AnonymizeError(f"full_scan_every {self.full_scan_every} out of range 1..30")
        if not 0.0 <= self.hold_seconds <= 5.0:
            raise AnonymizeError(f"hold_seconds {self.hold_seconds} out of range 0..5")
        if not 0.0 <= self.margin <= 2.0:
            raise AnonymizeError(f"margin {self.margin} out of range 0..2")
        if not 1 <= self.cells <= 8:
            raise AnonymizeError(f"cells {self.cells} out of range 1..8 (more is recognizable)")
        if not 0 <= self.crf <= 51:
            raise AnonymizeError(f"crf {self.crf} out of range 0..51")


@dataclass(frozen=True)
class AnonymizeReport:
    """What one run did, for the service's audit entry."""

    frames: int
    width: int
    height: int
    fps: Fraction
    detections: int  # face boxes the detector returned, summed over frames
    tracks: int  # distinct tracks those formed
    frames_obscured: int  # frames on which at least one region was blurred
    audio_streams_dropped: int


def _cascade(name: str) -> Any:
    path = Path(cv2.data.haarcascades) / name  # type: ignore[attr-defined]
    classifier = cv2.CascadeClassifier()
    if not path.is_file() or not classifier.load(str(path)):
        raise FaceModelError(
            f"face cascade {name} missing or unreadable in {path.parent} "
            "(needs opencv-python-headless 4.x, which ships the Haar cascades)"
        )
    return classifier


class FaceDetector:
    """Haar cascades on a scaled-down, equalized luma plane; boxes in full-frame pixels."""

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.settings = settings or DetectorSettings()
        self._frontal = [_cascade(name) for name in self.settings.frontal]
        self._profile = _cascade(PROFILE_CASCADE) if self.settings.profiles else None

    def detect(
        self,
        luma: npt.NDArray[np.uint8],
        near: list[tuple[float, ...]] | None = None,
        reach: float = 0.5,
    ) -> list[Box]:
        """Face boxes in a grayscale (H, W) picture (the Y plane of a frame).

        With `near` (face boxes, full-frame pixels) only the surroundings of those boxes
        are searched, `reach` face sizes wide on every side: what a track needs to be
        followed, at a small part of a whole frame's cost. `near=[]` searches nothing.
        """
        s = self.settings
        height, width = luma.shape[:2]
        scale = min(1.0, s.detect_width / width)
        if near is not None:
            windows = [_window(box, reach, scale, width, height, s.min_face) for box in near]
            sizes = [max(box[2], box[3]) * scale for box in near]
            if not any(windows):
                return []
        small: Any = luma
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(luma, size, interpolation=cv2.INTER_AREA)
        if s.equalize:
            small = cv2.equalizeHist(small)
        found: list[tuple[int, int, int, int]] = []
        if near is None:
            found = self._search(small)
        else:
            # Only the sizes a tracked face can have grown or shrunk to by now: the small
            # scales, most of a search's cost, are skipped.
            separate = [(w, z) for w, z in zip(windows, sizes, strict=True) if w is not None]
            merged = _merged([w for w, _ in separate])
            if len(merged) == len(separate):
                searches = [(w, z, z) for w, z in separate]  # one face per window
            else:
                zs = [z for _, z in separate]
                searches = [(w, min(zs), max(zs)) for w in merged]
            for (x0, y0, x1, y1), smallest, largest in searches:
                lo = max(s.min_face, math.floor(0.5 * smallest))
                hi = math.ceil(2.0 * largest)
                found += [
                    (x + x0, y + y0, w, h)
                    for x, y, w, h in self._search(small[y0:y1, x0:x1], lo, hi)
                ]
        inv = 1.0 / scale
        return [
            (int(x * inv), int(y * inv), math.ceil(w * inv), math.ceil(h * inv))
            for x, y, w, h in found
        ]

    def _search(
        self, small: Any, min_size: int = 0, max_size: int = 0
    ) -> list[tuple[int, int, int, int]]:
        """Every cascade on one (scaled-down, equalized) picture; boxes in its pixels.

        All of them, also near a face one cascade already found: the union of their boxes
        is what covers a face turning away (stopping at the first hit let a sharpened
        frame of the test clip show a face again).
        """
        s = self.settings
        found: list[tuple[int, int, int, int]] = []
        options: dict[str, Any] = {
            "scaleFactor": s.scale_factor,
            "minNeighbors": s.min_neighbors,
            "minSize": (max(s.min_face, min_size),) * 2,
        }
        if max_size:
            options["maxSize"] = (max_size, max_size)
        for cascade in self._frontal:
            found += [tuple(b) for b in cascade.detectMultiScale(small, **options)]
        if self._profile is not None:
            found += [tuple(b) for b in self._profile.detectMultiScale(small, **options)]
            mirrored = cv2.flip(small, 1)
            sw = small.shape[1]
            for x, y, w, h in self._profile.detectMultiScale(mirrored, **options):
                found.append((sw - int(x) - int(w), int(y), int(w), int(h)))
        return found


def _window(
    box: tuple[float, ...], reach: float, scale: float, width: int, height: int, min_face: int
) -> tuple[int, int, int, int] | None:
    """The search window around a face box: `reach` face sizes on every side, scaled down."""
    x, y, w, h = box
    side = reach * max(w, h)
    sw, sh = max(1, round(width * scale)), max(1, round(height * scale))
    x0 = max(0, math.floor((x - side) * scale))
    y0 = max(0, math.floor((y - side) * scale))
    x1 = min(sw, math.ceil((x + w + side) * scale))
    y1 = min(sh, math.ceil((y + h + side) * scale))
    if x1 - x0 < min_face or y1 - y0 < min_face:
        return None  # off the picture, or too small to hold a face the cascades can find
    return x0, y0, x1, y1


def _merged(windows: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Overlapping windows joined into their bounding box: a face on the seam of two
    windows is then inside one of them, and no pixel is searched twice."""
    out: list[tuple[int, int, int, int]] = []
    for w in sorted(windows):
        for i, o in enumerate(out):
            if w[0] < o[2] and o[0] < w[2] and w[1] < o[3] and o[1] < w[3]:
                out[i] = (min(w[0], o[0]), min(w[1], o[1]), max(w[2], o[2]), max(w[3], o[3]))
                break
        else:
            out.append(w)
    return _merged(out) if len(out) < len(windows) else out


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
    """One face over time: its detections by frame number."""

    def __init__(self, frame: int, box: Box) -> None:
        self.frames: list[int] = [frame]
        self.boxes: list[Box] = [box]

    @property
    def first(self) -> int:
        return self.frames[0]

    @property
    def last(self) -> int:
        return self.frames[-1]

    def add(self, frame: int, box: Box) -> None:
        if frame == self.last:
            # Two cascades found the same face: keep the union, it covers both.
            x, y, w, h = self.boxes[-1]
            bx, by, bw, bh = box
            x0, y0 = min(x, bx), min(y, by)
            self.boxes[-1] = (x0, y0, max(x + w, bx + bw) - x0, max(y + h, by + bh) - y0)
            return
        self.frames.append(frame)
        self.boxes.append(box)

    def _velocity(self, at_end: bool) -> tuple[float, float]:
        """Centre motion per frame from the two detections at one end; capped."""
        if len(self.frames) < 2:
            return 0.0, 0.0
        i, j = (-2, -1) if at_end else (0, 1)
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
    """Detections linked over frames; answers which regions to obscure on a given frame."""

    def __init__(self, hold_frames: int, grow_per_frame: float = 0.04) -> None:
        self.hold = max(0, int(hold_frames))
        self.grow = grow_per_frame
        self._tracks: list[_Track] = []
        self.tracks_made = 0
        self.detections = 0

    def add(self, frame: int, boxes: list[Box]) -> None:
        """Detections on `frame` (frames must come in increasing order)."""
        self.detections += len(boxes)
        for box in sorted(boxes, key=lambda b: -b[2] * b[3]):
            best: _Track | None = None
            best_score = 0.0
            for track in self._tracks:
                if frame - track.last > 2 * self.hold + 1:
                    continue  # too long unseen to be the same face for sure; start anew
                predicted = track.box_at(frame, 0.0)
                score = iou(predicted, box)
                px, py, pw, ph = predicted
                cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
                if score == 0.0 and px <= cx <= px + pw and py <= cy <= py + ph:
                    score = 0.01  # centre inside the prediction: a scale change
                if score > best_score:
                    best, best_score = track, score
            if best is not None and best_score >= 0.01:
                best.add(frame, box)
            else:
                self._tracks.append(_Track(frame, box))
                self.tracks_made += 1

    def boxes_at(self, frame: int) -> list[tuple[float, ...]]:
        """Every region that must be obscured on `frame` (without the margin)."""
        return [
            track.box_at(frame, self.grow)
            for track in self._tracks
            if track.first - self.hold <= frame <= track.last + self.hold
        ]

    def forget_before(self, frame: int) -> None:
        """Drop tracks that can no longer cover `frame` or any later one."""
        self._tracks = [t for t in self._tracks if t.last + 2 * self.hold + 1 >= frame]


def _even_region(
    box: tuple[float, ...], margin: float, width: int, height: int
) -> tuple[int, int, int, int] | None:
    """The box widened by `margin` on every side, clipped, on even pixel bounds (4:2:0)."""
    x, y, w, h = box
    x0 = math.floor(x - margin * w) & ~1
    y0 = math.floor(y - margin * h) & ~1
    x1 = math.ceil(x + w + margin * w)
    y1 = math.ceil(y + h + margin * h)
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(width, x1 + (x1 & 1)), min(height, y1 + (y1 & 1))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return x0, y0, x1, y1


def _smear(region: Plane, across: int, feather: int) -> None:
    """Keep only `across` pixels of detail over the region's width (in place).

    The outer `feather` pixels blend into the original picture: a hard edge around a flat
    patch is itself a pattern that a detector (or a sharpening filter) responds to.
    """
    h, w = region.shape
    if h < 2 or w < 2:
        return
    sw = max(1, min(w, across))
    sh = max(1, min(h, round(across * h / w)))
    coarse = cv2.resize(region, (sw, sh), interpolation=cv2.INTER_AREA)
    smooth = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
    f = min(feather, w // 2, h // 2)
    if f < 1:
        region[...] = smooth
        return
    ramp_x = np.minimum(np.arange(w) + 1, np.arange(w, 0, -1)).astype(np.float32)
    ramp_y = np.minimum(np.arange(h) + 1, np.arange(h, 0, -1)).astype(np.float32)
    alpha = np.minimum(np.minimum(ramp_y[:, None], ramp_x[None, :]) / f, 1.0)
    mixed = smooth * alpha + region * (1.0 - alpha)
    region[...] = (mixed + 0.5).astype(np.uint8)


def obscure(
    planes: tuple[Plane, Plane, Plane], box: tuple[float, ...], margin: float, cells: int
) -> bool:
    """Blur one face box (plus margin) in a 4:2:0 frame's Y, U and V planes, in place."""
    y_plane, u_plane, v_plane = planes
    height, width = y_plane.shape
    region = _even_region(box, margin, width, height)
    if region is None:
        return False
    x0, y0, x1, y1 = region
    # The face spans `cells` pixels; the whole widened region proportionally more.
    across = max(1, round(cells * (x1 - x0) / max(1.0, float(box[2]))))
    # Feather within the margin only (half of it): the face box itself is fully smeared.
    feather = int(margin * float(box[2]) / 2)
    _smear(y_plane[y0:y1, x0:x1], across, feather)
    for chroma in (u_plane, v_plane):
        _smear(chroma[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2], across, feather // 2)
    return True


def _split_planes(image: Plane, width: int, height: int) -> tuple[Plane, Plane, Plane]:
    """Views of Y, U and V in the (H * 3/2, W) array PyAV gives for yuv420p."""
    y = image[:height]
    quarter = (height // 2) * (width // 2)
    chroma = image[height:].reshape(-1)
    u = chroma[:quarter].reshape(height // 2, width // 2)
    v = chroma[quarter : 2 * quarter].reshape(height // 2, width // 2)
    return y, u, v


@dataclass
class _Pending:
    index: int
    pts: int
    image: Plane


def _frame_rate(stream: Any) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and 1 <= float(rate) <= 240:
            return Fraction(rate).limit_denominator(1001)
    log.warning("no usable frame rate in the input; assuming %s fps", DEFAULT_FPS)
    return DEFAULT_FPS


def _open_output(out: Path) -> tuple[int, Path]:
    tmp = out.with_name(f".{out.name}.{os.urandom(4).hex()}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    return fd, tmp


def anonymize_recording(
    source: Path,
    out: Path,
    *,
    settings: AnonymizeSettings | None = None,
    overwrite: bool = False,
) -> AnonymizeReport:
    """Write `source` (decrypted MP4 or MPEG-TS) to `out` as an anonymized H.264 MP4.

    Raises AnonymizeInputError for input that is not a readable video, FileExistsError
    when `out` exists and not `overwrite`, FaceModelError without the face cascades.
    Nothing is left under `out` unless the whole recording was processed.
    """
    settings = settings or AnonymizeSettings()
    source, out = Path(source), Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite to replace it")
    if not source.is_file():
        raise AnonymizeInputError(f"{source}: no such file")
    detector = FaceDetector(settings.detector)
    fd, tmp = _open_output(out)
    os.close(fd)  # the MP4 muxer reopens it by name: +faststart rewrites the file
    try:
        try:
            with open_recording(source, name=str(source)) as recording:
                report = _transcode(recording, source, tmp, detector, settings)
        except MediaError as exc:
            raise AnonymizeInputError(str(exc)) from None
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.info(
        "anonymized %s: %d frames, %d detections in %d tracks, %d frames obscured, "
        "%d audio streams dropped",
        source.name,
        report.frames,
        report.detections,
        report.tracks,
        report.frames_obscured,
        report.audio_streams_dropped,
    )
    return report


def _transcode(
    recording: OpenRecording,
    source: Path,
    target: Path,
    detector: FaceDetector,
    settings: AnonymizeSettings,
) -> AnonymizeReport:
    stream = recording.video
    stream.thread_type = "AUTO"
    width, height = int(stream.codec_context.width), int(stream.codec_context.height)
    if width * height > MAX_FRAME_PIXELS or width < 2 or height < 2:
        raise AnonymizeInputError(f"{source}: frame size {width}x{height} out of range")
    if width & 1 or height & 1:
        raise AnonymizeInputError(f"{source}: odd frame size {width}x{height} (4:2:0 needs even)")
    fps = _frame_rate(stream)
    hold = math.ceil(settings.hold_seconds * float(fps))
    if hold < settings.detect_every:
        raise AnonymizeError(
            f"hold_seconds {settings.hold_seconds} is {hold} frames at {float(fps):g} fps, "
            f"fewer than detect_every {settings.detect_every}: frames between detections "
            "would not be covered"
        )
    full_scan = settings.full_scan_every or max(1, hold)
    if hold < full_scan:
        raise AnonymizeError(
            f"hold_seconds {settings.hold_seconds} is {hold} frames at {float(fps):g} fps, "
            f"fewer than full_scan_every {full_scan}: a face coming into view "
            "would not be covered before its first detection"
        )
    tracks = FaceTracks(hold, settings.grow_per_frame)
    audio_dropped = len(recording.container.streams.audio)

    output: Any = av.open(str(target), mode="w", format="mp4", options={"movflags": "+faststart"})
    with output:
        encoder = output.add_stream(
            "libx264", rate=fps, options={"preset": settings.preset, "crf": str(settings.crf)}
        )
        encoder.width, encoder.height = width, height
        encoder.pix_fmt = "yuv420p"
        # Frames count in 1/fps; the muxer picks its own stream time base on first write.
        frame_tb = Fraction(1, 1) / fps
        pending: deque[_Pending] = deque()
        index = 0
        obscured = 0
        first_time: float | None = None
        last_pts = -1

        def emit(item: _Pending) -> None:
            nonlocal obscured
            planes = _split_planes(item.image, width, height)
            hit = False
            for box in tracks.boxes_at(item.index):
                hit |= obscure(planes, box, settings.margin, settings.cells)
            obscured += hit
            frame = av.VideoFrame.from_ndarray(item.image, format="yuv420p")
            frame.pts = item.pts
            frame.time_base = frame_tb
            for packet in encoder.encode(frame):
                output.mux(packet)

        for decoded, t in recording.decoded():
            if decoded.width != width or decoded.height != height:
                raise AnonymizeInputError(
                    f"{source}: frame {index} is {decoded.width}x{decoded.height}, "
                    f"the stream started at {width}x{height}"
                )
            if decoded.format.name != "yuv420p":
                decoded = decoded.reformat(format="yuv420p")
            image = decoded.to_ndarray()
            # Timestamps from 0, on the frame grid; a gap in the input stays a gap.
            if first_time is None:
                first_time = t
            pts = max(last_pts + 1, round((t - first_time) * float(fps)))
            last_pts = pts
            if index % full_scan == 0:
                tracks.add(index, detector.detect(image[:height]))
            elif index % settings.detect_every == 0:
                # Window: how far a face moving a quarter of its size per frame (the cap the
                # tracks extrapolate with) gets between two searches.
                tracks.add(
                    index,
                    detector.detect(
                        image[:height],
                        near=tracks.boxes_at(index),
                        reach=max(0.5, 0.25 * settings.detect_every),
                    ),
                )
            pending.append(_Pending(index, pts, image))
            # A frame leaves once no later detection can reach back to it.
            while pending and pending[0].index <= index - hold:
                emit(pending.popleft())
            tracks.forget_before(index - hold)
            index += 1
        while pending:
            emit(pending.popleft())
        if index == 0:
            raise AnonymizeInputError(f"{source}: no video frames")
        for packet in encoder.encode():
            output.mux(packet)
    return AnonymizeReport(
        frames=index,
        width=width,
        height=height,
        fps=fps,
        detections=tracks.detections,
        tracks=tracks.tracks_made,
        frames_obscured=obscured,
        audio_streams_dropped=audio_dropped,
    )
