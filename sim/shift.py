"""Scripted shifts: several emulated cameras, events at given times, run in fast-forward.

A scenario is a TOML file:

```toml
[shift]
name = "heusden-evening"
start_utc = "2026-11-22T17:00:00Z"   # or epoch seconds; fast-forward clocks start here
end = "10:00"                        # optional: run on until then (seconds or "M:SS"/"H:MM:SS")

[[cameras]]
name = "boa-1"
profile = "default"                  # or a profile TOML path, relative to the scenario
[cameras.overrides]                  # optional: profile fields to change
prerecord.seconds = 30
video = { width = 640, height = 360 }

[[events]]
at = "0:00"                          # seconds from the shift start, or "M:SS"
camera = "boa-1"
action = "power_on"                  # power_on record stop power_cut power_off dock undock
```

`run_shift()` creates each camera's home under `OUT/cameras/<name>/home`, a site
key directory (`OUT/site-keys`, via crypto.keys.init_site_keys) unless one is
given, and puts the site's vault and dock public keys into every profile (the
default profile, and profile files unless `use_site_keys = false`). Cameras
still on at the end are powered off cleanly. The result lists every recording
on every volume (verified with the camera's public key), with its duration and
how much pre-roll it covered; `print_summary` renders it as a table.

`publish_slot`/`withdraw_slot` put a camera into a dock slot folder the way the
dock expects (ARCHITECTURE: `SLOTS/<slot>/volume` and `serial`, moved in whole).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from firmware.camera import Camera, CameraError
from firmware.state import CameraState

if TYPE_CHECKING:
    from dock.daemon import DaemonResult
    from firmware.profile import Profile

log = logging.getLogger(__name__)

DEFAULT_START_UTC = 1_790_000_000.0
MAX_SCENARIO_BYTES = 1024 * 1024
MAX_SHIFT_SECONDS = 24 * 3600
ACTIONS = ("power_on", "record", "stop", "power_cut", "power_off", "dock", "undock")
Speed = Literal["max", "realtime"]
_TIME = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{2}(?:\.\d+)?)")


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message names the file and the field."""


