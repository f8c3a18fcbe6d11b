"""The back office's pages: thin views over the services and selectors, one module per
section of the menu.

Each view finds the actor, calls one service or selector and renders. A refusal from
the policy (already audited by the service) becomes a 403 page naming the rule; a bad
request re-renders the form with the message.

- `base`: what every page shares (the actor, the section gate, the clock, the site)
- `signin`: signing in and out, the landing page
- `catalog`: the catalog, one recording's page, syncing the store
- `viewing`: viewing in pairs, the watermarked stream
- `cameras`, `requests`, `audit`, `reports`: those sections' pages
"""

from __future__ import annotations

from vault.web.views.audit import audit_page
from vault.web.views.cameras import cameras
from vault.web.views.catalog import catalog, recording_page, sync
from vault.web.views.reports import report_page, report_pdf, report_print, reports_page
from vault.web.views.requests import request_page, requests_page
from vault.web.views.signin import home, login_view, logout_view
from vault.web.views.viewing import (
    viewing_event,
    viewing_page,
    viewing_start,
    viewing_status,
    viewing_stream,
)

__all__ = [
    "audit_page",
    "cameras",
    "catalog",
    "home",
    "login_view",
    "logout_view",
    "recording_page",
    "report_page",
    "report_pdf",
    "report_print",
    "reports_page",
    "request_page",
    "requests_page",
    "sync",
    "viewing_event",
    "viewing_page",
    "viewing_start",
    "viewing_status",
    "viewing_stream",
]
