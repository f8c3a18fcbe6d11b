"""Finding recordings: every read applies visibility (municipality and role) for the user.

Works council condition: nothing here counts, ranks or lines up recordings per
officer. Filtering by officer is a search for a case, so it needs a stated purpose
(one the policy allows viewing for) and is audited with it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, QuerySet

from vault.access import Actor, audit_ok, authorize_any, refuse
from vault.accounts.models import Municipality
from vault.audit.models import AuditEntry
from vault.catalog.models import Hold, Recording, Segment
from vault.clock import Clock
from vault.errors import InvalidRequest, NotFound
from vault.policy import PURPOSES

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_REF = re.compile(rf"(?:(?P<dev>{_NAME})/)?(?P<rec>{_NAME})")


def visible_municipalities(
    *, actor: Actor, action: str, clock: Clock, target: str = ""
) -> list[Municipality]:
    return authorize_any(actor=actor, action=action, clock=clock, target=target)


def recording_list(
    *,
    actor: Actor,
    clock: Clock,
    camera: str | None = None,
    officer: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    state: str | None = None,
    hold: str | None = None,
    purpose: str = "",
    municipality: str | None = None,
) -> QuerySet[Recording]:
    """Recordings the user may list, newest first, filtered; audited with the filters."""
    filters = {
        k: v
        for k, v in dict(
            camera=camera,
            officer=officer,
            since=since,
            until=until,
            state=state,
            hold=hold,
            municipality=municipality,
        ).items()
        if v
    }
    munis = visible_municipalities(
        actor=actor, action="catalog.list", clock=clock, target="recordings"
    )
    if officer and purpose not in PURPOSES:
        raise refuse(
            actor=actor,
            action="catalog.list",
            target=f"officer {officer}",
            purpose=purpose,
            clock=clock,
            reason="recordings are looked up per officer only for a case: give a "
            f"purpose ({', '.join(PURPOSES)}); never to monitor employees",
        )
    qs = Recording.objects.filter(municipality__in=munis)
    if municipality:
        qs = qs.filter(municipality__code=municipality)
    if camera:
        qs = qs.filter(device_id=camera)
    if officer:
        qs = qs.filter(officer__code=officer)
    if since:
        qs = qs.filter(record_pressed_at__gte=since)
    if until:
        qs = qs.filter(record_pressed_at__lt=until)
    if state:
        if state not in Recording.State.values:
            raise InvalidRequest(f"state {state!r}: one of {', '.join(Recording.State.values)}")
        qs = qs.filter(state=state)
    if hold:
        open_hold = Hold.objects.filter(recording=OuterRef("pk"), lifted_at__isnull=True)
        if hold == "any":
            qs = qs.filter(Exists(open_hold))
        elif hold == "none":
            qs = qs.exclude(Exists(open_hold))
        elif hold in Hold.Kind.values:
            qs = qs.filter(Exists(open_hold.filter(kind=hold)))
        else:
            raise InvalidRequest(
                f"hold {hold!r}: any, none or one of {', '.join(Hold.Kind.values)}"
            )
    audit_ok(
        actor=actor,
        action="catalog.list",
        target="recordings",
        purpose=purpose,
        clock=clock,
        detail={k: str(v) for k, v in filters.items()},
    )
    return qs.select_related("municipality", "camera", "officer").order_by(
        "-record_pressed_at", "device_id"
    )


def recording_get(
    *, actor: Actor, ref: str, clock: Clock, action: str = "catalog.show"
) -> Recording:
    """One recording by `RECORDING_ID` or `DEVICE_ID/RECORDING_ID`, if the user may see it.

    Someone else's municipality's recording is reported as not found (its existence is
    not disclosed) and the attempt is audited.
    """
    m = _REF.fullmatch(ref)
    if m is None:
        raise InvalidRequest(f"{ref!r} is not RECORDING_ID or DEVICE_ID/RECORDING_ID")
    qs = Recording.objects.filter(recording_id=m["rec"])
    if m["dev"]:
        qs = qs.filter(device_id=m["dev"])
    munis = {mu.id for mu in Municipality.objects.all() if any(actor.roles_in(mu.code))}
    # Only the user's own municipalities' recordings count, also for telling them that an
    # id is ambiguous: another municipality's footage is answered as if it did not exist.
    found = list(
        qs.filter(municipality_id__in=munis).select_related("municipality", "camera", "officer")[:2]
    )
    if len(found) > 1:
        raise InvalidRequest(f"{ref} names recordings of several cameras: give DEVICE_ID/{ref}")
    if not found:
        if qs.exists():
            refuse(
                actor=actor,
                action=action,
                target=ref,
                clock=clock,
                reason="recording of another municipality",
            )
        raise NotFound(f"no recording {ref} visible to {actor.username}")
    return found[0]


# What a recording's page shows of its audit trail to someone who may not see the audit
# log: how it came in and how it is kept, never who viewed, held or exported it and why.
STORAGE_FACTS = ("catalog.sync", "recording.verify", "retention.purge")


@dataclass(frozen=True)
class Custody:
    entries: list[AuditEntry]
    complete: bool  # every entry about the recording, not only its ingest and storage


def recording_custody(*, actor: Actor, recording: Recording) -> Custody:
    """The recording's chain of custody as far as the actor's policy lets them see it.

    With `audit.view` in the recording's municipality: every entry of that municipality
    about it. Otherwise only its ingest and storage facts.
    """
    from vault.access import allowed_roles

    qs = AuditEntry.objects.filter(
        municipality=recording.municipality.code, target__startswith=str(recording)
    )
    complete = bool(allowed_roles(actor, recording.municipality, "audit.view"))
    if not complete:
        qs = qs.filter(action__in=STORAGE_FACTS, result="ok")
    return Custody(list(qs.order_by("seq")), complete)


def hold_get(*, hold_id: int) -> Hold:
    try:
        return Hold.objects.select_related(
            "recording__municipality", "recording__officer", "recording__camera"
        ).get(pk=hold_id)
    except Hold.DoesNotExist:
        raise NotFound(f"no hold {hold_id}") from None


def recording_detail(*, actor: Actor, ref: str, clock: Clock) -> Recording:
    """One recording with segments and holds, for a user whose policy allows `catalog.show`."""
    from vault.access import authorize

    r = recording_get(actor=actor, ref=ref, clock=clock)
    authorize(
        actor=actor, action="catalog.show", municipality=r.municipality, clock=clock, target=str(r)
    )
    audit_ok(
        actor=actor,
        action="catalog.show",
        municipality=r.municipality.code,
        target=str(r),
        clock=clock,
    )
    return r


def recordings_held(*, recordings: list[Recording]) -> set[int]:
    """Which of `recordings` (already visible to the user) an open hold covers, by pk."""
    return set(
        Hold.objects.filter(recording__in=recordings, lifted_at__isnull=True).values_list(
            "recording_id", flat=True
        )
    )


def recording_segments(*, recording: Recording) -> QuerySet[Segment]:
    """The stored segments of a recording the user was given (`recording_detail`)."""
    return recording.segments.all()


def recording_holds(*, recording: Recording) -> QuerySet[Hold]:
    """Every hold a recording the user was given has had, oldest first."""
    return recording.holds.all().order_by("opened_at")


def recording_choices(*, actor: Actor, clock: Clock, limit: int) -> list[Recording]:
    """The recordings a form may name: those the user may list whose footage is kept,
    newest first, at most `limit`."""
    return list(
        recording_list(actor=actor, clock=clock).exclude(state=Recording.State.PURGED)[:limit]
    )
