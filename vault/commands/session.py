"""Who runs a back-office command, on which site: the signed-in `Session` every command
but `init` and `migrate` gets, its credentials (`--user` and a password, or a 0600
`--credentials` file), and the times commands read and write (UTC).
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

from crypto.timestamps import utc_text
from vault.clock import SYSTEM_CLOCK
from vault.errors import AuthenticationFailed, InvalidRequest
from vault.site.config import SiteConfig, check_migrated, default_home, ensure_django

MAX_CREDENTIALS = 4096


def _home(args: argparse.Namespace) -> Path:
    return Path(args.home).absolute() if getattr(args, "home", None) else default_home()


def _password(prompt: str, env: str = "BODYCAM_VAULT_PASSWORD") -> str:
    """`$env`, else asked with `prompt` ("new password for cora: ") in a terminal."""
    value = os.environ.get(env)
    if value:
        return value
    if not sys.stdin.isatty():
        whose = prompt.strip().rstrip(":")
        raise AuthenticationFailed(f"no {whose}: set ${env}, or run in a terminal to be asked")
    return getpass.getpass(prompt)


def _credentials(path: Path) -> tuple[str, str]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise AuthenticationFailed(
                f"{path} is readable by others (mode {stat.S_IMODE(st.st_mode):o}): chmod 600 it"
            )
        data = os.read(fd, MAX_CREDENTIALS + 1)
    finally:
        os.close(fd)
    try:
        doc = json.loads(data)
        return str(doc["username"]), str(doc["password"])
    except (ValueError, KeyError, TypeError):
        raise AuthenticationFailed(
            f'{path}: not a credentials file ({{"username": ..., "password": ...}})'
        ) from None


class Session:
    """The authenticated actor, the site's configuration, its store."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.home = _home(args)
        self.config = SiteConfig.load(self.home)
        ensure_django(self.home)
        # Models import only once Django runs on this HOME.
        from vault.access import authenticate_actor

        check_migrated()
        self.clock = SYSTEM_CLOCK
        if getattr(args, "credentials", None):
            username, password = _credentials(Path(args.credentials))
        else:
            username = args.user or os.environ.get("BODYCAM_VAULT_USER") or ""
            if not username:
                raise AuthenticationFailed(
                    "who are you? give --user NAME (or $BODYCAM_VAULT_USER) or --credentials FILE"
                )
            password = _password(f"password for {username}: ")
        self.actor = authenticate_actor(username=username, password=password, clock=self.clock)
        self._store: Any = None

    @property
    def store(self) -> Any:
        if self._store is None:
            from store import open_store

            # Only `init --create` makes a store: an empty folder here is an unmounted disk.
            self._store = open_store(self.config.store, create=False)
        return self._store

    def vault_key_path(self, given: str | None) -> Path:
        """The vault key a command decrypts with: `--key`, else the site's `vault_key`."""
        if given:
            return Path(given)
        if self.config.vault_key:
            return self.config.path(self.config.vault_key)
        raise InvalidRequest("no vault key: pass --key or set vault_key in site.toml")

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def _run(args: argparse.Namespace, fn: Any) -> int:
    session = Session(args)
    try:
        return int(fn(session, args) or 0)
    finally:
        session.close()


def _when(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date/time (2026-11-02 or 2026-11-02T08:00Z)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _fmt(t: dt.datetime | None) -> str:
    return utc_text(t) if t else "-"
