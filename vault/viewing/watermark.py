"""The viewers' mark on every frame of a viewing, kept off the camera's own stamp.

The camera burned its own stamp into the top of every frame: the frame-counter strip
across the top edge and the device id, frame number and capture time in a box at the
top left (`camera_stamp_area`). The mark leaves that as it is and covers the rest:

- the viewers, the purpose and the day repeated diagonally over the whole picture,
  white on a dark edge, translucent so the footage stays visible under it;
- a darkened band along the bottom with the viewers, the purpose, the recording, when
  the viewing started (in UTC and in the municipality's zone, named) and the running
  time of the footage.

A crop that keeps any useful part of the picture keeps the mark too. Everything but
the running time is drawn once per frame size (`BurnIn` keeps it); a frame then costs
one multiply and one add over the picture below the strip (OpenCV, SIMD) and one line
of text.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from crypto.timestamps import utc_text
from vault.local_time import local_text


@dataclass(frozen=True)
class Watermark:
    """What the viewers' mark says: the band's lines and the text repeated over the picture."""

    lines: tuple[str, ...]
    recording: str = "the recording"
    tile: str = ""  # repeated across the picture; the first line when empty

    @classmethod
    def for_viewing(
        cls,
        names: Sequence[str],
        purpose: str,
        started: dt.datetime,
        recording: str,
        *,
        zone: dt.tzinfo,
    ) -> Watermark:
        """The mark of a viewing that started at `started`: in UTC, and in `zone` (the
        municipality's) with the zone's name, as the pages show it."""
        utc = utc_text(started)
        pair = " + ".join(names)
        return cls(
            (
                f"VIEWING {pair}  |  no copy",
                f"purpose {purpose}  |  {recording}",
                f"viewed {utc}  |  {local_text(started, 'second', zone)}",
            ),
            recording,
            f"{pair}  {purpose}  {utc}",
        )


_FONT = cv2.FONT_HERSHEY_SIMPLEX
TILE_ALPHA = 0.40  # the repeated text: white at this opacity, ...
TILE_EDGE_ALPHA = 0.30  # ... on a dark edge at this one, so it shows on bright footage too
TILE_ANGLE = 30.0  # degrees, rising to the right
BAND_ALPHA = 0.55  # how much the band darkens the footage under it
_BLOCK = 16  # H.264 macroblock: the stamp's area is kept clear to whole blocks and one more


def camera_stamp_area(width: int, height: int) -> tuple[int, int, int]:
    """(strip bottom, box bottom, box right) in pixels: what the camera burned in.

    The camera's on-screen display (its sensor's overlay): a frame-counter strip of two
    rows of cells, each max(8, H/30) pixels high (even), across the whole width; below
    it, at the left, the device id, frame number and capture time in three lines of
    text on a darkened box. The text scales with the picture's height: the box is about
    0.19 H high and 0.6 H wide (a device id of up to 24 characters fits), and never
    smaller than 43 x 142 pixels. Rounded up to whole macroblocks plus one, so the
    encoder does not blend the mark into the stamp's blocks.
    """
    cell_h = max(8, (height // 30) & ~1)
    strip = 2 * cell_h
    box_h = max(44, math.ceil(0.2 * height))
    box_w = max(150, math.ceil(0.62 * height))

    def blocks(px: int) -> int:
        return (px + 2 * _BLOCK - 1) // _BLOCK * _BLOCK

    return min(height, blocks(strip)), min(height, blocks(strip + box_h)), min(width, blocks(box_w))


@dataclass(frozen=True)
class _Overlay:
    """The mark for one frame size, ready to blend: frame = frame * keep / 255 + add."""

    top: int  # the rows above are the camera's strip: never touched
    keep: np.ndarray  # (H - top, W, 3) uint8: what stays of the footage (255: all of it)
    add: np.ndarray  # (H - top, W, 3) uint8: the mark's colour times its opacity
    clock_right: int  # the running time is written right-aligned to here ...
    clock_baseline: int  # ... on this baseline (the band's first line)
    clock_scale: float
    clock_thickness: int


def _text_scale(height: int) -> tuple[float, int]:
    """Font scale and stroke for the band's text: bold enough to survive x264 at 360p."""
    scale = max(0.5, height / 1080 * 1.25)
    return scale, max(2, round(scale * 2.5))


