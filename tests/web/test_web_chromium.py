"""The browser tests' Chromium (web_support.chromium): every thread it uses starts before
the browser is handed out and is joined after it closed, so which test meets a thread
never depends on timing."""

from __future__ import annotations

import threading
from pathlib import Path

from web_support import chromium


def test_chromium_starts_no_thread_on_demand_and_leaves_none_behind(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    with chromium() as browser:
        with_browser = set(threading.enumerate())
        page = browser.new_page()
        # Playwright writes a screenshot's file through its event loop's thread pool; back
        # to back, a pool that starts threads on demand soon finds none idle and starts one.
        for n in range(20):
            page.set_content(f"<p>{n}</p>")
            page.screenshot(path=tmp_path / "shots" / f"{n}.png")
        assert sorted(t.name for t in set(threading.enumerate()) - with_browser) == []
        page.close()
    assert sorted(t.name for t in set(threading.enumerate()) - before) == []
    assert len(list((tmp_path / "shots").iterdir())) == 20
