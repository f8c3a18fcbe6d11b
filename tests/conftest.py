"""Shared fixtures: every test fails if it leaks a thread or a child process.

Property-based tests run a fixed (derandomized) set of examples by default, so `make test`
gives the same verdict on every machine; `make fuzz` (BODYCAM_HYPOTHESIS=explore) draws
fresh random examples each run to look for new failures.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("repeatable", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("BODYCAM_HYPOTHESIS", "repeatable"))

# Threads that libraries start once per process and keep on purpose.
_PERSISTENT_THREAD_PREFIXES = ("pydevd",)


def _children(pid: int) -> set[int]:
    """Direct child processes of pid, read from /proc (Linux)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return {int(p) for p in path.read_text().split()}
    except OSError:
        return set()


def _live_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


@pytest.fixture(autouse=True)
def no_leaked_threads_or_processes(request: pytest.FixtureRequest) -> Iterator[None]:
    threads_before = _live_threads()
    children_before = _children(os.getpid())
    yield
    if request.node.get_closest_marker("allow_leaks"):
        return
    deadline = time.monotonic() + 3.0
    while True:
        leaked_threads = {
            t
            for t in _live_threads() - threads_before
            if not t.name.startswith(_PERSISTENT_THREAD_PREFIXES)
        }
        leaked_children = _children(os.getpid()) - children_before
        if not leaked_threads and not leaked_children:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    names = sorted(t.name for t in leaked_threads)
    pytest.fail(
        f"test leaked threads {names} and child processes {sorted(leaked_children)}",
        pytrace=False,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allow_leaks: a session-scoped server started by this test may outlive it"
    )
