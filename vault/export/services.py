"""Making the police / prosecutor package: the one way footage leaves as a copy.

`recording_export` is what the privacy officer (or the deputy the policy names) runs
when the prosecutor claims a recording or a police report is filed. Who may do it is
the municipality's policy, read from what it already says: the person must be allowed
to transfer footage (`recording.decrypt`), the purpose must be a criminal
investigation whose viewing rule allows a copy, and the person must be one the policy
lets place the prosecution hold (`[holds.prosecutor] place`: Heusden names the cluster
manager as the privacy officer's deputy, Utrecht the privacy officer alone). An access
request never gets a package: its purpose, its hold or its reference is refused and
audited.

The package (layout: vault/EXPORT.md) is assembled in a private folder beside the
destination and appears under the requested name only when complete: the sealed
originals exactly as stored, the dock's ingest record, the decrypted recording
remuxed to MP4, a chain-of-custody record from the catalog and the audit log, the
signed export manifest and the hash list. A prosecution hold is placed (or the open
one with the same reference kept), the people the policy names are informed, and the
export is audited with the manifest's hash.

A package that cannot be made (a segment missing or changed in the store, a recording
that does not decode, a full disk) leaves nothing at the destination and no temporary
folder; the hold stays, because the prosecutor's claim is real without a package, and
`ExportFailed` says so. The audit log then holds the hold's placement and the failed
export.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import transaction

from crypto.keys import SigningKey, VaultKey, fingerprint, write_public_key
from crypto.open import decrypt_recording
from crypto.verify import verify_recording
from formats.ingest_record import MAX_RECORD as MAX_INGEST_RECORD
from store import Store
from vault.access import Actor, audit_ok, policy_of, refuse
from vault.audit.models import AuditEntry, AuditHead
from vault.audit.services import audit_record
from vault.catalog.custody import _assemble, _workdir  # the same origin-checked assembly
from vault.catalog.models import Hold, Notification, Recording
from vault.catalog.services import hold_place, recording_authorize
from vault.clock import Clock
from vault.errors import InvalidRequest, OriginRefused, VaultError
from vault.export import format as fmt
from vault.media import measure, remux_to_mp4
from vault.policy import OFFICER_CONCERNED
from vault.registry.models import DockStation

log = logging.getLogger(__name__)

ACTION = "recording.export"  # the audit log's name for a hand-over
PURPOSE = "criminal_investigation"
EXPORT_KEY = "export.key"
EXPORT_PUB = "export.pub"


def export_key_ensure(home: Path) -> SigningKey:
    """The site's export signing key (Ed25519, 0600), created on first use.

    Its public half is written beside it as `export.pub` (bodycam key file) and
    `export-key.pem` (what openssl reads), for publishing to police and prosecutor.
    """
    path = home / EXPORT_KEY
    if not path.exists():
        key = SigningKey.generate(kind="export")
        key.save(path)
        log.info("export key created: %s", fingerprint(key.public_bytes()))
    key = SigningKey.load(path)
    pub = home / EXPORT_PUB
    if not pub.exists():
        write_public_key(pub, key.public_bytes(), "export")
    pem = home / fmt.PUBLIC_KEY
    if not pem.exists():
        pem.write_bytes(fmt.public_key_pem(key.public_bytes()))
    return key


@dataclass(frozen=True)
class ExportResult:
    out: Path
    manifest_sha256: str
    files: int
    hold_id: int
    export_public_key: str
    informed: list[str]


def _iso(t: dt.datetime | None) -> str | None:
    return t.astimezone(dt.UTC).isoformat() if t is not None else None


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _json(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=True) + "\n").encode()


def _authorize(
    actor: Actor,
    recording: Recording,
    purpose: str,
    reference: str,
    hold_id: int | None,
    clock: Clock,
) -> Hold | None:
    """Every rule an export must pass; each refusal audited as `recording.export`."""
    muni = recording.municipality
    policy = policy_of(muni)
    target = str(recording)

    def no(reason: str) -> Exception:
        return refuse(
            actor=actor,
            action=ACTION,
            municipality=muni.code,
            target=target,
            purpose=purpose,
            reason=reason,
            clock=clock,
        )

    if purpose != PURPOSE:
        raise no(
            f"a package goes only to police or the prosecutor for a {PURPOSE}; "
            f"purpose {purpose!r} gets no copy"
            + (" (an access request is viewing only)" if purpose == "access_request" else "")
        )
    rule = policy.viewing.get(PURPOSE)  # type: ignore[call-overload]
    if rule is None or not rule.copy_allowed:
        raise no(f"the {policy.policy.name} policy gives no copy for {PURPOSE}")
    # Transfer is a custodian's action; the hand-over also needs the prosecution-hold role.
    recording_authorize(
        actor=actor, recording=recording, action="recording.decrypt", clock=clock, purpose=purpose
    )
    placers = policy.hold_roles("prosecutor", "place")
    if not set(placers) & actor.roles_in(muni.code):
        raise no(
            f"the {policy.policy.name} policy lets only {', '.join(placers)} hand "
            "footage over to police or the prosecutor"
        )
    access = list(Hold.objects.filter(recording=recording, kind=Hold.Kind.ACCESS_REQUEST))
    if any(h.reference.strip().lower() == reference.strip().lower() for h in access):
        raise no(
            f"reference {reference!r} is an access request on this recording: viewing only, no copy"
        )
    if hold_id is None:
        return None
    hold = Hold.objects.filter(pk=hold_id, recording=recording).first()
    if hold is None:
        raise no(f"hold {hold_id} is not a hold on this recording")
    if hold.kind != Hold.Kind.PROSECUTOR:
        raise no(
            f"hold {hold_id} is a {hold.kind} hold: only a prosecutor's claim gives a "
            "package"
            + (
                " (an access request is viewing only)"
                if hold.kind == Hold.Kind.ACCESS_REQUEST
                else ""
            )
        )
    if hold.lifted_at is not None:
        raise no(f"hold {hold_id} was lifted: the prosecutor's claim has ended")
    if hold.reference.strip().lower() != reference.strip().lower():
        raise no(f"hold {hold_id} has reference {hold.reference!r}, not {reference!r}")
    return hold


def _custody(
    recording: Recording, camera_public: str, ingest: dict[str, Any] | None, now: dt.datetime
) -> dict[str, Any]:
    """Who recorded it, who stored it, and every action on it the audit log holds."""
    target = str(recording)
    entries = AuditEntry.objects.filter(target=target) | AuditEntry.objects.filter(
        target__startswith=f"{target} "
    )
    head = AuditHead.objects.filter(pk=1).first()
    camera = recording.camera
    officer = recording.officer
    return {
        "format": fmt.CUSTODY_FORMAT,
        "as_of": _iso(now),
        "recording": {
            "site": recording.site,
            "device_id": recording.device_id,
            "recording_id": recording.recording_id,
            "municipality": recording.municipality.code,
            "record_pressed_at": _iso(recording.record_pressed_at),
            "footage_start_at": _iso(recording.footage_start_at),
            "ended_at": _iso(recording.ended_at),
            "complete": recording.complete,
            "recovered": recording.recovered,
            "preroll_seconds": recording.preroll_seconds,
            "retention_ends_at": _iso(recording.retention_ends_at),
            "segments": [
                {
                    "name": s.name,
                    "sha256": s.sha256,
                    "size": s.size,
                    "recovered": s.recovered,
                    "start_at": _iso(s.start_at),
                }
                for s in recording.segments.all()
            ],
        },
        "recorded_by": {
            "camera": {
                "device_id": camera.device_id,
                "public_key": camera_public,
                "registered_at": _iso(camera.added_at),
                "registered_by": camera.added_by,
            },
            "officer": ({"code": officer.code, "name": officer.name} if officer else None),
        },
        "ingested_by": (
            {
                "dock": recording.ingest_dock,
                "at": _iso(recording.ingested_at),
                "dock_public_key": ingest["record"]["dock_public_key"],
                "record": f"{fmt.ORIGINAL_DIR}/{fmt.INGEST}",
            }
            if ingest
            else None
        ),
        "holds": [
            {
                "id": h.id,
                "kind": h.kind,
                "reference": h.reference,
                "reason": h.reason,
                "opened_by": h.opened_by,
                "opened_at": _iso(h.opened_at),
                "lifted_by": h.lifted_by or None,
                "lifted_at": _iso(h.lifted_at),
                "lift_reason": h.lift_reason or None,
            }
            for h in recording.holds.order_by("opened_at", "id")
        ],
        "events": [
            {
                "seq": e.seq,
                "at": _iso(e.at),
                "actor": e.actor,
                "roles": e.roles,
                "action": e.action,
                "target": e.target,
                "purpose": e.purpose,
                "result": e.result,
                "detail": json.loads(e.detail or "{}"),
                "entry_hash": e.entry_hash,
            }
            for e in entries.order_by("seq")
        ],
        "audit_head": ({"seq": head.seq, "entry_hash": head.entry_hash} if head else None),
    }


def _build(
    pkg: Path,
    scratch: Path,
    *,
    actor: Actor,
    recording: Recording,
    store: Store,
    vault_key: VaultKey,
    export_key: SigningKey,
    reference: str,
    basis: str,
    hold: Hold,
    clock: Clock,
) -> str:
    """Write every file of the package into `pkg`; the export manifest's SHA-256."""
    original = pkg / fmt.ORIGINAL_DIR
    original.mkdir(mode=0o700)
    camera_public = _assemble(store, recording, original)
    vr = verify_recording(original, camera_public)
    if not vr.complete:
        raise InvalidRequest(
            f"{recording} has no end entry: only a complete recording is handed over"
        )
    ingest_doc = None
    if recording.ingest_record_key:
        raw = store.get_bytes(recording.ingest_record_key, MAX_INGEST_RECORD)
        _write(original / fmt.INGEST, raw)
        ingest_doc = json.loads(raw)
    ts = scratch / "recording.ts"
    fd = os.open(ts, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        plain_bytes = decrypt_recording(original, vault_key, camera_public, f)
    mp4 = pkg / fmt.MP4
    remux_to_mp4(ts, mp4, name=str(recording))
    os.chmod(mp4, 0o600)
    facts, _ = measure(mp4)
    now = clock.utc()
    _write(pkg / fmt.CUSTODY, _json(_custody(recording, camera_public.hex(), ingest_doc, now)))
    _write(pkg / fmt.PUBLIC_KEY, fmt.public_key_pem(export_key.public_bytes()))
    listed = sorted(p.relative_to(pkg).as_posix() for p in pkg.rglob("*") if p.is_file())
    files = [
        {"path": p, "sha256": fmt.sha256_file(pkg / p), "size": (pkg / p).stat().st_size}
        for p in listed
    ]
    docks = [
        {"name": n, "public_key": k}
        for k, n in sorted(DockStation.objects.values_list("public_key", "name"))
    ]
    manifest = {
        "format": fmt.FORMAT,
        "package_id": str(uuid.uuid4()),
        "created_at": _iso(now),
        "created_by": {
            "user": actor.username,
            "roles": sorted(actor.roles_in(recording.municipality.code)),
        },
        "municipality": recording.municipality.code,
        "policy": policy_of(recording.municipality).policy.name,
        "reference": reference,
        "basis": basis,
        "purpose": PURPOSE,
        "hold": {"id": hold.id, "kind": hold.kind, "reference": hold.reference},
        "recording": {
            "site": recording.site,
            "device_id": vr.device_id,
            "recording_id": vr.recording_id,
            "started_utc": vr.started_utc,
            "ended_utc": vr.ended_utc,
            "segments": len(vr.segments),
            "complete": vr.complete,
            "recovered": vr.recovered,
        },
        "camera": {
            "device_id": recording.camera.device_id,
            "public_key": camera_public.hex(),
            "registered_in": recording.municipality.code,
        },
        "trusted_docks": docks,
        "export_public_key": export_key.public_bytes().hex(),
        "mp4": {
            "path": fmt.MP4,
            **facts.as_json(),
            "decrypted_ts_sha256": fmt.sha256_file(ts),
            "decrypted_ts_bytes": plain_bytes,
        },
        "files": files,
    }
    raw_manifest = _json(manifest)
    _write(pkg / fmt.MANIFEST, raw_manifest)
    _write(pkg / fmt.SIGNATURE, export_key.sign(raw_manifest))
    hashes: dict[str, str] = {str(f["path"]): str(f["sha256"]) for f in files}
    hashes[fmt.MANIFEST] = fmt.sha256_file(pkg / fmt.MANIFEST)
    hashes[fmt.SIGNATURE] = fmt.sha256_file(pkg / fmt.SIGNATURE)
    _write(pkg / fmt.HASH_LIST, fmt.render_hash_list(hashes))
    return hashes[fmt.MANIFEST]


def _zip(folder: Path, dest: Path) -> None:
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as raw:
        # Stored, not deflated: the footage does not compress and a byte in the zip is a
        # byte of a file, so a recipient's tools see exactly what was signed.
        with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_STORED) as z:
            for p in sorted(folder.rglob("*")):
                if p.is_file():
                    z.write(p, p.relative_to(folder).as_posix())
        raw.flush()
        os.fsync(raw.fileno())


