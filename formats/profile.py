"""Configuration profiles: the TOML a hardware integrator writes, validated into typed models.

```
p = load_profile(Path("profiles/heusden.toml"))      # raises ProfileError
p = parse_profile(toml_bytes, source="flashed profile")
p = default_profile(vault_recipients=[...], trusted_docks=[...])
p.prerecord.seconds, p.video.fps, p.keys.vault_recipients  # typed, frozen
```

Every section and model forbids unknown fields (a typo such as `bitrate = 4000` must
not silently leave the default in place) and every field has a checked range. A
profile that fails gets a `ProfileError` whose `errors` list holds one line per
problem, each naming the file, the field, the value found and what is allowed:

```
heusden.toml: prerecord.seconds: value 20: allowed an integer 30..120
heusden.toml: video.bitrate: unknown field (value 4000): allowed fields in [video]: width,
  height, fps, bitrate_kbps, gop_frames, night_mode (did you mean bitrate_kbps?)
heusden.toml: line 7, column 9: TOML syntax error: Expected '=' after a key in a key/value pair
```

Sections other than [profile] and [keys] may be left out; they then take the embedded
defaults below (the values of the default profile). [profile] (name and version are
what the integrator's signature binds) and [keys] (the vault must be able to open the
footage, and a dock must be able to release it) are required.
"""

from __future__ import annotations

import codecs
import difflib
import logging
import math
import re
import tomllib
import types
import typing
import zoneinfo
from collections.abc import Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal

import annotated_types
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

log = logging.getLogger(__name__)

MAX_PROFILE_BYTES = 64 * 1024  # same bound as a profile sent over serial (formats.protocol)
MAX_VAULT_RECIPIENTS = 8
MAX_TRUSTED_DOCKS = 64
MAX_CLOCK_CORRECTION_SECONDS = 3_155_760_000  # 100 years: in effect no bound
MAX_GOP_SECONDS = 4  # longer groups of pictures make pre-roll and segment cuts too coarse
# Below ~0.01 bit per pixel x264 starts repeating whole frames after each keyframe (measured
# at 1280x720 30 fps: 100 kbit/s repeats 4 frames of every 30; 277 kbit/s none).
MIN_BITS_PER_PIXEL = 0.01

DEFAULT_PROFILE_NAME = "bodycam-default"
HEX_KEY_ALLOWED = "64 hex characters (a 32-byte public key, as `bodycam keys init` writes it)"
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]*")

ButtonGesture = Literal["press", "long-press"]
TransferMode = Literal["mass-storage", "serial"]


class ProfileError(ValueError):
    """A profile is not valid. `errors` holds one line per problem, each naming the field.

    `str()` joins them with "; " so a one-line CLI error still shows all of them.
    """

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors: list[str] = list(errors) or ["profile is not valid"]
        super().__init__("; ".join(self.errors))


class _Section(BaseModel):
    # strict: TOML is typed, so "30" for an integer or 1 for a boolean is a mistake.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _constraint(field: str, value: Any, allowed: str) -> PydanticCustomError:
    """A cross-field error, reported against `field` (a dotted path below the model)."""
    return PydanticCustomError(
        "profile_constraint",
        "{field}: value {value}: allowed {allowed}",
        {"field": field, "value": value, "allowed": allowed},
    )


