"""Template context for every page: who is signed in, their roles, what needs attention."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def back_office(request: HttpRequest) -> dict[str, Any]:
    from django.conf import settings

    if not request.user.is_authenticated:
        return {"time_zone": settings.TIME_ZONE}
    from vault.access import actor_for, open_sections
    from vault.reports.selectors import unsubmitted

    actor = actor_for(request.user)
    roles = sorted({r for rs in actor.roles.values() for r in rs})
    return {
        "actor": actor,
        "my_roles": roles,
        "my_municipalities": sorted(actor.roles),
        "open_reports": unsubmitted(actor=actor).count(),
        "sections": open_sections(actor),
        "time_zone": settings.TIME_ZONE,
    }
