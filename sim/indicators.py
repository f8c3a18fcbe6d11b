"""The camera's LED, beeper and vibration motor, simulated: state, history and listeners.

```
panel = Indicators()
unsubscribe = panel.subscribe(lambda e: print(e.describe()))   # terminal UI, event log
panel.led(True); panel.beep("recording started"); panel.vibrate("recording started")
panel.led_on, panel.last, panel.history
```

The firmware drives the panel; whoever wants to see the indicators (the terminal's
status line, a test, the event log) subscribes. A listener that raises is logged and
skipped: a broken display must not stop a recording.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from formats.clock import Clock

log = logging.getLogger(__name__)

IndicatorKind = Literal["led", "beep", "vibrate"]
HISTORY = 256  # events kept for `history`; older ones are dropped (memory stays bounded)
MAX_REASON = 200


@dataclass(frozen=True)
class IndicatorEvent:
    """One thing an indicator did. `on` is the LED state (None for beep and vibrate)."""

    kind: IndicatorKind
    reason: str
    on: bool | None = None
    at: float | None = None  # the panel clock's monotonic time, when it has a clock

    def describe(self) -> str:
        if self.kind == "led":
            text = f"LED {'on' if self.on else 'off'}"
        else:
            text = self.kind
        return f"{text}: {self.reason}" if self.reason else text


Listener = Callable[[IndicatorEvent], object]


class Indicators:
    """LED (on/off), beep and vibrate, each call recorded and passed to the listeners."""

    def __init__(self, listeners: Iterable[Listener] = (), *, clock: Clock | None = None) -> None:
        self._listeners: list[Listener] = list(listeners)
        self._clock = clock
        self._lock = threading.Lock()
        self._led_on = False
        self._history: deque[IndicatorEvent] = deque(maxlen=HISTORY)
        self.counts: dict[str, int] = {"led": 0, "beep": 0, "vibrate": 0}

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(event)` for every indicator event; returns an unsubscribe function."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def led(self, on: bool, reason: str = "") -> None:
        """Switch the recording LED on or off."""
        self._emit("led", reason, bool(on))

    def beep(self, reason: str) -> None:
        self._emit("beep", reason, None)

    def vibrate(self, reason: str) -> None:
        self._emit("vibrate", reason, None)

    @property
    def led_on(self) -> bool:
        with self._lock:
            return self._led_on

    @property
    def last(self) -> IndicatorEvent | None:
        with self._lock:
            return self._history[-1] if self._history else None

    @property
    def history(self) -> list[IndicatorEvent]:
        with self._lock:
            return list(self._history)

    def _emit(self, kind: IndicatorKind, reason: str, on: bool | None) -> None:
        at = self._clock.monotonic() if self._clock is not None else None
        event = IndicatorEvent(kind, str(reason)[:MAX_REASON], on, at)
        with self._lock:
            if kind == "led":
                self._led_on = bool(on)
            self._history.append(event)
            self.counts[kind] += 1
            listeners = list(self._listeners)
        log.debug("indicator %s", event.describe())
        # Outside the lock: a listener may read the panel's state.
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                log.exception("indicator listener %r failed on %s", listener, event.describe())

    def __repr__(self) -> str:
        led = "on" if self.led_on else "off"
        return f"Indicators(led={led}, events={sum(self.counts.values())})"
