"""Shift scenarios: the TOML format, loading and checking it, each camera's profile.

Scripted shifts: several emulated cameras, events at given times, run in fast-forward.

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

`load_scenario(path)` reads and checks a file (errors name the file, the field and
the value: `ScenarioError`); `build_profile` makes the profile one scenario camera
runs with, carrying the site's vault and dock public keys (`ensure_site_keys`).
The run itself is sim/shift.py.
"""

from __future__ import annotations

import logging
import re
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

if TYPE_CHECKING:
    from formats.profile import Profile

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
    from formats.profile import default_profile, derive_profile, load_profile, merge_sections

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
