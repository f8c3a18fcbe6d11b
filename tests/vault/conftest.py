"""Fixtures for the back office: Django on SQLite and on a real PostgreSQL, per-test rollback.

The PostgreSQL cluster starts once per session (socket only) and is stopped at the
end; when the server is not installed the tests fail and say how to install it.
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from pg_support import PgCluster, start_cluster  # noqa: E402
from vault_support import T0, Site, configure_django, use_database  # noqa: E402

_HOME = Path(tempfile.mkdtemp(prefix="bodycam-vault-test-"))
atexit.register(shutil.rmtree, _HOME, True)
configure_django(_HOME)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


_current: list[str] = []
_migrated: set[str] = set()


def _switch(url: str) -> None:
    if _current and _current[0] == url:
        return
    use_database(url, migrate=url not in _migrated)
    _migrated.add(url)
    _current[:] = [url]


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('vault-db') / 'vault.sqlite3'}"


@pytest.fixture(scope="session")
def pg_url(pg_cluster: PgCluster) -> str:
    pg_cluster.create_database("vault_test")
    return pg_cluster.url("vault_test")


def _rollback_each_test() -> Iterator[None]:
    from django.db import transaction

    atomic = transaction.atomic()
    atomic.__enter__()
    try:
        yield
    finally:
        transaction.set_rollback(True)
        atomic.__exit__(None, None, None)


@pytest.fixture
def db(sqlite_url: str) -> Iterator[str]:
    """The SQLite catalog, rolled back after the test."""
    _switch(sqlite_url)
    yield from _rollback_each_test()
    return


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[str]:
    """The test runs on SQLite and on PostgreSQL, rolled back after each."""
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_url")
    _switch(url)
    yield from _rollback_each_test()


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site.create(tmp_path / "site")


@pytest.fixture
def clock() -> object:
    from vault.clock import ManualClock

    return ManualClock(T0)
