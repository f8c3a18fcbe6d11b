"""Scenes a body camera sees, made of real face photographs, with the true box of every face
on every frame; and a judge that says, per box, whether the face is still there.

The faces: the 100 photographs of Labeled Faces in the Wild that scikit-image ships
(`data.lfw_subset()`, 25x25 grey crops from brow to chin, no download) and its two larger
pictures, the astronaut (Eileen Collins, frontal) and the cameraman (half profile). Each is
pasted, with a soft oval edge, onto the simulated camera's street scene.

Scenes (`SCENES`): several faces at once with one covered for a few frames, small faces
(30-60 px), heads rolled by up to 30 degrees, faces turned towards profile (a real half
profile, and frontal faces squeezed in perspective), dim light (gamma 2.5), motion blur,
and faces entering from the left, top and right edges. Sizes are in pixels of the frame, so
a scene at 1280x720 has the same faces as one at 640x360, only more street around them.

The judge (`judge_box`): a face box on an output frame counts as obscured when its texture
is gone (Laplacian variance and high-band spectral energy both below a share of the input's)
and OpenCV's Haar cascades, an older detector unrelated to the anonymizer's, find no face
there, also on a version of the crop enlarged for the cascades' minimum size.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from anonymize_support import FIRST_FRAME, write_camera_clip
from skimage import data

from sim.sensor import SyntheticSensor

Frame = npt.NDArray[np.uint8]
Box = tuple[int, int, int, int]

# Texture left in a face box, as a share of the same box on the input frame: the smeared
# head keeps a gradient only (about 0.001); a face left as it was keeps 0.5-1.
TEXTURE_LEFT = 0.15
SMALL_FACE = 30  # below this many pixels high, a face may be missed (documented limit)
MOSTLY_OUTSIDE = 0.5  # a face with less than this share inside the picture: likewise


@dataclass(frozen=True)
class Photo:
    """A face photograph (BGR) and the face inside it (x, y, w, h)."""

    name: str
    picture: Frame
    face: Box


@functools.cache
def lfw_faces() -> tuple[Photo, ...]:
    """The 100 LFW faces of scikit-image, as 100x100 BGR pictures (cubic enlargement)."""
    faces = data.lfw_subset()[:100]  # the first 100 are faces, the rest are not
    out = []
    for i, grey in enumerate(faces):
        big = cv2.resize((grey * 255).astype(np.uint8), (100, 100), interpolation=cv2.INTER_CUBIC)
        bgr = cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)
        # A warm tint: grey skin against a grey street is not what a camera sees.
        tinted = np.clip(bgr * np.array([0.85, 0.95, 1.1]), 0, 255).astype(np.uint8)
        out.append(Photo(f"lfw{i}", tinted, (8, 6, 84, 90)))
    return tuple(out)


@functools.cache
def large_faces() -> tuple[Photo, ...]:
    """scikit-image's astronaut and (mirrored) cameraman, cropped around the head."""
    astro = np.ascontiguousarray(data.astronaut()[20:240, 120:340, ::-1])
    camera = cv2.cvtColor(
        np.ascontiguousarray(data.camera()[40:260, 100:320][:, ::-1]), cv2.COLOR_GRAY2BGR
    )
    return (
        Photo("astronaut", astro, (57, 46, 95, 95)),
        Photo("cameraman", np.asarray(camera, dtype=np.uint8), (220 - 46 - 122, 41, 122, 122)),
    )


@dataclass
class Actor:
    """One face in a scene: where it is on each frame, as a function of the frame number."""

    photo: Photo
    # frame number -> (face centre x, centre y, face height in px, roll degrees, squeeze)
    path: Callable[[int], tuple[float, float, float, float, float]]
    covered: range = range(0)  # frames on which a bar covers the face
    blur: int = 0  # motion blur along x, in pixels


@dataclass
class Scene:
    name: str
    actors: list[Actor]
    frames: int = 12
    gamma: float = 1.0  # > 1 darkens (dim light)


