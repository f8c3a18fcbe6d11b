"""`vault init` and `vault migrate`: a new site (its store checked, database, municipalities,
first administrator, registry key) and bringing its database up to date.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vault.clock import SYSTEM_CLOCK
from vault.commands.session import _home, _password
from vault.errors import NotConfigured
from vault.site.config import SiteConfig, ensure_django, migrate


def _site_store(url: str, *, create: bool) -> str:
    """Check the store `init` points the site at; the URL to write into site.toml.

    The dock's rule: a missing or empty store folder (an unmounted disk looks like one)
    or a missing bucket is made only with --create. A file store's URL is written with
    its absolute path, so no later command depends on the folder it runs from.
    """
    from store import FileStore, StoreError, open_store
    from store.file import STORE_MARKER

    store = open_store(url, create=create)
    try:
        if isinstance(store, FileStore):
            root = store.root
            if root.exists() and not root.is_dir():
                raise NotConfigured(f"--store {url}: {root} is a file, not a folder")
            if not root.exists() and not create:
                raise NotConfigured(
                    f"--store {url}: the store's root folder {root} does not exist "
                    "(is its disk mounted?); pass --create to make it"
                )
            if not create and not (root / STORE_MARKER).is_file():
                hint = (
                    "it holds other files: choose the store's folder"
                    if any(root.iterdir())
                    else "it is empty: is the store's disk mounted? pass --create to start "
                    "a new store there"
                )
                raise NotConfigured(
                    f"--store {url}: {root} is not a bodycam store (no {STORE_MARKER}); {hint}"
                )
            if create:
                root.mkdir(mode=0o750, parents=True, exist_ok=True)
        try:
            store.check()
        except StoreError as exc:
            raise NotConfigured(f"--store {url}: {str(exc).splitlines()[0]}") from None
        return store.url if isinstance(store, FileStore) else url
    finally:
        store.close()


def cmd_init(args: argparse.Namespace) -> int:
    from crypto.keys import SigningKey, write_public_key

    home = _home(args)
    store_url = _site_store(args.store, create=args.create)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    cfg = SiteConfig(
        home=home,
        site=args.site,
        store=store_url,
        vault_key=Path(args.vault_key).absolute() if args.vault_key else None,
    )
    key_path = cfg.path(cfg.registry_key)
    if not key_path.exists():
        key = SigningKey.generate(kind="registry")
        key.save(key_path)
        write_public_key(key_path.with_suffix(".pub"), key.public_bytes(), "registry")
    cfg.save()
    ensure_django(home)
    migrate()
    from vault.accounts.services import site_setup

    password = _password(f"new password for {args.admin}: ")
    made = site_setup(
        policies=args.policy, admin_username=args.admin, admin_password=password, clock=SYSTEM_CLOCK
    )
    print(
        f"site {args.site} set up in {home}: municipalities "
        f"{', '.join(m.code for m in made)}; administrator {args.admin}; docks verify the "
        f"camera registry with {key_path.with_suffix('.pub')}"
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    home = _home(args)
    SiteConfig.load(home)
    ensure_django(home)
    migrate()
    print("back-office database up to date")
    return 0
