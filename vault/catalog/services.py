"""The catalog's services (what writes), gathered from one module per concern:

- `vault.catalog.sync`: `catalog_sync`, indexing the store's recordings, verified;
- `vault.catalog.holds`: `hold_place` / `hold_lift`;
- `vault.catalog.retention`: `retention_purge` and the store's retention check;
- `vault.catalog.origin`: the store's layout and `verify_origin`.

`recording_authorize` (may this user do `action` on this recording, audited) is here.
"""

from __future__ import annotations

from vault.access import Actor, authorize
from vault.catalog.holds import hold_lift, hold_place
from vault.catalog.models import Recording
from vault.catalog.origin import (
    EVENTS_DIR,
    MAX_EVENT_PIECE,
    RESERVED_PREFIXES,
    VerifiedOrigin,
    recording_prefix,
    store_inventory,
    verify_origin,
)
from vault.catalog.retention import (
    PurgeReport,
    check_store_retention,
    open_holds,
    purge_candidates,
    retention_purge,
)
from vault.catalog.sync import SyncReport, catalog_sync
from vault.clock import Clock

__all__ = [
    "EVENTS_DIR",
    "MAX_EVENT_PIECE",
    "RESERVED_PREFIXES",
    "PurgeReport",
    "SyncReport",
    "VerifiedOrigin",
    "catalog_sync",
    "check_store_retention",
    "hold_lift",
    "hold_place",
    "open_holds",
    "purge_candidates",
    "recording_authorize",
    "recording_prefix",
    "retention_purge",
    "store_inventory",
    "verify_origin",
]


def recording_authorize(
    *, actor: Actor, recording: Recording, action: str, clock: Clock, purpose: str = ""
) -> list[str]:
    return authorize(
        actor=actor,
        action=action,
        municipality=recording.municipality,
        clock=clock,
        target=str(recording),
        purpose=purpose,
    )
