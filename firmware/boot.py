"""Boot steps of the camera: open (or reset) the event log, recover recordings, load a profile.

Each step keeps the camera bootable: a log this camera cannot extend is kept aside
and a new chain says so; a recovery that fails is logged, not raised; a damaged
profile store keeps the built-in profile, loudly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from formats.eventlog import EventLog, EventLogError, WallClock, events_path

if TYPE_CHECKING:
    from crypto.keys import SigningKey
    from firmware.profile_store import StoredProfile

log = logging.getLogger(__name__)

EventFn = Callable[..., None]


def open_event_log(
    volume: Path, key: SigningKey, clock: WallClock
) -> tuple[EventLog, dict[str, str] | None]:
    """The event log of `volume`; second: the fields of an `event_log_reset` to log, if any."""
    path = events_path(volume)
    try:
        return EventLog(path, key, clock), None
    except EventLogError as exc:
        # A log this camera cannot extend is kept aside, never overwritten, and the
        # new chain starts by saying so.
        aside = path.with_name(f"events.{int(clock.now())}.unreadable.jsonl")
        path.rename(aside)
        return EventLog(path, key, clock), {"reason": str(exc), "kept_as": aside.name}


def recover(recordings_root: Path, key: SigningKey, event: EventFn) -> list[Any]:
    """Close what a power cut left open; logs one `recovery` event per recording."""
    from crypto.seal import recover_recordings

    recordings_root.mkdir(parents=True, exist_ok=True)
    try:
        reports = list(recover_recordings(recordings_root, key))
    except Exception as exc:  # recovery must not keep the camera from booting
        log.exception("recovery of the recordings failed")
        event("recovery_failed", error=str(exc))
        reports = []
    for report in reports:
        event("recovery", **report_fields(report))
    event("recovery_done", recordings=len(reports))
    return reports


def load_ciphers() -> None:
    """Load the sealing cipher's native code now, not at the first record press.

    Its first use costs ~100 ms (module imports, cffi parsing) and holds the
    interpreter lock meanwhile, which would stall capture beside the recording worker.
    """
    from Crypto.Cipher import AES

    AES.new(bytes(32), AES.MODE_GCM, nonce=bytes(12)).encrypt_and_digest(b"")


def load_flashed_profile(store_dir: Path) -> StoredProfile | None:
    """A profile flashed through the dock (it wins over the one the camera was built with)."""
    if not store_dir.exists():
        return None
    try:
        from firmware.profile_store import ProfileStore

        return ProfileStore(store_dir).load_active()
    except Exception as exc:  # a damaged store keeps the built-in profile, loudly
        log.warning("profile store unreadable, keeping the built-in profile: %s", exc)
        return None


def report_fields(report: Any) -> dict[str, Any]:
    """A RecoveryReport as event fields (whatever dataclass/NamedTuple crypto returns)."""
    if hasattr(report, "_asdict"):
        data = dict(report._asdict())
    elif hasattr(report, "__dataclass_fields__"):
        data = {name: getattr(report, name) for name in report.__dataclass_fields__}
    else:
        data = {"report": str(report)}
    return {k: v for k, v in data.items() if not k.startswith("_")}
