"""Fixtures of the browser tests: one seeded back office served by gunicorn, one Chromium."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from web_support import Server, WebSite, build_site, chromium  # noqa: E402


@pytest.fixture(scope="module")
def web_site(tmp_path_factory: pytest.TempPathFactory) -> WebSite:
    return build_site(tmp_path_factory.mktemp("web"))


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
