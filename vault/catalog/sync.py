"""`catalog_sync`: index every recording in the store, verified.

Idempotent (a recording whose set of store keys did not change is skipped without
reading anything), resumable (each recording is committed on its own, so an interrupted
sync picks up where it stopped), and verified: the header and the longest manifest must
verify with a key the coordinator registered for that device, every listed segment must
be in the store under its manifest digest with the listed size (`deep=True` re-hashes
them).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from crypto.errors import FormatError
from formats.ingest_record import NAME as INGEST_NAME
from formats.ingest_record import IngestRecordError, parse_ingest_record
from store import (
    Store,
    StoreError,
    object_key,
    split_name,
)
from vault.access import (
    Actor,
    audit_scopes,
    authorize_any,
    policy_of,
)
from vault.audit.services import audit_record
from vault.catalog.models import Recording, Segment
from vault.catalog.origin import (
    store_inventory,
    verify_origin,
)
from vault.catalog.sync_lock import known_now, lock_for_this_transaction
from vault.clock import Clock, from_epoch
from vault.errors import OriginRefused
from vault.registry.models import Camera, DockStation
from vault.registry.selectors import camera_registrations, officer_at

log = logging.getLogger(__name__)


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
    # The batch's recordings already catalogued -> (state, store fingerprint), looked up
    # under the sync lock as each batch starts (vault/catalog/sync_lock.py).
    known: dict[tuple[str, str, str], tuple[str, str]] = field(default_factory=dict)
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
        synced_at=clock.utc(),
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
    )
    groups, _ = store_inventory(store)
    report = SyncReport()
    items = sorted(groups.items())
    for start in range(0, len(items), max(1, commit_every)):
        batch = items[start : start + max(1, commit_every)]
        with transaction.atomic():
            lock_for_this_transaction()  # other syncs may have catalogued some meanwhile
            run.known = known_now(key for key, _ in batch)
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
