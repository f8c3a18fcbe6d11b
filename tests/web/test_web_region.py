"""One site served by two hosts: two `bodycam vault serve` processes on different ports
sharing one PostgreSQL, the store and the home's keys, as two hosts behind one proxy.

A browser session signs in through one and starts a viewing with the second person;
its stream's byte ranges come alternately from both servers, byte for byte the same;
the page moves to the other server and keeps playing; ending it there ends it on both.
Eight viewings started at once on one host all complete and are audited. Small
recordings (4 s of 320x180) keep this module short.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pg_support import PgCluster, start_cluster
from web_support import PASSWORD, HttpSession, Server, WebSite, build_site

SECONDS, SIZE = 4, (320, 180)
FRAMES = SECONDS * 30


@dataclass
class Region:
    site: WebSite
    database: str
    cluster: PgCluster
    a: Server
    b: Server


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Region]:
    cluster = start_cluster()
    servers: list[Server] = []
    try:
        cluster.create_database("vault_region")
        url = cluster.url("vault_region")
        site = build_site(
            tmp_path_factory.mktemp("region"), seconds=SECONDS, size=SIZE, database=url
        )
        env = {"BODYCAM_VAULT_DATABASE": url}
        servers.append(Server(site.home, site.root / "a.log", env=env, workers=2))
        servers.append(Server(site.home, site.root / "b.log", env=env, workers=1))
        yield Region(site, url, cluster, *servers)
    finally:
        for srv in servers:
            srv.stop()
        cluster.stop()


def audit(region: Region, viewing_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """The audit entries of one viewing, in order: (action, result, detail)."""
    import psycopg

    with psycopg.connect(
        dbname="vault_region", host=str(region.cluster.socket_dir), user="bodycam"
    ) as conn:
        rows = conn.execute(
            "SELECT action, result, detail FROM vault_audit_auditentry WHERE detail LIKE %s "
            "ORDER BY seq",
            (f'%"viewing":"{viewing_id}"%',),
        ).fetchall()
    return [(a, r, json.loads(d)) for a, r, d in rows]


def entries(region: Region, action: str) -> list[tuple[str, dict[str, Any]]]:
    import psycopg

    with psycopg.connect(
        dbname="vault_region", host=str(region.cluster.socket_dir), user="bodycam"
    ) as conn:
        rows = conn.execute(
            "SELECT result, detail FROM vault_audit_auditentry WHERE action = %s ORDER BY seq",
            (action,),
        ).fetchall()
    return [(r, json.loads(d)) for r, d in rows]


def signed_in(browser: Any, server: Server, user: str) -> Any:
    ctx = browser.new_context(base_url=server.url)
    ctx.add_cookies([{"name": "django_language", "value": "en", "url": server.url}])
    page = ctx.new_page()
    page.goto("/login/")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert "/login/" not in page.url, page.content()[:2000]
    return page


def playing(page: Any, beyond: float) -> None:
    page.wait_for_function(
        "t => { const v = document.querySelector('#player');"
        " return v && v.readyState >= 2 && v.currentTime > t; }",
        arg=beyond,
        timeout=30_000,
    )


def test_a_viewing_started_through_one_server_plays_through_both_and_ends_on_both(
    browser: Any, region: Region
) -> None:
    a, b = region.a, region.b
    # Cookies belong to a host, not a port: the session signed in through A is sent to B
    # as it would be to a second host behind the same proxy.
    page = signed_in(browser, a, "cees")
    page.goto(f"/recordings/{region.site.recent}/")
    page.get_by_label("Purpose").select_option("complaint")
    page.get_by_label("Second person's user name").fill("sam")
    page.get_by_label("Second person's password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Start viewing").click()
    m = re.search(r"/viewings/([^/]+)/$", page.url)
    assert m and page.url.startswith(a.url), page.url
    vid = m[1]
    playing(page, 1.0)
    src = page.locator("video#player").get_attribute("data-src")
    assert src == f"/viewings/{vid}/stream"
    # The whole stream from each server (each of A's workers and B build it themselves).
    whole = {}
    for srv in (a, b, a):
        resp = page.request.get(srv.url + src)
        assert resp.status == 200 and resp.headers["cache-control"] == "no-store"
        whole.setdefault(srv.url, resp.body())
        assert resp.body() == whole[srv.url]
    data = whole[a.url]
    assert data == whole[b.url] and len(data) > 10_000 and data[4:8] == b"ftyp"
    # Byte ranges alternating between the servers, each the same bytes.
    step = len(data) // 7 + 1
    for i, start in enumerate(range(0, len(data), step)):
        srv = (a, b)[i % 2]
        end = min(start + step, len(data)) - 1
        resp = page.request.get(srv.url + src, headers={"Range": f"bytes={start}-{end}"})
        assert resp.status == 206, (srv.url, resp.status)
        assert resp.headers["content-range"] == f"bytes {start}-{end}/{len(data)}"
        assert resp.body() == data[start : end + 1], (srv.url, start)
    # The same browser session moves to B: the viewing keeps playing there, a seek
    # through B is audited.
    page.goto(f"{b.url}/viewings/{vid}/")
    playing(page, 1.0)
    page.evaluate("() => { const v = document.querySelector('#player'); v.currentTime = 2.5; }")
    page.wait_for_function(
        "() => { const v = document.querySelector('#player');"
        " return !v.seeking && Math.abs(v.currentTime - 2.5) < 0.5; }",
        timeout=30_000,
    )
    page.wait_for_timeout(500)  # the seek's audit request goes out asynchronously
    # Another browser session (the second viewer's, through B) gets it from neither.
    other = signed_in(browser, b, "sam")
    assert other.request.get(a.url + src).status == 404
    assert other.request.get(b.url + src).status == 404
    other.context.close()
    # Ended on B: gone on A too (every worker checks the row before a byte).
    with page.expect_navigation():
        page.get_by_role("button", name="End viewing").click()
    for srv in (a, b, a):
        assert page.request.get(srv.url + src).status == 404
        assert page.request.get(f"{srv.url}/viewings/{vid}/").status == 404
    actions = [(action, result) for action, result, _ in audit(region, vid)]
    assert actions[0] == ("viewing.start", "ok")
    assert ("viewing.seek", "ok") in actions
    assert actions.count(("viewing.end", "ok")) == 1 and actions[-1] == ("viewing.end", "ok")
    page.context.close()


def test_eight_viewings_at_once_on_one_host_complete_and_are_audited(region: Region) -> None:
    import av

    a = region.a
    session = HttpSession(a.url, "cees")
    form = {"purpose": "complaint", "second_username": "sam", "second_password": PASSWORD}
    path = f"/recordings/{region.site.recent}/view"
    started: list[str] = []
    busy: list[int] = []
    problems: list[str] = []
    lock = threading.Lock()

    def start() -> None:
        deadline = time.monotonic() + 60
        for _ in range(30):  # bounded: a busy server says when to come back
            status, headers, body = session.post(path, form)
            if status == 302:
                vid = headers["Location"].rstrip("/").rsplit("/", 1)[1]
                with lock:
                    started.append(vid)
                return
            if status != 503 or time.monotonic() > deadline:
                with lock:
                    problems.append(f"{status}: {body[:300]!r}")
                return
            retry = int(headers["Retry-After"])
            with lock:
                busy.append(retry)
                if not 1 <= retry <= 60 or f"over {retry} seconde".encode() not in body:
                    problems.append(f"busy page without when to come back: {body[:300]!r}")
            time.sleep(min(retry, 1.0))  # sooner than asked: keeps the test short
        with lock:
            problems.append("still busy after 30 tries")

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not problems and len(started) == 8 == len(set(started)), (problems, started)
    for vid in started:
        status, headers, data = session.request("GET", f"/viewings/{vid}/stream")
        assert status == 200 and headers["Cache-Control"] == "no-store", status
        with av.open(io.BytesIO(data)) as c:
            frames = sum(1 for _ in c.decode(video=0))
        assert frames == FRAMES, (vid, frames)
        session.post(f"/viewings/{vid}/event", {"event": "end"}, expect=302)
    for vid in started:
        actions = [(action, result) for action, result, _ in audit(region, vid)]
        assert actions == [("viewing.start", "ok"), ("viewing.end", "ok")], (vid, actions)
    failed = [d for r, d in entries(region, "viewing.start") if r == "failed"]
    assert len(failed) == len(busy)
    assert all(d["error"].startswith("ViewingBusy: ") for d in failed)