def _tiles(text: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The text repeated in staggered rows across the frame at TILE_ANGLE: (text, edge)
    as float32 coverage in 0..1."""
    scale = max(0.45, height / 1080 * 0.95)
    thick = max(1, round(scale * 1.6))
    edge = thick + max(2, round(scale * 2))
    (tw, th), _ = cv2.getTextSize(text, _FONT, scale, edge)
    side = int(math.hypot(width, height)) + 2 * th
    step_y, step_x = 4 * th, tw + 3 * th
    glyphs = np.zeros((side, side), np.uint8)
    edges = np.zeros((side, side), np.uint8)
    for row, y in enumerate(range(th, side + th, step_y)):
        for x in range(-(row % 3) * step_x // 3, side, step_x):
            cv2.putText(edges, text, (x, y), _FONT, scale, 255, edge, cv2.LINE_AA)
            cv2.putText(glyphs, text, (x, y), _FONT, scale, 255, thick, cv2.LINE_AA)
    turn = cv2.getRotationMatrix2D((side / 2, side / 2), TILE_ANGLE, 1.0)
    turn[0, 2] += (width - side) / 2
    turn[1, 2] += (height - side) / 2
    out = [
        cv2.warpAffine(layer, turn, (width, height), flags=cv2.INTER_LINEAR).astype(np.float32)
        / 255
        for layer in (glyphs, edges)
    ]
    return out[0], out[1]


def _make_overlay(mark: Watermark, width: int, height: int) -> _Overlay:
    strip, box_bottom, box_right = camera_stamp_area(width, height)
    glyphs, edges = _tiles(mark.tile or mark.lines[0], width, height)
    # The band along the bottom, its text sized so the longest line fits the width.
    scale, thick = _text_scale(height)
    clock_w = cv2.getTextSize("t+99999.99 s", _FONT, scale, thick)[0][0]
    lines = list(mark.lines)
    margin = max(6, width // 100)
    widest = max(
        cv2.getTextSize(t, _FONT, scale, thick)[0][0] + (clock_w + 3 * margin if i == 0 else 0)
        for i, t in enumerate(lines)
    )
    if widest > width - 2 * margin:
        scale *= (width - 2 * margin) / widest
        thick = max(1, round(scale * 2.5))
        clock_w = cv2.getTextSize("t+99999.99 s", _FONT, scale, thick)[0][0]
    (_, text_h), base = cv2.getTextSize("Ag", _FONT, scale, thick)
    line_h = text_h + base + max(4, text_h // 3)
    band_top = height - (line_h * len(lines) + margin)
    # The tiles stay off the camera's stamp and off the band (which has its own text).
    for layer in (glyphs, edges):
        layer[:strip] = 0
        layer[:box_bottom, :box_right] = 0
        layer[band_top:] = 0
    keep = (1 - edges * TILE_EDGE_ALPHA) * (1 - glyphs * TILE_ALPHA)
    add = glyphs * TILE_ALPHA * 255
    band_text = np.zeros((height - band_top, width), np.uint8)
    for i, text in enumerate(lines):
        y = (i + 1) * line_h - base
        cv2.putText(band_text, text, (margin, y), _FONT, scale, 255, thick, cv2.LINE_AA)
    cover = band_text.astype(np.float32) / 255
    keep[band_top:] = (1 - BAND_ALPHA) * (1 - cover)
    add[band_top:] = 255 * cover

    def planes(a: np.ndarray) -> np.ndarray:
        a8 = np.clip(np.rint(a[strip:]), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(a8[:, :, None], 3, axis=2))

    return _Overlay(
        top=strip,
        keep=planes(keep * 255),
        add=planes(add),
        clock_right=width - margin,
        clock_baseline=band_top + line_h - base,
        clock_scale=scale,
        clock_thickness=thick,
    )


class BurnIn:
    """The viewers' mark on the frames of one viewing; its overlay made once per size."""

    def __init__(self, mark: Watermark) -> None:
        self.mark = mark
        self._overlays: dict[tuple[int, int], _Overlay] = {}

    def overlay(self, width: int, height: int) -> _Overlay:
        key = (width, height)
        if key not in self._overlays:
            self._overlays[key] = _make_overlay(self.mark, width, height)
        return self._overlays[key]

    def __call__(self, img: np.ndarray, footage_seconds: float) -> np.ndarray:
        """Blend the mark into a BGR frame (in place) and write the running time; returns it."""
        h, w = img.shape[:2]
        o = self.overlay(w, h)
        below = img[o.top :]
        cv2.multiply(below, o.keep, dst=below, scale=1 / 255)
        cv2.add(below, o.add, dst=below)
        clock = f"t+{footage_seconds:.2f} s"
        (clock_w, _), _ = cv2.getTextSize(clock, _FONT, o.clock_scale, o.clock_thickness)
        cv2.putText(
            img,
            clock,
            (o.clock_right - clock_w, o.clock_baseline),
            _FONT,
            o.clock_scale,
            (255, 255, 255),
            o.clock_thickness,
            cv2.LINE_AA,
        )
        return img


def burn_in(img: np.ndarray, mark: Watermark, footage_seconds: float) -> np.ndarray:
    """The mark on one frame (in place). A viewing uses one `BurnIn` for all its frames."""
    return BurnIn(mark)(img, footage_seconds)
