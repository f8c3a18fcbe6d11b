"""Whether a dock daemon runs on a ledger, and how `dock status` and the live view show it."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HEARTBEAT_STALE = 30.0  # seconds without a heartbeat before status calls a live daemon stuck
LOCK_ATTEMPTS = 40  # x 25 ms: `dock status` probes the lock for a moment, never longer


def daemon_state(ledger_path: Path, row: dict[str, Any] | None, now: float) -> str:
    """ "running", "not responding" (alive, no heartbeat) or "not running", for `dock status`.

    A heartbeat alone says "running" for up to 30 s after a kill -9. The ledger lock is
    the proof: the running daemon holds it and the kernel drops it the instant the
    process dies. Where the lock cannot be probed (another user), the pid is checked.
    """
    if row is None or row.get("stopped_utc") is not None:
        return "not running"
    held = _lock_held(Path(f"{ledger_path}.lock"))
    if held is False:
        return "not running"
    if held is None and not _pid_alive(row.get("pid")):
        return "not running"
    beat = row.get("heartbeat_utc")
    if beat is None or now - beat >= HEARTBEAT_STALE:
        return "not responding"
    return "running"


def ledger_locked(ledger_path: Path) -> bool:
    """Whether a dock daemon runs on this ledger now (it holds LEDGER.lock)."""
    return _lock_held(Path(f"{ledger_path}.lock")) is True


def _lock_held(path: Path) -> bool | None:
    """Whether some process holds the ledger lock; None if it cannot be probed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)  # closing drops the probe's shared lock at once
    return False


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def progress_cells(snap: Mapping[str, Any]) -> list[str]:
    """One row of the live view / `dock status` table: a slot's snapshot or ledger row."""
    eta = snap.get("eta")
    rate = snap.get("rate") or 0.0
    return [
        str(snap.get("slot", "")),
        str(snap.get("device_id") or "-"),
        str(snap.get("recording") or "-"),
        str(snap.get("state", "")),
        f"{human_bytes(snap.get('bytes_done', 0))} / {human_bytes(snap.get('bytes_total', 0))}",
        f"{human_bytes(rate)}/s" if rate else "-",
        f"{eta:.0f} s" if isinstance(eta, int | float) else "-",
        str(snap.get("message") or ""),
    ]
