"""First-boot provisioning: device id, 0600 key, device.json and the exported DEVICE.json."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from crypto.device_info import (
    DEVICE_ID_PATTERN,
    IdentityError,
    device_id_for,
    read_device_info,
)
from crypto.keys import SigningKey
from firmware.identity import load_or_provision


def test_first_boot_provisions_and_later_boots_load(tmp_path: Path) -> None:
    home = tmp_path / "home"
    identity, provisioned = load_or_provision(home)
    assert provisioned
    assert DEVICE_ID_PATTERN.fullmatch(identity.device_id)
    assert identity.device_id == device_id_for(identity.public_key)
    key_file = home / "device.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert SigningKey.load(key_file).public_bytes() == identity.public_key
    info = json.loads((home / "device.json").read_text())
    exported = json.loads((home / "volume" / "DEVICE.json").read_text())
    assert (
        info
        == exported
        == {
            "device_id": identity.device_id,
            "public_key": identity.public_key.hex(),
            "model": identity.model,
        }
    )
    assert "seed" not in (home / "volume" / "DEVICE.json").read_text()
    assert "signing_key" not in repr(identity)

    again, provisioned_again = load_or_provision(home)
    assert not provisioned_again
    assert again.device_id == identity.device_id
    assert again.public_key == identity.public_key


def test_power_cut_after_key_is_finished_on_next_boot(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    key = SigningKey.generate(kind="device")
    key.save(home / "device.key")
    identity, provisioned = load_or_provision(home)
    assert provisioned and identity.public_key == key.public_bytes()
    assert read_device_info(home / "volume" / "DEVICE.json")["device_id"] == identity.device_id


def test_deleted_export_is_written_again(tmp_path: Path) -> None:
    identity, _ = load_or_provision(tmp_path)
    (tmp_path / "volume" / "DEVICE.json").unlink()
    load_or_provision(tmp_path)
    assert read_device_info(tmp_path / "volume" / "DEVICE.json")["public_key"] == (
        identity.public_key.hex()
    )


def test_lost_key_is_refused_not_replaced(tmp_path: Path) -> None:
    load_or_provision(tmp_path)
    (tmp_path / "device.key").unlink()
    with pytest.raises(IdentityError, match="lost its device key"):
        load_or_provision(tmp_path)


def test_mismatched_device_json_is_refused(tmp_path: Path) -> None:
    load_or_provision(tmp_path)
    other = SigningKey.generate().public_bytes()
    (tmp_path / "device.json").write_text(
        json.dumps({"device_id": device_id_for(other), "public_key": other.hex(), "model": "m"})
    )
    with pytest.raises(IdentityError, match="different public key"):
        load_or_provision(tmp_path)


def test_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    load_or_provision(tmp_path)
    os.chmod(tmp_path / "device.key", 0o644)
    with pytest.raises(IdentityError, match="chmod 600"):
        load_or_provision(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"x" * 5000, "larger than"),
        (b"[1]", "not a JSON object"),
        (b"{nope", "not JSON"),
        (b'{"device_id": "BC-1", "public_key": "00", "model": "m"}', "not BC-XXXXXXXX"),
    ],
)
def test_device_info_reader_is_bounded_and_strict(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "DEVICE.json"
    path.write_bytes(content)
    with pytest.raises(IdentityError, match=message):
        read_device_info(path)


def test_device_id_must_belong_to_the_key(tmp_path: Path) -> None:
    a, b = SigningKey.generate().public_bytes(), SigningKey.generate().public_bytes()
    path = tmp_path / "DEVICE.json"
    info = {"device_id": device_id_for(a), "public_key": b.hex(), "model": "m"}
    path.write_text(json.dumps(info))
    with pytest.raises(IdentityError, match="does not belong"):
        read_device_info(path)
