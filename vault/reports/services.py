"""The officer's shift report: drafted from the camera's signed event log, completed by the
officer, submitted to the coordinator.

`shift_sync` (run after each catalog sync, i.e. after a camera docked and its footage
was stored) reads every camera's event-log pieces from the store, verifies the chain
and signatures against the key the coordinator registered, keeps each camera's last
docking, profile version and health, and drafts one report per catalogued recording:
press and stop times, pre-roll, the indicators the camera gave. The officer writes the
reason and circumstances, the warning given beforehand (or why not) and whether and how
bystanders were informed, then submits. Drafts still open are flagged to the officer
and to the coordinator. Nothing here counts or compares officers.

Reading them back (`report_list`, `camera_overview`: who wears each camera now and when
it last docked) is in `vault.reports.selectors`; the PDF in `vault.reports.pdf`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction

from formats.eventlog import Event, EventLogError, read_events, verify_event_log
from store import Store
from vault.access import Actor, audit_ok, authorize_any, refuse
from vault.catalog.models import Recording
from vault.catalog.services import MAX_EVENT_PIECE, store_inventory
from vault.clock import Clock, from_epoch
from vault.errors import InvalidRequest
from vault.registry.models import Camera
from vault.reports.models import CameraStatus, ShiftReport
from vault.reports.selectors import report_is_own

log = logging.getLogger(__name__)

HEALTH_KINDS = ("fault", "storage_low", "recovery_failed", "event_log_reset")


@dataclass
class ShiftSyncReport:
    cameras: int = 0
    drafted: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _piece_start(key: str) -> int:
    name = key.rsplit("/", 1)[-1]
    try:
        return int(name.split("-")[1])
    except (IndexError, ValueError):
        return -1


def _device_events(
    store: Store, keys: list[str], camera: Camera | None, problems: list[str]
) -> tuple[list[Event], bool]:
    """The device's events in order; verified when the log is whole from its first byte."""
    keys = sorted(keys, key=_piece_start)
    fd, name = tempfile.mkstemp(prefix="events-", suffix=".jsonl")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            for k in keys:
                f.write(store.get_bytes(k, MAX_EVENT_PIECE))
        if camera is not None and keys and _piece_start(keys[0]) == 0:
            try:
                return list(
                    verify_event_log(
                        path, bytes.fromhex(camera.public_key), allow_torn_tail=True
                    ).events
                ), True
            except EventLogError as exc:
                problems.append(f"{keys[0].split('/')[1]}: event log does not verify: {exc}")
        try:
            return list(read_events(path)), False
        except EventLogError as exc:
            problems.append(f"{keys[0].split('/')[1]}: event log unreadable: {exc}")
            return [], False
    finally:
        path.unlink(missing_ok=True)


def _status(device: str, events: list[Event], now: dt.datetime) -> None:
    docked = [e for e in events if e.kind == "dock"]
    profile = [e for e in events if e.kind == "profile_applied"]
    since = docked[-2].seq if len(docked) > 1 else 0  # health over the last shift
    issues = [e for e in events if e.kind in HEALTH_KINDS and e.seq > since]
    health = (
        "ok"
        if not issues
        else "; ".join(
            f"{e.kind}: {e.fields.get('fault') or e.fields.get('detail') or ''}".strip(": ")
            for e in issues[-3:]
        )
    )
    version = ""
    if profile:
        f = profile[-1].fields
        version = f"{f.get('profile_name') or '?'} v{f.get('profile_version') or '?'}"
    CameraStatus.objects.update_or_create(
        device_id=device,
        defaults={
            "last_docked_at": from_epoch(docked[-1].utc) if docked else None,
            "profile_version": version,
            "health": health[:300],
            "events_seen": len(events),
            "updated_at": now,
        },
    )


