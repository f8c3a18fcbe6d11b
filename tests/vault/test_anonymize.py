"""Training footage made unrecognizable: faces found before, none after, nothing to restore.

The clip is real photographs (scikit-image's astronaut and cameraman) moving over the
simulated street, written as the camera writes it (H.264 + AAC in MPEG-TS). Every claim is
checked on every frame against the true face boxes the clip was composed with.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt
import pytest
from anonymize_support import Box, Clip, Frame, HaarFaces, decode_bgr, make_clip
from skimage import data as skdata
from skimage.feature import Cascade

from vault.anonymize import (
    AnonymizeError,
    AnonymizeInputError,
    AnonymizeReport,
    AnonymizeSettings,
    Detection,
    DetectorSettings,
    FaceDetector,
    FaceTracks,
    anonymize_recording,
    iou,
    obscure,
)

# A second opinion from a detector unrelated to the anonymizer's (OpenCV's Haar cascades,
# full resolution, fine scale steps, small faces, a single neighbour is enough). It runs on
# the face and its surroundings only (one face size on every side), which keeps the test
# short; the anonymizer's own detector runs on whole frames.
SENSITIVE = HaarFaces()


@dataclass
class Run:
    clip: Clip
    report: AnonymizeReport
    out: Path
    before: list[Frame]
    after: list[Frame]
    found_before: list[list[Detection] | None]  # the anonymizer's own detector, whole frames
    found_after: list[list[Box]]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("anonymize")
    clip = make_clip(folder / "recording.ts")
    out = folder / "training.mp4"
    report = anonymize_recording(clip.path, out)
    before, after = decode_bgr(clip.path), decode_bgr(out)
    detector = FaceDetector()
    return Run(
        clip,
        report,
        out,
        before,
        after,
        [
            detector.detect_scored(_luma(f)) if n % 2 == 0 or n in clip.occlusion else None
            for n, f in enumerate(before)
        ],
        [detector.detect(_luma(f)) for f in after],
    )


def _clipped(found: Detection) -> Box:
    x, y, w, h = found.box
    return round(x), round(y), round(w), round(h)


def _luma(frame: Frame) -> npt.NDArray[np.uint8]:
    return np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), dtype=np.uint8)


def _hits(found: list[Box], face: Box) -> list[Box]:
    """Detections of the true face: overlap (IoU) at least 0.2.

    Face detection benchmarks count a detection at IoU 0.5; 0.2 is stricter here. Input
    detections of these faces overlap by 0.63 or more; a response to the corner of a
    blurred patch overlaps by a few hundredths.
    """
    return [b for b in found if iou(b, face) >= 0.2]


def _around(frame: Frame, face: Box) -> tuple[Frame, Box]:
    """The face with one face size of surroundings on every side, and the face in it."""
    x, y, w, h = face
    fh, fw = frame.shape[:2]
    x0, y0 = max(0, x - w), max(0, y - h)
    x1, y1 = min(fw, x + 2 * w), min(fh, y + 2 * h)
    return frame[y0:y1, x0:x1], (x - x0, y - y0, w, h)


def _inner(face: Box) -> tuple[slice, slice]:
    x, y, w, h = face
    return slice(y + h // 10, y + h - h // 10), slice(x + w // 10, x + w - w // 10)


def _laplacian_variance(gray: npt.NDArray[np.uint8]) -> float:
    return float(cv2.Laplacian(gray.astype(np.float64), cv2.CV_64F).var())


def _high_band_energy(gray: npt.NDArray[np.uint8]) -> float:
    """Spectral energy above a quarter of the Nyquist frequency (mean removed, Hann window).

    The window keeps the jump between opposite edges (the FFT sees the patch as periodic)
    from spreading a smooth gradient's energy over every frequency.
    """
    g = (gray.astype(np.float64) - gray.mean()) * np.outer(
        np.hanning(gray.shape[0]), np.hanning(gray.shape[1])
    )
    spectrum = np.abs(np.fft.fft2(g)) ** 2
    fy = np.abs(np.fft.fftfreq(g.shape[0]))[:, None]
    fx = np.abs(np.fft.fftfreq(g.shape[1]))[None, :]
    return float(spectrum[np.maximum(fx, fy) > 0.125].sum() / g.size)


def _unsharp(frame: Frame, amount: float = 4.0, sigma: float = 2.0) -> Frame:
    """The usual attempt to sharpen a blurred picture back."""
    soft = cv2.GaussianBlur(frame, (0, 0), sigma)
    return np.asarray(cv2.addWeighted(frame, 1 + amount, soft, -amount, 0), dtype=np.uint8)


def _psnr(a: Frame, b: Frame) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_the_detector_finds_every_face_in_the_input(run: Run) -> None:
    for subject in run.clip.subjects:
        visible = found = 0
        for found_on, face, hidden in zip(
            run.found_before, subject.boxes, subject.occluded, strict=True
        ):
            assert face is not None
            if found_on is not None and not hidden:
                visible += 1
                found += bool(_hits([_clipped(d) for d in found_on], face))
        assert found >= 0.9 * visible, f"{subject.name}: found on {found} of {visible} frames"
    # The bar really hides the astronaut: on those frames there is nothing to detect, so
    # only the tracking keeps the face blurred there. (The learned detector still guesses a
    # face from the head around the bar, at scores of 0.12-0.2 where the visible face has
    # 0.9: a confident detection of it is what must be missing.)
    astronaut = run.clip.subjects[0]
    hidden_hits = sum(
        bool(
            _hits(
                [_clipped(d) for d in run.found_before[n] or [] if d.score >= 0.5],
                astronaut.boxes[n] or (0, 0, 0, 0),
            )
        )
        for n in run.clip.occlusion
    )
    assert hidden_hits <= len(run.clip.occlusion) // 2


def test_no_face_is_found_on_any_output_frame(run: Run) -> None:
    assert len(run.after) == len(run.before) == run.clip.frames
    sensitive = SENSITIVE
    lbp = Cascade(skdata.lbp_frontal_face_cascade_filename())  # scikit-image's own detector
    for subject in run.clip.subjects:
        sensitive_before = checked_before = 0
        for n, (before, after) in enumerate(zip(run.before, run.after, strict=True)):
            face = subject.boxes[n]
            assert face is not None
            assert not _hits(run.found_after[n], face), f"{subject.name} frame {n}"
            crop, inner = _around(after, face)
            assert not _hits(sensitive.detect(_luma(crop)), inner), f"{subject.name} frame {n}"
            if n % 2 == 0:
                restored = _unsharp(crop)
                assert not _hits(sensitive.detect(_luma(restored)), inner), (
                    f"{subject.name} frame {n}: found after sharpening"
                )
            if subject.name == "astronaut" and n % 6 == 0:
                found = lbp.detect_multi_scale(
                    img=crop[..., ::-1],
                    scale_factor=1.1,
                    step_ratio=1,
                    min_size=(24, 24),
                    max_size=(400, 400),
                )
                boxes = [(d["c"], d["r"], d["width"], d["height"]) for d in found]
                assert not _hits(boxes, inner), f"LBP cascade found the astronaut, frame {n}"
            if n % 3 == 0 and not subject.occluded[n]:
                crop_in, inner_in = _around(before, face)
                checked_before += 1
                sensitive_before += bool(_hits(sensitive.detect(_luma(crop_in)), inner_in))
        # The sensitive detector is not blind: it finds the face in the input.
        assert sensitive_before == checked_before > 0, subject.name


def test_blurred_faces_keep_no_high_frequencies(run: Run) -> None:
    worst_lap = worst_fft = 0.0
    for subject in run.clip.subjects:
        for n, (before, after) in enumerate(zip(run.before, run.after, strict=True)):
            face = subject.boxes[n]
            if face is None or subject.occluded[n]:
                continue
            rows, cols = _inner(face)
            g_in, g_out = _luma(before)[rows, cols], _luma(after)[rows, cols]
            g_restored = _luma(_unsharp(after))[rows, cols]
            lap_in = _laplacian_variance(g_in)
            fft_in = _high_band_energy(g_in)
            worst_lap = max(
                worst_lap,
                _laplacian_variance(g_out) / lap_in,
                _laplacian_variance(g_restored) / lap_in / 25,
            )
            worst_fft = max(worst_fft, _high_band_energy(g_out) / fft_in)
            # Sharpening amplifies what is left; there is almost nothing left to amplify.
            assert _laplacian_variance(g_restored) < 0.2 * lap_in, f"{subject.name} frame {n}"
    assert worst_lap < 0.02, f"Laplacian variance kept {worst_lap:.4f} of the original"
    assert worst_fft < 0.02, f"high-band energy kept {worst_fft:.4f} of the original"


def test_output_is_h264_mp4_same_size_and_rate_from_zero_without_sound(run: Run) -> None:
    with av.open(str(run.clip.path)) as source:
        assert len(source.streams.audio) == 1  # the input did have sound
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(run.out)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    info = json.loads(probe.stdout)
    assert [s["codec_type"] for s in info["streams"]] == ["video"]
    video = info["streams"][0]
    assert video["codec_name"] == "h264"
    assert (video["width"], video["height"]) == (640, 360)
    assert video["avg_frame_rate"] == "24/1"
    assert "mp4" in info["format"]["format_name"]
    assert float(info["format"].get("start_time", 0.0)) == 0.0
    with av.open(str(run.out)) as container:
        times = [f.time for f in container.decode(video=0)]
    assert times[0] == 0.0 and len(times) == run.clip.frames
    assert np.allclose(np.diff(times), 1 / 24)
    assert run.report.audio_streams_dropped == 1
    assert run.report.frames == run.clip.frames
    assert run.report.frames_obscured == run.clip.frames


def test_the_burned_in_text_stays_readable(run: Run) -> None:
    # The device id and time box at the top left is not a face: it comes through intact,
    # except where a head reaches into it (the astronaut's hair does on the later frames:
    # the head is hidden, not only the face, up to a face size around the face box).
    for n in range(0, run.clip.frames, 8):
        keep = np.ones((90 - 24, 200), dtype=bool)
        for subject in run.clip.subjects:
            x, y, w, h = subject.boxes[n] or (0, 0, 0, 0)
            keep[max(0, y - h - 24) : max(0, y + 2 * h - 24), max(0, x - w) : x + 2 * w] = False
        box_in, box_out = run.before[n][24:90, :200], run.after[n][24:90, :200]
        assert keep.mean() > 0.5, n  # most of the text box is still checked
        assert _psnr(box_in[keep], box_out[keep]) > 30, n


def test_footage_without_faces_passes_through(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "street.ts", seconds=0.75, with_faces=False, audio=False)
    out = tmp_path / "street.mp4"
    report = anonymize_recording(clip.path, out)
    before, after = decode_bgr(clip.path), decode_bgr(out)
    assert len(after) == len(before) == clip.frames
    changed = []
    for a, b in zip(before, after, strict=True):
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2)
        changed.append(float((diff > 48).mean()))
        assert _psnr(a, b) > 30
    # A wall blurred now and then is accepted; a blanked picture is not.
    assert max(changed) < 0.05, f"up to {max(changed):.1%} of a frame changed"
    assert report.frames == clip.frames


def test_tracks_cover_the_frames_around_every_detection() -> None:
    tracks = FaceTracks(hold_frames=4)
    for n in range(10, 20):  # seen on frames 10..19, moving right 2 px per frame
        tracks.add(n, [(100 + 2 * n, 50, 40, 40)])
    for n in range(28, 32):  # hidden on 20..27 (a bar), seen again
        tracks.add(n, [(100 + 2 * n, 50, 40, 40)])
    assert tracks.tracks_made == 1  # one face, not two
    for n in range(6, 36):  # from 4 frames before the first sighting to 4 after the last
        boxes = tracks.boxes_at(n)
        assert len(boxes) == 1, n
        x, y, w, h = boxes[0]
        cx = 100 + 2 * n + 20  # where the face's centre really is
        assert x <= cx - 20 and cx + 20 <= x + w, (n, boxes[0])
    assert tracks.boxes_at(5) == [] and tracks.boxes_at(36) == []


def test_a_new_face_is_covered_before_its_first_detection(tmp_path: Path) -> None:
    # Frames are written only when no later detection can reach back to them: a face
    # first detected on frame k is blurred on frames k - hold .. k - 1 as well.
    tracks = FaceTracks(hold_frames=3)
    tracks.add(0, [])
    tracks.add(5, [(10, 10, 30, 30)])
    tracks.add(6, [(12, 10, 30, 30)])
    assert [bool(tracks.boxes_at(n)) for n in range(0, 7)] == [0, 0, 1, 1, 1, 1, 1]
    x, _, w, _ = tracks.boxes_at(2)[0]
    assert x <= 10 - 6 and x + w >= 40 - 6  # moved back along its velocity, and grown


def test_obscure_smears_only_the_box_with_its_margin() -> None:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 256, (120, 160), dtype=np.uint8)
    u = rng.integers(0, 256, (60, 80), dtype=np.uint8)
    v = rng.integers(0, 256, (60, 80), dtype=np.uint8)
    y0, u0 = y.copy(), u.copy()
    assert obscure((y, u, v), (60.0, 40.0, 40.0, 40.0), margin=0.25, cells=4)
    assert np.array_equal(y[:, :48], y0[:, :48]) and np.array_equal(y[:, 112:], y0[:, 112:])
    assert np.array_equal(y[:28], y0[:28]) and np.array_equal(y[92:], y0[92:])
    assert np.array_equal(u[:, :24], u0[:, :24])
    # The face box itself (inside the feathered edge of the margin) keeps no texture.
    assert _laplacian_variance(y[40:80, 60:100]) < 0.01 * _laplacian_variance(y0[40:80, 60:100])
    assert not np.array_equal(y[30:40, 50:110], y0[30:40, 50:110])  # the margin is smeared too


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: AnonymizeSettings(cells=20), "cells 20 out of range"),
        (lambda: AnonymizeSettings(detect_every=0), "detect_every 0 out of range"),
        (lambda: DetectorSettings(threshold=0.0), "threshold 0.0 out of range"),
        (lambda: AnonymizeSettings(head_pad=3.0), "head_pad 3.0 out of range"),
        (
            lambda: FaceDetector(DetectorSettings(model=Path("nope.onnx"))),
            "nope.onnx is missing: run make install",
        ),
    ],
)
def test_bad_settings_name_the_field(make: Callable[[], object], error: str) -> None:
    with pytest.raises(AnonymizeError, match=error):
        make()


def test_tracks_must_outlast_the_gap_between_detections(run: Run, tmp_path: Path) -> None:
    settings = AnonymizeSettings(hold_seconds=0.1, detect_every=4)  # 3 frames at 24 fps
    with pytest.raises(AnonymizeError, match="hold_seconds 0.1 is 3 frames at 24 fps"):
        anonymize_recording(run.clip.path, tmp_path / "out.mp4", settings=settings)
    assert list(tmp_path.iterdir()) == []


def test_bad_input_fails_cleanly_and_leaves_no_output(tmp_path: Path) -> None:
    garbage = tmp_path / "notavideo.ts"
    garbage.write_bytes(b"\x47" + bytes(range(256)) * 40)
    out = tmp_path / "out.mp4"
    for source in (garbage, tmp_path / "missing.ts"):
        with pytest.raises(AnonymizeInputError, match=source.name):
            anonymize_recording(source, out)
    assert list(tmp_path.iterdir()) == [garbage]
    out.write_bytes(b"keep")
    with pytest.raises(FileExistsError, match="out.mp4 exists"):
        anonymize_recording(garbage, out)
    assert out.read_bytes() == b"keep"


def test_whole_picture_searches_must_come_within_the_hold(run: Run, tmp_path: Path) -> None:
    # A face coming into view is found by the next whole-picture search; the frames
    # before are covered only as far back as hold_seconds reaches.
    settings = AnonymizeSettings(full_scan_every=13)  # hold: 0.5 s = 12 frames at 24 fps
    with pytest.raises(AnonymizeError, match="fewer than full_scan_every 13"):
        anonymize_recording(run.clip.path, tmp_path / "out.mp4", settings=settings)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(AnonymizeError, match="full_scan_every 31 out of range"):
        AnonymizeSettings(full_scan_every=31)
