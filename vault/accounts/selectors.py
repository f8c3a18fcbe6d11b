"""Reading users, roles and officers, limited to what the asking user may administer."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils.translation import gettext

from vault.access import Actor, authorize_any
from vault.accounts.models import Membership, Municipality, Officer
from vault.clock import Clock
from vault.errors import InvalidRequest


def membership_list(*, actor: Actor, clock: Clock) -> QuerySet[Membership]:
    munis = authorize_any(actor=actor, action="user.admin", clock=clock, target="users")
    return (
        Membership.objects.filter(municipality__in=munis)
        .select_related("user", "municipality")
        .order_by("municipality__code", "user__username", "role")
    )


def officer_by_code(*, municipality: str, code: str) -> Officer | None:
    return Officer.objects.filter(municipality__code=municipality, code=code).first()


def actor_municipalities(*, actor: Actor) -> QuerySet[Municipality]:
    """The municipalities where the user holds a role (the forms' choices)."""
    return Municipality.objects.filter(code__in=list(actor.roles))


def actor_municipality(*, actor: Actor, code: str) -> Municipality:
    """The municipality `code`, only where the user holds a role; else InvalidRequest."""
    muni = Municipality.objects.filter(code=code).first()
    if muni is None or muni.code not in actor.roles:
        raise InvalidRequest(gettext("choose one of your municipalities"))
    return muni


def actor_officers(*, actor: Actor) -> QuerySet[Officer]:
    """The officers of the municipalities where the user holds a role, by code."""
    return Officer.objects.filter(municipality__code__in=list(actor.roles)).order_by("code")
