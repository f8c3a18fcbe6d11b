"""What every page shares: the signed-in actor, the section gate, the clock and the site.

`page` finds the actor and turns a policy refusal (already audited by the service) into a
403 page naming the rule; `section` lets in only whoever may open that part of the menu
(`vault.access.section_authorize`). The views read CLOCK and the site's store, key and
work folder through this module, so a test can give them its own.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _

from vault.access import Actor, actor_for, section_authorize
from vault.clock import SYSTEM_CLOCK, Clock
from vault.errors import NotFound, PermissionRefused, VaultError
from vault.local_time import municipality_zone
from vault.web.site import site_config, site_store, vault_key, work_dir

__all__ = ["CLOCK", "page", "section", "site_config", "site_store", "vault_key", "work_dir"]

CLOCK: Clock = SYSTEM_CLOCK


def _remote(request: HttpRequest) -> str:
    """The client's address: behind our own reverse proxy, the hop it added last.

    The sign-in lock-out is kept per address, so everyone seen as the proxy's address
    would share one lock. Only a trusted proxy's X-Forwarded-For is read, and only its
    last entry (what the proxy appended; anything before it the client could write).
    """
    addr = str(request.META.get("REMOTE_ADDR", ""))
    if addr in settings.TRUSTED_PROXIES:
        hops = [h.strip() for h in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
        if hops and hops[-1]:
            addr = hops[-1]
    return addr[:64]


def page(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Signed-in only; the actor as second argument; policy refusals as 403 pages."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect(f"{reverse('login')}?next={request.path}")
        actor = actor_for(request.user)
        try:
            return view(request, actor, *args, **kwargs)
        except PermissionRefused as exc:
            return render(request, "web/refused.html", {"message": str(exc)}, status=403)
        except NotFound as exc:
            raise Http404(str(exc)) from None

    return wrapped


def section(name: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """The view is the page of menu section `name`: whoever may not open it (the rule the
    menu is built from, `vault.access.open_sections`) is refused, audited, before it runs."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def gated(request: HttpRequest, actor: Actor, *args: Any, **kwargs: Any) -> HttpResponse:
            section_authorize(actor=actor, section=name, clock=CLOCK)
            return view(request, actor, *args, **kwargs)

        return gated

    return decorate


def when(text: str, field: str) -> dt.datetime | None:
    """A time typed into a page: in the municipality's zone, as the pages show times."""
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise VaultError(
            _("%(field)s: %(text)r is not a date/time (2026-11-02 or 2026-11-02T08:00)")
            % {"field": field, "text": text}
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=municipality_zone())
