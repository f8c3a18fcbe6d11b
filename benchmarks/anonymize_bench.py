"""Anonymization benchmark: does the training copy hide every face, and how fast at 720p?

Recall: the face scenes of the tests (`tests/vault/face_scenes.py`: 34 real faces, several
at once, 30-60 px, rolled, turned to profile, dim, motion-blurred, covered for a few frames,
entering from the edges) at 1280x720 30 fps, `--scene-frames` frames each, through
`vault.anonymize.anonymize_recording` with its defaults. Every true face box on every frame
is judged: obscured when its texture is gone and OpenCV's Haar cascades do not find it.
Goal: 100 % of face boxes obscured on every frame; misses allowed only on frames where the
face is under 30 px high or mostly outside the picture, at most 0.5 % of all boxes.

Speed: both sides read the same decrypted recording (H.264 + AAC in MPEG-TS, as the camera
writes it: real photographs of faces moving over the simulated street) and write an H.264
MP4 with the same encoder settings, in the same run:

- baseline: decode + encode, nothing else (the least any anonymizer has to do);
- anonymize: `anonymize_recording` with its defaults (face detection, tracking, blurring,
  sound dropped).

Runs alternate (baseline, anonymize, baseline, ...); each figure is the median of
`--runs`. Reported: speed as a multiple of real time for both (goal for the anonymizer:
>= 0.5x real time on 2 cores; recall comes first), the ratio anonymize / baseline, and CPU
seconds per second of footage (all threads of this process: onnxruntime and x264 use more
than one core). Wall times depend on what else the machine runs; CPU seconds less so.

`--detect-every`, `--full-scan-every` and `--detect-width` show what less frequent or
coarser detection would gain, and what it costs in recall (both parts use them).

Usage: python benchmarks/anonymize_bench.py [--seconds 4] [--runs 3] [--scene-frames 24]
       python benchmarks/anonymize_bench.py --recall-only | --speed-only
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "tests" / "vault"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

REAL_TIME_GOAL = 0.50  # x real time, 1280x720 30 fps, 2 cores
ALLOWED_MISSES = 0.005  # of all boxes, only where a face is small or mostly outside


def transcode(source: Path, out: Path, preset: str, crf: int) -> int:
    """Decode and re-encode every frame, as the anonymizer's output is encoded; frames."""
    import av

    frames = 0
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = Fraction(stream.average_rate or 30)
        with av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"}) as output:
            encoder: Any = output.add_stream(
                "libx264", rate=fps, options={"preset": preset, "crf": str(crf)}
            )
            encoder.width, encoder.height = stream.codec_context.width, stream.codec_context.height
            encoder.pix_fmt = "yuv420p"
            tb = Fraction(1, 1) / fps
            for frame in container.decode(stream):
                frame.pts, frame.time_base = frames, tb
                for packet in encoder.encode(frame):
                    output.mux(packet)
                frames += 1
            for packet in encoder.encode():
                output.mux(packet)
    return frames


