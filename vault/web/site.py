"""The site's store and vault key for the web process, loaded once from HOME/site.toml."""

from __future__ import annotations

import functools
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from django.conf import settings

from crypto.keys import VaultKey
from vault.errors import NotConfigured
from vault.site.config import SiteConfig

log = logging.getLogger(__name__)


@functools.cache
def site_config() -> SiteConfig:
    return SiteConfig.load(settings.HOME)


@functools.cache
def site_store() -> Any:
    from store import open_store

    return open_store(site_config().store, create=False)  # only `init --create` makes one


def work_dir() -> Path:
    """This web worker's own private work folder (never shared with CLI commands or with
    the other workers: one worker starting up never removes another's files)."""
    return settings.HOME / "web-work" / str(os.getpid())


def wipe_work_dir() -> None:
    """Remove what stopped workers left (sealed files only: nothing decrypted is written).

    Every worker's folder but those of processes still running goes: a worker starting
    up, or a second server on the same home, never removes a running worker's files.
    """
    root = settings.HOME / "web-work"
    if root.exists():
        for path in root.iterdir():
            if path.is_dir() and not path.is_symlink() and _running(path.name):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            log.info("removed what a previous server left in %s", path)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    work_dir().mkdir(mode=0o700, exist_ok=True)


def _running(name: str) -> bool:
    if not name.isdigit():
        return False
    if int(name) == os.getpid():
        return False  # a folder of this process's number is a previous process's
    try:
        os.kill(int(name), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def vault_key() -> VaultKey:
    cfg = site_config()
    if cfg.vault_key is None:
        raise NotConfigured(
            "this site has no vault key (site.toml vault_key): footage cannot be opened for viewing"
        )
    return VaultKey.load(cfg.path(cfg.vault_key))
