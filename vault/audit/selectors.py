"""Reading the audit log, as a user whose policy allows it."""

from __future__ import annotations

from django.db.models import QuerySet

from vault.access import Actor, audit_ok, authorize_any
from vault.audit.models import AuditEntry
from vault.clock import Clock


def audit_list(*, actor: Actor, clock: Clock, limit: int = 50) -> list[AuditEntry]:
    """The latest entries of the user's municipalities (and site-wide ones), oldest first."""
    munis = authorize_any(actor=actor, action="audit.view", clock=clock, target="audit log")
    codes = [m.code for m in munis] + [""]
    qs: QuerySet[AuditEntry] = AuditEntry.objects.filter(municipality__in=codes).order_by("-seq")
    entries = list(qs[:limit])
    audit_ok(
        actor=actor,
        action="audit.view",
        target="audit log",
        clock=clock,
        detail={"entries": len(entries)},
    )
    return list(reversed(entries))
