"""Catalog sync from the store, holds and the retention purge (the services that write).

- `catalog_sync` indexes every recording in the store. Idempotent (a recording whose
  set of store keys did not change is skipped without reading anything), resumable
  (each recording is committed on its own, so an interrupted sync picks up where it
  stopped), and verified: the header and the longest manifest must verify with a key
  the coordinator registered for that device, every listed segment must be in the
  store under its manifest digest with the listed size (`deep=True` re-hashes them).
- `hold_place` / `hold_lift`: only the roles the policy names; on the store a legal
  hold on every object of the recording (S3 object legal hold).
- `retention_purge`: recordings whose retention ended (record press + policy days) and
  that no open hold covers: every object (every S3 version) and every cache copy goes,
  the row becomes `purged` with a tombstone. Event-log pieces follow the same schedule.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef

from crypto.errors import FormatError, NotSignedByDevice
from crypto.format import (
    HEADER_NAME,
    MANIFEST_MAX_SIZE,
    MANIFEST_NAME,
    REC_HEADER_MAX,
    parse_manifest,
)
from crypto.timestamps import utc_text
from crypto.verify import VerifiedRecording, check_manifest
from formats.ingest_record import NAME as INGEST_NAME
from formats.ingest_record import IngestRecordError, parse_ingest_record
from store import (
    Store,
    StoreError,
    StoreLocked,
    delete_object,
    delete_objects,
    keys_to_purge,
    object_key,
    split_name,
)
from vault.access import (
    Actor,
    audit_ok,
    audit_scopes,
    authorize,
    authorize_any,
    authorize_hold,
    policy_of,
    refuse,
)
from vault.accounts.models import Municipality
from vault.audit.services import audit_record
from vault.catalog.models import Hold, Notification, Recording, Segment, Tombstone
from vault.catalog.sync_lock import known_now, lock_for_this_transaction
from vault.clock import Clock, from_epoch
from vault.errors import InvalidRequest, OriginRefused
from vault.policy import OFFICER_CONCERNED
from vault.registry.models import Camera, DockStation
from vault.registry.selectors import camera_registrations, officer_at

log = logging.getLogger(__name__)

RESERVED_PREFIXES = ("quarantine", "registry", "audit")
EVENTS_DIR = "events"
MAX_EVENT_PIECE = 64 << 20


def recording_prefix(site: str, device_id: str, recording_id: str) -> str:
    return object_key(site, device_id, recording_id, HEADER_NAME, "0" * 64).rsplit("/", 1)[0] + "/"


def store_inventory(store: Store) -> tuple[dict[tuple[str, str, str], list[str]], list[str]]:
    """One listing of the store: recording keys grouped, and event-log piece keys."""
    groups: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    events: list[str] = []
    for key in store.list():
        parts = key.split("/")
        if len(parts) != 4 or parts[0] in RESERVED_PREFIXES:
            continue
        if parts[2] == EVENTS_DIR:
            events.append(key)
        else:
            groups[(parts[0], parts[1], parts[2])].append(key)
    return groups, events


# --- verification against the registry ------------------------------------------------------


@dataclass(frozen=True)
class VerifiedOrigin:
    camera: Camera
    verified: VerifiedRecording
    header_key: str
    header_raw: bytes
    manifest_key: str


def verify_origin(
    store: Store, keys: list[str], device_id: str, registrations: list[Camera] | None = None
) -> VerifiedOrigin:
    """Header and the longest manifest, verified with a key registered for `device_id`.

    OriginRefused when no registered key signed it (unknown camera, or re-signed with a
    fresh key); FormatError when it is signed but damaged.
    """
    by_name: dict[str, list[str]] = defaultdict(list)
    for k in keys:
        by_name[split_name(k)[0]].append(k)
    headers, manifests = by_name.get(HEADER_NAME, []), by_name.get(MANIFEST_NAME, [])
    if len(headers) != 1 or not manifests:
        raise FormatError(
            f"expected one {HEADER_NAME} and a {MANIFEST_NAME}, found "
            f"{len(headers)} and {len(manifests)}"
        )
    if registrations is None:
        registrations = camera_registrations(device_id)
    if not registrations:
        raise OriginRefused(f"camera {device_id} is not in the coordinator's registry")
    header_raw = store.get_bytes(headers[0], REC_HEADER_MAX)
    parsed = []
    for mk in manifests:
        records = parse_manifest(store.get_bytes(mk, MANIFEST_MAX_SIZE))
        parsed.append((len(records), mk, records))
    parsed.sort(key=lambda p: (-p[0], p[1]))  # a manifest only grows: the longest is newest
    signed_by_other = False
    for _, mk, records in parsed:
        for camera in registrations:
            try:
                vr = check_manifest(records, header_raw, bytes.fromhex(camera.public_key))
            except NotSignedByDevice:
                signed_by_other = True
                continue
            return VerifiedOrigin(camera, vr, headers[0], header_raw, mk)
    if signed_by_other:
        raise OriginRefused(
            f"recording of {device_id} is not signed by the key the "
            "coordinator registered for it (re-signed or forged)"
        )
    raise FormatError("no manifest verifies")


# --- sync -------------------------------------------------------------------------------------


@dataclass
class SyncReport:
    seen: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.seen} recordings in the store: {self.added} added, {self.updated} "
            f"updated, {self.unchanged} unchanged, {len(self.refused)} refused, "
            f"{len(self.problems)} with problems"
        )


def _fingerprint(keys: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()


@dataclass
class _SyncRun:
    """What one sync looks up once instead of per recording."""

    allowed: set[int]
    deep: bool
    docks: dict[str, str]  # trusted dock public key (hex) -> station name
    known: dict[tuple[str, str, str], tuple[str, str]]  # -> (state, store fingerprint)
    registrations: dict[str, list[Camera]] = field(default_factory=dict)

    def cameras(self, device_id: str) -> list[Camera]:
        if device_id not in self.registrations:
            self.registrations[device_id] = camera_registrations(device_id)
        return self.registrations[device_id]


def _ingest_info(
    store: Store, keys: list[str], problems: list[str], docks: dict[str, str]
) -> tuple[str, Any, str]:
    trusted = [bytes.fromhex(k) for k in docks]
    best = None
    for k in keys:
        if split_name(k)[0] != INGEST_NAME:
            continue
        try:
            rec = parse_ingest_record(store.get_bytes(k, 4 << 20), k, trusted)
        except IngestRecordError as exc:
            problems.append(str(exc))
            continue
        if best is None or rec.ingested_utc < best.ingested_utc:
            best = rec
    if best is None:
        return "", None, ""
    return (
        docks.get(best.dock_public_key.hex(), best.dock_public_key.hex()[:16]),
        from_epoch(best.ingested_utc),
        best.key,
    )


def _sync_one(
    store: Store,
    site: str,
    dev: str,
    rec: str,
    keys: list[str],
    run: _SyncRun,
    clock: Clock,
    report: SyncReport,
    actor: Actor,
) -> None:
    fingerprint = _fingerprint(keys)
    known = run.known.get((site, dev, rec))
    if known is not None and (known[0] == Recording.State.PURGED or known[1] == fingerprint):
        report.unchanged += 1
        return
    where = f"{site}/{dev}/{rec}"
    allowed, deep = run.allowed, run.deep
    try:
        origin = verify_origin(store, keys, dev, run.cameras(dev))
    except OriginRefused as exc:
        report.refused.append(f"{where}: {exc}")
        for scope in audit_scopes(actor):
            audit_record(
                actor=actor.username,
                municipality=scope,
                action="catalog.sync",
                target=where,
                result="refused",
                clock=clock,
                detail={"origin": str(exc)},
            )
        return
    except (FormatError, StoreError, OSError) as exc:
        report.problems.append(f"{where}: {type(exc).__name__}: {exc}")
        return
    vr, camera = origin.verified, origin.camera
    if vr.device_id != dev or vr.recording_id != rec:
        report.problems.append(f"{where}: holds recording {vr.device_id}/{vr.recording_id}")
        return
    if camera.municipality_id not in allowed:
        return  # another municipality's footage: its own staff sync it
    present = set(keys)
    segments, total, missing = [], 0, []
    for e in vr.segments:
        key = object_key(site, dev, rec, e.name, e.sha256)
        stored = store.stat(key) if key in present else None
        if stored is None or stored.size != e.size:
            missing.append(e.name)
            continue
        if deep and not hmac.compare_digest(_hash_object(store, key), e.sha256):
            report.problems.append(f"{where}/{e.name}: stored bytes differ from the manifest")
            missing.append(e.name)
            continue
        total += e.size
        segments.append(
            Segment(
                index=e.index,
                name=e.name,
                sha256=e.sha256,
                size=e.size,
                chunks=e.chunks,
                recovered=e.recovered,
                start_at=from_epoch(e.start_utc),
                store_key=key,
            )
        )
    if missing:
        report.problems.append(
            f"{where}: {len(missing)} listed segment(s) not in the store ({', '.join(missing[:3])})"
        )
    pressed = from_epoch(vr.started_utc)
    first = vr.segments[0].start_utc if vr.segments else vr.started_utc
    policy = policy_of(camera.municipality)
    dock, ingested_at, ingest_key = _ingest_info(store, keys, report.problems, run.docks)
    values = dict(
        municipality=camera.municipality,
        camera=camera,
        officer=officer_at(camera, pressed),
        record_pressed_at=pressed,
        footage_start_at=from_epoch(min(first, vr.started_utc)),
        ended_at=from_epoch(vr.ended_utc) if vr.ended_utc is not None else None,
        preroll_seconds=max(0.0, vr.started_utc - first),
        complete=vr.complete,
        recovered=vr.recovered,
        segment_count=len(vr.segments),
        total_bytes=total,
        header_key=origin.header_key,
        manifest_key=origin.manifest_key,
        ingest_dock=dock,
        ingested_at=ingested_at,
        ingest_record_key=ingest_key,
        retention_ends_at=pressed + dt.timedelta(days=policy.retention.days),
        state=(
            Recording.State.STORED if vr.complete and not missing else Recording.State.INCOMPLETE
        ),
        store_fingerprint=fingerprint,
        synced_at=clock.now(),
    )
    with transaction.atomic():
        if known is None:
            recording = Recording.objects.create(
                site=site, device_id=dev, recording_id=rec, **values
            )
            created = True
        else:
            recording, created = Recording.objects.update_or_create(
                site=site, device_id=dev, recording_id=rec, defaults=values
            )
            Segment.objects.filter(recording=recording).delete()
        for s in segments:
            s.recording = recording
        Segment.objects.bulk_create(segments)
    if created:
        report.added += 1
    else:
        report.updated += 1


def _hash_object(store: Store, key: str) -> str:
    digest = hashlib.sha256()
    with store.open(key) as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def catalog_sync(
    *, actor: Actor, store: Store, clock: Clock, deep: bool = False, commit_every: int = 50
) -> SyncReport:
    """Index the store. Committed every `commit_every` recordings: an interrupted sync loses
    at most that many, and the next run redoes them (it skips what is unchanged)."""
    munis = authorize_any(actor=actor, action="catalog.sync", clock=clock, target=store.url)
    run = _SyncRun(
        allowed={m.id for m in munis},
        deep=deep,
        docks=dict(DockStation.objects.values_list("public_key", "name")),
        known={
            (r[0], r[1], r[2]): (r[3], r[4])
            for r in Recording.objects.values_list(
                "site", "device_id", "recording_id", "state", "store_fingerprint"
            )
        },
    )
    groups, _ = store_inventory(store)
    report = SyncReport()
    items = sorted(groups.items())
    for start in range(0, len(items), max(1, commit_every)):
        batch = items[start : start + max(1, commit_every)]
        with transaction.atomic():
            lock_for_this_transaction()  # other syncs may have catalogued some meanwhile
            run.known.update(known_now(key for key, _ in batch))
            for (site, dev, rec), keys in batch:
                report.seen += 1
                _sync_one(store, site, dev, rec, keys, run, clock, report, actor)
    with transaction.atomic():
        for m in munis:
            audit_record(
                actor=actor.username,
                roles=actor.describe(m.code),
                municipality=m.code,
                action="catalog.sync",
                target=store.url,
                result="ok",
                clock=clock,
                detail={
                    "seen": report.seen,
                    "added": report.added,
                    "updated": report.updated,
                    "refused": len(report.refused),
                    "problems": len(report.problems),
                },
            )
    log.info("catalog sync: %s", report.summary())
    return report


# --- holds -------------------------------------------------------------------------------------


def _set_store_holds(store: Store, recording: Recording, on: bool) -> int:
    n = 0
    for key in store.list(
        recording_prefix(recording.site, recording.device_id, recording.recording_id)
    ):
        store.set_legal_hold(key, on)
        n += 1
    return n


def hold_place(
    *,
    actor: Actor,
    recording: Recording,
    kind: str,
    reference: str,
    reason: str,
    store: Store,
    clock: Clock,
    received_at: dt.datetime | None = None,
) -> Hold:
    """Keep a recording past its retention until the hold is lifted; informs per policy."""
    target = str(recording)
    if kind not in Hold.Kind.values:
        raise InvalidRequest(f"hold kind {kind!r}: one of {', '.join(Hold.Kind.values)}")
    authorize_hold(
        actor=actor,
        kind=kind,
        which="place",
        municipality=recording.municipality,
        clock=clock,
        target=target,
    )
    policy = policy_of(recording.municipality)
    muni_code = recording.municipality.code
    now = clock.now()
    if recording.state == Recording.State.PURGED:
        raise InvalidRequest(f"{target} was purged on {utc_text(recording.tombstone.purged_at)}")
    answer_due = None
    if kind == "access_request":
        received = received_at or now
        window = policy.access_request.window_days
        if window is not None and received > recording.record_pressed_at + dt.timedelta(
            days=window
        ):
            late = (received - recording.record_pressed_at).days
            raise refuse(
                actor=actor,
                action="hold.place",
                municipality=muni_code,
                target=target,
                purpose=kind,
                clock=clock,
                reason=f"the access request arrived {late} days after the recording; "
                f"the {policy.policy.name} policy takes requests within "
                f"{window} days",
            )
        answer_due = received + dt.timedelta(days=policy.access_request.answer_days)
        received_at = received
    with transaction.atomic():
        hold = Hold.objects.create(
            recording=recording,
            kind=kind,
            reference=reference[:100],
            reason=reason[:500],
            received_at=received_at,
            answer_due_at=answer_due,
            opened_by=actor.username,
            opened_at=now,
        )
        informed = []
        for who in policy.inform.get(kind, []):  # type: ignore[call-overload]
            if who == OFFICER_CONCERNED:
                if recording.officer is not None:
                    Notification.objects.create(
                        municipality=recording.municipality,
                        recording=recording,
                        officer=recording.officer,
                        event=f"hold.{kind}",
                        created_at=now,
                    )
                    informed.append(f"officer {recording.officer.code}")
            else:
                Notification.objects.create(
                    municipality=recording.municipality,
                    recording=recording,
                    role=who,
                    event=f"hold.{kind}",
                    created_at=now,
                )
                informed.append(who)
        audit_ok(
            actor=actor,
            action="hold.place",
            municipality=recording.municipality.code,
            target=target,
            purpose=kind,
            clock=clock,
            detail={
                "hold": hold.id,
                "reference": reference,
                "informed": informed,
                "answer_due": answer_due,
            },
        )
    # The database already keeps it; the store's legal hold makes the store refuse too.
    _set_store_holds(store, recording, True)
    return hold


def hold_lift(*, actor: Actor, hold: Hold, reason: str, store: Store, clock: Clock) -> Hold:
    recording = hold.recording
    target = str(recording)
    authorize_hold(
        actor=actor,
        kind=hold.kind,
        which="lift",
        municipality=recording.municipality,
        clock=clock,
        target=target,
    )
    if hold.lifted_at is not None:
        raise InvalidRequest(f"hold {hold.id} was lifted on {utc_text(hold.lifted_at)}")
    with transaction.atomic():
        hold.lifted_at, hold.lifted_by, hold.lift_reason = clock.now(), actor.username, reason[:500]
        hold.save(update_fields=["lifted_at", "lifted_by", "lift_reason"])
        still = Hold.objects.filter(recording=recording, lifted_at__isnull=True).exists()
        audit_ok(
            actor=actor,
            action="hold.lift",
            municipality=recording.municipality.code,
            target=target,
            purpose=hold.kind,
            clock=clock,
            detail={"hold": hold.id, "reason": reason, "other_holds": still},
        )
    if not still:
        _set_store_holds(store, recording, False)
    return hold


# --- retention purge -----------------------------------------------------------------------------


@dataclass
class PurgeReport:
    due: list[str] = field(default_factory=list)
    purged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # due but the store still refuses
    late: list[str] = field(default_factory=list)  # objects that arrived after the purge, gone
    events_purged: list[str] = field(default_factory=list)
    events_held: list[str] = field(default_factory=list)  # event-log pieces a hold keeps
    dry_run: bool = False


def open_holds() -> Any:
    return Exists(Hold.objects.filter(recording=OuterRef("pk"), lifted_at__isnull=True))


def purge_candidates(municipalities: list[Municipality], now: dt.datetime) -> Any:
    return (
        Recording.objects.filter(municipality__in=municipalities, retention_ends_at__lte=now)
        .exclude(state=Recording.State.PURGED)
        .annotate(held=open_holds())
        .filter(held=False)
        .select_related("municipality")
        .order_by("retention_ends_at")
    )


def retention_purge(
    *,
    actor: Actor,
    store: Store,
    clock: Clock,
    dry_run: bool = False,
    cache_dirs: tuple[Path, ...] = (),
    commit_every: int = 50,
) -> PurgeReport:
    munis = authorize_any(actor=actor, action="retention.purge", clock=clock, target=store.url)
    check_store_retention(store, munis)
    now = clock.now()
    report = PurgeReport(dry_run=dry_run)
    due = list(purge_candidates(munis, now))
    report.due = [str(r) for r in due]
    # Committed in batches: a recording whose objects are gone but whose tombstone was not
    # committed is taken again by the next run (nothing left to delete; tombstone written).
    for start in range(0, 0 if dry_run else len(due), commit_every):
        with transaction.atomic():
            for rec in due[start : start + commit_every]:
                _purge_one(actor, store, rec, now, clock, cache_dirs, report)
    if not dry_run:
        groups, events = store_inventory(store)
        _purge_late(actor, store, munis, groups, clock, report)
        _purge_events(actor, store, munis, events, now, clock, report)
    with transaction.atomic():
        for m in munis:
            audit_record(
                actor=actor.username,
                roles=actor.describe(m.code),
                municipality=m.code,
                action="retention.purge",
                target=store.url,
                result="ok",
                clock=clock,
                detail={
                    "dry_run": dry_run,
                    "due": len(report.due),
                    "purged": len(report.purged),
                    "kept": len(report.kept),
                    "event_pieces": len(report.events_purged),
                },
            )
    return report


def _purge_one(
    actor: Actor,
    store: Store,
    rec: Recording,
    now: dt.datetime,
    clock: Clock,
    cache_dirs: tuple[Path, ...],
    report: PurgeReport,
) -> None:
    policy = policy_of(rec.municipality)
    with transaction.atomic():
        # Re-checked under a row lock: a hold placed since the selection wins.
        locked = Recording.objects.select_for_update().annotate(held=open_holds()).get(pk=rec.pk)
        if locked.held or locked.state == Recording.State.PURGED or locked.retention_ends_at > now:
            return
        removed = 0
        try:
            # Every key with any version: one hidden behind a delete marker is footage too.
            removed = delete_objects(
                store,
                keys_to_purge(store, recording_prefix(rec.site, rec.device_id, rec.recording_id)),
            )
        except StoreLocked as exc:
            report.kept.append(f"{rec}: {exc}")
            audit_ok(
                actor=actor,
                action="retention.purge",
                municipality=rec.municipality.code,
                target=str(rec),
                clock=clock,
                detail={"kept": str(exc), "removed": removed},
            )
            return
        for cache in cache_dirs:
            shutil.rmtree(
                Path(cache) / rec.site / rec.device_id / rec.recording_id, ignore_errors=True
            )
        locked.state = Recording.State.PURGED
        locked.save(update_fields=["state"])
        Tombstone.objects.create(
            recording=locked,
            purged_at=now,
            purged_by=actor.username,
            objects_removed=removed,
            rule=f"retention {policy.retention.days} days after the recording "
            f"({policy.policy.name} policy v{policy.policy.version})",
        )
        audit_ok(
            actor=actor,
            action="retention.purge",
            municipality=rec.municipality.code,
            target=str(rec),
            clock=clock,
            detail={"objects": removed, "retention_ended": rec.retention_ends_at},
        )
    report.purged.append(str(rec))


def check_store_retention(store: Store, municipalities: list[Municipality]) -> None:
    """Refuse a store whose Object Lock outlasts a policy's retention.

    The dock locks footage for the store URL's `retention_days`; if that is longer than
    a municipality's retention, its footage cannot be deleted on the day the policy says.
    """
    for m in municipalities:
        policy = policy_of(m)
        if store.retention_days > policy.retention.days:
            raise InvalidRequest(
                f"{store.url} locks footage for {store.retention_days:g} days, longer than"
                f" the {policy.retention.days}-day retention of {m.code}'s policy"
                f" ({policy.policy.name}): footage would outlive its deadline; set"
                f" retention_days={policy.retention.days} (or less) in the store URL of the"
                " docks and the back office"
            )


def _purge_late(
    actor: Actor,
    store: Store,
    munis: list[Municipality],
    groups: dict[tuple[str, str, str], list[str]],
    clock: Clock,
    report: PurgeReport,
) -> None:
    """Objects stored under a recording after it was purged (a late re-offload) go too."""
    purged = Recording.objects.filter(
        municipality__in=munis, state=Recording.State.PURGED
    ).select_related("municipality")
    gone = {(r.site, r.device_id, r.recording_id): r for r in purged}
    for where in sorted(set(groups) & set(gone)):
        rec = gone[where]
        try:
            removed = delete_objects(store, keys_to_purge(store, recording_prefix(*where)))
        except StoreLocked as exc:
            report.kept.append(f"{rec} (arrived after its purge): {exc}")
            continue
        with transaction.atomic():
            audit_ok(
                actor=actor,
                action="retention.purge",
                municipality=rec.municipality.code,
                target=str(rec),
                clock=clock,
                detail={"objects": removed, "arrived_after_purge": True},
            )
        report.late.append(f"{rec}: {removed} object(s) stored after its purge")


@dataclass(frozen=True)
class _PieceScope:
    """What one event-log piece speaks of: its time span and the recordings it names."""

    first_utc: float | None
    last_utc: float | None
    recordings: frozenset[str]


def _piece_scope(raw: bytes) -> _PieceScope:
    times: list[float] = []
    names: set[str] = set()
    last: float | None = None
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            utc = float(event["utc"])
        except (ValueError, KeyError, TypeError):
            last = None  # an unreadable last line: the piece's age is unknown
            continue
        times.append(utc)
        last = utc
        fields = event.get("fields") if isinstance(event.get("fields"), dict) else {}
        for where in (event, fields):
            rec = where.get("recording_id")
            if isinstance(rec, str):
                names.add(rec)
    return _PieceScope(min(times) if times else None, last, frozenset(names))


def _held_recordings() -> dict[tuple[str, str], list[Recording]]:
    """Recordings under an open hold, by (site, device)."""
    held: dict[tuple[str, str], list[Recording]] = defaultdict(list)
    for r in Recording.objects.annotate(held=open_holds()).filter(held=True):
        held[(r.site, r.device_id)].append(r)
    return held


def _covers(scope: _PieceScope, rec: Recording) -> bool:
    """The piece names the recording, or its events fall within the recording's time."""
    if rec.recording_id in scope.recordings:
        return True
    if scope.first_utc is None or scope.last_utc is None:
        return False
    start = rec.footage_start_at.timestamp()
    end = (rec.ended_at or rec.record_pressed_at).timestamp()
    return scope.first_utc <= end and scope.last_utc >= start


