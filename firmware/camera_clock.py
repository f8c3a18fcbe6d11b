"""The camera's wall clock: the board's clock plus the offset SET_TIME applies."""

from __future__ import annotations

from formats.clock import Clock


class CameraClock:
    """The camera's wall clock: the hardware clock plus the offset SET_TIME applies.

    Media timing uses `monotonic()`, which SET_TIME never moves.
    """

    def __init__(self, base: Clock) -> None:
        self._base = base
        self._offset = 0.0

    @property
    def base(self) -> Clock:
        return self._base

    @property
    def offset(self) -> float:
        return self._offset

    def now(self) -> float:
        return self._base.now() + self._offset

    def monotonic(self) -> float:
        return self._base.monotonic()

    def sleep(self, seconds: float) -> None:
        self._base.sleep(seconds)

    def set_time(self, utc: float) -> float:
        """Set the wall clock to `utc`; returns the drift (camera time minus `utc`) before."""
        drift = self.now() - float(utc)
        self._offset -= drift
        return drift
