"""Reading the audit log, as a user whose policy allows it.

Every entry belongs to a municipality, and an auditor sees only the entries of the
municipalities where their policy allows `audit.view`. Entries written before every
entry carried one (municipality "") are attributed to the municipalities of the person
who acted, so an auditor sees their own users' sign-ins and searches, never another
municipality's.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.db.models import Q, QuerySet

from vault.access import Actor, audit_ok, authorize_any
from vault.accounts.models import Membership, Municipality
from vault.audit.models import AuditEntry
from vault.clock import Clock

SEARCH_FIELDS = ("action", "actor", "result", "purpose", "target")


def audit_visible(municipalities: list[Municipality]) -> QuerySet[AuditEntry]:
    """The entries that belong to these municipalities."""
    codes = [m.code for m in municipalities]
    members = Membership.objects.filter(municipality__code__in=codes).values("user__username")
    return AuditEntry.objects.filter(
        Q(municipality__in=codes) | Q(municipality="", actor__in=members)
    )


def audit_search(
    *, actor: Actor, clock: Clock, filters: Mapping[str, str], limit: int = 300
) -> list[AuditEntry]:
    """The latest entries the actor may see matching `filters`, newest first; audited."""
    munis = authorize_any(actor=actor, action="audit.view", clock=clock, target="audit log")
    qs = audit_visible(munis)
    for name in ("actor", "result", "purpose"):
        if filters.get(name):
            qs = qs.filter(**{name: filters[name]})
    if filters.get("action"):
        qs = qs.filter(action__startswith=filters["action"])
    if filters.get("target"):
        qs = qs.filter(target__icontains=filters["target"])
    entries = list(qs.order_by("-seq")[:limit])
    audit_ok(
        actor=actor,
        action="audit.view",
        target="audit log",
        clock=clock,
        detail={k: v for k, v in filters.items() if v},
    )
    return entries


def audit_list(*, actor: Actor, clock: Clock, limit: int = 50) -> list[AuditEntry]:
    """The latest entries of the user's municipalities, oldest first."""
    munis = authorize_any(actor=actor, action="audit.view", clock=clock, target="audit log")
    entries = list(audit_visible(munis).order_by("-seq")[:limit])
    audit_ok(
        actor=actor,
        action="audit.view",
        target="audit log",
        clock=clock,
        detail={"entries": len(entries)},
    )
    return list(reversed(entries))
