"""Signing in and out, and the page a user lands on after signing in."""

from __future__ import annotations

from django.contrib.auth import login, logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from vault.access import Actor, landing_section
from vault.errors import AuthenticationFailed
from vault.signin.services import sign_in
from vault.viewing import services as viewings
from vault.web.views import base
from vault.web.views.base import page


def login_view(request: HttpRequest) -> HttpResponse:
    error = ""
    if request.method == "POST":
        try:
            actor = sign_in(
                username=request.POST.get("username", ""),
                password=request.POST.get("password", ""),
                clock=base.CLOCK,
                remote=base._remote(request),
            )
        except AuthenticationFailed as exc:
            error = str(exc)
        else:
            login(request, actor.user, backend="django.contrib.auth.backends.ModelBackend")
            nxt = request.POST.get("next", "")
            safe = url_has_allowed_host_and_scheme(nxt, allowed_hosts=None) and nxt.startswith("/")
            return redirect(nxt if safe else "/")
    return render(
        request,
        "web/login.html",
        {"error": error, "next": request.GET.get("next", "")},
        status=401 if error else 200,
    )


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    viewings.viewing_end_all_for_session(request.session.session_key or "", reason="sign-out")
    logout(request)
    return redirect("login")


@page
def home(request: HttpRequest, actor: Actor) -> HttpResponse:
    """The first page of the menu (the officer's: his shift reports)."""
    return redirect(landing_section(actor=actor, clock=base.CLOCK))
