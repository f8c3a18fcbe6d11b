"""Exponential backoff for transient store failures (network, a restarting server)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from store.errors import StoreUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

RetryNotice = Callable[[str, int, float, BaseException], None]  # what, attempt, delay, error


@dataclass
class RetryPolicy:
    """Exponential backoff for transient store failures; sleep and clock are injectable."""

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    stop: threading.Event | None = None  # set on shutdown: give up instead of sleeping
    on_retry: RetryNotice | None = None
    # Called after every operation that reached the store: lets status drop an
    # "unavailable" the moment the store answers again, not when a session ends.
    on_success: Callable[[], None] | None = None
    delays: list[float] = field(default_factory=list)  # what was slept (status, tests)

    def succeeded(self) -> None:
        if self.on_success is not None:
            self.on_success()

    def delay_for(self, attempt: int) -> float:
        return float(min(self.max_delay, self.base_delay * (2 ** (attempt - 1))))

    def run(
        self,
        what: str,
        fn: Callable[[], T],
        transient: Callable[[BaseException], bool],
        describe: str = "store",
    ) -> T:
        """Call `fn`, retrying while `transient(error)`; StoreUnavailable when out of budget."""
        attempt = 0
        while True:
            attempt += 1
            try:
                result = fn()
            except Exception as exc:
                if not transient(exc):
                    raise
                if attempt >= self.attempts or (self.stop is not None and self.stop.is_set()):
                    raise StoreUnavailable(
                        f"{what}: {describe} unreachable after {attempt} attempt(s) "
                        f"({type(exc).__name__}: {exc}); everything stays on the camera, "
                        "the dock retries later"
                    ) from exc
                delay = self.delay_for(attempt)
                log.warning("%s failed (%s), retry %d in %.1f s", what, exc, attempt, delay)
                if self.on_retry is not None:
                    self.on_retry(what, attempt, delay, exc)
                self.delays.append(delay)
                self.sleep(delay)
                continue
            self.succeeded()
            return result