@dataclass
class Truth:
    """The true face box (unclipped) of one face on one frame, and what the judge needs."""

    actor: int
    box: tuple[float, float, float, float]
    covered: bool

    def visible(self, width: int, height: int) -> Box | None:
        x, y, w, h = self.box
        x0, y0 = max(0, round(x)), max(0, round(y))
        x1, y1 = min(width, round(x + w)), min(height, round(y + h))
        return (x0, y0, x1 - x0, y1 - y0) if x1 - x0 >= 4 and y1 - y0 >= 4 else None

    def excused(self, width: int, height: int) -> bool:
        """Small, or mostly outside the picture: the 0.5 % allowance."""
        x, y, w, h = self.box
        seen = self.visible(width, height)
        inside = 0.0 if seen is None else seen[2] * seen[3] / (w * h)
        return h < SMALL_FACE or inside < MOSTLY_OUTSIDE


@dataclass
class Footage:
    scene: Scene
    path: Path
    width: int
    height: int
    fps: int
    frames: list[Frame]  # as composed (before encoding)
    truth: list[list[Truth]] = field(default_factory=list)  # per frame


def _head(photo: Photo, height: float, roll: float, squeeze: float) -> tuple[Frame, Frame, Any]:
    """The photo scaled so its face is `height` px high, squeezed across (a head turned
    away), rolled; with a soft oval alpha; and the matrix from photo to patch pixels."""
    fx, fy, fw, fh = photo.face
    s = height / fh
    ph, pw = photo.picture.shape[:2]
    # Squeeze about the face centre: one side nearer (wider) than the other (perspective).
    cx, cy = fx + fw / 2, fy + fh / 2
    src = np.float32([[0, 0], [pw, 0], [pw, ph], [0, ph]])
    # The far side (left) is squeezed more, and shorter, than the near side.
    far_y = 0.8 + 0.2 * squeeze
    dst = np.float32(
        [
            [cx - cx * squeeze, cy - cy * far_y],
            [cx + (pw - cx) * squeeze**0.5, 0],
            [cx + (pw - cx) * squeeze**0.5, ph],
            [cx - cx * squeeze, cy + (ph - cy) * far_y],
        ]
    )
    warp = cv2.getPerspectiveTransform(src, dst)
    out = int(math.ceil(max(pw, ph) * s * 1.5)) + 4
    centre = out / 2
    rot = cv2.getRotationMatrix2D((cx * s, cy * s), roll, 1.0)
    rot[0, 2] += centre - cx * s
    rot[1, 2] += centre - cy * s
    scale = np.diag([s, s, 1.0])
    full = np.vstack([rot, [0, 0, 1]]) @ scale @ warp
    alpha_src = np.zeros((ph, pw), np.uint8)
    cv2.ellipse(alpha_src, (pw // 2, ph // 2), (pw // 2 - 1, ph // 2 - 1), 0, 0, 360, 255, -1)
    alpha_src = cv2.GaussianBlur(alpha_src, (0, 0), max(1.0, pw / 40))
    patch = cv2.warpPerspective(photo.picture, full, (out, out), flags=cv2.INTER_AREA)
    alpha = cv2.warpPerspective(alpha_src, full, (out, out), flags=cv2.INTER_LINEAR)
    return np.asarray(patch, np.uint8), np.asarray(alpha, np.uint8), full


def _face_box(photo: Photo, matrix: Any, at: tuple[float, float]) -> tuple[float, ...]:
    """The bounding box of the photo's face box mapped into the frame (patch at `at`)."""
    fx, fy, fw, fh = photo.face
    corners = np.float32([[[fx, fy], [fx + fw, fy], [fx + fw, fy + fh], [fx, fy + fh]]])
    mapped = cv2.perspectiveTransform(corners, matrix)[0]
    x0, y0 = mapped.min(axis=0)
    x1, y1 = mapped.max(axis=0)
    return (float(x0 + at[0]), float(y0 + at[1]), float(x1 - x0), float(y1 - y0))


def _paste(frame: Frame, patch: Frame, alpha: Frame, x: int, y: int) -> None:
    fh, fw = frame.shape[:2]
    ph, pw = patch.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(fw, x + pw), min(fh, y + ph)
    if x1 <= x0 or y1 <= y0:
        return
    p = patch[y0 - y : y1 - y, x0 - x : x1 - x].astype(np.float32)
    a = alpha[y0 - y : y1 - y, x0 - x : x1 - x, None].astype(np.float32) / 255
    region = frame[y0:y1, x0:x1].astype(np.float32)
    frame[y0:y1, x0:x1] = (p * a + region * (1 - a) + 0.5).astype(np.uint8)


def compose(scene: Scene, width: int, height: int, fps: int) -> Footage:
    """The scene's frames and the true face boxes on each."""
    sensor = SyntheticSensor(width, height, "BC-FACE0001")
    footage = Footage(scene, Path(), width, height, fps, [])
    for n in range(scene.frames):
        frame = sensor.capture(FIRST_FRAME + n, 1_790_000_000.0 + n / fps)
        truths = []
        for i, actor in enumerate(scene.actors):
            cx, cy, size, roll, squeeze = actor.path(n)
            cx, cy = cx * width, cy * height  # centres are shares of the frame
            patch, alpha, matrix = _head(actor.photo, size, roll, squeeze)
            if actor.blur:
                kernel = np.zeros((1, actor.blur), np.float32) + 1 / actor.blur
                patch = np.asarray(cv2.filter2D(patch, -1, kernel), np.uint8)
                alpha = np.asarray(cv2.filter2D(alpha, -1, kernel), np.uint8)
            box = _face_box(actor.photo, matrix, (0, 0))
            at = (round(cx - box[0] - box[2] / 2), round(cy - box[1] - box[3] / 2))
            _paste(frame, patch, alpha, at[0], at[1])
            truth = Truth(i, _face_box(actor.photo, matrix, at), n in actor.covered)  # type: ignore[arg-type]
            if truth.covered:
                x, y, w, h = truth.box
                cv2.rectangle(
                    frame,
                    (round(x - 0.3 * w), round(y - 0.3 * h)),
                    (round(x + 1.3 * w), round(y + 1.3 * h)),
                    (110, 120, 118),
                    -1,
                )
            truths.append(truth)
        if scene.gamma != 1.0:
            lut = (255 * (np.arange(256) / 255) ** scene.gamma + 0.5).astype(np.uint8)
            frame = np.asarray(cv2.LUT(frame, lut), np.uint8)
        footage.frames.append(frame)
        footage.truth.append(truths)
    return footage


def write(footage: Footage, path: Path) -> Footage:
    write_camera_clip(path, footage.frames, footage.fps, audio=False)
    footage.path = path
    return footage


def _linear(a: tuple[float, ...], b: tuple[float, ...], frames: int) -> Callable[[int], Any]:
    """A path from state `a` to state `b` over the scene's frames."""

    def at(n: int) -> tuple[float, ...]:
        t = n / max(1, frames - 1)
        return tuple(p + (q - p) * t for p, q in zip(a, b, strict=True))

    return at


def scenes(frames: int = 12) -> list[Scene]:
    """Every scene, each with faces of its own (34 different people in all)."""
    lfw = lfw_faces()
    astro, camera = large_faces()
    pick = iter(lfw)

    def actor(
        a: tuple[float, ...], b: tuple[float, ...], photo: Photo | None = None, **kw: Any
    ) -> Actor:
        return Actor(photo or next(pick), _linear(a, b, frames), **kw)

    f = frames
    return [
        Scene(
            "crowd",
            [
                actor(
                    (0.12, 0.35, 150, 0, 1),
                    (0.20, 0.38, 170, 0, 1),
                    astro,
                    covered=range(f // 3, f // 3 + 3),
                ),
                actor((0.85, 0.40, 140, 0, 0.75), (0.80, 0.42, 120, 0, 0.75), camera),
                actor((0.35, 0.30, 110, 0, 1), (0.38, 0.32, 115, 0, 1)),
                actor((0.55, 0.35, 100, 0, 1), (0.52, 0.36, 105, 0, 1)),
                actor((0.68, 0.70, 90, 0, 1), (0.66, 0.68, 95, 0, 1)),
                actor((0.30, 0.72, 80, 0, 1), (0.34, 0.70, 85, 0, 1)),
            ],
            f,
        ),
        Scene(
            "small",
            [
                actor(
                    (0.10 + 0.11 * i, 0.45 + 0.04 * (i % 3), h, 0, 1),
                    (0.12 + 0.11 * i, 0.46 + 0.04 * (i % 3), h + 4, 0, 1),
                )
                for i, h in enumerate((30, 34, 38, 42, 46, 50, 55, 60))
            ],
            f,
        ),
        Scene(
            "tilted",
            [
                actor((0.15, 0.45, 90, -30, 1), (0.18, 0.45, 90, -20, 1)),
                actor((0.38, 0.40, 70, 30, 1), (0.40, 0.42, 75, 20, 1)),
                actor((0.62, 0.50, 110, -20, 1), (0.60, 0.50, 110, -30, 1)),
                actor((0.85, 0.45, 60, 25, 1), (0.83, 0.47, 60, 30, 1)),
            ],
            f,
        ),
        Scene(
            "profile",
            [
                actor((0.15, 0.45, 120, 0, 0.85), (0.17, 0.45, 120, 0, 0.45)),
                actor((0.40, 0.45, 90, 5, 0.55), (0.42, 0.45, 90, 5, 0.4)),
                actor((0.62, 0.50, 100, 0, 0.65), (0.60, 0.50, 100, 0, 0.5)),
                actor((0.85, 0.45, 80, -5, 0.7), (0.83, 0.45, 85, -5, 0.45)),
            ],
            f,
        ),
        Scene(
            "dim",
            [
                actor((0.15, 0.45, 100, 0, 1), (0.18, 0.45, 100, 0, 1)),
                actor((0.35, 0.40, 70, 10, 1), (0.37, 0.42, 70, 10, 1)),
                actor((0.55, 0.50, 55, 0, 1), (0.56, 0.50, 60, 0, 1)),
                actor((0.72, 0.45, 90, -10, 0.8), (0.70, 0.45, 90, -10, 0.8)),
                actor((0.88, 0.55, 45, 0, 1), (0.87, 0.55, 45, 0, 1)),
            ],
            f,
            gamma=2.5,
        ),
        Scene(
            "blur",
            [
                actor((0.10, 0.45, 100, 0, 1), (0.40, 0.45, 100, 0, 1), blur=15),
                actor((0.90, 0.35, 80, 5, 1), (0.60, 0.35, 80, 5, 1), blur=11),
                actor((0.30, 0.75, 60, 0, 1), (0.55, 0.72, 60, 0, 1), blur=9),
                actor((0.75, 0.70, 120, -5, 1), (0.70, 0.70, 120, -5, 1), blur=7),
            ],
            f,
        ),
        Scene(
            "edge",
            [
                actor((-0.06, 0.45, 100, 0, 1), (0.12, 0.45, 100, 0, 1)),
                actor((0.50, -0.12, 90, 0, 1), (0.50, 0.15, 90, 0, 1)),
                actor((1.06, 0.60, 80, 0, 1), (0.90, 0.60, 80, 0, 1)),
            ],
            f,
        ),
    ]


def _luma(frame: Frame) -> npt.NDArray[np.uint8]:
    return np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), dtype=np.uint8)


def laplacian_variance(grey: npt.NDArray[np.uint8]) -> float:
    return float(cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F).var())


