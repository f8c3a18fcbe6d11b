"""`bodycam keys ...`: create a site's keys and show public halves of key files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import NamedTuple

from crypto.errors import KeyFileError
from crypto.keys import (
    MAX_KEY_FILE_BYTES,
    PRIVATE_FORMAT,
    PUBLIC_FORMAT,
    init_site_keys,
    load_public_key,
)


def cmd_keys_init(args: argparse.Namespace) -> int:
    keys = init_site_keys(args.dir)
    print(
        f"site keys created in {keys.directory} (private keys mode 0600; keep vault.key "
        "in the back office only)"
    )
    print(f"  vault       {keys.vault.hex()}   -> profile [keys] vault_recipients")
    print(f"  dock        {keys.dock.hex()}   -> profile [keys] trusted_docks")
    print(f"  integrator  {keys.integrator.hex()}   -> provisioned on each camera")
    return 0


class KeyFileInfo(NamedTuple):
    """What `keys show` prints about one key file (never the private key)."""

    kind: object  # as written in the file: a string, or None when it has none
    algorithm: object
    public: str  # hex
    private: bool  # a private key file (which also holds the public key)


def _describe(path: Path) -> KeyFileInfo:
    raw = path.read_bytes()[: MAX_KEY_FILE_BYTES + 1]
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        doc = {}
    if isinstance(doc, dict) and doc.get("format") == PRIVATE_FORMAT:
        public = doc.get("public")
        if not isinstance(public, str):
            raise KeyFileError(f"{path}: private key file without a public key")
        return KeyFileInfo(doc.get("kind"), doc.get("algorithm"), public, private=True)
    if isinstance(doc, dict) and doc.get("format") == PUBLIC_FORMAT:
        return KeyFileInfo(
            doc.get("kind"), doc.get("algorithm"), load_public_key(path).hex(), private=False
        )
    return KeyFileInfo(None, None, load_public_key(path).hex(), private=False)


def cmd_keys_show(args: argparse.Namespace) -> int:
    for path in args.files:
        d = _describe(Path(path))
        what = " ".join(str(x) for x in (d.kind, d.algorithm) if x) or "public key"
        print(f"{path}: {what}{' (private key file)' if d.private else ''} public {d.public}")
    return 0


def add_subcommands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = subparsers.add_parser("keys", help="create a site's vault, integrator and dock keys")
    sub = keys.add_subparsers(dest="keys_command", metavar="SUBCOMMAND")
    sub.required = True
    init = sub.add_parser(
        "init",
        help="create vault.key/.pub, integrator.key/.pub and dock.key/.pub in DIR",
        description="Create a site's keys. Refuses to overwrite any existing key file.",
    )
    init.add_argument("dir", metavar="DIR", type=Path)
    init.set_defaults(func=cmd_keys_init)
    show = sub.add_parser("show", help="print the public key of key files (never the private)")
    show.add_argument("files", metavar="FILE", nargs="+", type=Path)
    show.set_defaults(func=cmd_keys_show)