class ProfileInfo(_Section):
    name: str = Field(
        min_length=1,
        max_length=64,
        description=(
            "1 to 64 characters: letters, digits, space, '.', '_' or '-', "
            "starting with a letter or digit"
        ),
    )
    version: int = Field(ge=1, le=2_147_483_647)

    @field_validator("name")
    @classmethod
    def _name_chars(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("bad characters")
        return value


class PrerecordSection(_Section):
    seconds: int = Field(default=30, ge=30, le=120)
    audio: bool = False


class RecordingSection(_Section):
    audio: bool = True
    segment_seconds: int = Field(default=10, ge=2, le=60)


class VideoSection(_Section):
    width: int = Field(default=1280, ge=160, le=3840, multiple_of=2)
    height: int = Field(default=720, ge=120, le=2160, multiple_of=2)
    fps: int = Field(default=30, ge=5, le=60)
    bitrate_kbps: int = Field(default=4000, ge=100, le=50_000)
    gop_frames: int = Field(default=30, ge=1, le=MAX_GOP_SECONDS * 60)
    night_mode: bool = False

    def min_bitrate_kbps(self) -> int:
        """The lowest bitrate at which this picture size and rate keep every frame."""
        return max(100, math.ceil(self.width * self.height * self.fps * MIN_BITS_PER_PIXEL / 1000))

    @model_validator(mode="after")
    def _bitrate_for_picture(self) -> VideoSection:
        minimum = self.min_bitrate_kbps()
        if self.bitrate_kbps < minimum:
            raise _constraint(
                "bitrate_kbps",
                self.bitrate_kbps,
                f"an integer {minimum}..50000 (at least {MIN_BITS_PER_PIXEL} bit per pixel at "
                f"{self.width}x{self.height} {self.fps} fps; below it frames are repeated)",
            )
        return self

    @model_validator(mode="after")
    def _gop_within_seconds(self) -> VideoSection:
        limit = MAX_GOP_SECONDS * self.fps
        if self.gop_frames > limit:
            raise _constraint(
                "gop_frames",
                self.gop_frames,
                f"an integer 1..{limit} (at most {MAX_GOP_SECONDS} s at {self.fps} fps; "
                f"a keyframe every second is gop_frames = fps)",
            )
        return self


class IndicatorsSection(_Section):
    led_on_record: bool = True
    beep_on_start_stop: bool = True
    beep_interval_seconds: int = Field(
        default=0, ge=0, le=3600, description="an integer 0..3600 (0 = no reminder beeps)"
    )
    vibrate: bool = True


class ButtonsSection(_Section):
    record: ButtonGesture = "press"
    stop: ButtonGesture = "long-press"


class DeviceSection(_Section):
    screen: bool = False
    storage_capacity_mb: int = Field(default=16_384, ge=64, le=4_194_304)
    storage_low_water_mb: int = Field(default=512, ge=0, le=4_194_304)
    time_zone: str = Field(
        default="Europe/Amsterdam",
        min_length=1,
        max_length=64,
        description='an IANA time zone name such as "Europe/Amsterdam" or "UTC"',
    )
    # The largest step a dock's SET_TIME may move the camera clock (PROTOCOL.md, SET_TIME).
    # Larger corrections are refused and logged on both sides: a camera whose clock is that
    # far off (a reset clock, a dock with a wrong clock) needs a person, not a silent jump
    # of the time stamped on evidence.
    max_clock_correction_seconds: int = Field(
        default=86_400,
        ge=1,
        le=MAX_CLOCK_CORRECTION_SECONDS,
        description=(
            f"an integer 1..{MAX_CLOCK_CORRECTION_SECONDS}: seconds a dock may correct the "
            "camera clock by (default 86400, one day); larger corrections are refused"
        ),
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("unknown time zone") from exc
        return value

    @model_validator(mode="after")
    def _low_water_below_capacity(self) -> DeviceSection:
        if self.storage_low_water_mb >= self.storage_capacity_mb:
            raise _constraint(
                "storage_low_water_mb",
                self.storage_low_water_mb,
                f"an integer 0..{self.storage_capacity_mb - 1} "
                f"(below storage_capacity_mb = {self.storage_capacity_mb})",
            )
        return self


def _hex_key(value: str) -> str:
    if not _HEX_KEY.fullmatch(value):
        raise ValueError("not a hex key")
    return value.lower()  # keys are compared as text; the contract's form is lowercase


HexKey = Annotated[str, AfterValidator(_hex_key)]


class KeysSection(_Section):
    vault_recipients: list[HexKey] = Field(
        min_length=1,
        max_length=MAX_VAULT_RECIPIENTS,
        description=(
            f"a list of 1..{MAX_VAULT_RECIPIENTS} vault public keys (X25519), each "
            + HEX_KEY_ALLOWED
        ),
    )
    trusted_docks: list[HexKey] = Field(
        min_length=1,
        max_length=MAX_TRUSTED_DOCKS,
        description=(
            f"a list of 1..{MAX_TRUSTED_DOCKS} dock public keys (Ed25519), each " + HEX_KEY_ALLOWED
        ),
    )

    @model_validator(mode="after")
    def _no_duplicates(self) -> KeysSection:
        for field in ("vault_recipients", "trusted_docks"):
            keys: list[str] = getattr(self, field)
            for i, key in enumerate(keys):
                if key in keys[:i]:
                    raise _constraint(f"{field}[{i}]", key, "each key once (this one is repeated)")
        return self


class TransferSection(_Section):
    mode: TransferMode = "mass-storage"


class Profile(_Section):
    """A whole camera profile. Frozen: a camera never edits its profile in place."""

    profile: ProfileInfo
    prerecord: PrerecordSection = PrerecordSection()
    recording: RecordingSection = RecordingSection()
    video: VideoSection = VideoSection()
    indicators: IndicatorsSection = IndicatorsSection()
    buttons: ButtonsSection = ButtonsSection()
    device: DeviceSection = DeviceSection()
    keys: KeysSection
    transfer: TransferSection = TransferSection()

    @model_validator(mode="after")
    def _segment_holds_a_gop(self) -> Profile:
        # Segments are cut at keyframes: a segment shorter than a group of pictures
        # would be cut at every keyframe and miss its configured length.
        fps, gop = self.video.fps, self.video.gop_frames
        minimum = math.ceil(gop / fps)
        if self.recording.segment_seconds < minimum:
            raise _constraint(
                "recording.segment_seconds",
                self.recording.segment_seconds,
                f"an integer {max(2, minimum)}..60 (a segment holds at least one group of "
                f"pictures: video.gop_frames = {gop} at {fps} fps)",
            )
        return self

    def prerecord_defaults(self) -> list[str]:
        """A note per pre-record setting the file leaves to the default (privacy-relevant)."""
        section = self.prerecord
        set_here = section.model_fields_set if "prerecord" in self.model_fields_set else set()
        notes = []
        for name in ("seconds", "audio"):
            if name not in set_here:
                value = getattr(section, name)
                shown = str(value).lower() if isinstance(value, bool) else str(value)
                notes.append(f"note: [prerecord] {name} is not set; the default {shown} is used")
        return notes

    def placeholder_key_warnings(self) -> list[str]:
        """One line per example key in [keys]: such a camera's footage is lost for good."""
        lines = []
        for k in self.keys.vault_recipients:
            if str(k).lower() in PLACEHOLDER_KEYS:
                lines.append(
                    f"WARNING: vault recipient {str(k)[:16]}... is an example key whose private "
                    "half was thrown away: footage sealed for it can never be opened. Put the "
                    "site's vault.pub (from `bodycam keys init DIR`) in [keys] vault_recipients."
                )
        for k in self.keys.trusted_docks:
            if str(k).lower() in PLACEHOLDER_KEYS:
                lines.append(
                    f"WARNING: trusted dock {str(k)[:16]}... is an example key whose private "
                    "half was thrown away: no dock can release footage with it. Put the site's "
                    "dock.pub in [keys] trusted_docks."
                )
        return lines

    def summary(self) -> str:
        """One line for `bodycam profile validate` and logs (no secrets in a profile)."""
        v, pre, rec = self.video, self.prerecord, self.recording
        return (
            f"profile {self.profile.name!r} version {self.profile.version}: "
            f"{v.width}x{v.height} {v.fps} fps {v.bitrate_kbps} kbit/s, keyframe every "
            f"{v.gop_frames} frames{', night mode' if v.night_mode else ''}; "
            f"pre-record {pre.seconds} s (audio {'on' if pre.audio else 'off'}); recording "
            f"audio {'on' if rec.audio else 'off'}, {rec.segment_seconds} s segments; "
            f"{len(self.keys.vault_recipients)} vault recipient(s), "
            f"{len(self.keys.trusted_docks)} trusted dock(s); transfer {self.transfer.mode}"
        )


# Public keys in the example profiles (profiles/*.toml) whose private halves were thrown
# away: a camera flashed with one seals footage nobody can ever open or release.
PLACEHOLDER_KEYS = frozenset(
    {
        "8dc29b5e638401ce06e805c474ab0c5020bc8d4a2abdb8b7c98ddf531e5f1437",
        "c5b4c1be0b1af460518bbf99bbd761222444a74fff2a679682e3dd4031f05142",
        "712cb9680cdc2adf0b0192de72094f393f639b3fd34bf960c94cdc56c6890697",
        "39b6d8c5cd13a4c831009a7ad1bc8e91771deef1bc213bc34819deb1f50271ed",
        "74092ace01c162d88e88d702e1dc6b4b2f9d4bfdae60aacf6b3667fef9c4cbd6",
    }
)


# --- loading ---------------------------------------------------------------------------


def load_profile(path: Path | str) -> Profile:
    """Read and validate a profile file; raises ProfileError (or OSError if unreadable)."""
    path = Path(path)
    with path.open("rb") as f:
        # Bounded read: a profile is small; anything larger is not a profile.
        data = f.read(MAX_PROFILE_BYTES + 1)
    return parse_profile(data, source=str(path))


def parse_profile(data: bytes | str, *, source: str = "<profile>") -> Profile:
    """Validate profile TOML (bytes or text); raises ProfileError naming `source`."""
    if isinstance(data, bytes):
        if len(data) > MAX_PROFILE_BYTES:
            raise ProfileError(
                [f"{source}: file is larger than {MAX_PROFILE_BYTES} bytes: not a profile"]
            )
        if data.startswith(codecs.BOM_UTF8):
            raise ProfileError(
                [
                    f"{source}: line 1: starts with a UTF-8 byte order mark (BOM); "
                    "save the file as UTF-8 without BOM"
                ]
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise ProfileError(
                [f"{source}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x})"]
            ) from None
    else:
        text = data
        if len(text) > MAX_PROFILE_BYTES:
            raise ProfileError(
                [f"{source}: file is larger than {MAX_PROFILE_BYTES} bytes: not a profile"]
            )
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError([_toml_error(source, exc, text)]) from None
    return _validate(raw, source)


def default_profile(
    vault_recipients: Sequence[str | bytes],
    trusted_docks: Sequence[str | bytes],
) -> Profile:
    """The embedded default profile (for demos and tests) with a site's public keys.

    Named "bodycam-default", version 1; every other field has the defaults of the models.
    """
    data = {
        "profile": {"name": DEFAULT_PROFILE_NAME, "version": 1},
        "keys": {
            "vault_recipients": [_as_hex(k) for k in vault_recipients],
            "trusted_docks": [_as_hex(k) for k in trusted_docks],
        },
    }
    return _validate(data, "default profile")


def profile_toml(profile: Profile) -> bytes:
    """The TOML bytes a profile object stands for (what is signed and flashed)."""
    import tomli_w

    return tomli_w.dumps(profile.model_dump(mode="json", exclude_none=True)).encode()


def merge_sections(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` applied: nested tables merged, other values replaced."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_sections(merged[key], value)
        else:
            merged[key] = value
    return merged


def derive_profile(
    base: Profile, changes: dict[str, Any], *, source: str = "derived profile"
) -> tuple[bytes, Profile]:
    """`base` with `changes` (nested sections) applied, validated again; (TOML, parsed)."""
    import tomli_w

    data = merge_sections(base.model_dump(mode="json", exclude_none=True), changes)
    raw = tomli_w.dumps(data).encode()
    return raw, parse_profile(raw, source=source)


def _as_hex(key: str | bytes) -> str:
    return key.hex() if isinstance(key, bytes) else key


def _validate(raw: dict[str, Any], source: str) -> Profile:
    try:
        return Profile.model_validate(raw)
    except ValidationError as exc:
        errors = [_format_error(source, err) for err in exc.errors()]
        log.debug("profile %s refused: %d error(s)", source, len(errors))
        raise ProfileError(errors) from None


# --- error messages --------------------------------------------------------------------

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_END = re.compile(r"\s*\(at end of document\)\s*$")


def _toml_error(source: str, exc: tomllib.TOMLDecodeError, text: str) -> str:
    message = str(exc)
    where = _TOML_POSITION.search(message)
    if where:
        message = message[: where.start()]
        return (
            f"{source}: line {where.group(1)}, column {where.group(2)}: "
            f"TOML syntax error: {message}"
        )
    end = _TOML_END.search(message)
    if end:
        last = text.count("\n") + (0 if text.endswith("\n") else 1)
        return (
            f"{source}: line {max(last, 1)} (end of file): "
            f"TOML syntax error: {message[: end.start()]}"
        )
    return f"{source}: TOML syntax error: {message}"


def _format_error(source: str, err: Any) -> str:
    loc: tuple[Any, ...] = tuple(err.get("loc", ()))
    kind: str = err.get("type", "")
    ctx: dict[str, Any] = err.get("ctx") or {}
    if kind == "profile_constraint":
        path = _path(loc) + ("." if loc else "") + str(ctx["field"])
        return f"{source}: {path}: value {_show(ctx['value'])}: allowed {ctx['allowed']}"
    path = _path(loc) or "(top level)"
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        names = list(parent.model_fields) if parent else []
        where = f"[{_path(loc[:-1])}]" if loc[:-1] else "a profile"
        what = "field" if loc[:-1] else "section"
        hint = difflib.get_close_matches(str(loc[-1]), names, n=1)
        suggestion = f" (did you mean {hint[0]}?)" if hint else ""
        return (
            f"{source}: {path}: unknown {what} (value {_show(err.get('input'))}): "
            f"allowed {what}s in {where}: {', '.join(names)}{suggestion}"
        )
    allowed = _allowed(loc)
    if kind == "missing":
        return f"{source}: {path}: missing: allowed {allowed} (required)"
    return f"{source}: {path}: value {_show(err.get('input'))}: allowed {allowed}"


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = Profile
    for part in loc:
        if model is None or isinstance(part, int):
            return None
        info = model.model_fields.get(str(part))
        if info is None:
            return None
        model = _as_model(info.annotation)
    return model


def _as_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _field_at(loc: tuple[Any, ...]) -> tuple[FieldInfo | None, bool]:
    """The field a location names, and whether the location is an item of that list field."""
    model: type[BaseModel] | None = Profile
    info: FieldInfo | None = None
    item = False
    for part in loc:
        if isinstance(part, int):
            item = True
            continue
        if model is None:
            return None, False
        info = model.model_fields.get(str(part))
        if info is None:
            return None, False
        item = False
        model = _as_model(info.annotation)
    return info, item


def _allowed(loc: tuple[Any, ...]) -> str:
    if not loc:
        return "a TOML document with sections " + ", ".join(
            f"[{name}]" for name in Profile.model_fields
        )
    info, item = _field_at(loc)
    if info is None:
        return "a value of the documented type"
    if item:
        return HEX_KEY_ALLOWED
    if info.description:
        return info.description
    return _describe(info)


def _describe(info: FieldInfo) -> str:
    annotation = info.annotation
    model = _as_model(annotation)
    if model is not None:
        return f"a table with fields {', '.join(model.model_fields)}"
    if annotation is bool:
        return "true or false"
    if typing.get_origin(annotation) is Literal:
        return " or ".join(f'"{choice}"' for choice in typing.get_args(annotation))
    if annotation is int:
        low = high = step = None
        for meta in info.metadata:
            if isinstance(meta, annotated_types.Ge):
                low = meta.ge
            elif isinstance(meta, annotated_types.Le):
                high = meta.le
            elif isinstance(meta, annotated_types.MultipleOf):
                step = meta.multiple_of
        text = f"an integer {low}..{high}"
        return text + (f", a multiple of {step}" if step else "")
    if annotation is str:
        return "a string"
    if isinstance(annotation, types.GenericAlias):
        return "a list"
    return "a value of the documented type"


def _show(value: Any) -> str:
    """A value as it would look in TOML, shortened: the user finds it in their file."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    elif isinstance(value, (datetime, date, time)):
        text = value.isoformat()
    elif isinstance(value, list):
        text = "[" + ", ".join(_show(v) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k} = {_show(v)}" for k, v in value.items()) + "}"
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
