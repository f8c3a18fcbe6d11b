"""Holds: `hold_place` / `hold_lift`, only by the roles the policy names; on the store a
legal hold on every object of the recording (S3 object legal hold).
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction

from crypto.timestamps import utc_text
from store import (
    Store,
)
from vault.access import (
    Actor,
    audit_ok,
    authorize_hold,
    policy_of,
    refuse,
)
from vault.catalog.models import Hold, Notification, Recording
from vault.catalog.origin import (
    recording_prefix,
)
from vault.clock import Clock
from vault.errors import InvalidRequest
from vault.policy import OFFICER_CONCERNED

log = logging.getLogger(__name__)


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
    now = clock.utc()
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
        hold.lifted_at, hold.lifted_by, hold.lift_reason = clock.utc(), actor.username, reason[:500]
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
