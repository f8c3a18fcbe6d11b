"""The dock's durable ledger (SQLite, WAL): registered cameras, every segment's state, slots.

A segment moves only forward: `copied` (a verified copy in the dock's spool) ->
`stored` (durable in the store; the receipt is recorded) -> `released` (the camera
deleted it against our signed receipt). `quarantined` is terminal and is never
released. Each transition is one committed transaction with `synchronous=FULL`, and
re-applying a transition that already happened changes nothing, so a dock killed at
any instant resumes from here: it re-uploads nothing that is `stored` (the store is
content-addressed as a second guard) and releases only what the ledger holds as
`stored` with the same SHA-256.

The device registry is here too: only the coordinator adds or removes cameras
(POLICY.md), and who did it is recorded. `dock status` reads slots, the daemon's
heartbeat and the last summary per camera from another process (read-only).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypedDict

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
COORDINATOR = "coordinator"
ROLES = (
    "coordinator",
    "cluster-manager",
    "privacy-officer",
    "municipal-secretary",
    "safety-coordinator",
)

COPIED, STORED, RELEASED, QUARANTINED = "copied", "stored", "released", "quarantined"
_RANK = {COPIED: 1, STORED: 2, RELEASED: 3}
REFUSED_SHOWN = 20  # refused dockings `dock status` lists, newest first
# Columns added after schema 1 was first written; a ledger without them gets them on
# open (old readers ignore extra columns, so the schema number stays).
_ADDED_COLUMNS = {
    "sessions": (("notes", "TEXT NOT NULL DEFAULT '[]'"), ("refused", "TEXT")),
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    model TEXT NOT NULL DEFAULT '',
    registered_by TEXT NOT NULL,
    registered_role TEXT NOT NULL,
    registered_utc REAL NOT NULL,
    removed_by TEXT,
    removed_utc REAL
);
CREATE TABLE IF NOT EXISTS recordings (
    device_id TEXT NOT NULL,
    recording_id TEXT NOT NULL,
    started_utc REAL,
    complete INTEGER NOT NULL DEFAULT 0,
    segments INTEGER NOT NULL DEFAULT 0,
    header_key TEXT,
    manifest_key TEXT,
    quarantine_reason TEXT,
    updated_utc REAL NOT NULL,
    PRIMARY KEY (device_id, recording_id)
);
CREATE TABLE IF NOT EXISTS segments (
    device_id TEXT NOT NULL,
    recording_id TEXT NOT NULL,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    state TEXT NOT NULL,
    store_key TEXT,
    receipt TEXT,
    reason TEXT,
    copied_utc REAL,
    stored_utc REAL,
    released_utc REAL,
    quarantined_utc REAL,
    PRIMARY KEY (device_id, recording_id, name)
);
CREATE INDEX IF NOT EXISTS segments_state ON segments (state);
CREATE TABLE IF NOT EXISTS evidence (
    device_id TEXT NOT NULL,
    day TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (device_id, day)
);
CREATE TABLE IF NOT EXISTS event_logs (
    device_id TEXT PRIMARY KEY,
    offset INTEGER NOT NULL,
    last_key TEXT,
    updated_utc REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS slots (
    slot TEXT PRIMARY KEY,
    device_id TEXT,
    state TEXT NOT NULL,
    recording TEXT,
    bytes_done INTEGER NOT NULL DEFAULT 0,
    bytes_total INTEGER NOT NULL DEFAULT 0,
    rate REAL NOT NULL DEFAULT 0,
    eta REAL,
    message TEXT NOT NULL DEFAULT '',
    started_utc REAL,
    updated_utc REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    slot TEXT NOT NULL,
    device_id TEXT,
    started_utc REAL NOT NULL,
    ended_utc REAL NOT NULL,
    ok INTEGER NOT NULL,
    summary TEXT NOT NULL,
    notes TEXT NOT NULL DEFAULT '[]',
    refused TEXT
);
CREATE TABLE IF NOT EXISTS daemon (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    pid INTEGER,
    store TEXT,
    store_state TEXT NOT NULL DEFAULT 'ok',
    store_message TEXT NOT NULL DEFAULT '',
    started_utc REAL,
    heartbeat_utc REAL,
    stopped_utc REAL
);
"""


