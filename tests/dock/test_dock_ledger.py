"""The dock ledger: forward-only, idempotent segment transitions and the device registry."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from dock.ledger import (
    COPIED,
    QUARANTINED,
    RELEASED,
    STORED,
    Ledger,
    LedgerError,
    NotCoordinator,
    TransitionRefused,
    status_json,
)

DEV, REC = "BC-1A2B3C4D", "20261122T181500Z-0a1b"
SHA = "ab" * 32
KEY = bytes(range(32))


def test_only_the_coordinator_adds_or_removes_cameras(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite", clock=lambda: 100.0) as led:
        for role in ("privacy-officer", "cluster-manager", "officer", ""):
            with pytest.raises(NotCoordinator, match="only the coordinator"):
                led.register_device(DEV, KEY, registered_by="x", role=role)
        assert led.devices() == []
        rec = led.register_device(
            DEV, KEY, model="BC-SIM-1", registered_by="anna", role="coordinator"
        )
        assert (rec.registered_by, rec.registered_role, rec.registered_utc) == (
            "anna",
            "coordinator",
            100.0,
        )
        assert led.register_device(DEV, KEY, registered_by="bob", role="coordinator") == rec
        with pytest.raises(LedgerError, match="another key"):
            led.register_device(DEV, bytes(32), registered_by="anna", role="coordinator")
        with pytest.raises(NotCoordinator):
            led.remove_device(DEV, removed_by="eve", role="privacy-officer")
        led.remove_device(DEV, removed_by="anna", role="coordinator")
        assert led.active_device(DEV) is None and led.device(DEV) is not None
        with pytest.raises(LedgerError, match="not a registered camera"):
            led.remove_device(DEV, removed_by="anna", role="coordinator")
        # a re-provisioned camera gets its new key after removal
        led.register_device(DEV, bytes(32), registered_by="anna", role="coordinator")
        active = led.active_device(DEV)
        assert active is not None and active.public_key == bytes(32)


def test_segments_move_forward_only_and_release_needs_a_durable_copy(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite") as led:
        with pytest.raises(TransitionRefused, match="not stored"):
            led.mark_released(DEV, REC, "seg-000000.bcs", SHA)
        assert led.mark_copied(DEV, REC, "seg-000000.bcs", SHA, 10).state == COPIED
        with pytest.raises(TransitionRefused, match="copied, not stored"):
            led.mark_released(DEV, REC, "seg-000000.bcs", SHA)
        stored = led.mark_stored(DEV, REC, "seg-000000.bcs", SHA, 10, "k", "{}")
        assert stored.state == STORED and stored.durable
        assert led.mark_copied(DEV, REC, "seg-000000.bcs", SHA, 10).state == STORED
        assert led.mark_released(DEV, REC, "seg-000000.bcs", SHA).state == RELEASED
        # re-applying any earlier step after a restart changes nothing
        assert led.mark_stored(DEV, REC, "seg-000000.bcs", SHA, 10, "k", "{}").state == RELEASED
        assert led.mark_released(DEV, REC, "seg-000000.bcs", SHA).state == RELEASED
        with pytest.raises(TransitionRefused, match="differs"):
            led.mark_stored(DEV, REC, "seg-000000.bcs", "cd" * 32, 10, "k2", "{}")


def test_quarantine_is_terminal_but_never_undoes_a_durable_copy(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite") as led:
        q = led.mark_quarantined(DEV, REC, "seg-000001.bcs", SHA, 10, "tampered", "quarantine/x")
        assert q.state == QUARANTINED and q.reason == "tampered"
        with pytest.raises(TransitionRefused, match="quarantined"):
            led.mark_stored(DEV, REC, "seg-000001.bcs", SHA, 10, "k", "{}")
        with pytest.raises(TransitionRefused):
            led.mark_released(DEV, REC, "seg-000001.bcs", SHA)
        led.mark_stored(DEV, REC, "seg-000002.bcs", SHA, 10, "k", "{}")
        kept = led.mark_quarantined(DEV, REC, "seg-000002.bcs", SHA, 10, "bad read", None)
        assert kept.state == STORED


def test_ledger_survives_reopen_and_serves_status_read_only(tmp_path: Path) -> None:
    path = tmp_path / "state" / "ledger.sqlite"
    with pytest.raises(FileNotFoundError, match="bodycam dock run"):
        Ledger(path, readonly=True)
    with Ledger(path, clock=lambda: 50.0) as led:
        led.mark_stored(DEV, REC, "seg-000000.bcs", SHA, 10, "k", "{}")
        led.set_slot("slot-1", state="uploading", device_id=DEV, bytes_done=5, bytes_total=10)
        led.set_daemon(pid=123, store="file:///x", heartbeat_utc=50.0)
        led.record_session("slot-1", DEV, 40.0, True, f"{DEV}: all 1 recording stored")
        led.set_events_offset(DEV, 77, "events-key")
        with pytest.raises(ValueError):
            led.set_daemon(colour="blue")
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    with Ledger(path, readonly=True) as ro:
        status = json.loads(status_json(ro))
        assert status["segments"] == {"stored": 1}
        assert status["slots"][0]["state"] == "uploading"
        assert status["daemon"]["pid"] == 123
        assert status["cameras"][0]["summary"].endswith("stored")
        assert ro.events_offset(DEV) == 77
        with pytest.raises(LedgerError, match="read-only"):
            ro.set_slot("slot-2", state="done")


def test_session_notes_and_refusals_persist_and_an_older_ledger_gains_the_columns(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite"
    # a ledger written before notes and refusals were kept
    db = sqlite3.connect(path)
    from dock.ledger_db import SCHEMA_1

    assert "refused" not in SCHEMA_1
    db.executescript(SCHEMA_1)
    db.executescript(
        "INSERT INTO meta VALUES ('schema', '1');"
        "INSERT INTO sessions (slot, device_id, started_utc, ended_utc, ok, summary) "
        "VALUES ('s1', 'BC-OLD00000', 1, 2, 1, 'old line');"
    )
    db.close()
    with Ledger(path, readonly=True) as old:  # `dock status` on it before any daemon ran
        assert old.status()["refused"] == []
        assert old.last_sessions()[0]["notes"] == []
    with Ledger(path, clock=lambda: 50.0) as led:
        led.record_session(
            "s1",
            DEV,
            10.0,
            False,
            "line",
            notes=["camera clock was off"],
            refused="presents a device key that differs",
        )
        led.record_session("s1", DEV, 20.0, True, "ok line", notes=[])
    with Ledger(path, readonly=True) as ro:
        status = json.loads(status_json(ro))
    by_device = {c["device_id"]: c for c in status["cameras"]}
    assert by_device[DEV]["summary"] == "ok line"  # the last docking per camera
    assert by_device["BC-OLD00000"]["notes"] == []
    (refused,) = status["refused"]  # still there after the camera's next, good docking
    assert refused["notes"] == ["camera clock was off"] and "differs" in refused["refused"]


def test_migrations_are_numbered_and_a_newer_ledger_is_refused(tmp_path: Path) -> None:
    from dock.ledger_db import SCHEMA_VERSION

    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as led:
        led.record_session("s1", DEV, 10.0, True, "line", notes=["kept"])
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == (
        str(SCHEMA_VERSION),
    )
    with Ledger(path) as again:  # opening again applies nothing twice
        assert again.last_sessions()[0]["notes"] == ["kept"]
    db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(LedgerError, match="written by a newer dock"):
        Ledger(path)


def test_copies_recorded_together_are_all_or_nothing(tmp_path: Path) -> None:
    from dock.ledger import StoredSegment

    def seg(i: int) -> StoredSegment:
        return StoredSegment(DEV, REC, f"seg-00000{i}.bcs", SHA, 10, f"k{i}", "{}")

    with Ledger(tmp_path / "l.sqlite") as led:
        rows = led.mark_stored_many([seg(0), seg(1)])
        assert [r.state for r in rows] == [STORED, STORED]
        led.mark_quarantined(DEV, REC, "seg-000003.bcs", SHA, 10, "tampered", "quarantine/x")
        with pytest.raises(TransitionRefused, match="quarantined"):
            led.mark_stored_many([seg(2), seg(3)])
        assert led.segment(DEV, REC, "seg-000002.bcs") is None  # the whole batch rolled back
    with Ledger(tmp_path / "l.sqlite") as led:  # what was committed survives a reopen
        assert {s.name for s in led.segments(DEV) if s.state == STORED} == {
            "seg-000000.bcs",
            "seg-000001.bcs",
        }
