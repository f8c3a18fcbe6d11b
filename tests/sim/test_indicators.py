"""sim.indicators: LED state, beeps and vibrations reach every listener and the history."""

from __future__ import annotations

import logging

import pytest

from sim.clock import FastForwardClock
from sim.indicators import HISTORY, IndicatorEvent, Indicators


def test_listeners_see_every_indicator_in_order() -> None:
    clock = FastForwardClock()
    seen: list[IndicatorEvent] = []
    panel = Indicators([seen.append], clock=clock)
    panel.led(True, "recording started")
    clock.advance(2)
    panel.beep("recording started")
    panel.vibrate("recording started")
    panel.led(False)
    assert [(e.kind, e.on, e.reason, e.at) for e in seen] == [
        ("led", True, "recording started", 0.0),
        ("beep", None, "recording started", 2.0),
        ("vibrate", None, "recording started", 2.0),
        ("led", False, "", 2.0),
    ]
    assert panel.history == seen
    assert panel.led_on is False and panel.last == seen[-1]
    assert panel.counts == {"led": 2, "beep": 1, "vibrate": 1}
    assert [e.describe() for e in seen] == [
        "LED on: recording started",
        "beep: recording started",
        "vibrate: recording started",
        "LED off",
    ]


def test_unsubscribe_and_late_subscribe() -> None:
    panel = Indicators()
    first: list[IndicatorEvent] = []
    stop = panel.subscribe(first.append)
    panel.beep("one")
    stop()
    stop()  # twice is harmless
    panel.beep("two")
    assert [e.reason for e in first] == ["one"]
    assert panel.led_on is False and panel.last is not None and panel.last.reason == "two"


def test_a_failing_listener_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    def broken(event: IndicatorEvent) -> None:
        raise RuntimeError("display unplugged")

    panel = Indicators([broken, lambda e: seen.append(e.reason)])
    with caplog.at_level(logging.ERROR, logger="sim.indicators"):
        panel.vibrate("fault")
    assert seen == ["fault"]
    assert "display unplugged" in caplog.text


def test_history_is_bounded() -> None:
    panel = Indicators()
    for i in range(HISTORY + 10):
        panel.beep(f"b{i}")
    assert len(panel.history) == HISTORY and panel.history[0].reason == "b10"
    assert panel.counts["beep"] == HISTORY + 10
