"""`vault list/show/verify/decrypt/sync/purge`, `vault hold` and `vault audit`: the
catalog, holds and the audit log from the command line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from crypto.timestamps import utc_text
from vault.commands.session import Session, _fmt
from vault.errors import InvalidRequest


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

    key_path = s.vault_key_path(args.key)
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
