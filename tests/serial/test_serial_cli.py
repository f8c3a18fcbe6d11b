"""`bodycam profile sign|flash|read` against a camera served on a real pty."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from serial_support import FakeCamera, Keys, profile_toml

from dock import profile_cli
from firmware.control import CameraControlServer
from formats.profile_sign import ProfileSignatureError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bodycam")
    sub = parser.add_subparsers(dest="command")
    profile_cli.add_subcommands(sub)
    return parser


def _run(*argv: str) -> int:
    args = _parser().parse_args(list(argv))
    return int(args.func(args))


@pytest.fixture
def files(tmp_path: Path, keys: Keys) -> dict[str, Path]:
    out = {
        "integrator": tmp_path / "integrator.key",
        "dock": tmp_path / "dock.key",
        "profile": tmp_path / "site.toml",
    }
    keys.integrator.save(out["integrator"])
    keys.dock.save(out["dock"])
    out["profile"].write_bytes(profile_toml(2, [keys.dock.public_bytes()]))
    return out


def test_sign_flash_read(
    files: dict[str, Path],
    server: CameraControlServer,
    keys: Keys,
    camera: FakeCamera,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert server.path is not None
    assert _run("profile", "sign", str(files["profile"]), "--key", str(files["integrator"])) == 0
    sig = files["profile"].with_name("site.toml.sig")
    assert sig.exists()
    assert "version 2" in capsys.readouterr().out
    device = keys.device.public_bytes().hex()
    assert (
        _run(
            "profile",
            "flash",
            "--port",
            server.path,
            str(files["profile"]),
            "--dock-key",
            str(files["dock"]),
            "--device-public",
            device,
        )
        == 0
    )
    flashed = capsys.readouterr().out
    assert "flashed profile 'test-site' version 2 to BC-1A2B3C4D" in flashed
    assert "read-back matches" in flashed
    assert camera.activated == [files["profile"].read_bytes()]
    monkeypatch.setenv(profile_cli.DOCK_KEY_ENV, str(files["dock"]))
    assert _run("profile", "read", "--port", server.path, "--device-public", device) == 0
    shown = capsys.readouterr().out
    assert "version:  2" in shown and keys.integrator.public_bytes().hex() in shown
    assert 'name = "test-site"' in shown


def test_flash_refuses_an_unsigned_file_before_connecting(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ProfileSignatureError, match="unsigned"):
        _run(
            "profile",
            "flash",
            "--port",
            "/nonexistent/port",
            str(files["profile"]),
            "--dock-key",
            str(files["dock"]),
        )


def test_flash_wrong_device_key_and_missing_dock_key(
    files: dict[str, Path],
    server: CameraControlServer,
    keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dock.link import AuthFailed

    assert server.path is not None
    _run("profile", "sign", str(files["profile"]), "--key", str(files["integrator"]))
    with pytest.raises(AuthFailed, match="did not prove"):
        _run(
            "profile",
            "flash",
            "--port",
            server.path,
            str(files["profile"]),
            "--dock-key",
            str(files["dock"]),
            "--device-public",
            keys.other_dock.public_bytes().hex(),
        )
    monkeypatch.delenv(profile_cli.DOCK_KEY_ENV, raising=False)
    with pytest.raises(ValueError, match="--dock-key"):
        _run("profile", "read", "--port", server.path)


def test_commands_join_an_existing_profile_group() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    group = sub.add_parser("profile")
    profile_sub = group.add_subparsers(dest="profile_command")
    profile_sub.add_parser("validate")  # what formats/profile_cli.py registers
    profile_cli.add_subcommands(sub)
    assert set(profile_sub.choices) == {"validate", "sign", "flash", "read"}


def test_sign_refuses_a_key_that_is_not_the_integrator_key(files: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match=r"is a dock key; profiles are signed with the integrator"):
        _run("profile", "sign", str(files["profile"]), "--key", str(files["dock"]))
    assert not files["profile"].with_name("site.toml.sig").exists()


def test_sign_with_a_public_key_says_so_without_a_permission_warning(
    files: dict[str, Path], keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    from crypto.errors import KeyFileError
    from crypto.keys import write_public_key

    public = files["profile"].with_name("integrator.pub")
    write_public_key(public, keys.integrator.public_bytes(), "integrator")
    public.chmod(0o644)
    with pytest.raises(KeyFileError, match="is a public key file; this needs the private key"):
        _run("profile", "sign", str(files["profile"]), "--key", str(public))
    assert "readable by others" not in caplog.text


def test_flash_with_a_cut_signature_names_the_signature_file(
    files: dict[str, Path], server: CameraControlServer
) -> None:
    assert server.path is not None
    _run("profile", "sign", str(files["profile"]), "--key", str(files["integrator"]))
    sig = files["profile"].with_name("site.toml.sig")
    cut = sig.with_name("cut.sig")
    cut.write_bytes(sig.read_bytes()[:100])
    with pytest.raises(ProfileSignatureError, match=rf"^{cut}: signature file is malformed"):
        _run(
            "profile",
            "flash",
            "--port",
            server.path,
            str(files["profile"]),
            "--sig",
            str(cut),
            "--dock-key",
            str(files["dock"]),
        )


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_timeout_must_be_a_positive_number_of_seconds(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        _run("profile", "read", "--port", "/dev/null", "--timeout", value)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--timeout" in err and "retries" not in err
    if value != "soon":
        assert (
            f"argument --timeout: must be more than 0 and at most 3600 seconds, got {value}\n"
            in err
        )
        assert "exclusive" not in err and "between" not in err


def test_without_device_public_the_note_says_where_the_registered_key_is(
    files: dict[str, Path], server: CameraControlServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert server.path is not None
    assert _run("profile", "read", "--port", server.path, "--dock-key", str(files["dock"])) == 0
    err = capsys.readouterr().err
    assert "note: trusting the device key camera BC-1A2B3C4D announces" in err
    assert "pass --device-public with its registered key" in err
    assert "DEVICE.json saved when the camera was provisioned" in err
    assert "back office's camera registry" in err
