"""The site's store and vault key for the web process, loaded once from HOME/site.toml."""

from __future__ import annotations

import functools
import logging
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
    """The web process's own private work folder (never shared with CLI commands)."""
    return settings.HOME / "web-work"


def wipe_work_dir() -> None:
    path = work_dir()
    if path.exists():
        shutil.rmtree(path)
        log.info("removed what a previous server left in %s", path)
    path.mkdir(mode=0o700, parents=True)


def vault_key() -> VaultKey:
    cfg = site_config()
    if cfg.vault_key is None:
        raise NotConfigured(
            "this site has no vault key (site.toml vault_key): footage cannot be opened for viewing"
        )
    return VaultKey.load(cfg.path(cfg.vault_key))
