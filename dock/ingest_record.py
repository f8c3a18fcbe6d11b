"""The ingest session's side of the signed ingest record (format: formats/ingest_record.py)."""

from __future__ import annotations

import hashlib
from typing import Any

from formats.ingest_record import write_ingest_record
from store import object_key


def write_for_recording(
    ctx: Any, vr: Any, header: bytes, manifest: bytes, retain_until: float | None
) -> str | None:
    """The ingest session's call: a record for verified recording `vr`, all segments durable.

    `ctx` is the dock's `DockContext` (store, dock key, site, clock); without a dock
    key there is nothing to sign with and no record is written.
    """
    if ctx.dock_key is None:
        return None
    site, dev, rec = ctx.site, vr.device_id, vr.recording_id

    def ref(name: str, data: bytes) -> dict[str, Any]:
        sha = hashlib.sha256(data).hexdigest()
        return {"key": object_key(site, dev, rec, name, sha), "sha256": sha, "size": len(data)}

    from crypto.format import HEADER_NAME, MANIFEST_NAME

    segments = [
        {
            "name": e.name,
            "sha256": e.sha256,
            "size": e.size,
            "key": object_key(site, dev, rec, e.name, e.sha256),
        }
        for e in vr.segments
    ]
    return write_ingest_record(
        ctx.store,
        ctx.dock_key,
        site=site,
        device_id=dev,
        recording_id=rec,
        complete=vr.complete,
        header=ref(HEADER_NAME, header),
        manifest=ref(MANIFEST_NAME, manifest),
        segments=segments,
        now=ctx.clock.now(),
        retain_until=retain_until,
    )
