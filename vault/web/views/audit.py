"""The audit page: the entries a user may see, searched, and the chain's verification."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from vault.access import Actor
from vault.audit.selectors import audit_search
from vault.audit.services import audit_verify
from vault.web import words
from vault.web.views import base
from vault.web.views.base import page, section


@page
@section("audit")
def audit_page(request: HttpRequest, actor: Actor) -> HttpResponse:
    q = request.GET
    entries = audit_search(actor=actor, clock=base.CLOCK, filters=dict(q.items()))
    report = audit_verify()
    return render(
        request,
        "web/audit.html",
        {
            "entries": entries,
            "q": q,
            "report": report,
            "results": ["ok", "refused", "failed"],
            "purposes": list(words.PURPOSES),
        },
    )
