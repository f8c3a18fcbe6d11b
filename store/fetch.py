"""Listing and fetching a recording from a store, by the key layout (`store.keys`)."""

from __future__ import annotations

import logging
from pathlib import Path

from store.base import Store
from store.keys import recording_prefix, split_name

log = logging.getLogger(__name__)

COPY_BLOCK = 1 << 20


def recording_objects(store: Store, site: str, device_id: str, recording_id: str) -> dict[str, str]:
    """File name -> key of each file of a recording in the store; {} when it has none.

    A manifest is stored once per version the dock saw; a manifest only grows, so
    the longest version is the one taken.
    """
    best: dict[str, tuple[int, str]] = {}
    for key in store.list(recording_prefix(site, device_id, recording_id)):
        name, _ = split_name(key)
        size = store.stat(key)
        length = size.size if size is not None else 0
        if name not in best or length > best[name][0]:
            best[name] = (length, key)
    return {name: key for name, (_, key) in sorted(best.items())}


def fetch_recording(store: Store, site: str, device_id: str, recording_id: str, dest: Path) -> Path:
    """Rebuild a recording folder from the store (for the vault and the demo); returns it.

    Writes the header, the most complete manifest version and every segment under
    their own names into `dest`. Decrypt or verify the folder with crypto afterwards:
    this only collects files.
    """
    objects = recording_objects(store, site, device_id, recording_id)
    if not objects:
        raise FileNotFoundError(f"recording {device_id}/{recording_id} is not in {store.url}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name, key in objects.items():
        with store.open(key) as src, open(dest / name, "wb") as out:
            while block := src.read(COPY_BLOCK):
                out.write(block)
    return dest
