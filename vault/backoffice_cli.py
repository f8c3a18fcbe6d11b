"""`bodycam vault ...` back-office commands: thin wrappers over the service layer.

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
import datetime as dt
import getpass
import json
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any

from crypto.timestamps import utc_text
from vault.clock import SYSTEM_CLOCK
from vault.errors import AuthenticationFailed, InvalidRequest, NotConfigured
from vault.site.config import SiteConfig, check_migrated, default_home, ensure_django, migrate

log = logging.getLogger(__name__)

MAX_CREDENTIALS = 4096


# --- plumbing -------------------------------------------------------------------------------


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


# --- set-up ------------------------------------------------------------------------------------


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


# --- catalog ------------------------------------------------------------------------------------


def _recording_line(r: Any) -> str:
    holds = sorted({h.kind for h in r.holds.all() if h.lifted_at is None})
    return (
        f"{r.device_id}/{r.recording_id}  {r.municipality.code:<10} {_fmt(r.record_pressed_at)}"
        f"  {r.state:<10} {r.segment_count:>3} seg  officer "
        f"{r.officer.code if r.officer else '-'}  holds {','.join(holds) or '-'}"
    )


def cmd_list(s: Session, args: argparse.Namespace) -> int:
    from vault.catalog.selectors import recording_list

    qs = recording_list(
        actor=s.actor,
        clock=s.clock,
        camera=args.camera,
        officer=args.officer,
        since=args.since,
        until=args.until,
        state=args.state,
        hold=args.hold,
        purpose=args.purpose or "",
        municipality=args.municipality,
    )
    rows = list(qs.prefetch_related("holds")[: args.limit])
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "device_id": r.device_id,
                        "recording_id": r.recording_id,
                        "municipality": r.municipality.code,
                        "record_pressed_at": utc_text(r.record_pressed_at),
                        "state": r.state,
                    }
                    for r in rows
                ],
                indent=1,
            )
        )
    else:
        for r in rows:
            print(_recording_line(r))
    return 0


def cmd_show(s: Session, args: argparse.Namespace) -> int:
    from vault.catalog.selectors import recording_detail

    r = recording_detail(actor=s.actor, ref=args.recording, clock=s.clock)
    print(f"recording      {r.device_id}/{r.recording_id} ({r.site})")
    print(f"municipality   {r.municipality.code}")
    print(f"camera         {r.camera.device_id} key {r.camera.public_key[:16]}...")
    print(f"officer        {r.officer.code if r.officer else '- (no assignment)'}")
    print(
        f"record press   {_fmt(r.record_pressed_at)}   footage from "
        f"{_fmt(r.footage_start_at)} (pre-roll {r.preroll_seconds:.1f} s)"
    )
    print(f"end            {_fmt(r.ended_at)}   complete {r.complete}   recovered {r.recovered}")
    print(f"ingested       by {r.ingest_dock or '-'} at {_fmt(r.ingested_at)}")
    print(f"state          {r.state}   retention ends {_fmt(r.retention_ends_at)}")
    for seg in r.segments.all():
        print(
            f"  {seg.name}  {seg.size:>10} bytes  sha256 {seg.sha256}"
            f"{'  recovered' if seg.recovered else ''}"
        )
    for h in r.holds.order_by("opened_at"):
        state = f"lifted {_fmt(h.lifted_at)} by {h.lifted_by}" if h.lifted_at else "OPEN"
        print(
            f"  hold {h.id} {h.kind} {h.reference}: opened {_fmt(h.opened_at)} by "
            f"{h.opened_by}; {state}"
        )
    if r.state == "purged":
        t = r.tombstone
        print(f"  purged {_fmt(t.purged_at)} by {t.purged_by}: {t.rule}")
    return 0


def cmd_verify_store(s: Session, args: argparse.Namespace) -> int:
    from vault.catalog.custody import recording_verify
    from vault.catalog.selectors import recording_get

    failed = 0
    for ref in args.paths:
        r = recording_get(actor=s.actor, ref=str(ref), clock=s.clock, action="recording.verify")
        try:
            vr = recording_verify(
                actor=s.actor, recording=r, store=s.store, clock=s.clock, work_dir=s.config.work_dir
            )
        except Exception as exc:  # each recording gets its verdict; the refusal is audited
            failed += 1
            print(f"FAILED {r}: {type(exc).__name__}: {exc}")
            continue
        print(
            f"{'OK' if vr.complete else 'INCOMPLETE'} {r}: {len(vr.segments)} segments, "
            "signed by the registered camera key"
        )
        failed += 0 if vr.complete else 1
    return 1 if failed else 0


def cmd_decrypt_store(s: Session, args: argparse.Namespace) -> int:
    from crypto.keys import VaultKey
    from vault.catalog.custody import recording_decrypt
    from vault.catalog.selectors import recording_get

    key_path = (
        Path(args.key)
        if args.key
        else (s.config.path(s.config.vault_key) if s.config.vault_key else None)
    )
    if key_path is None:
        raise InvalidRequest("no vault key: pass --key or set vault_key in site.toml")
    if not args.purpose:
        raise InvalidRequest(
            "a copy needs --purpose (criminal_investigation hands footage "
            "to police or the prosecutor)"
        )
    r = recording_get(
        actor=s.actor, ref=str(args.recording_dir), clock=s.clock, action="recording.decrypt"
    )
    total = recording_decrypt(
        actor=s.actor,
        recording=r,
        store=s.store,
        vault_key=VaultKey.load(key_path),
        out=Path(args.out),
        purpose=args.purpose,
        clock=s.clock,
        work_dir=s.config.work_dir,
        overwrite=args.overwrite,
        allow_incomplete=args.allow_incomplete,
    )
    print(f"decrypted {r}: {total} bytes -> {args.out}")
    return 0


def cmd_sync(s: Session, args: argparse.Namespace) -> int:
    from vault.catalog.services import catalog_sync

    report = catalog_sync(actor=s.actor, store=s.store, clock=s.clock, deep=args.deep)
    for line in report.refused:
        print(f"REFUSED {line}")
    for line in report.problems:
        print(f"PROBLEM {line}")
    print(report.summary())
    # What docked since the last sync also gets its officers' draft reports.
    from vault.reports.services import shift_sync

    drafts = shift_sync(actor=s.actor, store=s.store, clock=s.clock)
    for line in drafts.problems:
        print(f"PROBLEM {line}")
    print(
        f"{len(drafts.drafted)} shift report(s) drafted from {drafts.cameras} camera event log(s)"
    )
    return 1 if report.refused or report.problems or drafts.problems else 0


def cmd_purge(s: Session, args: argparse.Namespace) -> int:
    from vault.catalog.services import retention_purge

    report = retention_purge(
        actor=s.actor,
        store=s.store,
        clock=s.clock,
        dry_run=args.dry_run,
        cache_dirs=tuple(s.config.path(p) for p in s.config.cache_dirs),
    )
    if args.dry_run:
        for name in report.due:
            print(f"would purge {name}")
        print(f"{len(report.due)} recording(s) due (dry run: nothing deleted)")
        return 0
    for name in report.purged:
        print(f"purged {name}")
    for line in report.late:
        print(f"purged {line}")
    for line in report.kept:
        print(f"KEPT {line}")
    for line in report.events_held:
        print(f"HELD {line}")
    print(
        f"{len(report.purged)} recording(s) and {len(report.events_purged)} event-log "
        f"piece(s) purged, {len(report.kept)} kept by the store"
    )
    # Something due is still there: the timer's unit fails, so somebody looks.
    return 1 if report.kept else 0


def cmd_hold_place(s: Session, args: argparse.Namespace) -> int:
    from vault.catalog.selectors import recording_get
    from vault.catalog.services import hold_place

    r = recording_get(actor=s.actor, ref=args.recording, clock=s.clock, action="hold.place")
    hold = hold_place(
        actor=s.actor,
        recording=r,
        kind=args.kind,
        reference=args.reference,
        reason=args.reason,
        store=s.store,
        clock=s.clock,
        received_at=args.received,
    )
    due = f"; answer due {_fmt(hold.answer_due_at)}" if hold.answer_due_at else ""
    print(f"hold {hold.id} ({hold.kind}) placed on {r}{due}")
    return 0


def cmd_hold_lift(s: Session, args: argparse.Namespace) -> int:
    from vault.catalog.selectors import hold_get
    from vault.catalog.services import hold_lift

    hold = hold_lift(
        actor=s.actor,
        hold=hold_get(hold_id=args.hold),
        reason=args.reason,
        store=s.store,
        clock=s.clock,
    )
    print(f"hold {hold.id} ({hold.kind}) on {hold.recording} lifted")
    return 0


def cmd_audit_verify(s: Session, args: argparse.Namespace) -> int:
    from vault.audit.services import audit_verify_as

    report = audit_verify_as(actor=s.actor, store=s.store, clock=s.clock)
    for p in report.problems:
        print(f"PROBLEM {p}")
    print(
        f"audit log: {report.entries} entries, {report.anchors} anchors: "
        f"{'chain intact' if report.ok else 'CHAIN BROKEN'}"
    )
    return 0 if report.ok else 1


def cmd_audit_anchor(s: Session, args: argparse.Namespace) -> int:
    from vault.audit.services import audit_anchor_as

    anchor = audit_anchor_as(actor=s.actor, store=s.store, site=s.config.site, clock=s.clock)
    print(
        f"audit chain head {anchor.seq} anchored as {anchor.store_key}"
        if anchor
        else "audit log is empty"
    )
    return 0


def cmd_audit_show(s: Session, args: argparse.Namespace) -> int:
    from vault.audit.selectors import audit_list

    for e in audit_list(actor=s.actor, clock=s.clock, limit=args.limit):
        print(
            f"{e.seq:>7} {_fmt(e.at)} {e.actor:<16} {e.action:<18} {e.result:<8} "
            f"{e.municipality or '-':<10} {e.purpose or '-':<14} {e.target}"
        )
    return 0


# --- people and cameras --------------------------------------------------------------------------


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
        starts_at=args.start or s.clock.now(),
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