def _draft(rec: Recording, events: list[Event], verified: bool, now: dt.datetime) -> bool:
    start = next(
        (
            e
            for e in events
            if e.kind == "record_start" and e.fields.get("recording_id") == rec.recording_id
        ),
        None,
    )
    if start is None or ShiftReport.objects.filter(recording=rec).exists():
        return False
    stop = next(
        (
            e
            for e in events
            if e.kind == "record_stop" and e.fields.get("recording_id") == rec.recording_id
        ),
        None,
    )
    end_seq, end_utc = (stop.seq, stop.utc) if stop else (start.seq + 10_000, float("inf"))
    # The signals of this recording: from just before the press to just after the stop
    # (not the end of the recording before it, nor the start of the next).
    indicators = [
        {
            "at": e.utc,
            "indicator": e.fields.get("indicator"),
            "on": e.fields.get("on"),
            "reason": e.fields.get("reason"),
        }
        for e in events
        if e.kind == "indicator"
        and start.seq - 5 <= e.seq <= end_seq + 3
        and start.utc - 2.0 <= e.utc <= end_utc + 2.0
    ]
    ShiftReport.objects.create(
        recording=rec,
        officer=rec.officer,
        pressed_at=from_epoch(start.utc),
        stopped_at=from_epoch(stop.utc) if stop else None,
        preroll_seconds=float(start.fields.get("prerecord_covered") or rec.preroll_seconds),
        stop_reason=str(stop.fields.get("reason") or "")[:200] if stop else "",
        indicators=indicators[:50],
        events_verified=verified,
        drafted_at=now,
    )
    return True


def shift_sync(*, actor: Actor, store: Store, clock: Clock) -> ShiftSyncReport:
    """Camera status and draft reports from every event log in the store."""
    munis = authorize_any(actor=actor, action="catalog.sync", clock=clock, target=store.url)
    report = ShiftSyncReport()
    _, piece_keys = store_inventory(store)
    by_device: dict[str, list[str]] = {}
    for k in piece_keys:
        by_device.setdefault(k.split("/")[1], []).append(k)
    now = clock.utc()
    for device, keys in sorted(by_device.items()):
        camera = Camera.objects.filter(
            device_id=device, removed_at__isnull=True, municipality__in=munis
        ).first()
        if camera is None:
            continue
        events, verified = _device_events(store, keys, camera, report.problems)
        report.cameras += 1
        with transaction.atomic():
            _status(device, events, now)
            for rec in (
                Recording.objects.filter(device_id=device, municipality__in=munis)
                .exclude(state=Recording.State.PURGED)
                .select_related("officer")
            ):
                if _draft(rec, events, verified, now):
                    report.drafted.append(str(rec))
    with transaction.atomic():
        audit_ok(
            actor=actor,
            action="report.draft",
            target=store.url,
            clock=clock,
            detail={
                "cameras": report.cameras,
                "drafted": len(report.drafted),
                "problems": report.problems[:20],
            },
        )
    return report


def report_complete(
    *,
    actor: Actor,
    report: ShiftReport,
    reason: str,
    warning_given: bool | None,
    warning_note: str,
    bystanders_informed: str,
    submit: bool,
    clock: Clock,
) -> ShiftReport:
    """The officer fills in the report; with `submit` it goes to the coordinator."""
    muni = report.recording.municipality.code
    if not report_is_own(actor=actor, report=report):
        raise refuse(
            actor=actor,
            action="report.complete",
            municipality=muni,
            target=str(report.recording),
            clock=clock,
            reason="only the officer who made the recording writes its report",
        )
    if report.state == ShiftReport.State.SUBMITTED:
        raise InvalidRequest("this report was submitted; it can no longer be changed")
    report.reason, report.warning_note = reason.strip()[:5000], warning_note.strip()[:5000]
    report.warning_given = warning_given
    report.bystanders_informed = bystanders_informed.strip()[:5000]
    if submit:
        missing = [
            n
            for n, v in (
                ("reason and circumstances", report.reason),
                ("bystanders informed", report.bystanders_informed),
            )
            if not v
        ]
        if warning_given is None:
            missing.append("whether a warning was given")
        elif not warning_given and not report.warning_note:
            missing.append("why no warning was possible")
        if missing:
            raise InvalidRequest(f"to submit, fill in: {', '.join(missing)}")
        report.state = ShiftReport.State.SUBMITTED
        report.submitted_at, report.submitted_by = clock.utc(), actor.username
    with transaction.atomic():
        report.save()
        audit_ok(
            actor=actor,
            action="report.submit" if submit else "report.save",
            municipality=muni,
            target=str(report.recording),
            clock=clock,
            detail={"report": report.pk},
        )
    return report
