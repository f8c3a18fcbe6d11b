"""Back-office benchmark: catalog sync of a store with N recordings, then a purge sweep.

Same run, same store, warm page cache:

- baseline: listing the store with `os.scandir` (recursive, best of three), the cheapest
  way to learn what a file store holds;
- sync: `catalog_sync` over the whole store (every recording: header, longest manifest
  and the dock's ingest record read, signatures verified with the registered camera and
  dock keys, every segment's size checked, the row and its segments written);
- purge: `retention_purge` with the clock past every recording's retention (every object
  deleted with its directory fsynced, a tombstone and an audit entry each).

Both run on SQLite (WAL, synchronous FULL) and on a throwaway PostgreSQL cluster (socket
only, fsync off: a throwaway cluster; the figure compares the ORM path, not the disk).
Each result is reported as time per recording and as a multiple of the scandir listing.

Usage: python benchmarks/vault_bench.py [--recordings 10000] [--cameras 20] [--dir DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "tests" / "vault", ROOT / "tests" / "fakes"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

T0 = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)


def scandir_count(root: Path) -> int:
    n = 0
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                else:
                    n += 1
    return n


def build_store(root: Path, recordings: int, cameras: int, keys: dict[str, Any]) -> None:
    """Seal `recordings` small recordings and lay them out as docks store them (no fsync)."""
    from crypto.seal import RecordingSealer
    from formats.signed_json import canonical
    from store import FileStore, object_key

    store = FileStore(root)
    store.check()
    # Sealing fsyncs every file: on tmpfs that costs nothing; building is not measured.
    shm = Path("/dev/shm")
    work = Path(
        tempfile.mkdtemp(prefix="vault-bench-seal-", dir=shm if shm.is_dir() else root.parent)
    )
    dock = keys["dock"]
    for i in range(recordings):
        dev = f"BC-{i % cameras:08d}"
        started = (T0 + dt.timedelta(seconds=37 * i)).timestamp()
        rec = f"R{i:07d}"
        folder = work / rec
        sealer = RecordingSealer(
            folder, dev, rec, keys["cams"][dev], [keys["vault"]], started, chunk_size=4096
        )
        seg = sealer.begin_segment(0, "video/mp2t", 0, started - 30)
        seg.write(b"\x47" * 1880)
        seg.close()
        sealer.finish(started + 10)
        refs = {}
        for f in sorted(folder.iterdir()):
            raw = f.read_bytes()
            sha = hashlib.sha256(raw).hexdigest()
            key = object_key("s1", dev, rec, f.name, sha)
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(raw)
            refs[f.name] = {"key": key, "sha256": sha, "size": len(raw)}
            f.unlink()
        folder.rmdir()
        record = {
            "site": "s1",
            "device_id": dev,
            "recording_id": rec,
            "dock_public_key": dock.public_bytes().hex(),
            "ingested_utc": started + 3600,
            "complete": True,
            "header": refs["recording.hdr"],
            "manifest": refs["manifest.bcm"],
            "segments": [{"name": "seg-000000.bcs", **refs["seg-000000.bcs"]}],
        }
        raw = json.dumps(
            {
                "format": "bodycam-ingest-record-v1",
                "record": record,
                "signature": dock.sign(canonical(record)).hex(),
            }
        ).encode()
        key = object_key("s1", dev, rec, "ingest.json", hashlib.sha256(raw).hexdigest())
        (root / key).write_bytes(raw)
    shutil.rmtree(work, ignore_errors=True)


def run_backend(
    name: str, url: str, store_root: Path, keys: dict[str, Any], recordings: int
) -> dict[str, float]:
    from django.contrib.auth.models import User
    from vault_support import make_municipalities, use_database

    from store import FileStore
    from vault.access import actor_for
    from vault.accounts.models import Membership, Municipality
    from vault.catalog.models import Recording
    from vault.catalog.services import catalog_sync, retention_purge
    from vault.clock import ManualClock
    from vault.registry.models import Camera, DockStation

    use_database(url)
    make_municipalities(["heusden"])
    muni = Municipality.objects.get(code="heusden")
    user = User.objects.create_user("timer", password="benchmark password")
    Membership.objects.create(
        user=user, municipality=muni, role="scheduler", granted_at=T0, granted_by="bench"
    )
    for dev, key in keys["cams"].items():
        Camera.objects.create(
            device_id=dev,
            public_key=key.public_bytes().hex(),
            municipality=muni,
            added_by="bench",
            added_at=T0,
        )
    DockStation.objects.create(
        name="dock-1", public_key=keys["dock"].public_bytes().hex(), added_by="bench", added_at=T0
    )
    timer = actor_for(user)
    clock = ManualClock(T0)
    store = FileStore(store_root)
    scans = []
    for _ in range(3):  # the best of three: a warm page cache, as the sync will have
        t = time.perf_counter()
        listed = scandir_count(store_root)
        scans.append(time.perf_counter() - t)
    scan = min(scans)
    t = time.perf_counter()
    report = catalog_sync(actor=timer, store=store, clock=clock)
    sync = time.perf_counter() - t
    assert report.added == recordings and not report.refused, report.summary()
    t = time.perf_counter()
    again = catalog_sync(actor=timer, store=store, clock=clock)
    resync = time.perf_counter() - t
    assert again.unchanged == recordings
    clock.set(T0 + dt.timedelta(days=60))
    t = time.perf_counter()
    purged = retention_purge(actor=timer, store=store, clock=clock)
    purge = time.perf_counter() - t
    assert len(purged.purged) == recordings, (len(purged.purged), purged.kept[:3])
    assert Recording.objects.filter(state="purged").count() == recordings
    print(
        f"{name:<10} scandir {scan:7.3f} s ({listed} files) | sync {sync:7.2f} s "
        f"({sync / recordings * 1e3:.2f} ms/rec, {sync / scan:6.0f}x scandir) | re-sync "
        f"{resync:6.2f} s ({resync / scan:5.0f}x) | purge {purge:7.2f} s "
        f"({purge / recordings * 1e3:.2f} ms/rec, {purge / scan:6.0f}x scandir)"
    )
    return {"scan": scan, "sync": sync, "resync": resync, "purge": purge}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=10_000)
    parser.add_argument("--cameras", type=int, default=20)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    base = Path(tempfile.mkdtemp(prefix="vault-bench-", dir=args.dir))
    from pg_support import start_cluster
    from vault_support import configure_django

    configure_django(base / "home")
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    from crypto.keys import SigningKey, VaultKey

    keys = {
        "vault": VaultKey.generate().public_bytes(),
        "dock": SigningKey.generate(),
        "cams": {f"BC-{c:08d}": SigningKey.generate() for c in range(args.cameras)},
    }
    cluster = None
    try:
        t = time.perf_counter()
        build_store(base / "store", args.recordings, args.cameras, keys)
        print(f"built a store of {args.recordings} recordings in {time.perf_counter() - t:.1f} s")
        shutil.copytree(base / "store", base / "store-pg")
        run_backend(
            "sqlite", f"sqlite:///{base / 'vault.sqlite3'}", base / "store", keys, args.recordings
        )
        cluster = start_cluster()
        cluster.create_database("vault_bench")
        run_backend(
            "postgresql", cluster.url("vault_bench"), base / "store-pg", keys, args.recordings
        )
    finally:
        from django.db import connections

        connections.close_all()
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