class LedgerError(Exception):
    """The ledger refused an operation; the message says why."""


class NotCoordinator(LedgerError, PermissionError):
    """Only the coordinator may add or remove cameras (municipal protocol)."""


class TransitionRefused(LedgerError):
    """A segment transition that would break an invariant (release before store, ...)."""


@dataclass(frozen=True)
class DeviceRecord:
    device_id: str
    public_key: bytes
    model: str
    registered_by: str
    registered_role: str
    registered_utc: float
    removed: bool


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


def check_role(role: str, action: str) -> None:
    if role != COORDINATOR:
        known = "" if role in ROLES else f" ({role!r} is not a role of the protocol)"
        raise NotCoordinator(
            f"only the coordinator may {action} cameras{known}; ask the coordinator "
            "(--role coordinator)"
        )


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
    """One durable copy to record (`Ledger.mark_stored_many`)."""

    device_id: str
    recording_id: str
    name: str
    sha256: str
    size: int
    store_key: str
    receipt: str


class Ledger:
    """The dock's SQLite ledger. Thread-safe: one connection behind a lock."""

    def __init__(
        self, path: Path | str, *, clock: Callable[[], float] = time.time, readonly: bool = False
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.RLock()
        self.readonly = readonly
        try:
            self._open()
        except sqlite3.Error as exc:
            # sqlite's own words ("unable to open database file") do not say which file
            raise LedgerError(f"dock ledger {self.path}: {exc}") from None
        self._db.row_factory = sqlite3.Row

    def _open(self) -> None:
        if self.readonly:
            if not self.path.exists():
                raise FileNotFoundError(
                    f"no dock ledger at {self.path}: has `bodycam dock run --slots DIR "
                    "--store URL` run with it? (or pass --ledger PATH)"
                )
            self._db = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA busy_timeout = 5000")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout = 5000")
            self._db.execute("PRAGMA journal_mode = WAL")
            # FULL: a transition reported committed survives a power cut, so "stored"
            # in the ledger is never ahead of what a restart will see.
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.executescript(_SCHEMA)
            self._add_columns()
            with self._tx() as db:
                row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                if row is None:
                    db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                elif int(row[0]) != SCHEMA_VERSION:
                    raise LedgerError(
                        f"{self.path} has ledger schema {row[0]}, this dock reads {SCHEMA_VERSION}"
                    )

    def _columns(self, table: str) -> set[str]:
        with self._lock:
            return {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}

    def _add_columns(self) -> None:
        for table, columns in _ADDED_COLUMNS.items():
            have = self._columns(table)
            for name, decl in columns:
                if name not in have:
                    with self._tx() as db:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction; `durable=False` skips the fsync (informational rows only)."""
        if self.readonly:
            raise LedgerError(f"{self.path} is open read-only")
        with self._lock:
            if not durable:
                self._db.execute("PRAGMA synchronous = NORMAL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            finally:
                if not durable:
                    self._db.execute("PRAGMA synchronous = FULL")

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

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

    # --- slots, sessions, daemon (for `dock status`) ---------------------------------------

    def set_slot(
        self,
        slot: str,
        *,
        state: str,
        device_id: str | None = None,
        recording: str | None = None,
        bytes_done: int = 0,
        bytes_total: int = 0,
        rate: float = 0.0,
        eta: float | None = None,
        message: str = "",
        started_utc: float | None = None,
    ) -> None:
        with self._tx(durable=False) as db:
            db.execute(
                "INSERT INTO slots VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (slot) DO UPDATE SET device_id=excluded.device_id, "
                "state=excluded.state, recording=excluded.recording, "
                "bytes_done=excluded.bytes_done, bytes_total=excluded.bytes_total, "
                "rate=excluded.rate, eta=excluded.eta, message=excluded.message, "
                "started_utc=COALESCE(excluded.started_utc, started_utc), "
                "updated_utc=excluded.updated_utc",
                (
                    slot,
                    device_id,
                    state,
                    recording,
                    bytes_done,
                    bytes_total,
                    rate,
                    eta,
                    message,
                    started_utc,
                    self._clock(),
                ),
            )

    def clear_slot(self, slot: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM slots WHERE slot=?", (slot,))

    def clear_slots(self) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM slots")

    def slots(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._query("SELECT * FROM slots ORDER BY slot")]

    def record_session(
        self,
        slot: str,
        device_id: str | None,
        started_utc: float,
        ok: bool,
        summary: str,
        *,
        notes: list[str] | tuple[str, ...] = (),
        refused: str | None = None,
    ) -> None:
        """One finished docking: its summary line, every note it made, why it was refused."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO sessions (slot, device_id, started_utc, ended_utc, ok, summary, "
                "notes, refused) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    slot,
                    device_id,
                    started_utc,
                    self._clock(),
                    int(ok),
                    summary,
                    json.dumps(list(notes)),
                    refused,
                ),
            )

    @staticmethod
    def _session(r: sqlite3.Row) -> dict[str, Any]:
        row = dict(r)
        try:
            notes = json.loads(row.get("notes") or "[]")
        except json.JSONDecodeError:
            notes = [str(row.get("notes"))]
        row["notes"] = notes if isinstance(notes, list) else [str(notes)]
        row.setdefault("refused", None)
        return row

    def last_sessions(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT s.* FROM sessions s JOIN (SELECT COALESCE(device_id, slot) AS who, "
            "MAX(id) AS id FROM sessions GROUP BY who) last ON s.id = last.id "
            "ORDER BY s.ended_utc DESC LIMIT ?",
            (limit,),
        )
        return [self._session(r) for r in rows]

    def refused_sessions(self, limit: int = REFUSED_SHOWN) -> list[dict[str, Any]]:
        """The latest refused dockings (unknown camera, wrong key, failed authentication).

        Kept apart from the last docking per camera: an impostor presenting a registered
        id stays visible after the real camera docked under that id.
        """
        if "refused" not in self._columns("sessions"):
            return []  # a ledger written before refusals were kept (read-only here)
        rows = self._query(
            "SELECT * FROM sessions WHERE refused IS NOT NULL ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [self._session(r) for r in rows]

    def set_daemon(self, **fields: str | int | float | None) -> None:
        allowed = {
            "pid",
            "store",
            "store_state",
            "store_message",
            "started_utc",
            "heartbeat_utc",
            "stopped_utc",
        }
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown daemon fields {sorted(unknown)}")
        with self._tx(durable=False) as db:
            db.execute("INSERT OR IGNORE INTO daemon (id) VALUES (1)")
            for k, v in fields.items():
                db.execute(f"UPDATE daemon SET {k}=? WHERE id=1", (v,))  # noqa: S608 - k checked

    def daemon(self) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM daemon WHERE id=1")
        return dict(rows[0]) if rows else None

    def counts(self) -> dict[str, int]:
        rows = self._query("SELECT state, COUNT(*) FROM segments GROUP BY state")
        return {r[0]: int(r[1]) for r in rows}

    def status(self) -> dict[str, Any]:
        """Everything `dock status` shows, JSON-ready."""
        return {
            "ledger": str(self.path),
            "daemon": self.daemon(),
            "slots": self.slots(),
            "segments": self.counts(),
            "cameras": self.last_sessions(),
            "refused": self.refused_sessions(),
            "quarantined": [
                {
                    "device_id": s.device_id,
                    "recording_id": s.recording_id,
                    "segment": s.name,
                    "reason": s.reason,
                }
                for s in self.segments(state=QUARANTINED)
            ]
            + [
                {
                    "device_id": r["device_id"],
                    "recording_id": r["recording_id"],
                    "segment": None,
                    "reason": r["quarantine_reason"],
                }
                for r in self._query("SELECT * FROM recordings WHERE quarantine_reason IS NOT NULL")
            ],
            "registered": [d.device_id for d in self.devices() if not d.removed],
        }


def status_json(ledger: Ledger) -> str:
    return json.dumps(ledger.status(), indent=2, sort_keys=True)
