"""Docking in the simulated world: a camera into a dock slot folder, and the dock run over them.

`publish_slot`/`withdraw_slot` put a camera into a dock slot folder the way the
dock expects (ARCHITECTURE: `SLOTS/<slot>/volume` and `serial`, moved in whole);
`ingest_docked` runs the dock once over the slots at the end of a shift, in the
shift's time.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from dock.daemon import DaemonResult
    from firmware.camera import Camera

log = logging.getLogger(__name__)


def publish_slot(slots: Path, slot_name: str, volume: Path, serial_path: str | None) -> Path:
    """Make `SLOTS/<slot_name>` with `volume` (and `serial`) links, moved in whole."""
    slots = Path(slots)
    slots.mkdir(parents=True, exist_ok=True)
    final = slots / slot_name
    if final.exists() or final.is_symlink():
        raise FileExistsError(f"dock slot {final} is taken: undock the camera in it first")
    tmp = slots / f".{slot_name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    os.symlink(Path(volume).resolve(), tmp / "volume")
    if serial_path:
        os.symlink(serial_path, tmp / "serial")
    os.rename(tmp, final)
    return final


def withdraw_slot(slots: Path, slot_name: str) -> None:
    """Remove the slot folder (the links only, never the camera's files)."""
    final = Path(slots) / slot_name
    if not final.exists() and not final.is_symlink():
        return
    for name in ("volume", "serial"):
        link = final / name
        if link.is_symlink():
            link.unlink()
    final.rmdir()


def remove_dead_slots(slots: Path) -> list[Path]:
    """Remove slots whose camera is gone; the removed slot folders.

    A camera killed while docked (SIGKILL: no chance to withdraw) leaves its slot
    behind, its `serial` link pointing at a pty that closed with the process, or
    its `volume` link at nothing. Left there, the dock would keep a slot for a
    camera that is no longer in it.
    """
    removed: list[Path] = []
    try:
        entries = sorted(Path(slots).iterdir())
    except FileNotFoundError:
        return removed
    for slot in entries:
        if slot.name.startswith(".") or slot.is_symlink() or not slot.is_dir():
            continue
        links = [slot / name for name in ("volume", "serial")]
        dead = any(link.is_symlink() and not link.exists() for link in links)
        if not dead:
            continue
        try:
            withdraw_slot(slots, slot.name)
        except OSError as exc:  # something else in it: not ours to delete
            log.warning("dock slot %s looks dead but was left: %s", slot, exc)
            continue
        log.info("removed dead dock slot %s", slot)
        removed.append(slot)
    return removed


def ingest_docked(
    cameras: dict[str, Camera],
    slots: Path,
    ledger_path: Path,
    store_url: str,
    keys_dir: Path,
    *,
    site: str = "default",
    out: TextIO | None = None,
    clock: Any = None,
) -> DaemonResult:
    """Run the dock once over `slots`: every docked camera stored and released.

    The dock lives in the shift's world: without `clock` it reads the time from the first
    camera's clock (the shift's fast-forward time, which nothing moved during the shift),
    so a dock at the end of a simulated evening does not see every camera days behind.

    The cameras are registered in the ledger first (as the site's coordinator would
    with `bodycam dock register`); the dock signs receipts with KEYS_DIR/dock.key.
    """
    from dock.daemon import DockDaemon
    from dock.daemon_config import DaemonConfig
    from dock.ledger import Ledger

    Path(ledger_path).parent.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(ledger_path)
    try:
        for cam in cameras.values():
            ledger.register_device(
                cam.device_id,
                cam.identity.public_key,
                model=cam.model,
                registered_by="shift coordinator",
                role="coordinator",
            )
    finally:
        ledger.close()
    config = DaemonConfig(
        slots=Path(slots),
        store_url=store_url,
        ledger_path=Path(ledger_path),
        keys_dir=Path(keys_dir),
        site=site,
        once=True,
        settle=0.0,
        live=False,
    )
    if clock is None and cameras:
        clock = next(iter(cameras.values())).clock
    return DockDaemon(config, out=out, clock=clock).run()
