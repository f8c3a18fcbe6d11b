"""The site's own settings file and Django start-up for commands outside a web server.

`HOME/site.toml` (written by `bodycam vault init`):

```toml
site = "default"                     # the docks' --site: first part of every store key
store = "file:///srv/bodycam/store"  # or s3://bucket/prefix?endpoint=...
vault_key = "/etc/bodycam/vault.key" # X25519 private key that opens footage (0600)
registry_key = "registry.key"        # Ed25519 key signing the camera registry (0600)
cache_dirs = []                      # folders holding per-recording copies to purge too
```

Relative paths are relative to HOME, a store given as a relative path too (never to the
folder a command runs from). HOME is `--home`, else `$BODYCAM_VAULT_HOME`, else
`~/.local/state/bodycam-vault`.
"""

from __future__ import annotations

import logging
import os
import sys
import tomllib
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

from vault.errors import NotConfigured

log = logging.getLogger(__name__)

SITE_FILE = "site.toml"
MAX_SITE_FILE = 64 * 1024


def python_argv(*args: str) -> list[str]:
    """The command line of a child Python of this installation running `args`.

    `-P`: the child does not put its working folder (or, for `-c`, the empty path) first
    on the import path, so a folder holding `store/`, `vault/` or `crypto/` where a
    command runs cannot shadow the project's packages.
    """
    return [sys.executable, "-P", *args]


def default_home() -> Path:
    env = os.environ.get("BODYCAM_VAULT_HOME")
    return Path(env).absolute() if env else Path.home() / ".local" / "state" / "bodycam-vault"


def _store_url(home: Path, url: str) -> str:
    """The site's store URL with a file store's relative path made relative to HOME."""
    parts = urllib.parse.urlsplit(url)
    path = urllib.parse.unquote(parts.path)
    if parts.scheme in ("", "file") and not parts.netloc and path and not path.startswith("/"):
        return f"file://{home.absolute() / path}"
    return url


@dataclass
class SiteConfig:
    home: Path
    site: str
    store: str
    vault_key: Path | None = None
    registry_key: Path = Path("registry.key")
    cache_dirs: list[Path] = field(default_factory=list)

    def path(self, p: Path) -> Path:
        return p if p.is_absolute() else self.home / p

    @property
    def work_dir(self) -> Path:
        """Where recordings are assembled for opening (removed after each command)."""
        return self.home / "work"

    @classmethod
    def load(cls, home: Path) -> SiteConfig:
        path = home / SITE_FILE
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_SITE_FILE + 1)
        except FileNotFoundError:
            raise NotConfigured(
                f"{path} does not exist: set the site up with `bodycam vault "
                "init --home DIR --store URL --policy NAME --admin NAME`"
            ) from None
        try:
            doc = tomllib.loads(raw.decode("utf-8"))
            cfg = cls(
                home=home,
                site=str(doc["site"]),
                store=_store_url(home, str(doc["store"])),
                vault_key=Path(doc["vault_key"]) if doc.get("vault_key") else None,
                registry_key=Path(doc.get("registry_key", "registry.key")),
                cache_dirs=[Path(p) for p in doc.get("cache_dirs", [])],
            )
        except (UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
            raise NotConfigured(f"{path}: not a valid site file ({exc})") from None
        return cfg

    def save(self) -> None:
        doc: dict[str, object] = {
            "site": self.site,
            "store": self.store,
            "registry_key": str(self.registry_key),
            "cache_dirs": [str(p) for p in self.cache_dirs],
        }
        if self.vault_key is not None:
            doc["vault_key"] = str(self.vault_key)
        path = self.home / SITE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(tomli_w.dumps(doc))
        os.replace(tmp, path)


def ensure_django(home: Path) -> None:
    """Set Django up on this HOME (unless this process already runs it, as in tests)."""
    import django
    from django.conf import settings

    if settings.configured:
        return
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ["BODYCAM_VAULT_HOME"] = str(home)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vault.site.settings")
    django.setup()


def check_migrated() -> None:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        raise NotConfigured(
            f"the back-office database needs {len(plan)} migration(s): run "
            "`bodycam vault migrate` (or `bodycam vault init` on a new site)"
        )


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
