"""The one clock protocol: every part's time comes from an injected clock.

The camera's hardware clock (`firmware.hardware.SettableClock` adds setting it), the
simulator's fast-forward clock (sim/clock.py) and the dock's system clock
(dock/clock.py) implement it, so a shift runs fast-forward in a test and a dock's
timing can be driven the same way.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """The hardware clock: wall time, a monotonic clock for media timing, and sleeping."""

    def now(self) -> float:
        """Wall time, UTC epoch seconds."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` (>= 0) of this clock's time."""
        ...


__all__ = ["Clock"]
