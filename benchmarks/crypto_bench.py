"""Sealing throughput as a share of what one core can do: AES-256-GCM then SHA-256.

Every sealed byte is encrypted (AES-256-GCM) and the sealed file hashed (SHA-256, for the
signed manifest), one after the other on one thread. The yardstick is the composed
single-thread limit of those two passes as OpenSSL does them on this machine, measured
in the same run: 1 / (1/a + 1/b) with a = `openssl speed -evp aes-256-gcm` and
b = `openssl speed -evp sha256`, both on 64 KiB blocks (the default chunk size). OpenSSL
divides by its CPU time, so this product figure is CPU time too (time.process_time).

Workload: 10 s segments of 4 Mbit/s video (5,000,000 bytes) sealed in the chunk size the
camera's recorder uses (firmware.recorder.DEFAULT_CHUNK), files in /dev/shm (the figure is
CPU cost, not the disk). Rows:
- seal, muxer writes: what the camera does. The write sizes are recorded from the real
  MPEG-TS muxer (firmware/encoder.py) fed by the real encoder at the start of the run,
  then replayed: many small writes per second into the sealing writer.
- seal, one 5 MB write: the same with a single write (no per-write overhead).
- seal, muxer writes at 64 KiB chunks: the format's default chunk size, for comparison.
- open: the back office path (authenticate and decrypt every chunk, SHA-256 against the
  signed manifest).
Rounds are interleaved (openssl, then each product path, repeated); medians of the
rounds. Goal: seal >= 50 % of the composed limit.

Run: python benchmarks/crypto_bench.py [--rounds 5] [--quick] [--dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crypto.keys import SigningKey, VaultKey, verify_signature  # noqa: E402
from crypto.open import OpenedRecording  # noqa: E402
from crypto.seal import RecordingSealer  # noqa: E402
from crypto.verify import verify_manifest  # noqa: E402
from firmware.recorder import DEFAULT_CHUNK  # noqa: E402

SEGMENT_BYTES = 4_000_000 * 10 // 8  # 10 s of 4 Mbit/s video
BLOCK = 65536
GOAL = 0.50
CAMERA_CHUNK = DEFAULT_CHUNK  # what the camera's recorder seals with
T0 = 1_795_371_300.0


class NullSink(io.RawIOBase):
    """Counts bytes; the benchmark measures crypto, not where plaintext goes."""

    def __init__(self) -> None:
        self.n = 0

    def writable(self) -> bool:
        return True

    def write(self, b: object) -> int:
        n = len(b)  # type: ignore[arg-type]
        self.n += n
        return n


class RecordingSink(io.RawIOBase):
    """Remembers the size of every write the muxer makes."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def writable(self) -> bool:
        return True

    def write(self, b: object) -> int:
        n = len(b)  # type: ignore[arg-type]
        self.sizes.append(n)
        return n


def muxer_write_sizes(seconds: int = 3) -> tuple[list[int], float]:
    """Write sizes of the real muxer for `seconds` of 720p30 at 4 Mbit/s with audio."""
    import numpy as np

    from firmware.encoder import H264Encoder, TsSegmentMuxer
    from sim.sensor import SyntheticSensor

    fps = 30
    enc = H264Encoder(1280, 720, fps, 4_000_000, fps, audio=True)
    sensor = SyntheticSensor(1280, 720, "BC-BE0C0001", night_mode=False)
    sink = RecordingSink()
    mux = TsSegmentMuxer(sink, enc)
    rng = np.random.default_rng(1)
    per_frame = enc.sample_rate // fps
    for n in range(seconds * fps):
        for pkt in enc.encode_video(sensor.capture(n, T0 + n / fps), n):
            mux.write(pkt)
        for pkt in enc.encode_audio(rng.normal(0, 0.1, per_frame).astype(np.float32)):
            mux.write(pkt)
    for pkt in enc.flush():
        mux.write(pkt)
    mux.close()
    return sink.sizes, len(sink.sizes) / seconds


