"""Reading users, roles and officers, limited to what the asking user may administer."""

from __future__ import annotations

from django.db.models import QuerySet

from vault.access import Actor, authorize_any
from vault.accounts.models import Membership, Officer
from vault.clock import Clock


def membership_list(*, actor: Actor, clock: Clock) -> QuerySet[Membership]:
    munis = authorize_any(actor=actor, action="user.admin", clock=clock, target="users")
    return (
        Membership.objects.filter(municipality__in=munis)
        .select_related("user", "municipality")
        .order_by("municipality__code", "user__username", "role")
    )


def officer_by_code(*, municipality: str, code: str) -> Officer | None:
    return Officer.objects.filter(municipality__code=municipality, code=code).first()
