"""The indicator policy: when the LED, beeper and vibration motor tell the officer something.

The profile says which signals a camera gives (LED while recording, a beep at start
and stop, vibration, a reminder beep every N seconds while recording); faults and a
low volume always beep. Every signal is also a line in the event log, so the shift
report can show what the officer was told and when.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from firmware.hardware import IndicatorPanel
from formats.clock import Clock

if TYPE_CHECKING:
    from formats.profile import Profile

log = logging.getLogger(__name__)

EventFn = Callable[..., None]
Signal = Literal["beep", "vibrate"]
RECORDING_STARTED = "recording started"
RECORDING_STOPPED = "recording stopped"
_EPS = 1e-6


class IndicatorPolicy:
    """Drives the indicator panel (which may be absent) and logs every signal."""

    def __init__(self, panel: IndicatorPanel | None, clock: Clock, event: EventFn) -> None:
        self._panel = panel
        self._clock = clock
        self._event = event
        self.led_on = False
        self.last: str | None = None
        # Every signal of the latest moment (a start gives a beep and a vibration at once;
        # showing only the last one would hide the beep the officer heard).
        self.recent: list[str] = []
        # When (clock monotonic) the latest moment's signals were given: a beep is over
        # in a moment, so a screen stops showing it a little later.
        self.recent_monotonic: float | None = None
        self._grouping = False
        self._last_beep_mono = 0.0

    @property
    def panel(self) -> IndicatorPanel | None:
        return self._panel

    def recording_started(self, profile: Profile) -> None:
        self._start_stop(profile, RECORDING_STARTED)
        self._last_beep_mono = self._clock.monotonic()

    def recording_stopped(self, profile: Profile) -> None:
        self._start_stop(profile, RECORDING_STOPPED)

    def reminder(self, profile: Profile) -> None:
        """While recording, once per frame: a beep every `beep_interval_seconds` (0: never)."""
        interval = float(profile.indicators.beep_interval_seconds)
        if interval <= 0:
            return
        now = self._clock.monotonic()
        if now - self._last_beep_mono >= interval - _EPS:
            self._last_beep_mono = now
            self.signal("beep", "recording reminder")

    def fault(self) -> None:
        self._begin_moment()
        try:
            self.led(False, "fault")
            self.signal("beep", "fault")
            self.signal("vibrate", "fault")
        finally:
            self._grouping = False

    def led(self, on: bool, reason: str) -> None:
        if self.led_on == on:
            return
        self.led_on = on
        if self._panel is not None:
            self._panel.led(on, reason)
        self._note(f"led {'on' if on else 'off'}")
        self._event("indicator", indicator="led", on=on, reason=reason)

    def signal(self, what: Signal, reason: str) -> None:
        if self._panel is not None:
            if what == "beep":
                self._panel.beep(reason)
            else:
                self._panel.vibrate(reason)
        self._note(f"{what}: {reason}")
        self._event("indicator", indicator=what, reason=reason)

    def _begin_moment(self) -> None:
        """The signals until the matching `_grouping = False` are given together."""
        self.recent = []
        self._grouping = True

    def _note(self, text: str) -> None:
        if not self._grouping:
            self.recent = []
        self.recent.append(text)
        self.recent_monotonic = self._clock.monotonic()
        self.last = text

    def recent_age(self) -> float | None:
        """Seconds since the latest moment's signals (None before the first)."""
        if self.recent_monotonic is None:
            return None
        return max(0.0, self._clock.monotonic() - self.recent_monotonic)

    def _start_stop(self, profile: Profile, reason: str) -> None:
        ind = profile.indicators
        self._begin_moment()
        try:
            if ind.led_on_record:
                self.led(reason == RECORDING_STARTED, reason)
            if ind.beep_on_start_stop:
                self.signal("beep", reason)
            if ind.vibrate:
                self.signal("vibrate", reason)
        finally:
            self._grouping = False