def high_band_energy(grey: npt.NDArray[np.uint8]) -> float:
    """Spectral energy above a quarter of the Nyquist frequency (mean removed, Hann window)."""
    g = (grey.astype(np.float64) - grey.mean()) * np.outer(
        np.hanning(grey.shape[0]), np.hanning(grey.shape[1])
    )
    spectrum = np.abs(np.fft.fft2(g)) ** 2
    fy = np.abs(np.fft.fftfreq(g.shape[0]))[:, None]
    fx = np.abs(np.fft.fftfreq(g.shape[1]))[None, :]
    return float(spectrum[np.maximum(fx, fy) > 0.125].sum() / g.size)


@functools.cache
def _cascades() -> tuple[Any, ...]:
    names = (
        "haarcascade_frontalface_default.xml",
        "haarcascade_frontalface_alt2.xml",
        "haarcascade_profileface.xml",
    )
    return tuple(cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / n)) for n in names)  # type: ignore[attr-defined]


def haar_faces(grey: npt.NDArray[np.uint8], smallest: int = 20, largest: int = 0) -> list[Box]:
    """Every face OpenCV's Haar cascades see (frontal, and profile both ways), sensitive:
    fine scale steps, two neighbours are enough."""
    found: list[Box] = []
    width = grey.shape[1]
    sizes: dict[str, Any] = {"minSize": (smallest, smallest)}
    if largest:
        sizes["maxSize"] = (largest, largest)
    for i, cascade in enumerate(_cascades()):
        for mirrored in (False, True) if i == 2 else (False,):
            picture = cv2.flip(grey, 1) if mirrored else grey
            for x, y, w, h in cascade.detectMultiScale(picture, 1.1, 2, **sizes):
                x = width - int(x) - int(w) if mirrored else int(x)
                found.append((x, int(y), int(w), int(h)))
    return found


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def haar_finds(frame: Frame, box: Box) -> bool:
    """The cascades find a face at `box` (IoU >= 0.3), on the box with one face size of
    surroundings, scaled so the face is 48 px high, searched at 24-96 px: faces of about
    the true one's size, which is what IoU >= 0.3 can match (and cheap)."""
    x, y, w, h = box
    fh, fw = frame.shape[:2]
    x0, y0 = max(0, x - w), max(0, y - h)
    x1, y1 = min(fw, x + 2 * w), min(fh, y + 2 * h)
    k = 48 / max(1, h)
    crop = np.asarray(
        cv2.resize(
            _luma(frame[y0:y1, x0:x1]),
            None,
            fx=k,
            fy=k,
            interpolation=cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA,
        ),
        np.uint8,
    )
    inner = ((x - x0) * k, (y - y0) * k, w * k, h * k)
    return any(_iou(b, inner) >= 0.3 for b in haar_faces(crop, 24, 96))


