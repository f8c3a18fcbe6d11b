"""Where a recording lives in the store and whether it came from a registered camera.

`store_inventory` lists the store's recordings and event-log pieces by key layout;
`verify_origin` checks a recording's header and manifest with the key the coordinator
registered for that device (never one found next to the footage). The dock's signed
ingest record is checked by the sync (`vault.catalog.sync`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

from crypto.errors import FormatError, NotSignedByDevice
from crypto.format import (
    HEADER_NAME,
    MANIFEST_MAX_SIZE,
    MANIFEST_NAME,
    REC_HEADER_MAX,
    parse_manifest,
)
from crypto.verify import VerifiedRecording, check_manifest
from store import (
    Store,
    object_key,
    split_name,
)
from vault.errors import OriginRefused
from vault.registry.models import Camera
from vault.registry.selectors import camera_registrations

log = logging.getLogger(__name__)


RESERVED_PREFIXES = ("quarantine", "registry", "audit")
EVENTS_DIR = "events"
MAX_EVENT_PIECE = 64 << 20


def recording_prefix(site: str, device_id: str, recording_id: str) -> str:
    return object_key(site, device_id, recording_id, HEADER_NAME, "0" * 64).rsplit("/", 1)[0] + "/"


def store_inventory(store: Store) -> tuple[dict[tuple[str, str, str], list[str]], list[str]]:
    """One listing of the store: recording keys grouped, and event-log piece keys."""
    groups: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    events: list[str] = []
    for key in store.list():
        parts = key.split("/")
        if len(parts) != 4 or parts[0] in RESERVED_PREFIXES:
            continue
        if parts[2] == EVENTS_DIR:
            events.append(key)
        else:
            groups[(parts[0], parts[1], parts[2])].append(key)
    return groups, events


@dataclass(frozen=True)
class VerifiedOrigin:
    camera: Camera
    verified: VerifiedRecording
    header_key: str
    header_raw: bytes
    manifest_key: str


def verify_origin(
    store: Store, keys: list[str], device_id: str, registrations: list[Camera] | None = None
) -> VerifiedOrigin:
    """Header and the longest manifest, verified with a key registered for `device_id`.

    OriginRefused when no registered key signed it (unknown camera, or re-signed with a
    fresh key); FormatError when it is signed but damaged.
    """
    by_name: dict[str, list[str]] = defaultdict(list)
    for k in keys:
        by_name[split_name(k)[0]].append(k)
    headers, manifests = by_name.get(HEADER_NAME, []), by_name.get(MANIFEST_NAME, [])
    if len(headers) != 1 or not manifests:
        raise FormatError(
            f"expected one {HEADER_NAME} and a {MANIFEST_NAME}, found "
            f"{len(headers)} and {len(manifests)}"
        )
    if registrations is None:
        registrations = camera_registrations(device_id)
    if not registrations:
        raise OriginRefused(f"camera {device_id} is not in the coordinator's registry")
    header_raw = store.get_bytes(headers[0], REC_HEADER_MAX)
    parsed = []
    for mk in manifests:
        records = parse_manifest(store.get_bytes(mk, MANIFEST_MAX_SIZE))
        parsed.append((len(records), mk, records))
    parsed.sort(key=lambda p: (-p[0], p[1]))  # a manifest only grows: the longest is newest
    signed_by_other = False
    for _, mk, records in parsed:
        for camera in registrations:
            try:
                vr = check_manifest(records, header_raw, bytes.fromhex(camera.public_key))
            except NotSignedByDevice:
                signed_by_other = True
                continue
            return VerifiedOrigin(camera, vr, headers[0], header_raw, mk)
    if signed_by_other:
        raise OriginRefused(
            f"recording of {device_id} is not signed by the key the "
            "coordinator registered for it (re-signed or forged)"
        )
    raise FormatError("no manifest verifies")
