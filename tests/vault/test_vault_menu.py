"""Issue 21, item 6: each role's menu shows only the pages that role may open.

The menu and the pages ask one rule (`vault.access.open_sections`): for every role, each
link of its menu answers 200, and each section missing from its menu answers 403.
"""

from __future__ import annotations

from typing import Any

import pytest
from page_text import menu_links
from test_vault_web import browser_session, office  # noqa: F401 (fixtures)
from vault_support import actor, make_user

SECTION_URLS = {
    "catalog": "/recordings/",
    "requests": "/requests/",
    "reports": "/reports/",
    "cameras": "/cameras/",
    "audit": "/audit/",
}
ROLES = {
    "cora": "coordinator",
    "cees": "cluster_manager",
    "priya": "privacy_officer",
    "sam": "municipal_secretary",
    "saf": "safety_coordinator",
    "olaf": "officer",
    "ada": "administrator",
}
# What POLICY.md and heusden.toml give each role (the officer: his own shift reports).
EXPECTED = {
    "coordinator": ["catalog", "requests", "reports", "cameras"],
    "cluster_manager": ["catalog", "requests", "reports", "cameras", "audit"],
    "privacy_officer": ["catalog", "requests", "cameras", "audit"],
    "municipal_secretary": ["catalog", "requests", "cameras", "audit"],
    "safety_coordinator": ["catalog", "requests", "cameras"],
    "officer": ["reports"],
    "administrator": [],
}


def _client(username: str) -> Any:
    from django.test import Client

    client = Client()
    client.force_login(actor(username).user)
    return client


@pytest.mark.parametrize("username", list(ROLES))
def test_each_menu_link_opens_and_each_missing_section_is_refused(
    office: Any,  # noqa: F811
    browser_session: Any,  # noqa: F811
    username: str,
) -> None:
    from vault.access import open_sections

    make_user("ada", {"heusden": ["administrator"]})
    client = _client(username)
    assert open_sections(actor(username)) == EXPECTED[ROLES[username]]
    home = client.get("/", secure=True)
    if not EXPECTED[ROLES[username]]:
        assert home.status_code == 403  # nothing to open: said, not a page that refuses
        assert menu_links(home.content.decode()) == []
        links: list[str] = []
    else:
        assert home.status_code == 302
        assert home["Location"] == SECTION_URLS[EXPECTED[ROLES[username]][0]]
        links = menu_links(client.get(home["Location"], secure=True).content.decode())
    assert links == [SECTION_URLS[s] for s in EXPECTED[ROLES[username]]]
    for url in links:
        page = client.get(url, secure=True)
        assert page.status_code == 200, (username, url, page.status_code)
        assert menu_links(page.content.decode()) == links  # the same menu on every page
    for url in SECTION_URLS.values():
        if url not in links:
            assert client.get(url, secure=True).status_code == 403, (username, url)


def test_a_refused_section_is_in_the_audit_log(
    office: Any,  # noqa: F811
    browser_session: Any,  # noqa: F811
) -> None:
    from vault.audit.models import AuditEntry

    assert _client("olaf").get("/cameras/", secure=True).status_code == 403
    entry = AuditEntry.objects.filter(actor="olaf", result="refused").latest("seq")
    assert entry.action == "catalog.list" and entry.target == "cameras"
