"""The dock's camera registry in the ledger: who may dock, added and removed by the
coordinator only (POLICY.md), with who did it recorded."""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass

from dock.ledger_db import LedgerDB, LedgerError

log = logging.getLogger(__name__)

COORDINATOR = "coordinator"
ROLES = (
    "coordinator",
    "cluster-manager",
    "privacy-officer",
    "municipal-secretary",
    "safety-coordinator",
)


class NotCoordinator(LedgerError, PermissionError):
    """Only the coordinator may add or remove cameras (municipal protocol)."""


@dataclass(frozen=True)
class DeviceRecord:
    device_id: str
    public_key: bytes
    model: str
    registered_by: str
    registered_role: str
    registered_utc: float
    removed: bool


def check_role(role: str, action: str) -> None:
    if role != COORDINATOR:
        known = "" if role in ROLES else f" ({role!r} is not a role of the protocol)"
        raise NotCoordinator(
            f"only the coordinator may {action} cameras{known}; ask the coordinator "
            "(--role coordinator)"
        )


class DeviceRegistry(LedgerDB):
    """The registry's part of the ledger."""

    # --- device registry -------------------------------------------------------------------

    def register_device(
        self, device_id: str, public_key: bytes, *, model: str = "", registered_by: str, role: str
    ) -> DeviceRecord:
        """Add a camera (coordinator only). Re-registering the same key is a no-op."""
        check_role(role, "add")
        if len(public_key) != 32:
            raise ValueError("a device public key is 32 bytes (64 hex digits)")
        now = self._clock()
        with self._tx() as db:
            row = db.execute(
                "SELECT public_key, removed_utc FROM devices WHERE device_id=?", (device_id,)
            ).fetchone()
            if row is not None and row[1] is None and row[0] != public_key.hex():
                raise LedgerError(
                    f"{device_id} is registered with another key; if the camera was "
                    f"re-provisioned, remove it first (`bodycam dock unregister {device_id} "
                    f"--role coordinator --ledger {self.path}`)"
                )
            if row is None or row[1] is not None:
                db.execute(
                    "INSERT OR REPLACE INTO devices (device_id, public_key, model, registered_by,"
                    " registered_role, registered_utc) VALUES (?, ?, ?, ?, ?, ?)",
                    (device_id, public_key.hex(), model, registered_by, role, now),
                )
                log.info("camera %s registered by %s (%s)", device_id, registered_by, role)
        record = self.device(device_id)
        assert record is not None
        return record

    def remove_device(self, device_id: str, *, removed_by: str, role: str) -> None:
        check_role(role, "remove")
        with self._tx() as db:
            cur = db.execute(
                "UPDATE devices SET removed_by=?, removed_utc=? WHERE device_id=? AND "
                "removed_utc IS NULL",
                (removed_by, self._clock(), device_id),
            )
            if cur.rowcount == 0:
                raise LedgerError(f"{device_id} is not a registered camera")
        log.info("camera %s removed by %s", device_id, removed_by)

    def device(self, device_id: str) -> DeviceRecord | None:
        rows = self._query("SELECT * FROM devices WHERE device_id=?", (device_id,))
        return self._device(rows[0]) if rows else None

    def active_device(self, device_id: str) -> DeviceRecord | None:
        record = self.device(device_id)
        return record if record is not None and not record.removed else None

    def devices(self) -> list[DeviceRecord]:
        return [self._device(r) for r in self._query("SELECT * FROM devices ORDER BY device_id")]

    @staticmethod
    def _device(r: sqlite3.Row) -> DeviceRecord:
        return DeviceRecord(
            r["device_id"],
            bytes.fromhex(r["public_key"]),
            r["model"],
            r["registered_by"],
            r["registered_role"],
            r["registered_utc"],
            r["removed_utc"] is not None,
        )
