"""formats.profile and `bodycam profile validate`: good profiles pass, bad ones name the field.

Each file in tests/firmware/bad_profiles/ starts with `# expect: MESSAGE`; loading it must
give an error line that reads `<file>: MESSAGE...` (file, field, value, allowed range).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pydantic
import pytest
import tomli_w

from formats import profile_cli
from formats.profile import (
    MAX_PROFILE_BYTES,
    Profile,
    ProfileError,
    default_profile,
    load_profile,
    parse_profile,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "profiles").glob("*.toml"))
BAD_DIR = Path(__file__).parent / "bad_profiles"
BAD = sorted(BAD_DIR.glob("*.toml"))
VAULT = "8dc29b5e638401ce06e805c474ab0c5020bc8d4a2abdb8b7c98ddf531e5f1437"
DOCK = "712cb9680cdc2adf0b0192de72094f393f639b3fd34bf960c94cdc56c6890697"
MINIMAL = f"""\
[profile]
name = "minimal"
version = 2
[keys]
vault_recipients = ["{VAULT}"]
trusted_docks = ["{DOCK}"]
"""


def expected_message(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode("utf-8-sig")
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: MESSAGE'"
    return first[len("# expect: ") :]


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bodycam")
    sub = parser.add_subparsers(dest="command")
    profile_cli.add_subcommands(sub)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def test_the_collections_are_there() -> None:
    assert {p.name for p in SHIPPED} >= {"heusden.toml", "utrecht.toml"}
    assert len(BAD) >= 25


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_profiles_are_valid(path: Path) -> None:
    profile = load_profile(path)
    assert isinstance(profile, Profile)
    assert profile.video.gop_frames == profile.video.fps  # a keyframe every second


def test_heusden_and_utrecht_pre_record() -> None:
    assert load_profile(ROOT / "profiles" / "heusden.toml").prerecord.seconds == 30
    assert load_profile(ROOT / "profiles" / "utrecht.toml").prerecord.seconds == 120


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_bad_profile_names_file_field_value_and_range(path: Path) -> None:
    expect = expected_message(path)
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    errors = caught.value.errors
    assert any(f"{path}: {expect}" in line for line in errors), errors
    assert all(line.startswith(f"{path}: ") and "\n" not in line for line in errors)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_cli_accepts_a_valid_profile(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["profile", "validate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and out.startswith(f"{path}: valid: profile ")
    # The shipped profiles hold example keys: only the warnings about them reach stderr.
    assert all(line.startswith(f"{path}: WARNING: ") for line in err.splitlines())


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_cli_prints_every_error(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["profile", "validate", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{path}: {expected_message(path)}" in err
    assert err.rstrip("\n").splitlines()[-1].startswith(f"{path}: not valid (")


def test_every_error_is_reported_not_just_the_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = MINIMAL + "[prerecord]\nseconds = 10\n[video]\nfps = 500\nbitrat = 3\n"
    path = tmp_path / "three.toml"
    path.write_text(text)
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    assert len(caught.value.errors) == 3
    assert run_cli(["profile", "validate", str(path)]) == 1
    err = capsys.readouterr().err
    for field in ("prerecord.seconds: value 10", "video.fps: value 500", "video.bitrat: unknown"):
        assert f"{path}: {field}" in err
    assert f"{path}: not valid (3 errors)" in err


def test_error_text_is_one_line_with_all_errors() -> None:
    with pytest.raises(ProfileError) as caught:
        parse_profile(b"[profile]\nname = 'x'\n", source="flashed")
    message = str(caught.value)
    assert "\n" not in message
    assert "flashed: profile.version: missing" in message and "flashed: keys: missing" in message
    assert isinstance(caught.value, ValueError)  # profile_store and the CLI rely on this


def test_missing_sections_take_the_embedded_defaults() -> None:
    parsed = parse_profile(MINIMAL, source="minimal")
    default = default_profile([VAULT], [DOCK])
    assert default.profile.name == "bodycam-default" and default.profile.version == 1
    assert parsed.model_dump(exclude={"profile"}) == default.model_dump(exclude={"profile"})
    assert parsed.profile.name == "minimal" and parsed.profile.version == 2
    assert parsed.prerecord.seconds == 30 and parsed.video.width == 1280
    assert parsed.buttons.stop == "long-press" and parsed.transfer.mode == "mass-storage"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_profiles_round_trip_through_toml(path: Path) -> None:
    profile = load_profile(path)
    raw = tomli_w.dumps(profile.model_dump(mode="json", exclude_none=True)).encode()
    assert parse_profile(raw, source="round trip") == profile


def test_default_profile_takes_bytes_or_hex_and_lowercases_keys() -> None:
    a = default_profile([bytes.fromhex(VAULT)], [DOCK.upper()])
    assert a.keys.vault_recipients == [VAULT] and a.keys.trusted_docks == [DOCK]
    with pytest.raises(ProfileError, match=r"default profile: keys.vault_recipients: value \[\]"):
        default_profile([], [DOCK])


def test_profiles_are_frozen() -> None:
    profile = default_profile([VAULT], [DOCK])
    with pytest.raises(pydantic.ValidationError):
        setattr(profile.prerecord, "seconds", 5)  # noqa: B010 (the assignment is the test)


def test_oversized_input_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.toml"
    path.write_bytes(MINIMAL.encode() + b"#" * MAX_PROFILE_BYTES)
    with pytest.raises(ProfileError, match=f"{path}: file is larger than {MAX_PROFILE_BYTES}"):
        load_profile(path)


def test_unreadable_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        load_profile(tmp_path / "absent.toml")


def test_validate_joins_an_existing_profile_group() -> None:
    # dock.profile_cli may have created `profile` (sign/flash/read) before us.
    parser = argparse.ArgumentParser(prog="bodycam")
    sub = parser.add_subparsers(dest="command")
    group = sub.add_parser("profile")
    group.add_subparsers(dest="profile_command").add_parser("sign")
    profile_cli.add_subcommands(sub)
    args = parser.parse_args(["profile", "validate", "x.toml"])
    assert args.func is profile_cli.cmd_validate and args.file == Path("x.toml")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_validate_warns_loudly_about_the_example_keys(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped profiles carry keys nobody holds: validate says footage would be lost."""
    assert profile_cli.cmd_validate(argparse.Namespace(file=path)) == 0
    captured = capsys.readouterr()
    assert "valid:" in captured.out
    assert f"{path}: WARNING: vault recipient" in captured.err
    assert "can never be opened" in captured.err


def test_validate_is_quiet_about_a_site_s_own_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from crypto.keys import SigningKey, VaultKey

    text = MINIMAL.replace(VAULT, VaultKey.generate().public_bytes().hex()).replace(
        DOCK, SigningKey.generate("dock").public_bytes().hex()
    )
    path = tmp_path / "site.toml"
    path.write_text(text + "[prerecord]\nseconds = 30\naudio = false\n")
    assert profile_cli.cmd_validate(argparse.Namespace(file=path)) == 0
    assert capsys.readouterr().err == ""


def test_validate_says_which_pre_record_defaults_were_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "no-prerecord.toml"
    path.write_text(MINIMAL)
    assert profile_cli.cmd_validate(argparse.Namespace(file=path)) == 0
    err = capsys.readouterr().err
    assert f"{path}: note: [prerecord] seconds is not set; the default 30 is used" in err
    assert f"{path}: note: [prerecord] audio is not set; the default false is used" in err
    path.write_text(MINIMAL + "[prerecord]\nseconds = 60\n")
    assert profile_cli.cmd_validate(argparse.Namespace(file=path)) == 0
    err = capsys.readouterr().err
    assert "seconds is not set" not in err and "audio is not set; the default false" in err
