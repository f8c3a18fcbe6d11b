"""The requests register: opening a request on recordings, deciding, objecting, closing."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from vault.access import Actor
from vault.accounts.selectors import actor_municipalities, actor_municipality
from vault.casework import services as casework
from vault.casework.models import CaseRequest
from vault.casework.selectors import request_get, request_list
from vault.catalog.selectors import recording_choices, recording_get
from vault.errors import PermissionRefused, VaultError
from vault.web.views import base
from vault.web.views.base import page, section, when

REQUEST_CHOICES = 500  # recordings the requests form offers, newest first


@page
@section("requests")
def requests_page(request: HttpRequest, actor: Actor) -> HttpResponse:
    error = ""
    clock = base.CLOCK
    if request.method == "POST":
        p = request.POST
        try:
            muni = actor_municipality(actor=actor, code=p.get("municipality", ""))
            refs = p.getlist("recordings")
            if not refs:
                raise VaultError(_("choose the recordings the request is about"))
            recs = [recording_get(actor=actor, ref=x, clock=clock) for x in refs]
            case = casework.request_open(
                actor=actor,
                municipality=muni,
                kind=p.get("kind", ""),
                reference=p.get("reference", ""),
                description=p.get("description", ""),
                received_at=when(p.get("received_at", ""), _("Received")) or clock.utc(),
                recordings=recs,
                store=base.site_store(),
                clock=clock,
            )
            return redirect("request", request_id=case.pk)
        except PermissionRefused as exc:
            error = str(exc)
        except VaultError as exc:
            error = str(exc)
    cases = list(request_list(actor=actor, clock=clock, kind=request.GET.get("kind", "")))
    # The form picks from the catalog: the recordings this user may list whose footage is kept.
    shown = recording_choices(actor=actor, clock=clock, limit=REQUEST_CHOICES)
    choices = [(f"{r.device_id}/{r.recording_id}", r) for r in shown]
    return render(
        request,
        "web/requests.html",
        {
            "cases": cases,
            "choices": choices,
            "picked": set(request.POST.getlist("recordings")),
            "error": error,
            "kinds": CaseRequest.Kind.choices,
            "municipalities": actor_municipalities(actor=actor),
            "now": clock.utc(),
            "p": request.POST,
        },
        status=400 if error else 200,
    )


@page
def request_page(request: HttpRequest, actor: Actor, request_id: int) -> HttpResponse:
    clock = base.CLOCK
    case = request_get(actor=actor, request_id=request_id, clock=clock)
    error = ""
    if request.method == "POST":
        p = request.POST
        try:
            op = p.get("op")
            if op == "decide":
                casework.request_decide(
                    actor=actor,
                    case=case,
                    decision=p.get("decision", ""),
                    text=p.get("text", ""),
                    clock=clock,
                )
            elif op == "object":
                casework.request_object(actor=actor, case=case, text=p.get("text", ""), clock=clock)
            elif op == "close":
                casework.request_close(
                    actor=actor,
                    case=case,
                    reason=p.get("text", ""),
                    store=base.site_store(),
                    clock=clock,
                )
            else:
                raise VaultError(_("unknown operation %(op)r") % {"op": op})
            return redirect("request", request_id=case.pk)
        except VaultError as exc:
            error = str(exc)
    return render(
        request,
        "web/request.html",
        {"case": case, "error": error, "now": clock.utc()},
        status=400 if error else 200,
    )
