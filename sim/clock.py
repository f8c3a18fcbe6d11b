"""Clocks the camera firmware is given: real time, or a deterministic fast-forward clock.

All firmware time comes from one injected `Clock` (the protocol is
`firmware.hardware.Clock`) (never `time.time()` deep in logic),
so the same code runs an officer's camera in real time and a whole shift in a test in
seconds:

```
clock = FastForwardClock(start=1_790_000_000.0)
clock.now()          # 1790000000.0  (UTC epoch seconds)
clock.sleep(30)      # returns at once; now() and monotonic() moved 30 s
clock.advance(0.5)   # the same, for a test driving time by hand
```

`now()` is wall time (UTC epoch seconds); the camera adds the offset the dock's SET_TIME
applies on top of it (firmware.camera.CameraClock). `monotonic()` is for durations and
media timing and never jumps backwards.
"""

from __future__ import annotations

import logging
import math
import threading
import time

from formats.clock import Clock

__all__ = ["DEFAULT_START_UTC", "Clock", "FastForwardClock", "RealClock"]

log = logging.getLogger(__name__)

DEFAULT_START_UTC = 1_790_000_000.0  # 2026-09-21T14:13:20Z, a fixed start for repeatable runs


def _check_duration(seconds: float, what: str) -> float:
    value = float(seconds)
    if math.isnan(value) or math.isinf(value) or value < 0:
        raise ValueError(f"{what} needs a finite number of seconds >= 0, got {seconds!r}")
    return value


class RealClock:
    """The machine's clock: `time.time()`, `time.monotonic()`, `time.sleep()`."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(_check_duration(seconds, "sleep"))

    def __repr__(self) -> str:
        return "RealClock()"


class FastForwardClock:
    """A deterministic clock: `sleep()` and `advance()` move time instantly.

    Two runs that make the same calls see exactly the same times. Thread-safe, so a
    control-server thread may read it while the camera loop sleeps. `monotonic()` starts
    at 0.0.
    """

    def __init__(self, start: float = DEFAULT_START_UTC) -> None:
        start = float(start)
        if math.isnan(start) or math.isinf(start):
            raise ValueError(f"clock start must be a finite UTC epoch time, got {start!r}")
        self._start = start
        self._elapsed = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._start + self._elapsed

    def monotonic(self) -> float:
        with self._lock:
            return self._elapsed

    def sleep(self, seconds: float) -> None:
        self.advance(_check_duration(seconds, "sleep"))

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds` (>= 0); time never runs backwards."""
        step = _check_duration(seconds, "advance")
        with self._lock:
            self._elapsed += step

    def __repr__(self) -> str:
        return f"FastForwardClock(now={self.now():.6f})"
