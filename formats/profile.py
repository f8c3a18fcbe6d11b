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

The model itself (sections, fields, ranges) is formats/profile_model.py. Sections
other than [profile] and [keys] may be left out; they then take the model's
defaults (the values of the default profile). [profile] (name and version are
what the integrator's signature binds) and [keys] (the vault must be able to open the
footage, and a dock must be able to release it) are required.
"""

from __future__ import annotations

import codecs
import difflib
import logging
import re
import tomllib
import types
import typing
from collections.abc import Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal

import annotated_types
from pydantic import (
    BaseModel,
    ValidationError,
)
from pydantic.fields import FieldInfo

from formats.profile_model import (
    DEFAULT_PROFILE_NAME,
    HEX_KEY_ALLOWED,
    MAX_PROFILE_BYTES,
    Profile,
    ProfileError,
)

log = logging.getLogger(__name__)

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


__all__ = [
    "MAX_PROFILE_BYTES",
    "Profile",
    "ProfileError",
    "default_profile",
    "derive_profile",
    "load_profile",
    "merge_sections",
    "parse_profile",
    "profile_toml",
]
