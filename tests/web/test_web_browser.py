"""The back office in a real browser (Debian's Chromium driven by Playwright) against
`bodycam vault serve` on 127.0.0.1: viewing in pairs with playback that really plays and
carries the watermark, the refusals of the pair rules, an access request's hold against
the purge, the officer's report, the audit page showing all of it, and axe-core on every
page. Order matters: the audit test reads what the earlier tests did."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from shadowing import shadowing_folder
from web_support import LONG, NO_PICTURE, PASSWORD, REPO, Server, WebSite, axe_source, cli

DOCS = REPO / "vault" / "docs"


def shots(site: WebSite) -> Path:
    """Where screenshots go: the README's folder with BODYCAM_DOCS_SCREENSHOTS=1, else the
    test's own folder (so a test run leaves the working tree as it was)."""
    return DOCS if os.environ.get("BODYCAM_DOCS_SCREENSHOTS") == "1" else site.root


VIEWPORT = {"width": 1200, "height": 800}


def in_english(ctx: Any, server: Server) -> Any:
    """These tests read the pages' English wording: chosen as the language switch does (its
    cookie); the Dutch default is checked in tests/vault/test_vault_dutch.py."""
    ctx.add_cookies([{"name": "django_language", "value": "en", "url": server.url}])
    return ctx


def signed_in(browser: Any, server: Server, user: str, **options: Any) -> Any:
    ctx = in_english(browser.new_context(viewport=VIEWPORT, base_url=server.url, **options), server)
    page = ctx.new_page()
    page.goto("/login/")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert "/login/" not in page.url, page.content()[:2000]
    return page


def start_viewing(
    page: Any, ref: str, purpose: str, second: str | None, password: str = PASSWORD
) -> Any:
    page.goto(f"/recordings/{ref}/")
    page.get_by_label("Purpose").select_option(purpose)
    if second is not None:
        page.get_by_label("Second person's user name").fill(second)
        page.get_by_label("Second person's password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Start viewing").click()
    return page


def png_array(data: bytes) -> np.ndarray:
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def test_sign_in_locks_after_repeated_failures(browser: Any, server: Server) -> None:
    ctx = in_english(browser.new_context(base_url=server.url), server)
    page = ctx.new_page()
    for _ in range(5):
        page.goto("/login/")
        page.get_by_label("User name").fill("saf")
        page.get_by_label("Password").fill("not the password at all")
        page.get_by_role("button", name="Sign in").click()
        assert "wrong password" in page.get_by_role("alert").inner_text()
    page.goto("/login/")
    page.get_by_label("User name").fill("saf")
    page.get_by_label("Password").fill(PASSWORD)  # right, but too late
    page.get_by_role("button", name="Sign in").click()
    assert "locked" in page.get_by_role("alert").inner_text()
    page.goto("/recordings/")
    assert "/login/" in page.url  # not signed in
    ctx.close()


