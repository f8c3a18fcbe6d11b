"""The catalog: the recordings a user may list, one recording's page, syncing the store."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from vault.access import Actor
from vault.casework.selectors import recording_requests
from vault.catalog.models import Hold, Recording
from vault.catalog.selectors import (
    recording_custody,
    recording_detail,
    recording_holds,
    recording_list,
    recording_segments,
    recordings_held,
)
from vault.catalog.services import catalog_sync
from vault.errors import PermissionRefused, VaultError
from vault.policy import PURPOSES
from vault.reports import services as reports
from vault.reports.selectors import recording_report
from vault.viewing.selectors import viewing_rules
from vault.web.views import base
from vault.web.views.base import page, section, when


@page
@section("catalog")
def catalog(request: HttpRequest, actor: Actor) -> HttpResponse:
    q = request.GET
    error = ""
    recordings: list[Recording] = []
    try:
        qs = recording_list(
            actor=actor,
            clock=base.CLOCK,
            camera=q.get("camera") or None,
            officer=q.get("officer") or None,
            purpose=q.get("purpose", ""),
            since=when(q.get("since", ""), _("From")),
            until=when(q.get("until", ""), _("Until")),
            state=q.get("state") or None,
            hold=q.get("hold") or None,
        )
        recordings = list(qs[:500])
    except PermissionRefused:
        raise
    except VaultError as exc:
        error = str(exc)
    return render(
        request,
        "web/catalog.html",
        {
            "recordings": recordings,
            "held": recordings_held(recordings=recordings),
            "q": q,
            "error": error,
            "states": Recording.State.values,
            "holds": ["any", "none", *Hold.Kind.values],
            "purposes": PURPOSES,
        },
        status=400 if error else 200,
    )


def recording_of(actor: Actor, device: str, rec: str) -> Recording:
    return recording_detail(actor=actor, ref=f"{device}/{rec}", clock=base.CLOCK)


@page
def recording_page(
    request: HttpRequest, actor: Actor, device: str, rec: str, error: str = "", status: int = 200
) -> HttpResponse:
    r = recording_of(actor, device, rec)
    custody = recording_custody(actor=actor, recording=r)
    rules = viewing_rules(recording=r)
    return render(
        request,
        "web/recording.html",
        {
            "r": r,
            "segments": recording_segments(recording=r),
            "holds": recording_holds(recording=r),
            "custody": custody.entries,
            "custody_full": custody.complete,
            "rules": rules,
            "consent_needed": any(rule.officer_consent for rule in rules.values()),
            "error": error,
            "report": recording_report(recording=r),
            "requests": recording_requests(recording=r),
        },
        status=status,
    )


@page
def sync(request: HttpRequest, actor: Actor) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    catalog_sync(actor=actor, store=base.site_store(), clock=base.CLOCK)
    reports.shift_sync(actor=actor, store=base.site_store(), clock=base.CLOCK)
    return redirect("catalog")
