"""The dock's signed ingest record: per recording, which dock stored what, and when.

After every listed segment of a recording is durable in the store the dock writes one
small JSON object next to it, signed with the dock key, so the chain of custody lives
in the store itself and several docks can share one store:

```
<site>/<device_id>/<recording_id>/ingest.json.<sha256>
{"format": "bodycam-ingest-record-v1",
 "record": {"site", "device_id", "recording_id", "dock_public_key" (64 hex),
            "ingested_utc", "complete", "header": {"key","sha256","size"},
            "manifest": {"key","sha256","size"},
            "segments": [{"name","sha256","size","key"}, ...]},
 "signature": "<128 hex: Ed25519 over the canonical JSON of record>"}
```

Canonical JSON is `json.dumps(record, sort_keys=True, separators=(",", ":"))` in UTF-8.
A later docking that adds segments (a recording closed by power-cut recovery) writes
another record; identical content is one object. The back office verifies the
signature against the docking stations it trusts. Spec: formats/RECORDS.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

from crypto.keys import SigningKey, verify_signature
from formats.signed_json import canonical, signed_document
from store import Store, object_key, split_name

log = logging.getLogger(__name__)

FORMAT = "bodycam-ingest-record-v1"
NAME = "ingest.json"
MAX_RECORD = 4 << 20  # a record lists at most 100,000 segments of ~130 bytes each


class IngestRecordError(ValueError):
    """An ingest record is malformed or its signature does not verify."""


@dataclass(frozen=True)
class IngestRecord:
    record: dict[str, Any]
    dock_public_key: bytes
    key: str

    @property
    def ingested_utc(self) -> float:
        return float(self.record["ingested_utc"])


def write_ingest_record(
    store: Store,
    dock_key: SigningKey,
    *,
    site: str,
    device_id: str,
    recording_id: str,
    complete: bool,
    header: dict[str, Any],
    manifest: dict[str, Any],
    segments: list[dict[str, Any]],
    now: float,
    retain_until: float | None = None,
) -> str:
    """Sign and store the record unless this dock already stored one for this manifest."""
    prefix = object_key(site, device_id, recording_id, NAME, "0" * 64).rsplit("/", 1)[0] + "/"
    dock_public = dock_key.public_bytes().hex()
    for key in store.list(prefix):
        if split_name(key)[0] != NAME:
            continue
        try:
            doc = json.loads(store.get_bytes(key, MAX_RECORD))
            old = doc["record"]
        except (ValueError, KeyError, TypeError):
            continue
        if (
            old.get("dock_public_key") == dock_public
            and old.get("manifest", {}).get("sha256") == manifest["sha256"]
        ):
            return key  # this docking added nothing the record does not already say
    record = {
        "site": site,
        "device_id": device_id,
        "recording_id": recording_id,
        "dock_public_key": dock_public,
        "ingested_utc": now,
        "complete": complete,
        "header": header,
        "manifest": manifest,
        "segments": segments,
    }
    raw = signed_document(FORMAT, "record", record, dock_key)
    key = object_key(site, device_id, recording_id, NAME, hashlib.sha256(raw).hexdigest())
    store.put_bytes(key, raw, retain_until=retain_until)
    log.info("ingest record for %s/%s stored as %s", device_id, recording_id, key)
    return key


def parse_ingest_record(raw: bytes, key: str, trusted_docks: list[bytes]) -> IngestRecord:
    """Check format and signature against the trusted dock keys; IngestRecordError if not."""
    if len(raw) > MAX_RECORD:
        raise IngestRecordError(f"{key}: larger than {MAX_RECORD} bytes")
    try:
        doc = json.loads(raw)
        record = doc["record"]
        signature = bytes.fromhex(doc["signature"])
        dock_public = bytes.fromhex(record["dock_public_key"])
    except (ValueError, KeyError, TypeError) as exc:
        raise IngestRecordError(f"{key}: not an ingest record ({exc})") from None
    if doc.get("format") != FORMAT or not isinstance(record, dict):
        raise IngestRecordError(f"{key}: format is not {FORMAT}")
    if not any(hmac.compare_digest(dock_public, t) for t in trusted_docks):
        raise IngestRecordError(
            f"{key}: signed by dock key {dock_public.hex()[:16]}..., "
            "which is not a trusted docking station"
        )
    if len(dock_public) != 32 or not verify_signature(dock_public, canonical(record), signature):
        raise IngestRecordError(f"{key}: signature does not verify with the dock's key")
    return IngestRecord(record, dock_public, key)