def _seconds(value: Any) -> float:
    """Shift time: seconds (number) or "M:SS" / "H:MM:SS"."""
    if isinstance(value, bool):
        raise ValueError("a time is seconds or 'M:SS'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _TIME.fullmatch(value.strip())):
        hours, minutes, secs = m.groups()
        seconds = int(hours or 0) * 3600 + int(minutes) * 60 + float(secs)
    else:
        raise ValueError(f"{value!r} is not seconds or 'M:SS' / 'H:MM:SS'")
    if not 0 <= seconds <= MAX_SHIFT_SECONDS:
        raise ValueError(f"{seconds} s is outside 0..{MAX_SHIFT_SECONDS} s")
    return seconds


class ShiftSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=80)
    start_utc: float = DEFAULT_START_UTC
    end: float | None = None

    @field_validator("start_utc", mode="before")
    @classmethod
    def _start(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                raise ValueError(f"{value!r} is not an ISO 8601 time") from None
        if isinstance(value, datetime):
            return value.timestamp()
        return value

    @field_validator("end", mode="before")
    @classmethod
    def _end(cls, value: Any) -> Any:
        return None if value is None else _seconds(value)


class CameraSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
    profile: str = "default"
    use_site_keys: bool = True
    overrides: dict[str, Any] = Field(default_factory=dict)


class EventSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: float
    camera: str
    action: Literal["power_on", "record", "stop", "power_cut", "power_off", "dock", "undock"]

    @field_validator("at", mode="before")
    @classmethod
    def _at(cls, value: Any) -> float:
        return _seconds(value)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shift: ShiftSection
    cameras: list[CameraSpec] = Field(min_length=1, max_length=16)
    events: list[EventSpec] = Field(default_factory=list, max_length=10_000)
    source: Path = Path("<scenario>")

    @property
    def end_seconds(self) -> float:
        last = max((e.at for e in self.events), default=0.0)
        return max(self.shift.end or 0.0, last)


def load_scenario(path: Path) -> Scenario:
    """Read and check a scenario file (errors name the file, field and value)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SCENARIO_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(f"{path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_SCENARIO_BYTES:
        raise ScenarioError(f"{path}: larger than {MAX_SCENARIO_BYTES} bytes")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"{path}: not TOML: {exc}") from None
    if "shift" not in data and ("profile" in data or "keys" in data):
        raise ScenarioError(
            f"{path}: this is a camera profile, not a shift scenario (a scenario has a [shift] "
            "table and [[cameras]]; see sim/scenarios/heusden.toml)"
        )
    try:
        scenario = Scenario.model_validate({**data, "source": path})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            got = repr(err.get("input"))
            got = got if len(got) <= 60 else got[:57] + "..."
            problems.append(f"{where}: {err['msg']} (got {got})")
        raise ScenarioError(f"{path}: " + "; ".join(problems)) from None
    names = [c.name for c in scenario.cameras]
    if len(set(names)) != len(names):
        raise ScenarioError(f"{path}: cameras: names must be unique, got {names}")
    for i, event in enumerate(scenario.events):
        if event.camera not in names:
            raise ScenarioError(
                f"{path}: events.{i}.camera: {event.camera!r} is not one of {names}"
            )
    return scenario


# --- results --------------------------------------------------------------------------------


@dataclass
class RecordingResult:
    camera: str
    recording_id: str
    path: Path
    started_utc: float | None
    duration_seconds: float | None
    prerecord_configured: float | None
    prerecord_covered: float | None
    segments: int
    bytes: int
    complete: bool
    recovered: bool
    stop_reason: str

    @property
    def prerecord_short(self) -> bool:
        if self.prerecord_configured is None or self.prerecord_covered is None:
            return False
        return self.prerecord_covered + 1e-6 < self.prerecord_configured

    def as_dict(self) -> dict[str, Any]:
        return {
            "camera": self.camera,
            "recording_id": self.recording_id,
            "path": str(self.path),
            "started_utc": self.started_utc,
            "duration_seconds": self.duration_seconds,
            "prerecord_configured": self.prerecord_configured,
            "prerecord_covered": self.prerecord_covered,
            "prerecord_short": self.prerecord_short,
            "segments": self.segments,
            "bytes": self.bytes,
            "complete": self.complete,
            "recovered": self.recovered,
            "stop_reason": self.stop_reason,
        }


@dataclass
class CameraResult:
    name: str
    device_id: str
    device_public: bytes
    home: Path
    profile_name: str
    prerecord_seconds: int
    recordings: list[RecordingResult] = field(default_factory=list)
    events_logged: int = 0
    refused: list[str] = field(default_factory=list)

    @property
    def volume(self) -> Path:
        return self.home / "volume"


@dataclass
class ShiftResult:
    scenario: str
    out: Path
    keys_dir: Path
    simulated_seconds: float
    wall_seconds: float
    cameras: list[CameraResult]

    @property
    def recordings(self) -> list[RecordingResult]:
        return [r for c in self.cameras for r in c.recordings]

    def camera(self, name: str) -> CameraResult:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "out": str(self.out),
            "keys_dir": str(self.keys_dir),
            "simulated_seconds": self.simulated_seconds,
            "wall_seconds": round(self.wall_seconds, 3),
            "cameras": [
                {
                    "name": c.name,
                    "device_id": c.device_id,
                    "device_public": c.device_public.hex(),
                    "home": str(c.home),
                    "profile": c.profile_name,
                    "prerecord_seconds": c.prerecord_seconds,
                    "events_logged": c.events_logged,
                    "refused": c.refused,
                    "recordings": [r.as_dict() for r in c.recordings],
                }
                for c in self.cameras
            ],
        }


# --- profiles and keys ------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteKeyInfo:
    directory: Path
    vault_public: bytes
    dock_public: bytes
    created: bool


def ensure_site_keys(directory: Path) -> SiteKeyInfo:
    """Use the site keys in `directory`, or create them there (init_site_keys)."""
    from crypto.keys import init_site_keys, load_public_key

    directory = Path(directory)
    if (directory / "vault.pub").exists():
        return SiteKeyInfo(
            directory,
            load_public_key(directory / "vault.pub"),
            load_public_key(directory / "dock.pub"),
            created=False,
        )
    keys = init_site_keys(directory)
    return SiteKeyInfo(directory, keys.vault, keys.dock, created=True)


def build_profile(spec: CameraSpec, scenario_dir: Path, keys: SiteKeyInfo) -> tuple[bytes, Profile]:
    """The TOML bytes and parsed profile one scenario camera runs with."""
    from firmware.profile import default_profile, derive_profile, load_profile, merge_sections

    site_keys = {
        "vault_recipients": [keys.vault_public.hex()],
        "trusted_docks": [keys.dock_public.hex()],
    }
    if spec.profile == "default":
        base = default_profile(**site_keys)
        source = f"default profile for camera {spec.name}"
    else:
        path = Path(spec.profile)
        if not path.is_absolute():
            path = scenario_dir / path
        base = load_profile(path)
        source = str(path)
    changes: dict[str, Any] = {}
    if spec.profile == "default" or spec.use_site_keys:
        changes = {"keys": site_keys}
    if spec.overrides:
        changes = merge_sections(changes, spec.overrides)
        source = f"{source} with the scenario's overrides"
    return derive_profile(base, changes, source=source)


# --- dock slots (the sim side of docking, see ARCHITECTURE "Docking") ------------------------


def publish_slot(slots: Path, slot_name: str, volume: Path, serial_path: str | None) -> Path:
    """Make `SLOTS/<slot_name>` with `volume` (and `serial`) links, moved in whole."""
    slots = Path(slots)
    slots.mkdir(parents=True, exist_ok=True)
    final = slots / slot_name
    if final.exists() or final.is_symlink():
        raise FileExistsError(f"dock slot {final} is taken: undock the camera in it first")
    tmp = slots / f".{slot_name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    os.symlink(Path(volume).resolve(), tmp / "volume")
    if serial_path:
        os.symlink(serial_path, tmp / "serial")
    os.rename(tmp, final)
    return final


def withdraw_slot(slots: Path, slot_name: str) -> None:
    """Remove the slot folder (the links only, never the camera's files)."""
    final = Path(slots) / slot_name
    if not final.exists() and not final.is_symlink():
        return
    for name in ("volume", "serial"):
        link = final / name
        if link.is_symlink():
            link.unlink()
    final.rmdir()


def ingest_docked(
    cameras: dict[str, Camera],
    slots: Path,
    ledger_path: Path,
    store_url: str,
    keys_dir: Path,
    *,
    site: str = "default",
    out: TextIO | None = None,
    clock: Any = None,
) -> DaemonResult:
    """Run the dock once over `slots`: every docked camera stored and released.

    The dock lives in the shift's world: without `clock` it reads the time from the first
    camera's clock (the shift's fast-forward time, which nothing moved during the shift),
    so a dock at the end of a simulated evening does not see every camera days behind.

    The cameras are registered in the ledger first (as the site's coordinator would
    with `bodycam dock register`); the dock signs receipts with KEYS_DIR/dock.key.
    """
    from dock.daemon import DaemonConfig, DockDaemon
    from dock.ledger import Ledger

    Path(ledger_path).parent.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(ledger_path)
    try:
        for cam in cameras.values():
            ledger.register_device(
                cam.device_id,
                cam.identity.public_key,
                model=cam.model,
                registered_by="shift coordinator",
                role="coordinator",
            )
    finally:
        ledger.close()
    config = DaemonConfig(
        slots=Path(slots),
        store_url=store_url,
        ledger_path=Path(ledger_path),
        keys_dir=Path(keys_dir),
        site=site,
        once=True,
        settle=0.0,
        live=False,
    )
    if clock is None and cameras:
        clock = next(iter(cameras.values())).clock
    return DockDaemon(config, out=out, clock=clock).run()


# --- running ----------------------------------------------------------------------------------


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
            if now >= target:
                break
            next_due = min(cam.poll() for cam in self.cameras.values())
            clock.sleep(max(0.0, min(next_due, target) - clock.monotonic()))
        for name in self.cameras:
            self.elapsed[name] = at

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
        self.progress(f"{note}: {cam.state.value}")

    def results(self) -> list[CameraResult]:
        return [_camera_result(name, cam, self.refused[name]) for name, cam in self.cameras.items()]

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
) -> ShiftResult:
    """Run a scenario; returns what every camera recorded. Also writes OUT/shift-summary.json.

    `at_end` is called with the cameras by name after the last event, while they are
    still on (and docked cameras still serve their control channel): the demo runs
    the dock there. The result then describes what the cameras held before it ran.
    """
    import time

    scenario = load_scenario(Path(scenario_path))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keys = ensure_site_keys(Path(keys_dir) if keys_dir else out / "site-keys")
    runner = _Runner(scenario, out, keys, speed, slots, control_factory, progress)
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


def _camera_result(name: str, cam: Camera, refused: list[str]) -> CameraResult:
    from crypto.verify import verify_recording
    from firmware.eventlog import events_path, verify_event_log

    identity = cam.identity
    profile = cam.profile
    result = CameraResult(
        name=name,
        device_id=identity.device_id,
        device_public=identity.public_key,
        home=cam.home,
        profile_name=str(profile.profile.name),
        prerecord_seconds=int(profile.prerecord.seconds),
        refused=list(refused),
    )
    # What the camera logged is the record: it survives a power cut, memory does not.
    starts: dict[str, tuple[float, dict[str, Any]]] = {}
    stops: dict[str, dict[str, Any]] = {}
    log_path = events_path(cam.volume)
    if log_path.exists():
        report = verify_event_log(log_path, identity.public_key)
        result.events_logged = report.count
        for event in report.of_kind("record_start"):
            starts[str(event.fields.get("recording_id"))] = (event.utc, event.fields)
        for event in report.of_kind("record_stop"):
            stops[str(event.fields.get("recording_id"))] = event.fields
    root = cam.recordings_root
    for rec_dir in sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []:
        verified = verify_recording(rec_dir, identity.public_key)
        segments = list(verified.segments)
        started, start = starts.get(rec_dir.name, (None, {}))
        stop = stops.get(rec_dir.name)
        duration = stop.get("duration_seconds") if stop else None
        result.recordings.append(
            RecordingResult(
                camera=name,
                recording_id=rec_dir.name,
                path=rec_dir,
                started_utc=started,
                duration_seconds=float(duration) if duration is not None else None,
                prerecord_configured=_number(start.get("prerecord_configured")),
                prerecord_covered=_number(start.get("prerecord_covered")),
                segments=len(segments),
                bytes=sum(int(s.size) for s in segments),
                complete=bool(verified.complete),
                recovered=stop is None or any(bool(s.recovered) for s in segments),
                stop_reason=str(stop.get("reason")) if stop else "power cut (recovered at boot)",
            )
        )
    return result


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _clock_text(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours:d}:{minutes:02d}:{secs:04.1f}"


def print_summary(result: ShiftResult, file: TextIO | None = None) -> None:
    """A table of every recording: duration, pre-roll covered, segments, bytes, status."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file, width=120)
    table = Table(title=f"Shift {result.scenario}: {len(result.recordings)} recordings")
    table.add_column("camera")
    table.add_column("recording", no_wrap=True)
    table.add_column("start (UTC)")
    table.add_column("duration", justify="right")
    table.add_column("pre-roll", justify="right", no_wrap=True)
    table.add_column("segments", justify="right")
    table.add_column("bytes", justify="right")
    table.add_column("status")
    for cam in result.cameras:
        if not cam.recordings:
            table.add_row(cam.name, "-", "-", "-", "-", "0", "0", "no recordings")
        for rec in cam.recordings:
            start = (
                datetime.fromtimestamp(round(rec.started_utc), UTC).strftime("%H:%M:%S")
                if rec.started_utc is not None
                else "-"
            )
            duration = f"{rec.duration_seconds:.1f} s" if rec.duration_seconds is not None else "-"
            if rec.prerecord_covered is None:
                preroll = "-"
            else:
                preroll = f"{rec.prerecord_covered:.1f}/{rec.prerecord_configured or 0:.0f} s"
                if rec.prerecord_short:
                    preroll += " short"
            status = "sealed" if rec.complete else "incomplete"
            if rec.recovered:
                status += ", recovered"
            table.add_row(
                cam.name,
                rec.recording_id,
                start,
                duration,
                preroll,
                str(rec.segments),
                f"{rec.bytes:,}",
                status,
            )
    console.print(table)
    for cam in result.cameras:
        console.print(
            f"{cam.name} ({cam.device_id}): event log verified, {cam.events_logged} events; "
            f"volume {cam.volume}"
        )
        for line in cam.refused:
            console.print(f"  refused: {line}")
    speedup = result.simulated_seconds / max(result.wall_seconds, 1e-9)
    console.print(
        f"site keys: {result.keys_dir}; simulated {result.simulated_seconds:.0f} s in "
        f"{result.wall_seconds:.1f} s ({speedup:.1f}x real time)"
    )