@dataclass
class Verdict:
    obscured: bool
    texture: float  # share of the input's texture left (the larger of the two measures)
    haar: bool  # the cascades found the face on the output


def judge_box(before: Frame, after: Frame, box: Box) -> Verdict:
    """Whether the face at `box` (visible part) is gone from `after`."""
    x, y, w, h = box
    # The inner part: the outer tenth is where the face meets its surroundings.
    rows = slice(y + h // 10, y + h - h // 10)
    cols = slice(x + w // 10, x + w - w // 10)
    g_in, g_out = _luma(before)[rows, cols], _luma(after)[rows, cols]
    if g_in.size < 16:
        return Verdict(True, 0.0, False)
    lap = laplacian_variance(g_out) / max(1e-6, laplacian_variance(g_in))
    band = high_band_energy(g_out) / max(1e-6, high_band_energy(g_in))
    texture = max(lap, band)
    haar = haar_finds(after, box)
    return Verdict(texture < TEXTURE_LEFT and not haar, texture, haar)


@dataclass
class SceneResult:
    name: str
    boxes: int = 0
    obscured: int = 0
    excused: int = 0  # boxes small or mostly outside
    excused_missed: int = 0
    missed: list[str] = field(default_factory=list)  # "frame n face i: texture t, haar"
    haar_input: int = 0  # boxes the cascades find on the input (the judge is not blind)

    @property
    def recall(self) -> float:
        return self.obscured / self.boxes if self.boxes else 1.0

    @property
    def strict_missed(self) -> int:
        return self.boxes - self.obscured - self.excused_missed


def judge(
    footage: Footage, before: list[Frame], after: list[Frame], check_input: bool = False
) -> SceneResult:
    """Every true face box on every frame, judged on the decoded input and output."""
    result = SceneResult(footage.scene.name)
    assert len(before) == len(after) == len(footage.truth)
    for n, truths in enumerate(footage.truth):
        for truth in truths:
            seen = truth.visible(footage.width, footage.height)
            if seen is None or truth.covered:
                continue
            result.boxes += 1
            excused = truth.excused(footage.width, footage.height)
            result.excused += excused
            verdict = judge_box(before[n], after[n], seen)
            if check_input:
                result.haar_input += haar_finds(before[n], seen)
            if verdict.obscured:
                result.obscured += 1
            else:
                result.excused_missed += excused
                result.missed.append(
                    f"frame {n} face {truth.actor} ({seen[3]} px{', excused' if excused else ''}): "
                    f"texture {verdict.texture:.2f}{', Haar finds it' if verdict.haar else ''}"
                )
    return result
