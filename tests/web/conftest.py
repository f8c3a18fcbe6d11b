"""Fixtures of the browser tests: one seeded back office served by gunicorn, one Chromium."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from web_support import (  # noqa: E402
    LONG,
    LONG_SECONDS,
    NO_PICTURE,
    Server,
    WebSite,
    build_site,
    chromium,
    make_ts,
)


@pytest.fixture(scope="module")
def web_site(tmp_path_factory: pytest.TempPathFactory) -> WebSite:
    from vault_support import sound_only_ts

    extra = {NO_PICTURE: sound_only_ts(), LONG: make_ts(LONG_SECONDS, (640, 360))}
    return build_site(tmp_path_factory.mktemp("web"), extra=extra)


@pytest.fixture(scope="module")
def server(web_site: WebSite) -> Iterator[Server]:
    srv = Server(web_site.home, web_site.root / "server.log")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b
