"""What `bodycam dock run` configures: the daemon's settings and the site's dock key."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crypto.keys import SigningKey


class DockBusy(RuntimeError):
    """Another dock daemon already runs on this ledger."""


@dataclass
class DaemonConfig:
    """Everything `bodycam dock run` takes; see dock/cli.py for the flags."""

    slots: Path
    store_url: str
    ledger_path: Path
    keys_dir: Path | None = None
    state_dir: Path | None = None  # spool for stores without a local filesystem
    profiles_dir: Path | None = None
    site: str = "default"
    once: bool = False
    max_uploads: int = 2
    max_slots: int = 8
    settle: float = 1.0
    rescan_interval: float = 5.0
    retry_base: float = 5.0
    retry_max: float = 300.0
    once_attempts: int = 3
    link_timeout: float = 2.0
    live: bool | None = None  # rich live view; None: when stderr is a terminal
    registry_key: Path | None = None  # back office's registry public key (dock/registry.py)
    registry_interval: float = 60.0  # seconds between looks for a newer published registry
    # `dock run` without --create: a file store's root is never made (unmounted disk)
    create_store: bool = True
    announce: bool = False  # leave a note of the ledger for `dock status` elsewhere
    # A command run after a docking stored something (e.g. the back office's catalog
    # sync); one at a time, later dockings coalesce into one more run. No shell.
    on_docked: tuple[str, ...] = ()
    on_docked_timeout: float = 600.0


def load_dock_key(keys_dir: Path | None) -> SigningKey:
    """The site's dock signing key (keys_dir/dock.key), made by `bodycam keys init`."""
    from crypto.keys import SigningKey

    if keys_dir is None:
        env = os.environ.get("BODYCAM_DOCK_KEYS")
        keys_dir = Path(env) if env else None
    if keys_dir is None:
        raise FileNotFoundError(
            "no dock key: pass --keys DIR (the folder `bodycam keys init DIR` made, with "
            "dock.key) or set BODYCAM_DOCK_KEYS"
        )
    if Path(keys_dir).exists() and not Path(keys_dir).is_dir():
        raise NotADirectoryError(
            f"--keys {keys_dir}: is a file, not a folder (the folder "
            "`bodycam keys init DIR` made, with dock.key)"
        )
    path = Path(keys_dir) / "dock.key"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: `bodycam keys init {keys_dir}` makes it")
    return SigningKey.load(path)
