"""Issue 21, item 5: the back office's pages in Dutch, English on the language switch.

Each role signs in (Django's test client) and visits every page it may open, a recording,
a request, a shift report, a viewing, the refusal and the sign-in page; no visible text is
left in the English of the catalogue (vault/web/locale/nl). One page is then read in English
after the switch. Purposes and roles in words, the audit detail as words, byte counts with
the Dutch thousands separator, and the requests form picking from the catalog.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from page_text import menu_links, visible_texts
from test_vault_web import DAY, _rec, browser_session, office, start_form  # noqa: F401
from vault_support import T0, Site, actor

import vault.web

PO = Path(vault.web.__file__).parent / "locale" / "nl" / "LC_MESSAGES" / "django.po"
USERS = ("cora", "cees", "priya", "sam", "saf", "olaf")
_PLACEHOLDER = re.compile(r"%\(\w+\)[sdr]")
_TAG = re.compile(r"<[^>]+>")


def _unquote(lines: list[str]) -> str:
    text = "".join(re.findall(r'^"(.*)"$', line)[0] for line in lines)
    return text.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")


def catalogue() -> list[tuple[str, list[str]]]:
    """(English msgid or plural, its Dutch forms) of every entry of the .po."""
    entries = []
    for block in PO.read_text(encoding="utf-8").split("\n\n")[1:]:
        fields: dict[str, list[str]] = {}
        current = ""
        for line in block.splitlines():
            m = re.match(r"^(msgctxt|msgid_plural|msgid|msgstr(?:\[\d\])?) (\".*\")$", line)
            if m:
                current = m.group(1)
                fields[current] = [m.group(2)]
            elif line.startswith('"') and current:
                fields[current].append(line)
        dutch = [_unquote(v) for k, v in fields.items() if k.startswith("msgstr")]
        for key in ("msgid", "msgid_plural"):
            if key in fields:
                entries.append((_unquote(fields[key]), dutch))
    return entries


def untranslated_patterns() -> list[re.Pattern[str]]:
    """Each English text of the catalogue whose Dutch differs, as a pattern of a text node
    (placeholders match anything; a text with markup is its pieces between the tags)."""
    patterns = []
    entries = catalogue()
    # The same word in both languages ("Camera"; "open" as a request's state) is no sign.
    same = {english for english, dutch in entries if english in dutch}
    for english, dutch in entries:
        assert all(dutch), f"{PO.name}: {english!r} has no Dutch"
        if english in same:
            continue
        # A command in <code> is the same in every language.
        for piece in _TAG.split(re.sub(r"<code>.*?</code>", "", english)):
            piece = " ".join(piece.split())
            if not re.search(r"[A-Za-z]{2}", _PLACEHOLDER.sub("", piece)):
                continue
            parts = [re.escape(p) for p in _PLACEHOLDER.split(piece)]
            patterns.append(re.compile(".+?".join(parts)))
    return patterns


def english_left(html: str, patterns: list[re.Pattern[str]]) -> list[str]:
    return [t for t in visible_texts(html) if any(p.fullmatch(t) for p in patterns)]


def _client(username: str) -> Any:
    from django.test import Client

    client = Client()
    client.force_login(actor(username).user)
    return client


@pytest.fixture
def casework(office: dict[str, str], site: Site, clock: Any) -> dict[str, str]:  # noqa: F811
    """A request, a shift report of olaf's (from the camera's event log) and a refusal."""
    import datetime as dt
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "web"))
    from web_support import _event_log

    from vault.casework.services import request_open
    from vault.reports.models import ShiftReport
    from vault.reports.services import shift_sync

    rec = _rec(office["a"])
    case = request_open(
        actor=actor("priya"),
        municipality=rec.municipality,
        kind="access_request",
        reference="AVG-1",
        description="burger",
        received_at=T0 + DAY,
        recordings=[rec],
        store=site.store,
        clock=clock,
    )
    a = T0 + dt.timedelta(hours=1)
    _event_log(site, "CAM-1", [(office["a"], a.timestamp(), a.timestamp() + 20)])
    shift_sync(actor=actor("cees"), store=site.store, clock=clock)
    report = ShiftReport.objects.get(recording__recording_id=office["a"])
    return {
        "recording": f"/recordings/{rec.device_id}/{rec.recording_id}/",
        "request": f"/requests/{case.pk}/",
        "report": f"/reports/{report.pk}/",
        "print": f"/reports/{report.pk}/print",
    }


def test_every_page_of_every_role_is_in_dutch(
    casework: dict[str, str],
    browser_session: Any,  # noqa: F811
) -> None:
    patterns = untranslated_patterns()
    assert len(patterns) > 150  # the catalogue was read
    anonymous = browser_session.__class__()
    login = anonymous.get("/login/", secure=True)
    assert login.status_code == 200
    assert english_left(login.content.decode(), patterns) == []
    assert '<html lang="nl">' in login.content.decode()
    visited = 0
    for username in USERS:
        client = _client(username)
        urls = menu_links(
            client.get(
                "/reports/" if username == "olaf" else "/recordings/", secure=True
            ).content.decode()
        )
        urls += [u for u in casework.values() if u not in urls]
        urls.append("/cameras/" if username == "olaf" else "/audit/?result=refused")
        for url in urls:
            page = client.get(url, secure=True)
            if page.status_code == 404:  # a detail page that role may not see
                continue
            html = page.content.decode()
            assert page.status_code in (200, 403), (username, url, page.status_code)
            assert english_left(html, patterns) == [], (username, url)
            visited += 1
    assert visited > 30
    # A form's own error, in Dutch.
    bad = browser_session.post(
        "/requests/",
        {"kind": "complaint", "municipality": "heusden", "reference": "K-1"},
        secure=True,
    )
    assert bad.status_code == 400
    assert "kies de opnamen waar het verzoek over gaat" in bad.content.decode()


def test_the_viewing_page_is_in_dutch_with_the_purpose_in_words(
    office: dict[str, str],  # noqa: F811
    browser_session: Any,  # noqa: F811
) -> None:
    rec = _rec(office["a"])
    url = f"/recordings/{rec.device_id}/{rec.recording_id}/"
    page = browser_session.get(url, secure=True).content.decode()
    # The viewing pairs in words: "klacht: clustermanager + gemeentesecretaris".
    assert "klacht: clustermanager + gemeentesecretaris" in visible_texts(page)
    start = browser_session.post(url + "view", start_form(), secure=True)
    assert start.status_code == 302, start.content.decode()[:2000]
    viewing = browser_session.get(start["Location"], secure=True)
    html = viewing.content.decode()
    assert english_left(html, untranslated_patterns()) == []
    assert "Bekijken beëindigen" in visible_texts(html)
    assert "klacht" in visible_texts(html)  # the purpose, in words
    browser_session.post(start["Location"] + "event", {"event": "end"}, secure=True)


def test_words_numbers_and_the_audit_detail(
    office: dict[str, str],  # noqa: F811
    browser_session: Any,  # noqa: F811
) -> None:
    from vault.catalog.models import Segment

    rec = _rec(office["a"])
    Segment.objects.filter(recording=rec).update(size=1234567)
    page = browser_session.get(
        f"/recordings/{rec.device_id}/{rec.recording_id}/", secure=True
    ).content.decode()
    assert "1.234.567" in visible_texts(page)
    _client("saf").get("/audit/", secure=True)  # refused: an entry with a reason
    audit = browser_session.get("/audit/?result=refused", secure=True).content.decode()
    texts = visible_texts(audit)
    assert any(t.startswith("reden: ") for t in texts), texts
    assert not any(t.startswith('{"') for t in texts)  # no raw JSON
    assert "veiligheidscoördinator" in texts  # the refused one's role, in words
    # The requests form offers the catalog's recordings to tick, not ids to type.
    form = browser_session.get("/requests/", secure=True).content.decode()
    assert f'value="{rec.device_id}/{rec.recording_id}"' in form
    assert 'type="checkbox"' in form


def test_english_after_the_language_switch(
    office: dict[str, str],  # noqa: F811
    browser_session: Any,  # noqa: F811
) -> None:
    dutch = browser_session.get("/recordings/", secure=True)
    assert "Opnamen" in visible_texts(dutch.content.decode())
    switched = browser_session.post(
        "/language", {"language": "en", "next": "/recordings/"}, secure=True
    )
    assert switched.status_code == 302 and switched["Location"] == "/recordings/"
    page = browser_session.get("/recordings/", secure=True)
    html = page.content.decode()
    texts = visible_texts(html)
    assert '<html lang="en">' in html and page["Content-Language"] == "en"
    assert "Recordings" in texts and "Sync the store now" in texts and "Opnamen" not in texts
    assert "Nederlands" in texts  # the way back


def test_the_catalogue_is_compiled_by_make_install() -> None:
    mo = PO.with_suffix(".mo")
    assert mo.exists(), f"{mo} is missing: make install compiles it"
    assert mo.stat().st_mtime >= PO.stat().st_mtime, f"{mo} is older than its .po: make install"
