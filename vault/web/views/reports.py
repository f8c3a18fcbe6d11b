"""The officer's shift reports: the list, completing and submitting one, print and PDF."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from vault.access import Actor
from vault.errors import PermissionRefused, VaultError
from vault.reports import services as reports
from vault.reports.pdf import report_pdf as report_as_pdf
from vault.reports.selectors import report_get, report_is_own, report_overview
from vault.web.views import base
from vault.web.views.base import page, section


@page
@section("reports")
def reports_page(request: HttpRequest, actor: Actor) -> HttpResponse:
    rows = report_overview(actor=actor, limit=300)
    return render(request, "web/reports.html", {"rows": rows})


@page
def report_page(request: HttpRequest, actor: Actor, report_id: int) -> HttpResponse:
    rep = report_get(actor=actor, report_id=report_id)
    error = ""
    if request.method == "POST":
        p = request.POST
        warning = {"yes": True, "no": False}.get(p.get("warning_given", ""))
        try:
            reports.report_complete(
                actor=actor,
                report=rep,
                reason=p.get("reason", ""),
                warning_given=warning,
                warning_note=p.get("warning_note", ""),
                bystanders_informed=p.get("bystanders", ""),
                submit="submit" in p,
                clock=base.CLOCK,
            )
            return redirect("report", report_id=rep.pk)
        except PermissionRefused as exc:
            error = str(exc)
        except VaultError as exc:
            error = str(exc)
    return render(
        request,
        "web/report.html",
        {"rep": rep, "error": error, "own": report_is_own(actor=actor, report=rep)},
        status=400 if error else 200,
    )


@page
def report_print(request: HttpRequest, actor: Actor, report_id: int) -> HttpResponse:
    rep = report_get(actor=actor, report_id=report_id)
    return render(request, "web/report_print.html", {"rep": rep})


@page
def report_pdf(request: HttpRequest, actor: Actor, report_id: int) -> HttpResponse:
    rep = report_get(actor=actor, report_id=report_id)
    resp = HttpResponse(report_as_pdf(rep), content_type="application/pdf")
    resp["Content-Disposition"] = f'inline; filename="report-{rep.recording.recording_id}.pdf"'
    return resp
