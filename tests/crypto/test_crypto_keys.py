"""Key pairs and key files: modes, no overwrite, no secrets in reprs, strict loading."""

from __future__ import annotations

import json
import logging
import os
import pickle
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from crypto.errors import KeyFileError
from crypto.keys import (
    SigningKey,
    VaultKey,
    init_site_keys,
    load_public_key,
    verify_signature,
    write_public_key,
)


def test_signing_key_round_trip_and_file_mode(tmp_path: Path) -> None:
    key = SigningKey.generate(kind="device")
    key.save(tmp_path / "device.key")
    assert stat.S_IMODE(os.stat(tmp_path / "device.key").st_mode) == 0o600
    again = SigningKey.load(tmp_path / "device.key")
    assert again.public_bytes() == key.public_bytes() and again.kind == "device"
    sig = again.sign(b"message")
    assert len(sig) == 64 and verify_signature(key.public_bytes(), b"message", sig)
    assert not verify_signature(key.public_bytes(), b"messagE", sig)
    assert not verify_signature(key.public_bytes(), b"message", sig[:-1] + bytes([sig[-1] ^ 0x01]))
    assert not verify_signature(b"short", b"message", sig)
    assert not verify_signature(bytes(32), b"message", sig)


def test_ed25519_and_x25519_agree_with_the_cryptography_package() -> None:
    seed = bytes(range(32))
    theirs = Ed25519PrivateKey.from_private_bytes(seed)
    ours = SigningKey.from_seed(seed)
    assert ours.public_bytes() == theirs.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert ours.sign(b"x") == theirs.sign(b"x")  # Ed25519 is deterministic
    vault = VaultKey.from_private_bytes(seed)
    x = X25519PrivateKey.from_private_bytes(seed)
    assert vault.public_bytes() == x.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    peer = X25519PrivateKey.generate()
    peer_pub = peer.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert vault.exchange(peer_pub) == x.exchange(peer.public_key())


def test_keys_refuse_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    SigningKey.generate().save(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        SigningKey.generate().save(path)
    with pytest.raises(FileExistsError):
        VaultKey.generate().save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["k.key"]  # no temp file left behind


def test_no_secret_in_repr_str_logs_or_pickles(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sk = SigningKey.generate()
    vk = VaultKey.generate()
    secrets = [sk.seed_bytes().hex(), vk.private_bytes().hex()]
    text = repr(sk) + str(sk) + repr(vk) + str(vk) + f"{sk} {vk!r}"
    logging.getLogger("test").info("keys %s %r", sk, vk)
    for secret in secrets:
        for form in (secret, secret[:16], secret.upper()[:16]):
            assert form not in text and form not in caplog.text
    for key in (sk, vk):
        with pytest.raises(TypeError):
            pickle.dumps(key)


def test_loading_checks_kind_format_and_consistency(tmp_path: Path) -> None:
    vk = VaultKey.generate()
    vk.save(tmp_path / "vault.key")
    with pytest.raises(KeyFileError, match="x25519"):
        SigningKey.load(tmp_path / "vault.key")
    sk = SigningKey.generate()
    sk.save(tmp_path / "sk.key")
    with pytest.raises(KeyFileError, match="ed25519"):
        VaultKey.load(tmp_path / "sk.key")
    doc = json.loads((tmp_path / "sk.key").read_text())
    doc["public"] = VaultKey.generate().public_bytes().hex()
    (tmp_path / "bad.key").write_text(json.dumps(doc))
    with pytest.raises(KeyFileError, match="does not belong"):
        SigningKey.load(tmp_path / "bad.key")
    (tmp_path / "junk.key").write_bytes(b"\xff" * 100)
    with pytest.raises(KeyFileError):
        SigningKey.load(tmp_path / "junk.key")
    (tmp_path / "huge.key").write_bytes(b" " * (64 * 1024 + 1))
    with pytest.raises(KeyFileError, match="at most"):
        SigningKey.load(tmp_path / "huge.key")
    write_public_key(tmp_path / "sk.pub", sk.public_bytes(), "integrator")
    with pytest.raises(KeyFileError, match="public key file"):
        SigningKey.load(tmp_path / "sk.pub")
    with pytest.raises(KeyFileError, match="private key file"):
        load_public_key(tmp_path / "sk.key")
    with pytest.raises(FileNotFoundError):
        SigningKey.load(tmp_path / "missing.key")


def test_public_key_files_and_other_forms(tmp_path: Path) -> None:
    raw = SigningKey.generate().public_bytes()
    write_public_key(tmp_path / "dock.pub", raw, "dock")
    assert stat.S_IMODE(os.stat(tmp_path / "dock.pub").st_mode) == 0o644
    assert load_public_key(tmp_path / "dock.pub") == raw
    assert json.loads((tmp_path / "dock.pub").read_text())["public"] == raw.hex()
    with pytest.raises(FileExistsError):
        write_public_key(tmp_path / "dock.pub", bytes(32), "dock")
    other = SigningKey.generate().public_bytes()
    write_public_key(tmp_path / "dock.pub", other, "dock", overwrite=True)
    assert load_public_key(tmp_path / "dock.pub") == other
    (tmp_path / "DEVICE.json").write_text(
        json.dumps({"device_id": "BC-1A2B3C4D", "public_key": raw.hex()})
    )
    assert load_public_key(tmp_path / "DEVICE.json") == raw
    (tmp_path / "bare.txt").write_text(raw.hex() + "\n")
    assert load_public_key(tmp_path / "bare.txt") == raw
    with pytest.raises(ValueError):
        write_public_key(tmp_path / "x.pub", b"short", "dock")
    with pytest.raises(ValueError):
        write_public_key(tmp_path / "y.pub", raw, "Bad Kind")


def test_init_site_keys(tmp_path: Path) -> None:
    site = tmp_path / "site"
    keys = init_site_keys(site)
    names = sorted(p.name for p in site.iterdir())
    assert names == sorted(
        f"{k}{e}" for k in ("vault", "integrator", "dock") for e in (".key", ".pub")
    )
    for name in names:
        mode = stat.S_IMODE(os.stat(site / name).st_mode)
        assert mode == (0o600 if name.endswith(".key") else 0o644), name
    assert VaultKey.load(site / "vault.key").public_bytes() == keys.vault
    assert load_public_key(site / "vault.pub") == keys.vault
    assert SigningKey.load(site / "dock.key").public_bytes() == keys.dock
    assert SigningKey.load(site / "integrator.key").kind == "integrator"
    before = {n: (site / n).read_bytes() for n in names}
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        init_site_keys(site)
    # Even one existing file stops it before anything is written.
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "dock.pub").write_text("mine")
    with pytest.raises(FileExistsError, match="dock.pub"):
        init_site_keys(partial)
    assert [p.name for p in partial.iterdir()] == ["dock.pub"]
    assert {n: (site / n).read_bytes() for n in names} == before
