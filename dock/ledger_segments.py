"""Every recording's and segment's state in the ledger, moving only forward.

`copied` (a verified copy in the dock's spool) -> `stored` (durable in the store; the
receipt is recorded) -> `released` (the camera deleted it against our signed receipt).
`quarantined` is terminal and is never released. Each transition is one committed
transaction, and re-applying a transition that already happened changes nothing. Also
the quarantine evidence counted per camera and day, and how far each camera's event
log has been offloaded.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import NamedTuple, TypedDict

from dock.ledger_db import LedgerDB, LedgerError

COPIED, STORED, RELEASED, QUARANTINED = "copied", "stored", "released", "quarantined"
_RANK = {COPIED: 1, STORED: 2, RELEASED: 3}


class TransitionRefused(LedgerError):
    """A segment transition that would break an invariant (release before store, ...)."""


@dataclass(frozen=True)
class SegmentRecord:
    device_id: str
    recording_id: str
    name: str
    sha256: str
    size: int
    state: str
    store_key: str | None
    reason: str | None

    @property
    def durable(self) -> bool:
        return self.state in (STORED, RELEASED)


class RecordingRow(TypedDict):
    """A row of `recordings`: what the dock knows of one recording."""

    device_id: str
    recording_id: str
    started_utc: float | None
    complete: int
    segments: int
    header_key: str | None
    manifest_key: str | None
    quarantine_reason: str | None
    updated_utc: float


class StoredSegment(NamedTuple):
    """One durable copy to record (`mark_stored_many`)."""

    device_id: str
    recording_id: str
    name: str
    sha256: str
    size: int
    store_key: str
    receipt: str


class SegmentStates(LedgerDB):
    """The recordings', segments', evidence and event-log offsets' part of the ledger."""

    # --- recordings ------------------------------------------------------------------------

    def note_recording(
        self,
        device_id: str,
        recording_id: str,
        *,
        started_utc: float,
        complete: bool,
        segments: int,
        header_key: str | None,
        manifest_key: str | None,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO recordings (device_id, recording_id, started_utc, complete, segments,"
                " header_key, manifest_key, updated_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (device_id, recording_id) DO UPDATE SET "
                "started_utc=excluded.started_utc, complete=MAX(complete, excluded.complete), "
                "segments=MAX(segments, excluded.segments), "
                "header_key=COALESCE(excluded.header_key, header_key), "
                "manifest_key=COALESCE(excluded.manifest_key, manifest_key), "
                "updated_utc=excluded.updated_utc",
                (
                    device_id,
                    recording_id,
                    started_utc,
                    int(complete),
                    segments,
                    header_key,
                    manifest_key,
                    self._clock(),
                ),
            )

    def quarantine_recording(self, device_id: str, recording_id: str, reason: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO recordings (device_id, recording_id, quarantine_reason, updated_utc)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (device_id, recording_id) DO UPDATE SET "
                "quarantine_reason=excluded.quarantine_reason, updated_utc=excluded.updated_utc",
                (device_id, recording_id, reason, self._clock()),
            )

    def recording(self, device_id: str, recording_id: str) -> RecordingRow | None:
        rows = self._query(
            "SELECT * FROM recordings WHERE device_id=? AND recording_id=?",
            (device_id, recording_id),
        )
        if not rows:
            return None
        r = rows[0]
        return RecordingRow(
            device_id=r["device_id"],
            recording_id=r["recording_id"],
            started_utc=r["started_utc"],
            complete=r["complete"],
            segments=r["segments"],
            header_key=r["header_key"],
            manifest_key=r["manifest_key"],
            quarantine_reason=r["quarantine_reason"],
            updated_utc=r["updated_utc"],
        )

    # --- segments --------------------------------------------------------------------------

    def segment(self, device_id: str, recording_id: str, name: str) -> SegmentRecord | None:
        rows = self._query(
            "SELECT * FROM segments WHERE device_id=? AND recording_id=? AND name=?",
            (device_id, recording_id, name),
        )
        return self._segment(rows[0]) if rows else None

    def segments(
        self, device_id: str | None = None, state: str | None = None
    ) -> list[SegmentRecord]:
        sql, args = "SELECT * FROM segments WHERE 1=1", []
        if device_id is not None:
            sql += " AND device_id=?"
            args.append(device_id)
        if state is not None:
            sql += " AND state=?"
            args.append(state)
        sql += " ORDER BY device_id, recording_id, name"
        return [self._segment(r) for r in self._query(sql, tuple(args))]

    @staticmethod
    def _segment(r: sqlite3.Row) -> SegmentRecord:
        return SegmentRecord(
            r["device_id"],
            r["recording_id"],
            r["name"],
            r["sha256"],
            r["size"],
            r["state"],
            r["store_key"],
            r["reason"],
        )

    def _current(
        self, db: sqlite3.Connection, device_id: str, recording_id: str, name: str, sha256: str
    ) -> sqlite3.Row | None:
        row: sqlite3.Row | None = db.execute(
            "SELECT * FROM segments WHERE device_id=? AND recording_id=? AND name=?",
            (device_id, recording_id, name),
        ).fetchone()
        if row is not None and row["sha256"] != sha256:
            raise TransitionRefused(
                f"{device_id}/{recording_id}/{name}: the ledger holds sha256 {row['sha256']}, "
                f"now {sha256}: the camera's copy differs from the one recorded; not released"
            )
        return row

    def mark_copied(
        self, device_id: str, recording_id: str, name: str, sha256: str, size: int
    ) -> SegmentRecord:
        # Informational (a copy in the spool); losing it in a power cut changes nothing.
        with self._tx(durable=False) as db:
            row = self._current(db, device_id, recording_id, name, sha256)
            if row is None:
                db.execute(
                    "INSERT INTO segments (device_id, recording_id, name, sha256, size, state, "
                    "copied_utc) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (device_id, recording_id, name, sha256, size, COPIED, self._clock()),
                )
        return self._must(device_id, recording_id, name)

    def mark_stored(
        self,
        device_id: str,
        recording_id: str,
        name: str,
        sha256: str,
        size: int,
        store_key: str,
        receipt: str,
    ) -> SegmentRecord:
        """Record a durable copy; call only with the store's receipt in hand."""
        return self.mark_stored_many(
            [StoredSegment(device_id, recording_id, name, sha256, size, store_key, receipt)]
        )[0]

    def mark_stored_many(self, stored: list[StoredSegment]) -> list[SegmentRecord]:
        """Record several durable copies in one transaction: one fsync for all of them.

        Call only with every receipt in hand (for a batch: after its commit). All or none
        is recorded; a quarantined segment refuses the whole transaction.
        """
        with self._tx() as db:
            for s in stored:
                self._mark_stored(db, s)
        return [self._must(s.device_id, s.recording_id, s.name) for s in stored]

    def _mark_stored(self, db: sqlite3.Connection, s: StoredSegment) -> None:
        device_id, recording_id, name = s.device_id, s.recording_id, s.name
        row = self._current(db, device_id, recording_id, name, s.sha256)
        now = self._clock()
        if row is None:
            db.execute(
                "INSERT INTO segments (device_id, recording_id, name, sha256, size, state, "
                "store_key, receipt, copied_utc, stored_utc) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    device_id,
                    recording_id,
                    name,
                    s.sha256,
                    s.size,
                    STORED,
                    s.store_key,
                    s.receipt,
                    now,
                    now,
                ),
            )
        elif row["state"] == QUARANTINED:
            raise TransitionRefused(f"{device_id}/{recording_id}/{name} is quarantined")
        elif _RANK[row["state"]] < _RANK[STORED]:
            db.execute(
                "UPDATE segments SET state=?, store_key=?, receipt=?, stored_utc=? "
                "WHERE device_id=? AND recording_id=? AND name=?",
                (STORED, s.store_key, s.receipt, now, device_id, recording_id, name),
            )

    def mark_released(
        self, device_id: str, recording_id: str, name: str, sha256: str, how: str = "receipt"
    ) -> SegmentRecord:
        """Record that the camera deleted the segment; refused unless it is stored.

        Committed without its own fsync: what matters before a release (the stored copy)
        was made durable by `mark_stored`, and a `released` row lost in a power cut is
        settled again from the camera's signed event log at its next docking.
        """
        with self._tx(durable=False) as db:
            row = self._current(db, device_id, recording_id, name, sha256)
            if row is None or row["state"] not in (STORED, RELEASED):
                state = "unknown" if row is None else row["state"]
                raise TransitionRefused(
                    f"{device_id}/{recording_id}/{name} is {state}, not stored: "
                    "a segment is released only after a durable copy is recorded"
                )
            if row["state"] == STORED:
                db.execute(
                    "UPDATE segments SET state=?, released_utc=?, reason=? "
                    "WHERE device_id=? AND recording_id=? AND name=?",
                    (
                        RELEASED,
                        self._clock(),
                        None if how == "receipt" else how,
                        device_id,
                        recording_id,
                        name,
                    ),
                )
        return self._must(device_id, recording_id, name)

    def mark_quarantined(
        self,
        device_id: str,
        recording_id: str,
        name: str,
        sha256: str,
        size: int,
        reason: str,
        store_key: str | None,
    ) -> SegmentRecord:
        """A segment that failed verification: never released, whatever happens later."""
        with self._tx() as db:
            row = db.execute(
                "SELECT state FROM segments WHERE device_id=? AND recording_id=? AND name=?",
                (device_id, recording_id, name),
            ).fetchone()
            now = self._clock()
            if row is None:
                db.execute(
                    "INSERT INTO segments (device_id, recording_id, name, sha256, size, state, "
                    "store_key, reason, quarantined_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        device_id,
                        recording_id,
                        name,
                        sha256,
                        size,
                        QUARANTINED,
                        store_key,
                        reason,
                        now,
                    ),
                )
            elif row["state"] in (STORED, RELEASED):
                # A verified durable copy exists; a later bad read of the camera's copy does
                # not undo that. Keep the state, note the reason.
                db.execute(
                    "UPDATE segments SET reason=? WHERE device_id=? AND recording_id=? AND name=?",
                    (reason, device_id, recording_id, name),
                )
            else:
                db.execute(
                    "UPDATE segments SET state=?, reason=?, store_key=COALESCE(?, store_key), "
                    "quarantined_utc=? WHERE device_id=? AND recording_id=? AND name=?",
                    (QUARANTINED, reason, store_key, now, device_id, recording_id, name),
                )
        return self._must(device_id, recording_id, name)

    def _must(self, device_id: str, recording_id: str, name: str) -> SegmentRecord:
        record = self.segment(device_id, recording_id, name)
        assert record is not None
        return record

    # --- quarantine evidence per camera and day ---------------------------------------------

    def evidence_bytes(self, device_id: str, day: str) -> int:
        """Bytes this camera had put in quarantine on `day` (UTC, YYYY-MM-DD)."""
        rows = self._query(
            "SELECT bytes FROM evidence WHERE device_id=? AND day=?", (device_id, day)
        )
        return int(rows[0][0]) if rows else 0

    def add_evidence_bytes(self, device_id: str, day: str, n: int) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO evidence VALUES (?, ?, ?) ON CONFLICT (device_id, day) DO UPDATE "
                "SET bytes=bytes+excluded.bytes",
                (device_id, day, n),
            )
            # Only today's count is ever asked for: older days go.
            db.execute("DELETE FROM evidence WHERE device_id=? AND day<?", (device_id, day))

    # --- event logs ------------------------------------------------------------------------

    def events_offset(self, device_id: str) -> int:
        rows = self._query("SELECT offset FROM event_logs WHERE device_id=?", (device_id,))
        return int(rows[0][0]) if rows else 0

    def set_events_offset(self, device_id: str, offset: int, key: str | None) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO event_logs VALUES (?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE "
                "SET offset=excluded.offset, last_key=excluded.last_key, "
                "updated_utc=excluded.updated_utc",
                (device_id, offset, key, self._clock()),
            )