def _inform(recording: Recording, now: dt.datetime) -> list[str]:
    """The people the policy names for a prosecutor's claim learn of the hand-over."""
    policy = policy_of(recording.municipality)
    informed = []
    for who in policy.inform.get("prosecutor", []):
        if who == OFFICER_CONCERNED:
            if recording.officer is not None:
                Notification.objects.create(
                    municipality=recording.municipality,
                    recording=recording,
                    officer=recording.officer,
                    event=ACTION,
                    created_at=now,
                )
                informed.append(f"officer {recording.officer.code}")
        else:
            Notification.objects.create(
                municipality=recording.municipality,
                recording=recording,
                role=who,
                event=ACTION,
                created_at=now,
            )
            informed.append(who)
    return informed


class ExportFailed(VaultError):
    """No package was written; the message says why and what became of the hold."""


def _discard(out: Path) -> None:
    if out.is_dir() and not out.is_symlink():
        shutil.rmtree(out, ignore_errors=True)
    else:
        out.unlink(missing_ok=True)


def _failed(
    actor: Actor,
    recording: Recording,
    purpose: str,
    reference: str,
    hold: Hold,
    placed_now: bool,
    exc: Exception,
    clock: Clock,
) -> ExportFailed:
    """Audit a hand-over that failed after the hold was placed; the error to raise."""
    why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    # Named once: media errors and some refusals begin with the recording already.
    what = why if why.startswith(str(recording)) else f"{recording}: {why}"
    kept = (
        f"the prosecution hold {hold.id} ({hold.reference})"
        f"{', placed for this export,' if placed_now else ''} stays placed: the claim "
        "stands without a package"
    )
    try:
        with transaction.atomic():
            audit_record(
                actor=actor.username,
                roles=actor.describe(recording.municipality.code),
                municipality=recording.municipality.code,
                action=ACTION,
                target=str(recording),
                purpose=purpose,
                result="refused" if isinstance(exc, OriginRefused) else "failed",
                clock=clock,
                detail={
                    "error": f"{type(exc).__name__}: {why}",
                    "reference": reference,
                    "hold": hold.id,
                    "hold_placed_now": placed_now,
                    "package": "none written",
                },
            )
    except Exception as audit_exc:  # the database itself failed: say so, do not hide why
        log.error("the failed export of %s could not be audited: %s", recording, audit_exc)
        kept += f" (this failure could not be audited: {audit_exc})"
    return ExportFailed(f"{what}. No package was written; {kept}")


