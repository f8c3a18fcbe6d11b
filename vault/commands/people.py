"""`vault user`, `vault officer`, `vault camera` and `vault dock`: back-office users and
their roles, officers, the camera registry and the docks trusted for ingest records.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vault.commands.session import Session, _fmt, _password
from vault.errors import InvalidRequest


def cmd_user_add(s: Session, args: argparse.Namespace) -> int:
    from vault.accounts.services import role_grant

    password = _password(f"new password for {args.username}: ", "BODYCAM_VAULT_NEW_PASSWORD")
    role_grant(
        actor=s.actor,
        username=args.username,
        municipality=args.municipality,
        role=args.role,
        password=password,
        clock=s.clock,
    )
    print(f"user {args.username}: {args.role} in {args.municipality}")
    return 0


def cmd_user_grant(s: Session, args: argparse.Namespace) -> int:
    from vault.accounts.services import role_grant

    role_grant(
        actor=s.actor,
        username=args.username,
        municipality=args.municipality,
        role=args.role,
        clock=s.clock,
    )
    print(f"user {args.username}: {args.role} in {args.municipality}")
    return 0


def cmd_user_revoke(s: Session, args: argparse.Namespace) -> int:
    from vault.accounts.services import role_revoke

    role_revoke(
        actor=s.actor,
        username=args.username,
        municipality=args.municipality,
        role=args.role,
        clock=s.clock,
    )
    print(f"user {args.username}: no longer {args.role} in {args.municipality}")
    return 0


def cmd_user_list(s: Session, args: argparse.Namespace) -> int:
    from vault.accounts.selectors import membership_list

    for m in membership_list(actor=s.actor, clock=s.clock):
        print(f"{m.municipality.code:<10} {m.user.username:<20} {m.role}")
    return 0


def cmd_user_password(s: Session, args: argparse.Namespace) -> int:
    from vault.accounts.services import password_set

    password = _password(f"new password for {args.username}: ", "BODYCAM_VAULT_NEW_PASSWORD")
    password_set(actor=s.actor, username=args.username, password=password, clock=s.clock)
    print(f"password of {args.username} changed")
    return 0


def cmd_officer_add(s: Session, args: argparse.Namespace) -> int:
    from vault.accounts.services import officer_create

    o = officer_create(
        actor=s.actor,
        municipality=args.municipality,
        code=args.code,
        name=args.name,
        username=args.username,
        clock=s.clock,
    )
    print(f"officer {o.code} in {args.municipality}")
    return 0


def _public_key_arg(text: str) -> tuple[bytes, str | None]:
    """64 hex digits, a public key file, or a camera's DEVICE.json (device id from it)."""
    from vault.cli import parse_device_key

    path = Path(text)
    device_id = None
    if path.is_file() and path.name.lower() == "device.json":
        try:
            device_id = json.loads(path.read_bytes()[:65536]).get("device_id")
        except ValueError:
            device_id = None
    return parse_device_key(text), device_id


def _publish(s: Session) -> None:
    from crypto.keys import SigningKey
    from vault.registry.services import registry_publish

    pub = registry_publish(
        actor=s.actor,
        store=s.store,
        signing_key=SigningKey.load(s.config.path(s.config.registry_key)),
        site=s.config.site,
        clock=s.clock,
    )
    print(f"camera registry v{pub.version} published ({pub.cameras} cameras)")


def cmd_camera_add(s: Session, args: argparse.Namespace) -> int:
    from vault.registry.services import camera_register

    public, from_file = _public_key_arg(args.public_key)
    device_id = args.device_id or from_file
    if not device_id:
        raise InvalidRequest("give --device-id (the key file names no device)")
    camera_register(
        actor=s.actor,
        municipality=args.municipality,
        device_id=device_id,
        public_key=public,
        model=args.model,
        clock=s.clock,
    )
    print(f"camera {device_id} registered in {args.municipality}")
    _publish(s)
    return 0


def cmd_camera_remove(s: Session, args: argparse.Namespace) -> int:
    from vault.registry.services import camera_remove

    camera_remove(actor=s.actor, device_id=args.device_id, clock=s.clock)
    print(f"camera {args.device_id} removed")
    _publish(s)
    return 0


def cmd_camera_assign(s: Session, args: argparse.Namespace) -> int:
    from vault.registry.services import camera_assign

    a = camera_assign(
        actor=s.actor,
        device_id=args.device_id,
        officer_code=args.officer,
        starts_at=args.start or s.clock.utc(),
        ends_at=args.end,
        clock=s.clock,
    )
    until = f"until {_fmt(a.ends_at)}" if a.ends_at else "standing"
    print(f"camera {args.device_id} worn by {args.officer} from {_fmt(a.starts_at)}, {until}")
    return 0


def cmd_camera_list(s: Session, args: argparse.Namespace) -> int:
    from vault.reports.selectors import camera_overview

    for row in camera_overview(actor=s.actor, clock=s.clock, include_removed=args.all):
        c = row.camera
        removed = f"  removed {_fmt(c.removed_at)} by {c.removed_by}" if c.removed_at else ""
        docked = _fmt(row.status.last_docked_at) if row.status else "-"
        print(
            f"{c.municipality.code:<10} {c.device_id:<20} {c.public_key[:16]}...  worn by "
            f"{row.officer.code if row.officer else '-':<12} last docked {docked}  added "
            f"{_fmt(c.added_at)} by {c.added_by}{removed}"
        )
    return 0


def cmd_camera_publish(s: Session, args: argparse.Namespace) -> int:
    _publish(s)
    return 0


def cmd_dock_add(s: Session, args: argparse.Namespace) -> int:
    from vault.registry.services import dock_station_add

    public, _ = _public_key_arg(args.public_key)
    dock_station_add(actor=s.actor, name=args.name, public_key=public, clock=s.clock)
    print(f"dock {args.name} trusted for ingest records")
    return 0
