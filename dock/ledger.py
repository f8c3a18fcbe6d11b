"""The dock's durable ledger (SQLite, WAL): registered cameras, every segment's state, slots.

A segment moves only forward: `copied` -> `stored` -> `released`, or to `quarantined`,
which is terminal (dock/ledger_segments.py). Each transition is one committed transaction
with `synchronous=FULL`, and re-applying a transition that already happened changes
nothing, so a dock killed at any instant resumes from here: it re-uploads nothing that is
`stored` (the store is content-addressed as a second guard) and releases only what the
ledger holds as `stored` with the same SHA-256.

`Ledger` is its parts together: the database with its numbered migrations
(dock/ledger_db.py), the camera registry only the coordinator changes
(dock/ledger_devices.py), recordings and segments (dock/ledger_segments.py), and what
`dock status` reads from another process, read-only (dock/ledger_status.py).
"""

from __future__ import annotations

from dock.ledger_db import LedgerError
from dock.ledger_devices import COORDINATOR, ROLES, DeviceRecord, NotCoordinator, check_role
from dock.ledger_segments import (
    COPIED,
    QUARANTINED,
    RELEASED,
    STORED,
    RecordingRow,
    SegmentRecord,
    StoredSegment,
    TransitionRefused,
)
from dock.ledger_status import DockStatus, status_json


class Ledger(DockStatus):
    """The dock's SQLite ledger. Thread-safe: one connection behind a lock."""


__all__ = [
    "COORDINATOR",
    "COPIED",
    "QUARANTINED",
    "RELEASED",
    "ROLES",
    "STORED",
    "DeviceRecord",
    "Ledger",
    "LedgerError",
    "NotCoordinator",
    "RecordingRow",
    "SegmentRecord",
    "StoredSegment",
    "TransitionRefused",
    "check_role",
    "status_json",
]
