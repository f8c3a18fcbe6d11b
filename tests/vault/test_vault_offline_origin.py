"""Offline `vault verify PATH` / `vault decrypt PATH`: origin is what the signed camera
registry says, never what a DEVICE.json on a handed-over volume claims."""

from __future__ import annotations

from pathlib import Path

import pytest

from bodycam_cli import main
from crypto.device_info import device_id_for, device_info_bytes
from crypto.keys import SigningKey, VaultKey, write_public_key
from crypto.seal import RecordingSealer
from formats.registry import MAX_REGISTRY, publish_registry
from store import open_store

T0 = 1_795_371_300.0
REGISTERED = SigningKey.generate(kind="device")
DEVICE = device_id_for(REGISTERED.public_bytes())
REGISTRY_KEY = SigningKey.generate(kind="registry")
VAULT = VaultKey.generate()


def volume(root: Path, signer: SigningKey, device_id: str = DEVICE) -> Path:
    """A camera volume: DEVICE.json naming `device_id` with `signer`'s key, one recording."""
    rid = "20261122T181500Z-0001"
    folder = root / "recordings" / rid
    root.mkdir(parents=True)
    (root / "DEVICE.json").write_bytes(device_info_bytes(device_id, signer.public_bytes(), "BC-1"))
    sealer = RecordingSealer(folder, device_id, rid, signer, [VAULT.public_bytes()], T0, 64)
    with sealer.begin_segment(0, "video/mp2t", 0, T0) as seg:
        seg.write(b"\x47" * 1000)
    sealer.finish(T0 + 10)
    return folder


def registry(tmp_path: Path) -> tuple[Path, Path]:
    """The back office's signed registry listing the registered camera, and its key file."""
    store = open_store(f"file://{tmp_path / 'store'}")
    key, _ = publish_registry(
        store,
        REGISTRY_KEY,
        version=3,
        site="default",
        cameras=[
            {
                "device_id": DEVICE,
                "public_key": REGISTERED.public_bytes().hex(),
                "municipality": "heusden",
                "model": "BC-1",
            }
        ],
        now=T0,
    )
    path = tmp_path / "cameras-0000000003.json"
    path.write_bytes(store.get_bytes(key, MAX_REGISTRY))
    pub = tmp_path / "registry.pub"
    write_public_key(pub, REGISTRY_KEY.public_bytes(), "registry")
    return path, pub


@pytest.fixture(autouse=True)
def no_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No back office on this machine unless a test sets one up."""
    monkeypatch.setenv("BODYCAM_VAULT_HOME", str(tmp_path / "no-site"))


def test_a_forged_volume_offline_is_not_reported_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    forged = volume(tmp_path / "forged", SigningKey.generate(kind="device"))
    assert main(["vault", "verify", str(forged)]) != 0
    (line,) = capsys.readouterr().out.splitlines()
    assert not line.startswith("OK") and "signature valid, origin NOT checked" in line, line
    assert DEVICE in line
    # Accepting the DEVICE.json is the operator's explicit choice, and still said.
    assert main(["vault", "verify", str(forged), "--trust-device-json"]) == 0
    assert "origin NOT checked" in capsys.readouterr().out
    # No plaintext either, unless asked for in so many words.
    VAULT.save(tmp_path / "vault.key")
    out = tmp_path / "out.ts"
    argv = ["vault", "decrypt", str(forged), "--key", str(tmp_path / "vault.key")]
    assert main([*argv, "--out", str(out)]) != 0
    assert "origin NOT checked" in capsys.readouterr().err and not out.exists()
    assert main([*argv, "--out", str(out), "--trust-device-json"]) == 0
    assert out.read_bytes() == b"\x47" * 1000


def test_against_the_registry_the_forgery_is_refused_naming_the_mismatch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg, pub = registry(tmp_path)
    forger = SigningKey.generate(kind="device")
    forged = volume(tmp_path / "forged", forger)
    genuine = volume(tmp_path / "genuine", REGISTERED)
    origin = ["--registry", str(reg), "--registry-key", str(pub)]
    assert main(["vault", "verify", str(forged), *origin]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"FAILED {forged}: OriginRefused"), line
    assert f"is not the key camera registry v3 ({reg}) registers for {DEVICE}" in line
    assert forger.public_bytes()[:4].hex() in line and REGISTERED.public_bytes()[:4].hex() in line
    # Without the DEVICE.json the signature itself is what fails against the registered key.
    (forged.parent.parent / "DEVICE.json").unlink()
    assert main(["vault", "verify", str(forged), *origin]) == 1
    assert "OriginRefused: not signed by the registered camera" in capsys.readouterr().out
    assert main(["vault", "verify", str(genuine), *origin]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"OK {genuine}") and f"the key camera registry v3 ({reg})" in line
    # Nor is it decrypted: the same check comes first.
    VAULT.save(tmp_path / "vault.key")
    out = tmp_path / "out.ts"
    decrypt = ["vault", "decrypt", "--key", str(tmp_path / "vault.key"), "--out", str(out)]
    assert main([*decrypt, str(genuine), *origin]) == 0 and out.exists()
    out.unlink()
    capsys.readouterr()
    (forged.parent.parent / "DEVICE.json").write_bytes(
        device_info_bytes(DEVICE, forger.public_bytes(), "BC-1")
    )
    assert main([*decrypt, str(forged), *origin, "--trust-device-json"]) != 0
    assert "origin refused" in capsys.readouterr().err and not out.exists()
    # --trust-device-json changes nothing when there is a registry to ask.
    assert main(["vault", "verify", str(forged), *origin, "--trust-device-json"]) == 1
    capsys.readouterr()
    # A camera the registry does not list.
    stranger = SigningKey.generate(kind="device")
    other = volume(tmp_path / "other", stranger, device_id_for(stranger.public_bytes()))
    assert main(["vault", "verify", str(other), *origin]) == 1
    assert "which camera registry v3" in capsys.readouterr().out
    # A registry not signed by the back office's key is no registry.
    wrong = tmp_path / "wrong.pub"
    write_public_key(wrong, SigningKey.generate(kind="registry").public_bytes(), "registry")
    assert (
        main(
            ["vault", "verify", str(genuine), "--registry", str(reg), "--registry-key", str(wrong)]
        )
        == 1
    )
    assert "signature does not verify" in capsys.readouterr().err


def test_by_default_the_sites_registry_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    registry(tmp_path)  # published into tmp_path/store
    home = tmp_path / "site"
    home.mkdir()
    (home / "site.toml").write_text(f'site = "default"\nstore = "file://{tmp_path / "store"}"\n')
    write_public_key(home / "registry.pub", REGISTRY_KEY.public_bytes(), "registry")
    monkeypatch.setenv("BODYCAM_VAULT_HOME", str(home))
    forged = volume(tmp_path / "forged", SigningKey.generate(kind="device"))
    genuine = volume(tmp_path / "genuine", REGISTERED)
    assert main(["vault", "verify", str(forged)]) == 1
    assert "OriginRefused" in capsys.readouterr().out
    assert main(["vault", "verify", str(genuine)]) == 0
    assert "the key camera registry v3 of site default registers" in capsys.readouterr().out


def test_help_says_what_a_device_json_proves(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("verify", "decrypt"):
        with pytest.raises(SystemExit):
            main(["vault", command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--trust-device-json" in text and "--registry" in text
    assert "origin NOT checked" in text or "refused unless --trust-device-json" in text