def timed(work: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def recall(settings: Any, frames: int, tmp: Path) -> None:
    """Every scene through the anonymizer; every face box on every frame judged."""
    from anonymize_support import decode_bgr
    from face_scenes import compose, judge, scenes, write

    from vault.anonymize import anonymize_recording

    width, height, fps = 1280, 720, 30
    print(f"recall: face scenes at {width}x{height} {fps} fps, {frames} frames each")
    total = obscured = excused_missed = strict_missed = 0
    for scene in scenes(frames):
        footage = write(compose(scene, width, height, fps), tmp / f"{scene.name}.ts")
        out = tmp / f"{scene.name}.mp4"
        anonymize_recording(footage.path, out, settings=settings, overwrite=True)
        result = judge(footage, decode_bgr(footage.path), decode_bgr(out))
        total += result.boxes
        obscured += result.obscured
        excused_missed += result.excused_missed
        strict_missed += result.strict_missed
        print(
            f"  {scene.name:8s} {result.obscured:4d} of {result.boxes:4d} face boxes obscured "
            f"{result.recall:7.2%}  ({result.excused} small or mostly outside, "
            f"{result.excused_missed} of those missed)"
        )
        for line in result.missed[:5]:
            print(f"      missed: {line}")
    share = obscured / total if total else 1.0
    allowed = ALLOWED_MISSES * total
    met = strict_missed == 0 and excused_missed <= allowed
    print(
        f"  all      {obscured:4d} of {total:4d} face boxes obscured {share:7.2%}; missed "
        f"{strict_missed} that must not be, {excused_missed} small or mostly outside "
        f"(allowed {allowed:.1f})"
    )
    print(
        "  goal: every face box on every frame, misses only where small or mostly outside, "
        f"at most {ALLOWED_MISSES:.1%}: {'met' if met else 'MISSED'}"
    )


def speed(settings: Any, args: argparse.Namespace, tmp: Path) -> None:
    from anonymize_support import compose_frames, write_camera_clip

    from vault.anonymize import anonymize_recording

    source = tmp / "recording.ts"
    frames, _, _ = compose_frames(args.width, args.height, args.fps, args.seconds)
    write_camera_clip(source, frames, args.fps, audio=True)
    del frames
    base_out, anon_out = tmp / "plain.mp4", tmp / "training.mp4"

    def baseline() -> None:
        transcode(source, base_out, settings.preset, settings.crf)

    def anonymize() -> None:
        anonymize_recording(source, anon_out, settings=settings, overwrite=True)

    baseline()  # warm-up: page cache, x264 and the model's session
    anonymize()
    base_wall, base_cpu, anon_wall, anon_cpu, ratios = [], [], [], [], []
    for _ in range(args.runs):
        bw, bc = timed(baseline)
        aw, ac = timed(anonymize)
        base_wall.append(bw)
        base_cpu.append(bc)
        anon_wall.append(aw)
        anon_cpu.append(ac)
        ratios.append(bw / aw)

    seconds = args.seconds
    bw, aw = statistics.median(base_wall), statistics.median(anon_wall)
    bc, ac = statistics.median(base_cpu), statistics.median(anon_cpu)
    ratio = statistics.median(ratios)
    print(
        f"speed: {args.width}x{args.height} {args.fps} fps, {seconds:g} s of footage "
        f"(2 faces, AAC sound); median of {args.runs} interleaved runs:"
    )
    print(
        f"  decode + encode  {bw:6.2f} s  {seconds / bw:5.2f}x real time  "
        f"CPU {bc / seconds:5.2f} s per s of footage"
    )
    print(
        f"  anonymize        {aw:6.2f} s  {seconds / aw:5.2f}x real time  "
        f"CPU {ac / seconds:5.2f} s per s of footage"
    )
    d = settings.detector
    print(
        f"  settings: detection every {settings.detect_every} frames (whole picture every "
        f"{settings.full_scan_every or 'hold'}) at {d.detect_width} px wide, threshold "
        f"{d.threshold}, x264 {settings.preset} crf {settings.crf}"
    )
    real_time = seconds / aw
    verdict = "met" if real_time >= REAL_TIME_GOAL else "MISSED"
    print(
        f"  anonymize {real_time:.2f}x real time (goal >= {REAL_TIME_GOAL:.2f}x: {verdict}); "
        f"{ratio:.2f}x the speed of decode + encode; CPU ratio {bc / ac:.2f}"
    )
    # Wall times count what else the machine runs; the CPU seconds bound what two cores of
    # its own would give (wall >= CPU / 2).
    load = os.getloadavg()[0]
    print(
        f"  machine load {load:.1f} on {os.cpu_count()} cores; CPU-bound ceiling on 2 idle "
        f"cores: {2 * seconds / ac:.2f}x real time"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of the footage")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--scene-frames", type=int, default=24, help="frames per face scene")
    parser.add_argument("--recall-only", action="store_true")
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument(
        "--detect-every",
        type=int,
        default=None,
        help="detection on every n-th frame (default: the anonymizer's)",
    )
    parser.add_argument(
        "--full-scan-every",
        type=int,
        default=None,
        help="whole-picture search on every n-th frame (default: the "
        "anonymizer's); between, only around tracked faces",
    )
    parser.add_argument(
        "--detect-width",
        type=int,
        default=None,
        help="width detection runs at (default: the anonymizer's)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    from vault.anonymize import AnonymizeSettings, DetectorSettings

    defaults = AnonymizeSettings()
    settings = AnonymizeSettings(
        detector=DetectorSettings(detect_width=args.detect_width or defaults.detector.detect_width),
        detect_every=args.detect_every or defaults.detect_every,
        full_scan_every=args.full_scan_every or defaults.full_scan_every,
    )
    with tempfile.TemporaryDirectory(prefix="anonymize-bench-") as tmp:
        if not args.speed_only:
            recall(settings, args.scene_frames, Path(tmp))
        if not args.recall_only:
            speed(settings, args, Path(tmp))
    return 0  # a missed goal is a finding, printed above; non-zero: it did not run


if __name__ == "__main__":
    sys.exit(main())
