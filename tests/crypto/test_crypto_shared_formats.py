"""The one definition of hashing a file and of the DEVICE.json format."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from crypto.device_info import (
    IdentityError,
    device_id_for,
    device_info_bytes,
    read_device_info,
)
from crypto.errors import Truncated
from crypto.files import sha256_digest, sha256_fd, sha256_file


def test_file_hashes_agree_with_hashlib_and_a_short_file_is_truncated(tmp_path: Path) -> None:
    data = os.urandom(3 << 20) + b"tail"
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    digest = sha256_digest(path)
    digest.update(b"more")
    assert digest.hexdigest() == hashlib.sha256(data + b"more").hexdigest()
    fd = os.open(path, os.O_RDONLY)
    try:
        assert sha256_fd(fd, 1000, "f.bin") == hashlib.sha256(data[:1000]).hexdigest()
        with pytest.raises(Truncated, match="f.bin shrank"):
            sha256_fd(fd, len(data) + 1, "f.bin")
    finally:
        os.close(fd)


def test_device_info_as_written_is_read_back_and_a_foreign_id_only_without_the_check(
    tmp_path: Path,
) -> None:
    public = bytes(range(32))
    path = tmp_path / "DEVICE.json"
    path.write_bytes(device_info_bytes(device_id_for(public), public, "BC-SIM-1"))
    assert read_device_info(path) == {
        "device_id": device_id_for(public),
        "public_key": public.hex(),
        "model": "BC-SIM-1",
    }
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "device_id": "BC-00000000"}))
    with pytest.raises(IdentityError, match="does not belong"):
        read_device_info(path)
    assert read_device_info(path, check_id=False)["device_id"] == "BC-00000000"
    path.write_bytes(b" " * 5000)
    with pytest.raises(IdentityError, match="larger than"):
        read_device_info(path, check_id=False)
