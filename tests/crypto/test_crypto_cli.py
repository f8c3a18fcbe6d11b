"""`keys init|show` and `vault verify|decrypt` handlers, through a parser built from
add_subcommands (as the top-level `bodycam` CLI does)."""

from __future__ import annotations

import argparse
import json
import os
import stat
from pathlib import Path

import pytest
from crypto_support import DEVICE_ID, CryptoKeys, MakeRecording, Sealed

import crypto.cli
import vault.cli
from crypto.errors import Tampered, WrongKey
from crypto.keys import VaultKey, write_public_key


def run(*argv: str | Path) -> int:
    parser = argparse.ArgumentParser(prog="bodycam")
    sub = parser.add_subparsers(dest="command", required=True)
    crypto.cli.add_subcommands(sub)
    vault.cli.add_subcommands(sub)
    args = parser.parse_args([str(a) for a in argv])
    return int(args.func(args))


@pytest.fixture
def volume_recording(make_recording: MakeRecording, ckeys: CryptoKeys, tmp_path: Path) -> Sealed:
    """A finished recording on a camera volume with DEVICE.json, like a docked camera's."""
    volume = tmp_path / "volume"
    sealed = make_recording(root=volume / "recordings")
    (volume / "DEVICE.json").write_text(
        json.dumps(
            {
                "device_id": DEVICE_ID,
                "public_key": ckeys.device.public_bytes().hex(),
                "model": "sim",
            }
        )
    )
    return sealed


@pytest.fixture
def vault_key_file(ckeys: CryptoKeys, tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "vault.key"
    path.parent.mkdir()
    VaultKey.from_private_bytes(ckeys.vault.private_bytes()).save(path)
    return path


def test_keys_init_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site"
    assert run("keys", "init", site) == 0
    out = capsys.readouterr().out
    assert "vault" in out and "trusted_docks" in out
    assert len(list(site.iterdir())) == 6
    vault_pub = json.loads((site / "vault.pub").read_text())["public"]
    assert vault_pub in out
    with pytest.raises(FileExistsError):
        run("keys", "init", site)
    assert run("keys", "show", site / "vault.key", site / "dock.pub") == 0
    out = capsys.readouterr().out
    private = json.loads((site / "vault.key").read_text())["private"]
    assert vault_pub in out and private not in out
    with pytest.raises(SystemExit) as exc:
        run("keys")
    assert exc.value.code == 2


def test_verify_with_device_json_and_explicit_keys(
    volume_recording: Sealed,
    ckeys: CryptoKeys,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = volume_recording.folder
    # DEVICE.json alone proves the signatures match it, not which camera recorded it.
    assert run("vault", "verify", folder) == 1
    out = capsys.readouterr().out
    assert out.startswith("UNPROVEN ") and "signature valid, origin NOT checked" in out
    assert run("vault", "verify", folder, "--trust-device-json") == 0
    out = capsys.readouterr().out
    assert out.startswith("OK ") and "3 segments" in out and "complete" in out
    assert "origin NOT checked (key from " in out
    assert run("vault", "verify", folder.parent, "--trust-device-json") == 0  # a folder
    assert volume_recording.recording_id in capsys.readouterr().out
    assert run("vault", "verify", folder, "--device-key", ckeys.device.public_bytes().hex()) == 0
    write_public_key(tmp_path / "device.pub", ckeys.device.public_bytes(), "device")
    assert run("vault", "verify", folder, "--device-key", tmp_path / "device.pub") == 0
    capsys.readouterr()
    assert (
        run("vault", "verify", folder, "--device-key", ckeys.other_device.public_bytes().hex()) == 1
    )
    assert "FAILED" in (out := capsys.readouterr().out) and "NotSignedByDevice" in out


def test_verify_reports_each_problem_and_exits_non_zero(
    volume_recording: Sealed,
    make_recording: MakeRecording,
    ckeys: CryptoKeys,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = volume_recording.folder
    seg = volume_recording.seg(1)
    data = bytearray(seg.read_bytes())
    data[-1] ^= 1
    seg.write_bytes(bytes(data))
    unfinished = make_recording(finish=False, root=folder.parent)
    lone = make_recording(root=tmp_path / "elsewhere")  # no DEVICE.json two levels up
    assert (
        run("vault", "verify", folder, unfinished.folder, lone.folder, "--trust-device-json") == 1
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"FAILED {folder}: Tampered: seg-000001.bcs")
    assert lines[1].startswith(f"INCOMPLETE {unfinished.folder}")
    assert (
        lines[2].startswith(f"FAILED {lone.folder}: DeviceKeyError") and "--device-key" in lines[2]
    )
    # DEVICE.json describing another camera than the recording names.
    info = folder.parent.parent / "DEVICE.json"
    doc = json.loads(info.read_text())
    info.write_text(json.dumps({**doc, "device_id": "BC-00000000"}))
    assert run("vault", "verify", unfinished.folder, "--trust-device-json") == 1
    assert "BC-00000000" in capsys.readouterr().out


def test_decrypt_writes_the_plaintext_only_on_success(
    volume_recording: Sealed,
    vault_key_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "recording.ts"
    assert (
        run(
            "vault",
            "decrypt",
            volume_recording.folder,
            "--trust-device-json",
            "--key",
            vault_key_file,
            "--out",
            out,
        )
        == 0
    )
    assert out.read_bytes() == volume_recording.plaintext
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert "3 segments" in capsys.readouterr().out
    with pytest.raises(FileExistsError, match="--overwrite"):
        run(
            "vault",
            "decrypt",
            volume_recording.folder,
            "--trust-device-json",
            "--key",
            vault_key_file,
            "--out",
            out,
        )
    assert (
        run(
            "vault",
            "decrypt",
            volume_recording.folder,
            "--trust-device-json",
            "--key",
            vault_key_file,
            "--out",
            out,
            "--overwrite",
        )
        == 0
    )
    assert os.listdir(out_dir) == ["recording.ts"]


def test_decrypt_failures_leave_nothing_behind(
    volume_recording: Sealed, tmp_path: Path, vault_key_file: Path
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "recording.ts"
    other = tmp_path / "other.key"
    VaultKey.generate().save(other)
    with pytest.raises(WrongKey):
        run(
            "vault",
            "decrypt",
            volume_recording.folder,
            "--trust-device-json",
            "--key",
            other,
            "--out",
            out,
        )
    assert os.listdir(out_dir) == []
    # Tampering in the last segment: earlier segments decrypt fine, yet no plaintext stays.
    seg = volume_recording.seg(2)
    data = bytearray(seg.read_bytes())
    data[-3] ^= 0x10
    seg.write_bytes(bytes(data))
    with pytest.raises(Tampered):
        run(
            "vault",
            "decrypt",
            volume_recording.folder,
            "--trust-device-json",
            "--key",
            vault_key_file,
            "--out",
            out,
        )
    assert os.listdir(out_dir) == []
    with pytest.raises(SystemExit) as exc:
        run(
            "vault", "decrypt", volume_recording.folder, "--trust-device-json", "--out", out
        )  # no --key
    assert exc.value.code == 2