def test_a_pair_views_a_recording_and_the_video_plays_watermarked(
    browser: Any, server: Server, web_site: WebSite
) -> None:
    page = signed_in(browser, server, "cees")
    page.goto("/recordings/")
    page.screenshot(path=str(shots(web_site) / "catalog.png"))
    assert web_site.recent.split("/")[1] in page.content()
    start_viewing(page, web_site.recent, "complaint", "sam")
    assert "/viewings/" in page.url, page.content()[:3000]
    video = page.locator("video#player")
    page.wait_for_function(
        "() => { const v = document.querySelector('#player');"
        " return v && v.readyState >= 2 && v.currentTime > 1.0; }",
        timeout=60_000,
    )
    state = page.evaluate(
        "() => { const v = document.querySelector('#player');"
        " return {w: v.videoWidth, h: v.videoHeight, t: v.currentTime}; }"
    )
    assert state["w"] == 640 and state["h"] == 360 and state["t"] > 1.0
    # Seeking works (byte ranges) and is audited.
    page.evaluate(
        "() => { const v = document.querySelector('#player'); v.pause(); v.currentTime = 4.2; }"
    )
    page.wait_for_function(
        "() => { const v = document.querySelector('#player');"
        " return !v.seeking && Math.abs(v.currentTime - 4.2) < 0.3; }",
        timeout=30_000,
    )
    page.wait_for_timeout(500)  # the seek's audit request goes out asynchronously
    # The viewers' mark: white text on a dark band along the bottom, and translucent text
    # repeated over the whole picture; the footage itself (a coloured gradient, smooth
    # along each row in green) has no white and no edges at all. The player's controls
    # would cover the band: hidden for the picture of the picture.
    video.evaluate("v => { v.controls = false; }")
    page.wait_for_timeout(300)
    shot = png_array(video.screenshot())
    video.evaluate("v => { v.controls = true; }")
    h, w = shot.shape[:2]
    band, rest = shot[5 * h // 6 :], shot[h // 3 : 2 * h // 3]
    white = lambda a: int(np.count_nonzero((a > 190).all(axis=2)))  # noqa: E731
    assert white(band) > 300, white(band)
    assert white(rest) < 20, white(rest)
    assert band.std() > 40  # text, not a uniform band
    edges = np.abs(np.diff(shot[: 4 * h // 5, :, 1].astype(np.int16), axis=1)) > 25
    for rows in (slice(0, h // 2), slice(h // 2, None)):
        for cols in (slice(0, w // 2), slice(w // 2, None)):
            assert np.count_nonzero(edges[rows, cols]) > 200, (rows, cols)
    page.screenshot(path=str(shots(web_site) / "viewing.png"))
    # The stream: byte ranges, never kept, never offered as a file; no download link.
    src = video.get_attribute("data-src")
    resp = page.request.get(src, headers={"Range": "bytes=0-99"})
    assert resp.status == 206
    # The whole length once this worker has built it; `*` while it is still growing.
    assert re.fullmatch(r"bytes 0-99/(\d+|\*)", resp.headers["content-range"])
    assert resp.headers["cache-control"] == "no-store"
    assert "attachment" not in resp.headers.get("content-disposition", "")
    assert len(resp.body()) == 100 and resp.body()[4:8] == b"ftyp"
    assert page.locator("a[download]").count() == 0
    assert "nodownload" in (video.get_attribute("controlslist") or "")
    # Another browser session (even the second viewer's) cannot fetch it.
    other = signed_in(browser, server, "sam")
    assert other.request.get(server.url + src).status == 404
    other.context.close()
    with page.expect_navigation():
        page.get_by_role("button", name="End viewing").click()
    assert page.request.get(src).status == 404  # ended: gone from memory
    page.context.close()


def test_one_person_alone_cannot_start(browser: Any, server: Server, web_site: WebSite) -> None:
    page = start_viewing(signed_in(browser, server, "cees"), web_site.recent, "complaint", None)
    assert "at least two people" in page.get_by_role("alert").inner_text()
    assert "/viewings/" not in page.url
    page.context.close()


def test_the_same_person_twice_is_refused(browser: Any, server: Server, web_site: WebSite) -> None:
    page = start_viewing(signed_in(browser, server, "cees"), web_site.recent, "complaint", "cees")
    assert "two different people" in page.get_by_role("alert").inner_text()
    page.context.close()


def test_a_role_outside_the_policy_is_refused(
    browser: Any, server: Server, web_site: WebSite
) -> None:
    page = start_viewing(signed_in(browser, server, "cees"), web_site.recent, "complaint", "saf2")
    # An unknown second user is refused as a failed sign-in ...
    assert "wrong password" in page.get_by_role("alert").inner_text()
    # ... and a real person whose role the policy does not pair for complaints too.
    page = start_viewing(page, web_site.recent, "complaint", "priya")
    assert (
        "not a pair the heusden policy allows for complaint"
        in page.get_by_role("alert").inner_text()
    )
    page.context.close()


def test_footage_that_cannot_be_prepared_is_said_on_the_page_the_viewers_are_on(
    browser: Any, server: Server, web_site: WebSite
) -> None:
    ref = web_site.extra[NO_PICTURE]
    page = start_viewing(signed_in(browser, server, "cees"), ref, "complaint", "sam")
    assert "/viewings/" not in page.url  # still on the recording, its form filled in
    assert page.get_by_role("alert").inner_text() == (
        f"the viewing cannot start: {ref}: the recording has no video stream"
    )
    page.context.close()


BOUND_FRAMES = 600  # 20 s of the 40 s recording


def test_a_stream_that_fails_part_of_the_way_is_said_on_the_viewing_page(
    browser: Any, web_site: WebSite, tmp_path: Path
) -> None:
    # A server whose bound on the length of a viewing (the encoder stops any longer one
    # with an error) is lowered below the long recording, by gunicorn's own hook.
    config = tmp_path / "viewing_bound.py"
    config.write_text(
        "def post_worker_init(worker):\n"
        "    from vault.viewing import playback\n\n"
        f"    playback.MAX_FRAMES = {BOUND_FRAMES}\n"
    )
    bounded = Server(
        web_site.home, tmp_path / "server.log", env={"GUNICORN_CMD_ARGS": f"--config {config}"}
    )
    try:
        page = signed_in(browser, bounded, "cees")
        start_viewing(page, web_site.extra[LONG], "complaint", "sam")
        assert "/viewings/" in page.url, page.content()[:3000]
        # The page came while the stream was being encoded: a player, no message yet ...
        message = page.locator("#viewing-error")
        assert page.locator("video#player").count() == 1 and message.is_hidden()
        # ... and its script says so once the encoder gave up.
        message.wait_for(state="visible", timeout=120_000)
        reason = (
            f"the viewing stream could not be prepared: {web_site.extra[LONG]}: "
            f"longer than {BOUND_FRAMES} frames"
        )
        assert page.get_by_role("alert").inner_text() == reason
        assert page.locator("video#player").is_hidden()
        stream = page.request.get(page.locator("video#player").get_attribute("data-src"))
        assert stream.status == 500 and stream.text() == reason
        assert stream.headers["cache-control"] == "no-store"
        page.screenshot(path=str(tmp_path / "viewing-failed.png"))
        with page.expect_navigation():
            page.get_by_role("button", name="End viewing").click()
        page.context.close()
    finally:
        bounded.stop()


def test_the_back_office_runs_from_a_folder_holding_its_package_names(
    browser: Any, web_site: WebSite, tmp_path: Path
) -> None:
    # `bodycam vault serve` started in `/srv/bodycam` (its `store/`, the README's layout):
    # gunicorn imports the project's packages, not the folder's look-alikes.
    here = shadowing_folder(tmp_path / "cwd")
    served = Server(web_site.home, tmp_path / "server.log", cwd=here)  # its /login/ answers 200
    try:
        page = signed_in(browser, served, "cees")
        shown = page.goto(f"/recordings/{web_site.recent}/")
        assert shown is not None and shown.status == 200, page.content()[:2000]
        page.context.close()
    finally:
        served.stop()
    assert "of the working folder was imported" not in (tmp_path / "server.log").read_text()


def test_an_access_request_hold_blocks_the_purge_until_closed(
    browser: Any, server: Server, web_site: WebSite
) -> None:
    page = signed_in(browser, server, "priya")
    page.goto("/requests/")
    page.get_by_label("Kind", exact=True).select_option("access_request")
    page.get_by_label("Reference").fill("AVG-2026-17")
    page.locator(f'input[name=recordings][value="{web_site.old}"]').check()
    page.get_by_label("Description").fill("citizen asks to see the recording of 27 October")
    with page.expect_navigation():
        page.get_by_role("button", name="Register and hold").click()
    assert "/requests/" in page.url and "AVG-2026-17" in page.content()
    purge = cli(web_site.home, "purge", user="cees")
    assert purge.returncode == 0, purge.stderr
    # The timer's sync also drafts reports (none new: the seeding drafted all three).
    sync = cli(web_site.home, "sync", user="cees")
    assert "0 shift report(s) drafted from 2 camera event log(s)" in sync.stdout, sync.stderr
    page.goto(f"/recordings/{web_site.old}/")
    meta = page.locator("dl.meta").inner_text()
    assert "stored" in meta and "purged" not in meta  # 29 days old, kept by the hold
    page.goto("/requests/?kind=access_request")
    page.get_by_role("link", name="AVG-2026-17").click()
    page.get_by_label("granted (viewing at the town hall, no copy)").check()
    page.get_by_label("Grounds").fill("the requester is in the footage")
    with page.expect_navigation():
        page.get_by_role("button", name="Record decision").click()
    page.get_by_label("Note (lifts the holds)").fill("viewed at the town hall on 24 November")
    with page.expect_navigation():
        page.get_by_role("button", name="Close request").click()
    assert "lifted" in page.locator("dl.meta").inner_text()
    purge = cli(web_site.home, "purge", user="cees")
    assert purge.returncode == 0, purge.stderr
    page.goto(f"/recordings/{web_site.old}/")
    assert "purged" in page.locator("dl.meta").inner_text()
    page.context.close()


def test_the_officer_completes_and_submits_the_report(
    browser: Any, server: Server, web_site: WebSite
) -> None:
    page = signed_in(browser, server, "olaf")
    assert page.url.endswith("/reports/")  # an officer lands on their reports
    assert "not submitted" in page.locator("header").inner_text()
    rec_id = web_site.recent.split("/")[1]
    page.get_by_role("link", name=rec_id).click()
    facts = page.locator("dl.meta").first.inner_text()
    assert "30.0 s" in facts and "beep (recording started)" in facts
    assert "signed and verified" in facts
    page.get_by_role("button", name="Submit to the coordinator").click()
    assert "to submit, fill in" in page.get_by_role("alert").inner_text()
    page.get_by_label("Reason and circumstances").fill(
        "Citizen became aggressive during a fine for illegal dumping."
    )
    page.get_by_label("no", exact=True).check()
    page.get_by_label("How, or why it was not possible").fill(
        "The situation escalated too quickly to warn first."
    )
    page.get_by_label("Were bystanders informed, and how?").fill(
        "Yes, verbally, two people at the bus stop."
    )
    page.screenshot(path=str(shots(web_site) / "report-form.png"), full_page=True)
    with page.expect_navigation():
        page.get_by_role("button", name="Submit to the coordinator").click()
    assert "Submitted to the coordinator" in page.content()
    pdf = page.request.get(page.url + "print".replace("print", "pdf"))
    assert pdf.status == 200 and pdf.body().startswith(b"%PDF")
    page.context.close()
    coord = signed_in(browser, server, "cora")
    coord.goto("/reports/")
    rows = coord.locator("tbody tr")
    text = rows.all_inner_texts()
    assert any(rec_id in t and "submitted" in t and "not" not in t for t in text)
    assert any("not submitted" in t for t in text)  # the others still flagged to her
    coord.context.close()


def test_everything_above_shows_up_in_the_audit_page(
    browser: Any, server: Server, web_site: WebSite
) -> None:
    page = signed_in(browser, server, "priya")
    page.goto("/audit/")
    assert "intact" in page.locator("#chain-status").inner_text()

    def rows(**q: str) -> list[str]:
        page.goto("/audit/?" + "&".join(f"{k}={v}" for k, v in q.items()))
        return page.locator("tbody tr").all_inner_texts()

    assert any("cees" in r for r in rows(action="viewing.start", result="ok"))
    refused = "\n".join(rows(action="viewing.start", result="refused"))
    assert "at least two people" in refused and "two different people" in refused
    assert "not a pair" in refused
    failed = "\n".join(rows(action="viewing.start", result="failed"))
    assert web_site.extra[NO_PICTURE] in failed and "no video stream" in failed
    assert any(
        web_site.extra[LONG] in r and "longer than" in r
        for r in rows(action="viewing.failed", result="failed")
    )
    assert rows(action="viewing.seek")
    assert rows(action="viewing.end")
    assert rows(action="auth.login", result="refused", actor="saf2")  # the unknown second
    assert rows(action="auth.login", result="refused", actor="saf")
    held = rows(action="hold.place", purpose="access_request")
    assert any(web_site.old in r for r in held)
    assert any(web_site.old in r for r in rows(action="hold.lift"))
    assert any(web_site.old in r for r in rows(action="retention.purge", target=web_site.old))
    assert any("olaf" in r for r in rows(action="report.submit"))
    page.context.close()


PAGES = [
    "/login/",
    "/recordings/",
    "/recordings/{recent}/",
    "/cameras/",
    "/requests/",
    "/requests/1/",
    "/audit/",
    "/reports/",
    "/reports/1/",
    "/reports/1/print",
]


def _axe(page: Any, source: str) -> list[dict[str, Any]]:
    page.add_script_tag(content=source)
    result = page.evaluate(
        "async () => (await axe.run(document)).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 3)}))"
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


def test_every_page_passes_axe_core(browser: Any, server: Server, web_site: WebSite) -> None:
    source = axe_source()
    probe = browser.new_page()
    probe.set_content("<!doctype html><html><body><input></body></html>")
    assert "label" in {v["id"] for v in _axe(probe, source)}  # the check can fail
    probe.close()
    # axe-core is injected as an inline script, which the pages' own policy refuses.
    anon = in_english(
        browser.new_context(viewport=VIEWPORT, base_url=server.url, bypass_csp=True), server
    ).new_page()
    anon.goto("/login/")
    problems = {"/login/": _axe(anon, source)}
    anon.context.close()
    page = signed_in(browser, server, "cees", bypass_csp=True)
    for path in PAGES[1:]:
        page.goto(path.format(recent=web_site.recent))
        assert page.locator("h1").count() == 1, path
        problems[path] = _axe(page, source)
    start_viewing(page, web_site.recent, "complaint", "sam")
    assert "/viewings/" in page.url
    problems["/viewings/"] = _axe(page, source)
    with page.expect_navigation():
        page.get_by_role("button", name="End viewing").click()
    page.context.close()
    bad = {p: v for p, v in problems.items() if v}
    assert not bad, bad
    assert len(problems) == len(PAGES) + 1


def test_every_page_carries_a_content_security_policy_and_the_viewing_still_plays(
    browser: Any, server: Server, web_site: WebSite
) -> None:
    page = signed_in(browser, server, "cees")
    documents: list[tuple[str, str | None]] = []
    page.on(
        "response",
        lambda r: (
            documents.append((r.url, r.headers.get("content-security-policy")))
            if r.request.resource_type == "document"
            else None
        ),
    )
    # Anything the policy blocks is reported in the page: collected for the assertion below.
    page.add_init_script(
        "window.__blocked = [];"
        " document.addEventListener('securitypolicyviolation',"
        " e => window.__blocked.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    blocked: list[str] = []
    for path in PAGES[1:]:
        page.goto(path.format(recent=web_site.recent))
        blocked += page.evaluate("() => window.__blocked")
    start_viewing(page, web_site.recent, "complaint", "sam")
    assert "/viewings/" in page.url, page.content()[:3000]
    page.wait_for_function(
        "() => { const v = document.querySelector('#player');"
        " return v && v.readyState >= 2 && v.currentTime > 1.0; }",
        timeout=60_000,
    )
    blocked += page.evaluate("() => window.__blocked")
    with page.expect_navigation():
        page.get_by_role("button", name="End viewing").click()
    blocked += page.evaluate("() => window.__blocked")
    page.context.close()
    assert len(documents) >= len(PAGES) + 1, documents
    for url, csp in documents:
        assert csp is not None, url
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp, (url, csp)
    assert blocked == []


def test_the_recording_page_in_dutch_keeps_the_second_person_legend_in_its_box(
    browser: Any, server: Server, web_site: WebSite
) -> None:
    """The default language, as a browser without a choice gets it; the long legend of the
    second person's sign-in wraps inside its fieldset instead of straddling its border."""
    ctx = browser.new_context(viewport={"width": 700, "height": 900}, base_url=server.url)
    page = ctx.new_page()
    page.goto("/login/")
    page.get_by_label("Gebruikersnaam").fill("cees")
    page.get_by_label("Wachtwoord").fill(PASSWORD)
    page.get_by_role("button", name="Aanmelden").click()
    page.wait_for_load_state()
    page.goto(f"/recordings/{web_site.recent}/")
    assert page.locator("html").get_attribute("lang") == "nl"
    fieldset = page.locator("#viewing-form fieldset")
    box = fieldset.evaluate(
        """f => { const b = f.getBoundingClientRect(), l = f.querySelector('legend')
                   .getBoundingClientRect(), s = getComputedStyle(f);
                 return {top: b.top + parseFloat(s.borderTopWidth), left: b.left,
                         right: b.right, legendTop: l.top, legendLeft: l.left,
                         legendRight: l.right, legendHeight: l.height}; }"""
    )
    assert box["legendHeight"] > 30, box  # the narrow page wraps it onto two lines
    assert box["legendTop"] >= box["top"], box  # below the top border, not across it
    assert box["left"] <= box["legendLeft"] and box["legendRight"] <= box["right"], box
    assert "klacht: clustermanager + gemeentesecretaris" in page.get_by_label("Doel").inner_text()
    fieldset.screenshot(path=str(shots(web_site) / "second-person.png"))
    ctx.close()
