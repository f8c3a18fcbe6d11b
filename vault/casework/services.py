"""The requests register: citizen access requests, complaints and police/prosecutor claims.

A request names one or more recordings and opens the matching hold on each
(`hold_place`: the policy says who may, checks an access request's window and sets its
answer deadline); closing it lifts those holds (`hold_lift`), so retention resumes. An
access request is its own register: received date, whether it arrived within the
policy's window, the privacy officer's decision and the answer deadline, an objection,
and when the decision was carried out (which is what closes it).
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction

from store import Store
from vault.access import Actor, audit_ok, authorize_hold, policy_of
from vault.accounts.models import Municipality
from vault.casework.models import CaseRequest
from vault.catalog.models import Recording
from vault.catalog.services import hold_lift, hold_place
from vault.clock import Clock
from vault.errors import InvalidRequest
from vault.local_time import local_text

log = logging.getLogger(__name__)


def request_open(
    *,
    actor: Actor,
    municipality: Municipality,
    kind: str,
    reference: str,
    description: str,
    received_at: dt.datetime,
    recordings: list[Recording],
    store: Store,
    clock: Clock,
) -> CaseRequest:
    """Register a request and hold each recording it concerns (all or none)."""
    if kind not in CaseRequest.Kind.values:
        raise InvalidRequest(f"kind {kind!r}: one of {', '.join(CaseRequest.Kind.values)}")
    if not recordings:
        raise InvalidRequest("a request names at least one recording")
    if not reference.strip():
        raise InvalidRequest("a request needs a reference (case or request number)")
    if any(r.municipality_id != municipality.pk for r in recordings):
        raise InvalidRequest(
            f"every recording of a {municipality.code} request must be {municipality.code}'s"
        )
    authorize_hold(
        actor=actor,
        kind=kind,
        which="place",
        municipality=municipality,
        clock=clock,
        target=f"request {reference}",
    )
    if CaseRequest.objects.filter(
        municipality=municipality, kind=kind, reference=reference.strip()
    ).exists():
        raise InvalidRequest(f"{kind} {reference} is already registered")
    policy = policy_of(municipality)
    window = policy.access_request.window_days
    within = None
    if kind == "access_request":
        within = window is None or all(
            received_at <= r.record_pressed_at + dt.timedelta(days=window) for r in recordings
        )
    with transaction.atomic():
        case = CaseRequest.objects.create(
            municipality=municipality,
            kind=kind,
            reference=reference.strip()[:100],
            description=description[:1000],
            received_at=received_at,
            within_window=within,
            opened_by=actor.username,
            opened_at=clock.utc(),
        )
        case.recordings.set(recordings)
        for rec in recordings:
            # hold_place refuses (audited) a late access request; the whole request rolls back.
            hold = hold_place(
                actor=actor,
                recording=rec,
                kind=kind,
                reference=case.reference,
                reason=description or kind,
                store=store,
                clock=clock,
                received_at=received_at if kind == "access_request" else None,
            )
            case.holds.add(hold)
            if hold.answer_due_at and (
                case.answer_due_at is None or hold.answer_due_at < case.answer_due_at
            ):
                case.answer_due_at = hold.answer_due_at
        case.save(update_fields=["answer_due_at"])
        audit_ok(
            actor=actor,
            action="request.open",
            municipality=municipality.code,
            target=f"{kind} {case.reference}",
            purpose=kind,
            clock=clock,
            detail={
                "request": case.pk,
                "recordings": [str(r) for r in recordings],
                "within_window": within,
            },
        )
    return case


def request_decide(
    *, actor: Actor, case: CaseRequest, decision: str, text: str, clock: Clock
) -> CaseRequest:
    """The privacy officer's decision on an access request (whoever may lift its hold)."""
    if case.kind != CaseRequest.Kind.ACCESS_REQUEST:
        raise InvalidRequest("only an access request gets a decision; close the others")
    if decision not in ("granted", "refused"):
        raise InvalidRequest(f"decision {decision!r}: granted or refused")
    if case.closed_at is not None:
        raise InvalidRequest(f"request {case.reference} is closed")
    authorize_hold(
        actor=actor,
        kind=case.kind,
        which="lift",
        municipality=case.municipality,
        clock=clock,
        target=f"request {case.reference}",
    )
    with transaction.atomic():
        case.decision, case.decision_text = decision, text[:1000]
        case.decided_by, case.decided_at = actor.username, clock.utc()
        case.save(update_fields=["decision", "decision_text", "decided_by", "decided_at"])
        audit_ok(
            actor=actor,
            action="request.decide",
            municipality=case.municipality.code,
            target=f"{case.kind} {case.reference}",
            purpose=case.kind,
            clock=clock,
            detail={"request": case.pk, "decision": decision},
        )
    return case


def request_object(*, actor: Actor, case: CaseRequest, text: str, clock: Clock) -> CaseRequest:
    """The requester objects to the decision: registered; the hold stays."""
    if case.kind != CaseRequest.Kind.ACCESS_REQUEST or not case.decision:
        raise InvalidRequest("an objection is against an access request's decision")
    if not policy_of(case.municipality).access_request.objection:
        raise InvalidRequest(f"the {case.municipality.code} policy has no objection procedure")
    authorize_hold(
        actor=actor,
        kind=case.kind,
        which="lift",
        municipality=case.municipality,
        clock=clock,
        target=f"request {case.reference}",
    )
    with transaction.atomic():
        case.objection_at, case.objection_text = clock.utc(), text[:1000]
        case.save(update_fields=["objection_at", "objection_text"])
        audit_ok(
            actor=actor,
            action="request.objection",
            municipality=case.municipality.code,
            target=f"{case.kind} {case.reference}",
            purpose=case.kind,
            clock=clock,
            detail={"request": case.pk},
        )
    return case


def request_close(
    *, actor: Actor, case: CaseRequest, reason: str, store: Store, clock: Clock
) -> CaseRequest:
    """Done: the decision carried out, the complaint ended, the prosecutor agreed.

    Lifts every hold the request opened (each lift checks who may)."""
    if case.closed_at is not None:
        raise InvalidRequest(f"request {case.reference} was closed on {local_text(case.closed_at)}")
    if case.kind == CaseRequest.Kind.ACCESS_REQUEST and not case.decision:
        raise InvalidRequest(
            "an access request is closed when its decision has been carried "
            "out: record the decision first"
        )
    if not reason.strip():
        raise InvalidRequest("say why the request is closed")
    with transaction.atomic():
        for hold in case.holds.filter(lifted_at__isnull=True):
            hold_lift(
                actor=actor,
                hold=hold,
                reason=f"request {case.reference}: {reason}",
                store=store,
                clock=clock,
            )
        now = clock.utc()
        if case.kind == CaseRequest.Kind.ACCESS_REQUEST:
            case.executed_at = now
        case.closed_at, case.closed_by, case.close_reason = now, actor.username, reason[:500]
        case.save(update_fields=["executed_at", "closed_at", "closed_by", "close_reason"])
        audit_ok(
            actor=actor,
            action="request.close",
            municipality=case.municipality.code,
            target=f"{case.kind} {case.reference}",
            purpose=case.kind,
            clock=clock,
            detail={"request": case.pk, "reason": reason},
        )
    return case
