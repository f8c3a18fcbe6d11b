"""The store package on its own: its import boundary, the key layout helpers, the fault hook."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from crypto.names import NameRefused
from store import (
    FileStore,
    events_key,
    events_prefix,
    events_range,
    fetch_recording,
    object_key,
    recording_objects,
    recording_prefix,
)

ROOT = Path(__file__).resolve().parents[2]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_store_imports_nothing_from_dock_vault_or_sim() -> None:
    code = (
        "import sys, pkgutil, importlib, store\n"
        "for m in pkgutil.iter_modules(store.__path__):\n"
        "    importlib.import_module('store.' + m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('dock', 'vault', 'sim'))\n"
        "print(' '.join(bad))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.strip() == ""


def test_event_log_keys_round_trip_and_other_keys_are_not_pieces() -> None:
    key = events_key("site", "BC-00000001", 10, 250, sha(b"x"))
    assert key.startswith(events_prefix("site", "BC-00000001"))
    assert events_range(key) == (10, 250)
    assert (
        events_range(object_key("site", "BC-00000001", "rec-1", "seg-000000.bcs", sha(b"x")))
        is None
    )
    with pytest.raises(NameRefused):
        recording_prefix("site", "BC-00000001", "../escape")


def test_fetch_takes_the_longest_manifest_version(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    site, dev, rec = "site", "BC-00000001", "rec-1"
    short, long = b"manifest v1", b"manifest v1 and v2"
    for name, data in (
        ("manifest.bcm", short),
        ("manifest.bcm", long),
        ("recording.hdr", b"header"),
        ("seg-000000.bcs", b"segment"),
    ):
        store.put_bytes(object_key(site, dev, rec, name, sha(data)), data)
    objects = recording_objects(store, site, dev, rec)
    assert objects["manifest.bcm"] == object_key(site, dev, rec, "manifest.bcm", sha(long))
    folder = fetch_recording(store, site, dev, rec, tmp_path / "out")
    assert (folder / "manifest.bcm").read_bytes() == long
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.bcm",
        "recording.hdr",
        "seg-000000.bcs",
    ]
    with pytest.raises(FileNotFoundError):
        fetch_recording(store, site, dev, "rec-2", tmp_path / "none")


def test_file_store_calls_its_fault_hook_once_the_final_name_is_linked(tmp_path: Path) -> None:
    points: list[str] = []
    store = FileStore(tmp_path / "store", fault=points.append)
    data = b"footage"
    key = object_key("site", "BC-00000001", "rec-1", "seg-000000.bcs", sha(data))
    store.put_bytes(key, data)
    assert points == ["store-linked"]
    store.put_bytes(key, data)  # already there: nothing is linked again
    assert points == ["store-linked"]


def test_a_store_that_may_not_create_refuses_an_empty_mount_point(tmp_path: Path) -> None:
    """An unmounted disk leaves an empty folder: it must not silently become a new store."""
    from store import FileStore, StoreUnavailable

    mount = tmp_path / "nas"
    mount.mkdir()
    with pytest.raises(StoreUnavailable, match="is the disk mounted"):
        FileStore(mount, create=False).check()
    assert list(mount.iterdir()) == []  # no marker written into the mount point
    FileStore(mount).check()  # made once, explicitly
    FileStore(mount, create=False).check()  # and accepted from then on
