"""The dock ledger's database: schema, migrations by number, one connection, transactions.

WAL with `synchronous=FULL`: a transition reported committed survives a power cut. The
schema is created by migration 1 and changed only by appending a numbered migration to
`MIGRATIONS`; the number applied is kept in the `meta` table (`schema`), and a ledger
written by a newer dock is refused rather than misread. The tables' users are
dock/ledger_devices.py, dock/ledger_segments.py and dock/ledger_status.py.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

log = logging.getLogger(__name__)

SCHEMA_1 = """
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
    summary TEXT NOT NULL
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


def _create_tables(db: sqlite3.Connection) -> None:
    # One statement at a time: executescript would commit the migration's transaction.
    for statement in SCHEMA_1.split(";"):
        if statement.strip():
            db.execute(statement)


def _session_notes_and_refusals(db: sqlite3.Connection) -> None:
    have = {r[1] for r in db.execute("PRAGMA table_info(sessions)")}
    # A ledger that an earlier dock gave these columns under schema 1 already has them.
    if "notes" not in have:
        db.execute("ALTER TABLE sessions ADD COLUMN notes TEXT NOT NULL DEFAULT '[]'")
    if "refused" not in have:
        db.execute("ALTER TABLE sessions ADD COLUMN refused TEXT")


# Numbered from 1, in order; a change to the schema is a new entry at the end, never an
# edit of one that shipped. `meta.schema` holds how many have been applied.
MIGRATIONS: tuple[tuple[str, Callable[[sqlite3.Connection], None]], ...] = (
    ("the tables", _create_tables),
    ("sessions keep their notes and refusals", _session_notes_and_refusals),
)
SCHEMA_VERSION = len(MIGRATIONS)


class LedgerError(Exception):
    """The ledger refused an operation; the message says why."""


class LedgerDB:
    """The ledger's SQLite connection: opened (and migrated), one lock, transactions.
    Thread-safe: one connection behind a lock."""

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
            self._migrate()

    def _migrate(self) -> None:
        """Apply the migrations this ledger has not had yet, each in its own transaction."""
        with self._tx() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        applied = int(row[0]) if row is not None else 0
        if applied > SCHEMA_VERSION:
            raise LedgerError(
                f"{self.path} has ledger schema {applied}, written by a newer dock; this dock "
                f"reads up to {SCHEMA_VERSION}"
            )
        for number, (what, migration) in enumerate(MIGRATIONS, start=1):
            if number <= applied:
                continue
            with self._tx() as db:
                migration(db)
                db.execute(
                    "INSERT INTO meta VALUES ('schema', ?) ON CONFLICT (key) DO UPDATE "
                    "SET value=excluded.value",
                    (str(number),),
                )
            log.info("dock ledger %s: schema %d (%s)", self.path, number, what)

    def _columns(self, table: str) -> set[str]:
        with self._lock:
            return {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
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
