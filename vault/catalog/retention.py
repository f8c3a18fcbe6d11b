"""The retention purge: recordings whose retention ended (record press + policy days) and
that no open hold covers lose every object (every S3 version) and every cache copy; the
row becomes `purged` with a tombstone. Event-log pieces follow the same schedule.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef

from store import (
    Store,
    StoreLocked,
    delete_object,
    delete_objects,
    keys_to_purge,
)
from vault.access import (
    Actor,
    audit_ok,
    authorize_any,
    policy_of,
)
from vault.accounts.models import Municipality
from vault.audit.services import audit_record
from vault.catalog.models import Hold, Recording, Tombstone
from vault.catalog.origin import (
    MAX_EVENT_PIECE,
    recording_prefix,
    store_inventory,
)
from vault.clock import Clock, from_epoch
from vault.errors import InvalidRequest
from vault.registry.selectors import camera_registrations

log = logging.getLogger(__name__)


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
    now = clock.utc()
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
