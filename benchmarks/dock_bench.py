"""Dock ingest benchmark: docked volume -> local store, as a ratio of `cp` + `sha256sum`.

Both sides handle the same sealed segment files in the same run, on the same
filesystem, with a warm page cache:

- baseline: `cp -r` of the camera's recordings folder, then `sha256sum` of every
  copied file (two processes, no fsync: the cheapest honest "copy and check");
- ingest: the dock's whole per-camera session over a real pty control channel:
  HELLO, AUTH, SET_TIME, manifest verification, copy with hashing, segment header
  check, atomic durable store (fsync file and directory), ledger (SQLite, FULL
  sync), RELEASE of every segment, event log offload.

The ratio is ingest throughput / baseline throughput (target >= 0.80). The same is
then measured with 8 cameras docked at once (daemon, `--once`), against `cp` +
`sha256sum` of all eight volumes.

Usage: python benchmarks/dock_bench.py [--mib 256] [--segment-mib 5] [--runs 5] [--dir DIR]
"""

from __future__ import annotations

import argparse
import io
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "tests" / "dock"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

TARGET = 0.80
SLOTS = 8


def seal_volume(root: Path, name: str, keys: Any, mib: float, segment_mib: float) -> Path:
    """A provisioned camera home whose volume holds `mib` MiB of sealed recordings."""
    from dock_support import make_camera

    cam = make_camera(root, name, [keys["dock"].public_bytes()], keys["vault"])
    seg_bytes = int(segment_mib * (1 << 20))
    segments = max(1, int(mib * (1 << 20)) // seg_bytes)
    per_recording = 6
    while segments > 0:
        n = min(per_recording, segments)
        cam.record(n, size=seg_bytes, chunk=65536)
        segments -= n
    cam.close()
    return cam.home


def volume_bytes(home: Path) -> int:
    return sum(p.stat().st_size for p in (home / "volume" / "recordings").rglob("*")
               if p.is_file())


def baseline(homes: list[Path], work: Path) -> float:
    """Seconds for cp -r of every recordings folder plus sha256sum of every copy."""
    dest = work / "baseline"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    t0 = time.perf_counter()
    for i, home in enumerate(homes):
        subprocess.run(["cp", "-r", str(home / "volume" / "recordings"), str(dest / str(i))],
                       check=True)
    files = sorted(str(p) for p in dest.rglob("*") if p.is_file())
    subprocess.run(["sha256sum", *files], check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - t0
    shutil.rmtree(dest)
    return elapsed


def fresh_cameras(pristine: list[Path], work: Path, keys: Any) -> list[Any]:
    from dock_support import make_camera

    cams = []
    for home in pristine:
        target = work / "cams" / home.name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(home, target, symlinks=True)
        cams.append(make_camera(work / "cams", home.name, [keys["dock"].public_bytes()],
                                keys["vault"]))
    return cams


def ingest_run(pristine: list[Path], work: Path, keys: Any, parallel: bool) -> float:
    """Seconds the dock needs to ingest every camera (one session, or the daemon)."""
    from dock_support import Dock, register

    from dock.daemon import DaemonConfig, DockDaemon
    from dock.ingest import CameraIngest, DockContext
    from dock.ledger import Ledger
    from dock.slots import Slot
    from store import FileStore

    for d in ("store", "state", "slots"):
        shutil.rmtree(work / d, ignore_errors=True)
    cams = fresh_cameras(pristine, work, keys)
    ledger = Ledger(work / "state" / "ledger.sqlite")
    for cam in cams:
        register(ledger, cam)
    docks = Dock(work / "slots")
    store = FileStore(work / "store")
    try:
        for i, cam in enumerate(cams):
            docks.dock(cam, f"slot-{i}")
        if parallel:
            config = DaemonConfig(slots=docks.slots, store_url=f"file://{work}/store",
                                  ledger_path=work / "state" / "ledger.sqlite", once=True,
                                  settle=0.0, live=False, max_uploads=2)
            t0 = time.perf_counter()
            result = DockDaemon(config, store=store, ledger=ledger, dock_key=keys["dock"],
                                out=io.StringIO()).run()
            elapsed = time.perf_counter() - t0
            ok = result.exit_code == 0 and len(result.reports) == len(cams)
        else:
            ctx = DockContext(store=store, ledger=ledger, dock_key=keys["dock"])
            t0 = time.perf_counter()
            report = CameraIngest(Slot("slot-0", docks.slots / "slot-0"), ctx).run()
            elapsed = time.perf_counter() - t0
            ok = report.ok
        if not ok or any(cam.segment_files() for cam in cams):
            raise RuntimeError("the ingest did not store and release everything")
        return elapsed
    finally:
        docks.close()
        for cam in cams:
            cam.close()
        ledger.close()


def measure(pristine: list[Path], work: Path, keys: Any, runs: int,
            parallel: bool) -> tuple[float, float, float]:
    """(median ratio, median baseline s, median ingest s) over `runs` alternating runs."""
    ratios, bases, ingests = [], [], []
    baseline(pristine, work)  # warm the page cache for both sides
    for _ in range(runs):
        b = baseline(pristine, work)
        i = ingest_run(pristine, work, keys, parallel)
        bases.append(b)
        ingests.append(i)
        ratios.append(b / i)
    return statistics.median(ratios), statistics.median(bases), statistics.median(ingests)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, default=256.0, help="sealed MiB on the camera")
    parser.add_argument("--segment-mib", type=float, default=5.0,
                        help="MiB per segment (10 s at 4 Mbit/s is about 5)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None,
                        help="work folder (on the disk to measure; default: system temp)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    from crypto.keys import SigningKey, VaultKey

    keys = {"dock": SigningKey.generate(kind="dock"), "vault": VaultKey.generate()}
    work = Path(tempfile.mkdtemp(prefix="dock-bench-", dir=args.dir))
    try:
        one = [seal_volume(work / "pristine", "cam0", keys, args.mib, args.segment_mib)]
        size = volume_bytes(one[0])
        ratio, b, i = measure(one, work, keys, args.runs, parallel=False)
        mib = size / (1 << 20)
        print(f"one camera, {mib:.0f} MiB in {args.segment_mib:g} MiB segments:")
        print(f"  cp + sha256sum  {b:6.2f} s  {mib / b:7.1f} MiB/s")
        print(f"  dock ingest     {i:6.2f} s  {mib / i:7.1f} MiB/s")
        verdict = "met" if ratio >= TARGET else "MISSED"
        print(f"  ratio {ratio:.2f} (target >= {TARGET:.2f}: {verdict})")

        many = one + [seal_volume(work / "pristine", f"cam{k}", keys, args.mib / SLOTS,
                                  args.segment_mib) for k in range(1, SLOTS)]
        # the first camera is shrunk to the same share as the others
        shutil.rmtree(many[0])
        many[0] = seal_volume(work / "pristine", "cam0", keys, args.mib / SLOTS,
                              args.segment_mib)
        total = sum(volume_bytes(h) for h in many) / (1 << 20)
        ratio8, b8, i8 = measure(many, work, keys, args.runs, parallel=True)
        print(f"{SLOTS} cameras at once, {total:.0f} MiB in all (daemon, 2 uploads at once):")
        print(f"  cp + sha256sum  {b8:6.2f} s  {total / b8:7.1f} MiB/s")
        print(f"  dock ingest     {i8:6.2f} s  {total / i8:7.1f} MiB/s")
        print(f"  ratio {ratio8:.2f}")
        return 0  # a missed target is a finding, printed above; non-zero: it did not run
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
