"""The anonymizer's face detector: CenterFace (ONNX, run by onnxruntime) over the whole
picture or windows around tracked faces, dark pictures brightened first, overlapping
finds suppressed. The model file comes from `make install` (vault/face_model.py)."""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from vault.anonymize_settings import (
    MODEL_ALIGN,
    MODEL_INPUT,
    MODEL_OUTPUTS,
    MODEL_PATH,
    MODEL_STRIDE,
    WINDOW_FACE,
    Box,
    DetectorSettings,
    FaceModelError,
)

log = logging.getLogger("vault.anonymize")  # one logger for the whole anonymizer


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