def recording_export(
    *,
    actor: Actor,
    recording: Recording,
    store: Store,
    vault_key: VaultKey,
    export_key: SigningKey,
    out: Path,
    reference: str,
    basis: str,
    clock: Clock,
    purpose: str = PURPOSE,
    reason: str = "",
    hold_id: int | None = None,
    work_dir: Path | None = None,
) -> ExportResult:
    """Make the package at `out` (a folder, or a zip when the name ends in .zip)."""
    reference = reference.strip()
    if not reference or len(reference) > 100:
        raise InvalidRequest(
            "--reference: the prosecutor's case or the police report number (1-100 characters)"
        )
    if basis not in fmt.BASES:
        raise InvalidRequest(f"basis {basis!r}: one of {', '.join(fmt.BASES)}")
    hold = _authorize(actor, recording, purpose, reference, hold_id, clock)
    if recording.state == Recording.State.PURGED:
        raise InvalidRequest(f"{recording} was purged: nothing is left to hand over")
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise InvalidRequest(f"{out} exists: a package is never written over another")
    if not out.parent.is_dir():
        raise InvalidRequest(f"{out.parent} is not a folder")
    if hold is None:
        hold = Hold.objects.filter(
            recording=recording,
            kind=Hold.Kind.PROSECUTOR,
            lifted_at__isnull=True,
            reference=reference,
        ).first()
    placed_now = hold is None
    if hold is None:
        hold = hold_place(
            actor=actor,
            recording=recording,
            kind="prosecutor",
            reference=reference,
            reason=reason or f"{basis.replace('_', ' ')} {reference}",
            store=store,
            clock=clock,
        )
    # From here the claim is real (the hold stays whatever happens next) and a package
    # appears at `out` complete, or nothing does.
    staging = out.parent / f".{out.name}.{os.urandom(4).hex()}.part"
    published = False
    try:
        staging.mkdir(mode=0o700)
        pkg = staging / "package"
        pkg.mkdir(mode=0o700)
        with _workdir(work_dir) as scratch:
            manifest_sha = _build(
                pkg,
                scratch,
                actor=actor,
                recording=recording,
                store=store,
                vault_key=vault_key,
                export_key=export_key,
                reference=reference,
                basis=basis,
                hold=hold,
                clock=clock,
            )
        nfiles = sum(1 for p in pkg.rglob("*") if p.is_file())
        ready = pkg
        if out.suffix.lower() == ".zip":
            ready = staging / "package.zip"
            _zip(pkg, ready)
        now = clock.utc()
        # Audited in the transaction that also shows the package: if the audit entry
        # cannot be written, the package is taken back.
        with transaction.atomic():
            informed = _inform(recording, now)
            audit_ok(
                actor=actor,
                action=ACTION,
                municipality=recording.municipality.code,
                target=str(recording),
                purpose=purpose,
                clock=clock,
                detail={
                    "reference": reference,
                    "basis": basis,
                    "hold": hold.id,
                    "package": out.name,
                    "export_json_sha256": manifest_sha,
                    "export_key": export_key.public_bytes().hex(),
                    "informed": informed,
                },
            )
            if out.exists() or out.is_symlink():
                raise InvalidRequest(
                    f"{out} appeared meanwhile: a package is never written over another"
                )
            os.rename(ready, out)
            published = True
    except BaseException as exc:
        if published:
            _discard(out)
        if not isinstance(exc, Exception):
            raise
        raise _failed(actor, recording, purpose, reference, hold, placed_now, exc, clock) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("%s exported for %s %s by %s", recording, basis, reference, actor.username)
    return ExportResult(
        out, manifest_sha, nfiles, hold.id, export_key.public_bytes().hex(), informed
    )