def openssl_speed(alg: str, seconds: int) -> float | None:
    """Bytes per CPU second of `openssl speed -evp ALG` on 64 KiB blocks, or None."""
    exe = shutil.which("openssl")
    if exe is None:
        return None
    try:
        proc = subprocess.run(
            [exe, "speed", "-evp", alg, "-bytes", str(BLOCK), "-seconds", str(seconds)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    # Last table line, e.g. "AES-256-GCM   3534733.31k" (thousands of bytes per second).
    m = re.search(
        rf"^\S*{re.escape(alg)}\s+([\d.]+)k\s*$", proc.stdout, re.IGNORECASE | re.MULTILINE
    )
    return float(m.group(1)) * 1000 if m else None


def cpu_and_wall(fn: Callable[[], object]) -> tuple[float, float]:
    c, w = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c, time.perf_counter() - w


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (>= 5)")
    parser.add_argument("--segments", type=int, default=3, help="segments per path per round")
    parser.add_argument("--openssl-seconds", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="5 rounds of 1 segment")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where to write segments (default /dev/shm when present)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.segments = 5, 1
    if shutil.which("openssl") is None:
        print("openssl is not installed: no yardstick", file=sys.stderr)
        return 1

    base_dir = args.dir or (Path("/dev/shm") if Path("/dev/shm").is_dir() else None)
    device = SigningKey.generate(kind="device")
    vault = VaultKey.generate()
    payload = os.urandom(SEGMENT_BYTES)
    view = memoryview(payload)
    sizes, writes_per_s = muxer_write_sizes()

    rates: dict[str, list[float]] = {
        k: [] for k in ("gcm", "sha", "limit", "mux", "big", "mux64", "open")
    }
    walls: dict[str, list[float]] = {k: [] for k in ("mux", "big", "mux64", "open")}
    with tempfile.TemporaryDirectory(prefix="crypto-bench-", dir=base_dir) as tmp:
        sealers = {
            size: RecordingSealer(
                Path(tmp) / f"20261122T181500Z-{size:x}",
                "BC-BE0C0001",
                f"20261122T181500Z-{size:x}",
                device,
                [vault.public_bytes()],
                T0,
                chunk_size=size,
            )
            for size in sorted({CAMERA_CHUNK, BLOCK})
        }
        indexes = dict.fromkeys(sealers, 0)

        def seal(pattern: list[int], chunk: int = CAMERA_CHUNK) -> None:
            sealer = sealers[chunk]
            i = indexes[chunk]
            indexes[chunk] += 1
            with sealer.begin_segment(i, "video/mp2t", i * 900_000, T0 + 10 * i) as seg:
                off, k = 0, 0
                while off < SEGMENT_BYTES:
                    step = pattern[k % len(pattern)]
                    seg.write(view[off : off + step])
                    off += step
                    k += 1

        paths: dict[str, Callable[[], None]] = {
            "mux": lambda: seal(sizes),
            "big": lambda: seal([SEGMENT_BYTES]),
            "mux64": lambda: seal(sizes, BLOCK),
        }
        for _ in range(args.rounds):
            a = openssl_speed("aes-256-gcm", args.openssl_seconds)
            b = openssl_speed("sha256", args.openssl_seconds)
            if a is None or b is None:
                print("openssl speed gave no figure", file=sys.stderr)
                return 1
            rates["gcm"].append(a)
            rates["sha"].append(b)
            rates["limit"].append(1 / (1 / a + 1 / b))
            for name, fn in paths.items():
                cpu = wall = 0.0
                for _ in range(args.segments):
                    c, w = cpu_and_wall(fn)
                    cpu, wall = cpu + c, wall + w
                rates[name].append(args.segments * SEGMENT_BYTES / cpu)
                walls[name].append(args.segments * SEGMENT_BYTES / wall)
                for sealer in sealers.values():  # keep /dev/shm small; not timed
                    for info in sealer.segments:
                        info.path.unlink(missing_ok=True)
        for chunk, sealer in sealers.items():
            sealer.finish(T0 + 10 * indexes[chunk])

        # A recording of its own for the open path.
        folder = Path(tmp) / "20261122T183000Z-be0c"
        sealers[CAMERA_CHUNK] = RecordingSealer(
            folder,
            "BC-BE0C0001",
            folder.name,
            device,
            [vault.public_bytes()],
            T0,
            chunk_size=CAMERA_CHUNK,
        )
        indexes[CAMERA_CHUNK] = 0
        for _ in range(min(args.rounds, 5)):
            seal([SEGMENT_BYTES])
        sealers[CAMERA_CHUNK].finish(T0 + 10 * indexes[CAMERA_CHUNK])
        vr = verify_manifest(folder, device.public_bytes())
        entries = vr.segments
        with OpenedRecording(folder, vault, device.public_bytes()) as rec:
            for r in range(args.rounds):

                def open_one(entry: object = entries[r % len(entries)]) -> None:
                    sink = NullSink()
                    rec.write_segment(entry, sink)  # type: ignore[arg-type]
                    assert sink.n == SEGMENT_BYTES

                c, w = cpu_and_wall(open_one)
                rates["open"].append(SEGMENT_BYTES / c)
                walls["open"].append(SEGMENT_BYTES / w)

    hashlib_rate = SEGMENT_BYTES / min(
        cpu_and_wall(lambda: hashlib.sha256(payload))[0] for _ in range(5)
    )
    msg = b"bodycam-manifest-v1\0" + os.urandom(101)
    sig = device.sign(msg)
    c, _ = cpu_and_wall(lambda: [device.sign(msg) for _ in range(200)])
    sign_us = c / 200 * 1e6
    c, _ = cpu_and_wall(
        lambda: [verify_signature(device.public_bytes(), msg, sig) for _ in range(200)]
    )
    verify_us = c / 200 * 1e6

    med = {k: statistics.median(v) for k, v in rates.items()}
    medw = {k: statistics.median(v) for k, v in walls.items()}
    limit = med["limit"]
    print(
        f"workload: {SEGMENT_BYTES:,} B segments (10 s at 4 Mbit/s), the camera's "
        f"{CAMERA_CHUNK // 1024} KiB chunks (and the format's default 64 KiB), files in "
        f"{base_dir or tempfile.gettempdir()}; {args.rounds} interleaved rounds x "
        f"{args.segments} segments, medians"
    )
    print(
        f"muxer write pattern (recorded from the real 720p30 muxer): {writes_per_s:.0f} "
        f"writes/s, median {statistics.median(sizes)} B, max {max(sizes)} B"
    )
    print(
        f"yardstick, one core: openssl aes-256-gcm {med['gcm'] / 1e9:.2f} GB/s, sha256 "
        f"{med['sha'] / 1e9:.2f} GB/s, composed 1/(1/a+1/b) = {limit / 1e9:.2f} GB/s "
        f"(rounds: {', '.join(f'{x / 1e9:.2f}' for x in rates['limit'])})"
    )
    print(f"{'path':34} {'GB/s CPU':>9} {'ms CPU/seg':>11} {'of limit':>9} {'GB/s wall':>10}")
    kib = CAMERA_CHUNK // 1024
    rows = [
        (f"seal, muxer writes ({kib} KiB chunks)", "mux"),
        (f"seal, one 5 MB write ({kib} KiB)", "big"),
        ("seal, muxer writes (64 KiB chunks)", "mux64"),
        ("open (decrypt + verify)", "open"),
    ]
    ok = True
    for label, key in rows:
        share = med[key] / limit
        mark = ""
        if key in ("mux", "big"):
            mark = "  met" if share >= GOAL else f"  MISSED (goal {GOAL:.0%})"
            ok &= share >= GOAL
        print(
            f"{label:34} {med[key] / 1e9:9.2f} {SEGMENT_BYTES / med[key] * 1e3:11.2f} "
            f"{share:9.1%} {medw[key] / 1e9:10.2f}{mark}"
        )
    print(
        f"hashlib SHA-256 in this process: {hashlib_rate / 1e9:.2f} GB/s CPU; Ed25519 sign "
        f"{sign_us:.0f} us (one per segment), verify {verify_us:.0f} us (per manifest entry)"
    )
    print(
        "verdict:",
        f"sealing meets the {GOAL:.0%} goal (met)"
        if ok
        else f"sealing is below the {GOAL:.0%} goal: MISSED",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
