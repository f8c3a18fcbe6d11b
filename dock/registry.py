"""The dock's cache of the camera registry: the newest signed registry applied to its ledger.

The document, its signature and where it lives in the store are formats/registry.py;
this module is what a dock does with it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from crypto.files import atomic_write
from dock.ledger import Ledger, LedgerError
from formats.registry import RegistryError, latest_registry
from store import Store, StoreError

log = logging.getLogger(__name__)

REGISTRY_ROLE = "coordinator"  # the ledger's registry accepts changes in this role only


@dataclass
class RefreshResult:
    version: int | None = None
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    rekeyed: list[str] = field(default_factory=list)
    problem: str | None = None  # why the last good copy stays in use


def applied_version(state: Path) -> int | None:
    try:
        return int(json.loads(state.read_text())["version"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        raise RegistryError(
            f"{state}: not a registry state file; remove it to start over"
        ) from None


def refresh_ledger(store: Store, ledger: Ledger, trusted_key: bytes, state: Path) -> RefreshResult:
    """Apply the newest signed registry to the dock's ledger (its offline cache).

    `state` (a small JSON file beside the ledger) keeps the version applied last; an
    older one found in the store is a rollback and is refused. Any failure leaves the
    ledger as it was, so the dock goes on with its last good copy.
    """
    applied = applied_version(state)
    result = RefreshResult(version=applied)
    try:
        reg, problem = latest_registry(store, trusted_key)
    except (StoreError, OSError) as exc:
        result.problem = f"store unreachable, last good registry kept: {exc}"
        return result
    if reg is None:
        result.problem = problem or "no camera registry published yet"
        return result
    if applied is not None and reg.version < applied:
        result.problem = (
            f"registry version {reg.version} is older than the applied "
            f"{applied}: refused (rollback)"
        )
        return result
    result.problem = problem
    by = f"back-office registry v{reg.version}"
    for dev, entry in sorted(reg.cameras.items()):
        public = bytes.fromhex(entry["public_key"])
        current = ledger.active_device(dev)
        if current is not None and current.public_key == public:
            continue
        if current is not None:
            ledger.remove_device(dev, removed_by=by, role=REGISTRY_ROLE)
            result.rekeyed.append(dev)
        else:
            result.added.append(dev)
        ledger.register_device(
            dev, public, model=entry["model"], registered_by=by, role=REGISTRY_ROLE
        )
    for record in ledger.devices():
        if not record.removed and record.device_id not in reg.cameras:
            try:
                ledger.remove_device(record.device_id, removed_by=by, role=REGISTRY_ROLE)
            except LedgerError:
                continue
            result.removed.append(record.device_id)
    result.version = reg.version
    atomic_write(state, json.dumps({"version": reg.version, "issued_utc": reg.issued_utc}).encode())
    log.info(
        "camera registry v%d applied: %d added, %d removed, %d re-keyed",
        reg.version,
        len(result.added),
        len(result.removed),
        len(result.rekeyed),
    )
    return result
