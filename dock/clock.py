"""The dock's time: the machine's clock behind the one clock protocol (`formats.clock.Clock`).

Everything in the dock takes its time from an injected clock (`DockContext.clock`,
`SlotWatcher(clock=...)`, `DockDaemon(clock=...)`), so a shift runs fast-forward in a
test; `SystemClock` is what the daemon uses by default.
"""

from __future__ import annotations

import time


class SystemClock:
    """Wall and monotonic time of the machine (the daemon's default clock)."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


__all__ = ["SystemClock"]
