"""Time for the back office, injected so retention and holds can be tested by time travel.

The back office's clock is the one clock protocol (`formats.clock.Clock`: wall time as UTC
epoch seconds, a monotonic clock, sleeping) plus `utc()`, the same wall time as an aware
datetime, which is what Django's models hold; as the camera's `SettableClock` extends it
with setting the time.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Protocol, runtime_checkable

from formats.clock import Clock as BaseClock


@runtime_checkable
class Clock(BaseClock, Protocol):
    def utc(self) -> dt.datetime:
        """The current time, timezone-aware UTC (the same instant as `now()`)."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    def utc(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class ManualClock:
    """A clock that moves only when told (tests, benchmarks)."""

    def __init__(self, start: dt.datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self.t = start

    def now(self) -> float:
        return self.t.timestamp()

    def monotonic(self) -> float:
        return self.t.timestamp()

    def sleep(self, seconds: float) -> None:
        self.advance(seconds=max(0.0, seconds))

    def utc(self) -> dt.datetime:
        return self.t

    def advance(self, **delta: float) -> dt.datetime:
        self.t += dt.timedelta(**delta)
        return self.t

    def set(self, t: dt.datetime) -> None:
        self.t = t


def from_epoch(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


SYSTEM_CLOCK = SystemClock()