def _purge_events(
    actor: Actor,
    store: Store,
    munis: list[Municipality],
    events: list[str],
    now: dt.datetime,
    clock: Clock,
    report: PurgeReport,
) -> None:
    """Event-log pieces go when their last event is as old as footage that is purged.

    A piece that covers a recording under an open hold (names it, or was written while
    it was being made) is its custody evidence and stays as long as the hold.
    """
    allowed = {m.id for m in munis}
    held = _held_recordings()
    for key in events:
        site, dev = key.split("/")[:2]
        regs = [c for c in camera_registrations(dev) if c.municipality_id in allowed]
        if not regs:
            continue
        days = policy_of(regs[0].municipality).retention.days
        scope = _piece_scope(store.get_bytes(key, MAX_EVENT_PIECE))
        last = scope.last_utc
        if last is None or from_epoch(last) + dt.timedelta(days=days) > now:
            continue
        holding = [r for r in held.get((site, dev), []) if _covers(scope, r)]
        if holding:
            report.events_held.append(f"{key}: covers {holding[0]}, which is on hold")
            continue
        try:
            delete_object(store, key)
        except StoreLocked as exc:
            report.kept.append(f"{key}: {exc}")
            continue
        with transaction.atomic():
            audit_ok(
                actor=actor,
                action="retention.purge",
                target=key,
                clock=clock,
                municipality=regs[0].municipality.code,
                detail={"event_log_piece": True},
            )
        report.events_purged.append(key)


def recording_authorize(
    *, actor: Actor, recording: Recording, action: str, clock: Clock, purpose: str = ""
) -> list[str]:
    return authorize(
        actor=actor,
        action=action,
        municipality=recording.municipality,
        clock=clock,
        target=str(recording),
        purpose=purpose,
    )
