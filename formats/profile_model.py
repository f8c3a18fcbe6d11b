"""The configuration profile's typed model: its sections, fields, ranges and defaults.

Every section forbids unknown fields and every field has a checked range; loading a
TOML file into it and turning a failure into one line per problem is formats/profile.py.
"""

from __future__ import annotations

import math
import re
import zoneinfo
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

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
