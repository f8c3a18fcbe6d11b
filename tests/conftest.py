"""Shared checks: every test fails if it leaks a thread or a child process.

Leaks are looked for once a test's whole teardown has run: its own fixtures have
finished, and so have a module's or the session's fixtures when it was their last test.
What the verdict sees therefore does not hang on the order in which pytest finishes
fixtures. A thread or child process that a module- or session-scoped fixture starts
while it is set up is that fixture's: it may outlive the test, and must be gone once the
fixture has finished. Anything else that starts during a test must be stopped by the
end of its teardown. A fixture whose resource would start threads later, on demand (a
thread pool), starts them in its own setup (the browser: tests/web/web_support.py).

Property-based tests run a fixed (derandomized) set of examples by default, so `make test`
gives the same verdict on every machine; `make fuzz` (BODYCAM_HYPOTHESIS=explore) draws
fresh random examples each run to look for new failures.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("repeatable", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("BODYCAM_HYPOTHESIS", "repeatable"))

# Threads that libraries start once per process and keep on purpose.
_PERSISTENT_THREAD_PREFIXES = ("pydevd",)
LEAK_GRACE_SECONDS = 3.0  # for a thread or process that was told to stop and is ending


def _children(pid: int) -> set[int]:
    """Child processes of pid, whichever of its threads started them (Linux /proc)."""
    found: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            found.update(
                int(p) for p in Path(f"/proc/{pid}/task/{task}/children").read_text().split()
            )
        except OSError:
            continue  # the thread ended meanwhile
    return found


@dataclass
class _Running:
    """Threads and child processes of this process."""

    threads: set[threading.Thread] = field(default_factory=set)
    children: set[int] = field(default_factory=set)

    @classmethod
    def now(cls) -> _Running:
        threads = {
            t
            for t in threading.enumerate()
            if t.is_alive() and not t.name.startswith(_PERSISTENT_THREAD_PREFIXES)
        }
        return cls(threads, _children(os.getpid()))

    def add(self, other: _Running) -> None:
        self.threads |= other.threads
        self.children |= other.children


class LeakCheck:
    """The check, as a plugin of the whole run: a conftest's hooks would not see the
    fixtures of the session, whose node lies above this folder."""

    def __init__(self) -> None:
        # What each fixture wider than a test started while it was set up, until it ends.
        self.by_fixture: dict[pytest.FixtureDef[object], _Running] = {}
        # What the fixtures that ended since the current test's setup began had started.
        self.ended = _Running()
        self.before = _Running()  # what ran when the current test's setup began

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[object]
    ) -> Generator[None, object, object]:
        if fixturedef.scope == "function":
            return (yield)
        before = _Running.now()
        try:
            return (yield)
        finally:
            after = _Running.now()
            started = _Running(after.threads - before.threads, after.children - before.children)
            self.by_fixture.setdefault(fixturedef, _Running()).add(started)

    def pytest_fixture_post_finalizer(self, fixturedef: pytest.FixtureDef[object]) -> None:
        started = self.by_fixture.pop(fixturedef, None)
        if started is not None:
            self.ended.add(started)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self) -> Generator[None, None, None]:
        self.ended = _Running()
        self.before = _Running.now()
        return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self) -> Generator[None, None, None]:
        result = yield  # an error of the teardown itself is reported as it is
        self.check_nothing_left()
        return result

    def check_nothing_left(self) -> None:
        """Fail the test if a thread or child process that it, or a fixture that ended
        with it, started is still running after a short grace."""
        deadline = time.monotonic() + LEAK_GRACE_SECONDS
        while True:
            now = _Running.now()
            owned = _Running()  # by fixtures that outlive this test
            for started in self.by_fixture.values():
                owned.add(started)
            threads = (now.threads - self.before.threads) | (self.ended.threads & now.threads)
            children = (now.children - self.before.children) | (self.ended.children & now.children)
            threads -= owned.threads
            children -= owned.children
            if not threads and not children:
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        names = sorted(t.name for t in threads)
        processes = [f"{pid} ({_command(pid)})" for pid in sorted(children)]
        pytest.fail(f"test leaked threads {names} and child processes {processes}", pytrace=False)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(LeakCheck(), "bodycam-leak-check")


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "ended"
    return " ".join(raw.decode(errors="replace").split("\0")).strip()[:120] or "exited"
