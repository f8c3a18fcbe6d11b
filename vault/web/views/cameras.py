"""The cameras page: registering, removing and assigning cameras, with each one's status."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from crypto.keys import SigningKey
from vault.access import Actor
from vault.accounts.selectors import actor_municipalities, actor_officers
from vault.errors import PermissionRefused, VaultError
from vault.registry import services as reg
from vault.reports.selectors import camera_overview
from vault.web.views import base
from vault.web.views.base import page, section, when


@page
@section("cameras")
def cameras(request: HttpRequest, actor: Actor) -> HttpResponse:
    error = ""
    clock = base.CLOCK
    if request.method == "POST":
        p = request.POST
        try:
            op = p.get("op")
            if op == "register":
                reg.camera_register(
                    actor=actor,
                    municipality=p.get("municipality", ""),
                    device_id=p.get("device_id", "").strip(),
                    public_key=p.get("public_key", "").strip(),
                    model=p.get("model", ""),
                    clock=clock,
                )
                _publish(actor)
            elif op == "remove":
                reg.camera_remove(actor=actor, device_id=p.get("device_id", ""), clock=clock)
                _publish(actor)
            elif op == "assign":
                reg.camera_assign(
                    actor=actor,
                    device_id=p.get("device_id", ""),
                    officer_code=p.get("officer", ""),
                    starts_at=when(p.get("starts_at", ""), _("From")) or clock.utc(),
                    ends_at=when(p.get("ends_at", ""), _("Until")),
                    clock=clock,
                )
            else:
                raise VaultError(_("unknown operation %(op)r") % {"op": op})
            return redirect("cameras")
        except PermissionRefused:
            raise
        except (VaultError, ValueError) as exc:
            error = str(exc)
    rows = camera_overview(actor=actor, clock=clock)
    munis = sorted({r.camera.municipality for r in rows}, key=lambda m: m.code) or list(
        actor_municipalities(actor=actor)
    )
    return render(
        request,
        "web/cameras.html",
        {
            "rows": rows,
            "error": error,
            "municipalities": munis,
            "officers": actor_officers(actor=actor),
        },
        status=400 if error else 200,
    )


def _publish(actor: Actor) -> None:
    cfg = base.site_config()
    reg.registry_publish(
        actor=actor,
        store=base.site_store(),
        signing_key=SigningKey.load(cfg.path(cfg.registry_key)),
        site=cfg.site,
        clock=base.CLOCK,
    )
