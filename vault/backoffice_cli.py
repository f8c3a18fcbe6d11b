"""The parser of the `bodycam vault ...` back-office commands (the commands themselves:
`vault.commands`, one module per group), thin wrappers over the service layer.

Every command except `init` and `migrate` acts as an authenticated back-office user:

- `--user NAME` (or `$BODYCAM_VAULT_USER`), password from `$BODYCAM_VAULT_PASSWORD` or
  a prompt; or `--credentials FILE`, a JSON file `{"username": ..., "password": ...}`
  readable by its owner only (mode 0600; anything wider is refused), for the
  systemd timer's unattended `scheduler` account.
- `--home DIR` (or `$BODYCAM_VAULT_HOME`): the site's state folder with `site.toml`.

What the user may do is decided by the municipality's policy in the services, never
here, and every action and refusal is in the audit log.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vault.commands.catalog import (
    cmd_audit_anchor,
    cmd_audit_show,
    cmd_audit_verify,
    cmd_hold_lift,
    cmd_hold_place,
    cmd_list,
    cmd_purge,
    cmd_show,
    cmd_sync,
)
from vault.commands.people import (
    cmd_camera_add,
    cmd_camera_assign,
    cmd_camera_list,
    cmd_camera_publish,
    cmd_camera_remove,
    cmd_dock_add,
    cmd_officer_add,
    cmd_user_add,
    cmd_user_grant,
    cmd_user_list,
    cmd_user_password,
    cmd_user_revoke,
)
from vault.commands.session import _run, _when
from vault.commands.setup import cmd_init, cmd_migrate

# --- parser -----------------------------------------------------------------------------


def _auth_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--home",
        default=None,
        help="site state folder (default $BODYCAM_VAULT_HOME or ~/.local/state/bodycam-vault)",
    )
    p.add_argument(
        "--user",
        default=None,
        help="back-office user (default $BODYCAM_VAULT_USER); password from "
        "$BODYCAM_VAULT_PASSWORD or a prompt",
    )
    p.add_argument(
        "--credentials",
        default=None,
        metavar="FILE",
        help='JSON {"username", "password"}, mode 0600 (unattended jobs)',
    )
    return p


def _leaf(sub: Any, name: str, fn: Any, help: str, parents: list[Any]) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=help, description=help, parents=parents)
    p.set_defaults(func=lambda args: _run(args, fn))
    return p


def add_backoffice_commands(sub: Any) -> None:
    auth = [_auth_parent()]
    init = sub.add_parser(
        "init",
        help="set up a back-office site: database, municipalities, "
        "first administrator, registry key",
    )
    init.add_argument("--home", default=None)
    init.add_argument("--store", required=True, help="store URL the docks write to")
    init.add_argument("--site", default="default", help="the docks' --site name")
    init.add_argument(
        "--policy",
        action="append",
        required=True,
        help="shipped policy name (heusden, utrecht, h2o) or a TOML file's path (with a / or "
        "ending in .toml: ./mine.toml); repeatable",
    )
    init.add_argument(
        "--admin",
        required=True,
        help="first administrator's user name (password: $BODYCAM_VAULT_PASSWORD or prompt)",
    )
    init.add_argument("--vault-key", default=None, help="vault.key that opens footage")
    init.add_argument(
        "--create",
        action="store_true",
        help="make the store if it is missing (a new store folder or bucket); without it a "
        "missing or empty store is refused, as an unmounted disk looks like one",
    )
    init.set_defaults(func=cmd_init)
    mig = sub.add_parser("migrate", help="bring the back-office database up to date")
    mig.add_argument("--home", default=None)
    mig.set_defaults(func=cmd_migrate)

    p = _leaf(sub, "list", cmd_list, "find recordings (metadata only)", auth)
    p.add_argument("--camera")
    p.add_argument("--officer", help="needs --purpose: only for a case")
    p.add_argument(
        "--purpose", choices=["complaint", "criminal_investigation", "access_request", "learning"]
    )
    p.add_argument("--since", type=_when)
    p.add_argument("--until", type=_when)
    p.add_argument("--state", choices=["stored", "incomplete", "purged"])
    p.add_argument("--hold", help="any, none, access_request, complaint or prosecutor")
    p.add_argument("--municipality")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--json", action="store_true")
    p = _leaf(sub, "show", cmd_show, "one recording: metadata, segments, custody, holds", auth)
    p.add_argument("recording", metavar="RECORDING", help="RECORDING_ID or DEVICE_ID/RECORDING_ID")
    p = _leaf(sub, "sync", cmd_sync, "index every recording in the store (verified)", auth)
    p.add_argument("--deep", action="store_true", help="re-hash every stored segment")
    p = _leaf(sub, "purge", cmd_purge, "delete footage whose retention ended (no hold)", auth)
    p.add_argument("--dry-run", action="store_true", help="list what would go, delete nothing")

    hold = sub.add_parser(
        "hold", help="place or lift a hold (access request, complaint, prosecutor)"
    )
    hsub = hold.add_subparsers(dest="hold_command", metavar="SUBCOMMAND")
    hsub.required = True
    p = _leaf(hsub, "place", cmd_hold_place, "keep a recording until the hold is lifted", auth)
    p.add_argument("recording", metavar="RECORDING")
    p.add_argument("--kind", required=True, choices=["access_request", "complaint", "prosecutor"])
    p.add_argument("--reference", required=True, help="case, request or report number")
    p.add_argument("--reason", required=True)
    p.add_argument("--received", type=_when, help="access request: when it arrived")
    p = _leaf(hsub, "lift", cmd_hold_lift, "lift a hold (the procedure ended)", auth)
    p.add_argument("hold", type=int, metavar="HOLD_ID")
    p.add_argument("--reason", required=True)

    audit = sub.add_parser("audit", help="the audit log: verify, anchor, show")
    asub = audit.add_subparsers(dest="audit_command", metavar="SUBCOMMAND")
    asub.required = True
    _leaf(
        asub, "verify", cmd_audit_verify, "check the hash chain and its anchors in the store", auth
    )
    _leaf(asub, "anchor", cmd_audit_anchor, "store the chain head in the store", auth)
    p = _leaf(asub, "show", cmd_audit_show, "the latest audit entries", auth)
    p.add_argument("--limit", type=int, default=50)

    user = sub.add_parser("user", help="back-office users and their roles")
    usub = user.add_subparsers(dest="user_command", metavar="SUBCOMMAND")
    usub.required = True
    for name, fn, text in (
        (
            "add",
            cmd_user_add,
            "create a user with a role (password: $BODYCAM_VAULT_NEW_PASSWORD or prompt)",
        ),
        ("grant", cmd_user_grant, "give a user a role in a municipality"),
        ("revoke", cmd_user_revoke, "take a role away"),
    ):
        p = _leaf(usub, name, fn, text, auth)
        p.add_argument("username")
        p.add_argument("--municipality", required=True)
        p.add_argument("--role", required=True)
    _leaf(usub, "list", cmd_user_list, "users and roles you administer", auth)
    p = _leaf(usub, "password", cmd_user_password, "set a password", auth)
    p.add_argument("username")

    officer = sub.add_parser("officer", help="officers who wear cameras")
    osub = officer.add_subparsers(dest="officer_command", metavar="SUBCOMMAND")
    osub.required = True
    p = _leaf(osub, "add", cmd_officer_add, "add an officer (coordinator)", auth)
    p.add_argument("code", help="badge or personnel code")
    p.add_argument("--municipality", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--username", default=None, help="the officer's own account, if any")

    camera = sub.add_parser("camera", help="the camera registry (coordinator)")
    csub = camera.add_subparsers(dest="camera_command", metavar="SUBCOMMAND")
    csub.required = True
    p = _leaf(csub, "add", cmd_camera_add, "register a camera and publish the registry", auth)
    p.add_argument("public_key", metavar="PUBKEY", help="64 hex, a .pub file or DEVICE.json")
    p.add_argument("--device-id", default=None, help="default: from DEVICE.json")
    p.add_argument("--municipality", required=True)
    p.add_argument("--model", default="")
    p = _leaf(csub, "remove", cmd_camera_remove, "remove a camera and publish the registry", auth)
    p.add_argument("device_id")
    p = _leaf(csub, "assign", cmd_camera_assign, "assign a camera to an officer", auth)
    p.add_argument("device_id")
    p.add_argument("officer", help="officer code")
    p.add_argument("--start", type=_when, default=None, help="default: now")
    p.add_argument("--end", type=_when, default=None, help="end of the shift (default: standing)")
    p = _leaf(
        csub,
        "list",
        cmd_camera_list,
        "registered cameras: who wears each one now, when it last docked",
        auth,
    )
    p.add_argument("--all", action="store_true", help="removed ones too")
    _leaf(csub, "publish", cmd_camera_publish, "publish the signed registry for the docks", auth)
    dock = sub.add_parser("dock", help="docking stations trusted for ingest records")
    dsub = dock.add_subparsers(dest="dock_command", metavar="SUBCOMMAND")
    dsub.required = True
    p = _leaf(dsub, "add", cmd_dock_add, "trust a dock's key (dock.pub)", auth)
    p.add_argument("name")
    p.add_argument("public_key", metavar="PUBKEY")


def is_local_path(text: str) -> bool:
    """`vault verify/decrypt` on a folder (offline), or on a recording in the store."""
    return text.startswith(("/", "./", "../", "~")) or Path(text).exists()
