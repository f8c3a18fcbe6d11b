"""Reading the requests register: the requests of the user's municipalities, one request.

Visibility is applied here: a user sees the requests of the municipalities where a role
of theirs may list the catalog.
"""

from __future__ import annotations

from django.db.models import QuerySet

from vault.access import Actor, authorize_any
from vault.casework.models import CaseRequest
from vault.catalog.models import Recording
from vault.clock import Clock
from vault.errors import InvalidRequest, NotFound


def request_list(
    *, actor: Actor, clock: Clock, kind: str = "", open_only: bool = False
) -> QuerySet[CaseRequest]:
    munis = authorize_any(actor=actor, action="catalog.list", clock=clock, target="requests")
    qs = CaseRequest.objects.filter(municipality__in=munis)
    if kind:
        if kind not in CaseRequest.Kind.values:
            raise InvalidRequest(f"kind {kind!r}: one of {', '.join(CaseRequest.Kind.values)}")
        qs = qs.filter(kind=kind)
    if open_only:
        qs = qs.filter(closed_at__isnull=True)
    return qs.select_related("municipality").prefetch_related("recordings", "holds")


def request_get(*, actor: Actor, request_id: int, clock: Clock) -> CaseRequest:
    found = request_list(actor=actor, clock=clock).filter(pk=request_id).first()
    if found is None:
        raise NotFound(f"no request {request_id} visible to {actor.username}")
    return found


def recording_requests(*, recording: Recording) -> QuerySet[CaseRequest]:
    """The requests that name `recording` (shown on its page to whoever may open it)."""
    return recording.case_requests.all()
