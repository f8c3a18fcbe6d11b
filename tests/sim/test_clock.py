"""sim.clock: the fast-forward clock is deterministic and never runs backwards."""

from __future__ import annotations

import math
import threading
import time

import pytest

from sim.clock import Clock, FastForwardClock, RealClock


def script(clock: FastForwardClock) -> list[tuple[float, float]]:
    seen = []
    for step in (0.0, 1 / 30, 0.5, 2.0, 1 / 3):
        clock.sleep(step)
        seen.append((clock.now(), clock.monotonic()))
    clock.advance(10)
    seen.append((clock.now(), clock.monotonic()))
    return seen


def test_fast_forward_is_deterministic() -> None:
    a, b = script(FastForwardClock(1_800_000_000.0)), script(FastForwardClock(1_800_000_000.0))
    assert a == b
    assert a[0] == (1_800_000_000.0, 0.0)
    assert a[-1][1] == pytest.approx(1 / 30 + 0.5 + 2.0 + 1 / 3 + 10)
    assert a[-1][0] - a[0][0] == pytest.approx(a[-1][1])


def test_fast_forward_sleep_moves_time_without_waiting() -> None:
    clock = FastForwardClock()
    clock.sleep(3600 * 8)  # a whole shift; a real sleep would hit the pytest timeout
    assert clock.monotonic() == 3600 * 8
    assert clock.now() == 1_790_000_000.0 + 3600 * 8


@pytest.mark.parametrize("bad", [-0.001, math.nan, math.inf])
def test_time_never_runs_backwards(bad: float) -> None:
    clock = FastForwardClock()
    with pytest.raises(ValueError, match="seconds"):
        clock.advance(bad)
    with pytest.raises(ValueError, match="seconds"):
        clock.sleep(bad)
    assert clock.monotonic() == 0.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_start_must_be_finite(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        FastForwardClock(bad)


def test_fast_forward_is_thread_safe() -> None:
    clock = FastForwardClock(0.0)

    def worker() -> None:
        for _ in range(2000):
            clock.advance(0.25)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clock.monotonic() == 2000.0  # 0.25 steps add exactly in binary floating point
    assert clock.now() == 2000.0


def test_real_clock_follows_the_machine() -> None:
    clock = RealClock()
    assert abs(clock.now() - time.time()) < 5
    m1 = clock.monotonic()
    clock.sleep(0)
    assert clock.monotonic() >= m1
    with pytest.raises(ValueError):
        clock.sleep(-1)


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(RealClock(), Clock)
    assert isinstance(FastForwardClock(), Clock)
