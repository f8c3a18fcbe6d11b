"""Scripted shifts: several emulated cameras, events at given times, run in fast-forward.

The scenario format is sim/scenario.py; docking into slots and the dock run at the
end are sim/docking.py; the results and the summary table are sim/report.py.

`run_shift()` creates each camera's home under `OUT/cameras/<name>/home`, a site
key directory (`OUT/site-keys`, via crypto.keys.init_site_keys) unless one is
given, and puts the site's vault and dock public keys into every profile (the
default profile, and profile files unless `use_site_keys = false`). Cameras
still on at the end are powered off cleanly. The result lists every recording
on every volume (verified with the camera's public key), with its duration and
how much pre-roll it covered; `sim.report.print_summary` renders it as a table.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.camera import Camera
from firmware.state import CameraError, CameraState
from sim.docking import publish_slot, withdraw_slot
from sim.report import CameraResult, ShiftResult, camera_result
from sim.scenario import (
    EventSpec,
    Scenario,
    SiteKeyInfo,
    Speed,
    build_profile,
    ensure_site_keys,
    load_scenario,
)

log = logging.getLogger(__name__)


class _Runner:
    """Drives one scenario: all cameras share the shift's timeline."""

    def __init__(
        self,
        scenario: Scenario,
        out: Path,
        keys: SiteKeyInfo,
        speed: Speed,
        slots: Path | None,
        control_factory: Callable[[Camera, Any], Any] | None,
        progress: Callable[[str], None] | None,
        tick_seconds: float = 10.0,
    ) -> None:
        from sim.board import SimBoard
        from sim.clock import FastForwardClock, RealClock

        self.scenario = scenario
        self.out = out
        self.keys = keys
        self.speed = speed
        self.slots = slots
        self.progress = progress or (lambda _msg: None)
        self.cameras: dict[str, Camera] = {}
        self.refused: dict[str, list[str]] = {}
        self.elapsed: dict[str, float] = {}
        self.real_start = 0.0
        self.tick_seconds = tick_seconds
        self.next_tick = tick_seconds
        shared_real = RealClock() if speed == "realtime" else None
        scenario_dir = scenario.source.parent
        for spec in scenario.cameras:
            raw, profile = build_profile(spec, scenario_dir, keys)
            home = out / "cameras" / spec.name / "home"
            clock = shared_real or FastForwardClock(start=scenario.shift.start_utc)
            self.cameras[spec.name] = Camera(
                home, profile, SimBoard(clock), profile_raw=raw, control_factory=control_factory
            )
            self.refused[spec.name] = []
            self.elapsed[spec.name] = 0.0

    def advance_to(self, at: float) -> None:
        if self.speed == "max":
            for name, cam in self.cameras.items():
                if at > self.elapsed[name]:
                    cam.run_for(at - self.elapsed[name])
                    self.elapsed[name] = at
            return
        clock = next(iter(self.cameras.values())).clock
        target = self.real_start + at
        while True:
            now = clock.monotonic()
            if now - self.real_start >= self.next_tick:
                self.progress(self.status_line(now - self.real_start))
                self.next_tick += self.tick_seconds
            if now >= target:
                break
            next_due = min(cam.poll() for cam in self.cameras.values())
            wake = min(next_due, target, self.real_start + self.next_tick)
            clock.sleep(max(0.0, wake - clock.monotonic()))
        for name in self.cameras:
            self.elapsed[name] = at

    def status_line(self, elapsed: float) -> str:
        """Where a real-time shift is: its time, and each camera's state."""
        states = ", ".join(f"{name} {cam.state.value}" for name, cam in self.cameras.items())
        return f"{_clock_text(elapsed)} of {_clock_text(self.scenario.end_seconds)}: {states}"

    def apply(self, event: EventSpec) -> None:
        cam = self.cameras[event.camera]
        note = f"{_clock_text(event.at)} {event.camera}: {event.action}"
        try:
            if event.action == "power_on":
                cam.power_on()
            elif event.action == "record":
                result = cam.press_record()
                if not result.accepted:
                    raise CameraError(result.reason)
            elif event.action == "stop":
                result = cam.press_stop()
                if not result.accepted:
                    raise CameraError(result.reason)
            elif event.action == "power_cut":
                if self.slots is not None:
                    withdraw_slot(self.slots, event.camera)
                cam.power_cut()
            elif event.action == "power_off":
                if self.slots is not None:
                    withdraw_slot(self.slots, event.camera)
                cam.power_off(reason="scenario")
            elif event.action == "dock":
                cam.dock()
                if self.slots is not None:
                    publish_slot(self.slots, event.camera, cam.volume, cam.serial_path)
            elif event.action == "undock":
                if self.slots is not None:
                    withdraw_slot(self.slots, event.camera)
                cam.undock()
        except (CameraError, ValueError) as exc:
            self.refused[event.camera].append(f"{note}: {exc}")
            self.progress(f"{note}: refused: {exc}")
            return
        where = ""
        if event.action == "dock" and self.slots is not None:
            where = (
                f" (slot {self.slots / event.camera}: `bodycam dock run --slots "
                f"{self.slots} --store URL` takes it)"
            )
        self.progress(f"{note}: {cam.state.value}{where}")

    def results(self) -> list[CameraResult]:
        return [camera_result(name, cam, self.refused[name]) for name, cam in self.cameras.items()]

    def finish(self) -> None:
        for name, cam in self.cameras.items():
            if cam.state is not CameraState.OFF:
                if self.slots is not None:
                    withdraw_slot(self.slots, name)
                cam.power_off(reason="end of shift")


def run_shift(
    scenario_path: Path,
    out: Path,
    *,
    speed: Speed = "max",
    keys_dir: Path | None = None,
    slots: Path | None = None,
    control_factory: Callable[[Camera, Any], Any] | None = None,
    progress: Callable[[str], None] | None = None,
    at_end: Callable[[dict[str, Camera]], None] | None = None,
    tick_seconds: float = 10.0,
) -> ShiftResult:
    """Run a scenario; returns what every camera recorded. Also writes OUT/shift-summary.json.

    `at_end` is called with the cameras by name after the last event, while they are
    still on (and docked cameras still serve their control channel): the demo runs
    the dock there. The result then describes what the cameras held before it ran.
    `progress` gets every event as it happens and, at speed "realtime", each camera's
    state every `tick_seconds`. Recordings a dock took during the shift (watching
    `slots`) are counted from each camera's signed event log.
    """
    import time

    scenario = load_scenario(Path(scenario_path))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keys = ensure_site_keys(Path(keys_dir) if keys_dir else out / "site-keys")
    runner = _Runner(scenario, out, keys, speed, slots, control_factory, progress, tick_seconds)
    wall_start = time.perf_counter()
    if speed == "realtime":
        runner.real_start = next(iter(runner.cameras.values())).clock.monotonic()
    events = sorted(enumerate(scenario.events), key=lambda pair: (pair[1].at, pair[0]))
    try:
        for _, event in events:
            runner.advance_to(event.at)
            runner.apply(event)
        runner.advance_to(scenario.end_seconds)
        if at_end is not None:
            held = runner.results()
            at_end(dict(runner.cameras))
    finally:
        runner.finish()
    wall = time.perf_counter() - wall_start
    if at_end is None:
        held = runner.results()
    result = ShiftResult(
        scenario=scenario.shift.name,
        out=out,
        keys_dir=keys.directory,
        simulated_seconds=scenario.end_seconds,
        wall_seconds=wall,
        cameras=held,
    )
    (out / "shift-summary.json").write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    return result


def _clock_text(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours:d}:{minutes:02d}:{secs:04.1f}"
