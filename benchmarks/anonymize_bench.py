"""Anonymization benchmark: training footage at 1280x720, as a share of plain transcoding.

Both sides read the same decrypted recording (H.264 + AAC in MPEG-TS, as the camera
writes it: real photographs of faces moving over the simulated street) and write an
H.264 MP4 with the same encoder settings, in the same run:

- baseline: decode + encode, nothing else (the least any anonymizer has to do);
- anonymize: `vault.anonymize.anonymize_recording` with its defaults (face detection,
  tracking, blurring, sound dropped).

Runs alternate (baseline, anonymize, baseline, ...); each figure is the median of
`--runs`. Reported: speed as a multiple of real time for both, the ratio anonymize /
baseline (target >= 0.50), and CPU seconds per second of footage (all threads of this
process: OpenCV and x264 use more than one core).

`--detect-every`, `--full-scan-every` and `--detect-width` show what less frequent or
coarser detection would gain (and give up: a face must stay in the picture for
`detect_every` frames, and be at least 20 * width / detect_width pixels wide, to be
found).

Usage: python benchmarks/anonymize_bench.py [--seconds 4] [--runs 5] [--width 1280 ...]
"""

from __future__ import annotations

import argparse
import logging
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

TARGET = 0.50


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of the footage")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=30)
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

    from anonymize_support import compose_frames, write_camera_clip

    from vault.anonymize import AnonymizeSettings, DetectorSettings, anonymize_recording

    defaults = AnonymizeSettings()
    settings = AnonymizeSettings(
        detector=DetectorSettings(detect_width=args.detect_width or defaults.detector.detect_width),
        detect_every=args.detect_every or defaults.detect_every,
        full_scan_every=args.full_scan_every or defaults.full_scan_every,
    )
    with tempfile.TemporaryDirectory(prefix="anonymize-bench-") as tmp:
        source = Path(tmp) / "recording.ts"
        frames, _, _ = compose_frames(args.width, args.height, args.fps, args.seconds)
        write_camera_clip(source, frames, args.fps, audio=True)
        del frames
        base_out, anon_out = Path(tmp) / "plain.mp4", Path(tmp) / "training.mp4"

        def baseline() -> None:
            transcode(source, base_out, settings.preset, settings.crf)

        def anonymize() -> None:
            anonymize_recording(source, anon_out, settings=settings, overwrite=True)

        baseline()  # warm-up: page cache, x264 and cascade loading
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
        f"anonymize {args.width}x{args.height} {args.fps} fps, {seconds:g} s of footage "
        f"(2 faces, AAC sound); median of {args.runs} interleaved runs:"
    )
    print(
        f"  decode + encode  {bw:6.2f} s  {seconds / bw:5.1f}x real time  "
        f"CPU {bc / seconds:5.2f} s per s of footage"
    )
    print(
        f"  anonymize        {aw:6.2f} s  {seconds / aw:5.1f}x real time  "
        f"CPU {ac / seconds:5.2f} s per s of footage"
    )
    d = settings.detector
    print(
        f"  settings: detection every {settings.detect_every} frames (whole picture every "
        f"{settings.full_scan_every or 'hold'}) at {d.detect_width} px wide, scale factor "
        f"{d.scale_factor}, x264 {settings.preset} crf {settings.crf}"
    )
    verdict = "met" if ratio >= TARGET else "MISSED"
    print(f"  ratio {ratio:.2f} (target >= {TARGET:.2f}: {verdict}); CPU ratio {bc / ac:.2f}")
    return 0  # a missed target is a finding, printed above; non-zero: it did not run


if __name__ == "__main__":
    sys.exit(main())
