"""What `dock status` reads from the ledger (from another process, read-only): slots,
the sessions per camera, the daemon's heartbeat, the counts per state."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from dock.ledger_db import LedgerDB
from dock.ledger_devices import DeviceRegistry
from dock.ledger_segments import QUARANTINED, SegmentStates

REFUSED_SHOWN = 20  # refused dockings `dock status` lists, newest first


class DockStatus(DeviceRegistry, SegmentStates, LedgerDB):
    """The slots', sessions' and daemon's part of the ledger, and the whole status."""

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


def status_json(ledger: DockStatus) -> str:
    return json.dumps(ledger.status(), indent=2, sort_keys=True)
