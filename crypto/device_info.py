"""The DEVICE.json format: a camera's public description, written by the camera, read by all.

```json
{"device_id": "BC-1A2B3C4D", "model": "BC-SIM-1", "public_key": "<64 hex digits>"}
```

The camera writes it to its home (`device.json`) and its volume (`DEVICE.json`,
firmware/identity.py); the dock reads it to register a camera and to match a volume
to its serial port, the vault to find the key that verifies a recording folder. The
device id is `"BC-"` + 8 uppercase hex digits of a domain-separated hash of the
Ed25519 public key (`device_id_for`). Nothing in it is secret. A reader reads at most
`MAX_DEVICE_INFO` bytes and refuses anything else with `IdentityError`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

log = logging.getLogger(__name__)

VOLUME_INFO_FILE = "DEVICE.json"
DEVICE_ID_PATTERN = re.compile(r"BC-[0-9A-F]{8}")
MAX_DEVICE_INFO = 4096  # bytes of device.json / DEVICE.json anyone reads
FIELDS = ("device_id", "public_key", "model")
_ID_DOMAIN = b"bodycam-device-id-v1\0"
_PUBLIC_HEX = re.compile(r"[0-9a-f]{64}")


class IdentityError(ValueError):
    """A device description (or the camera home holding it) is damaged or does not fit."""


def device_id_for(public_key: bytes) -> str:
    """The device id a public key gets: "BC-" + 8 uppercase hex of a domain-separated hash."""
    return "BC-" + hashlib.sha256(_ID_DOMAIN + public_key).hexdigest()[:8].upper()


def device_info_bytes(device_id: str, public_key: bytes, model: str) -> bytes:
    """The file's bytes, as the camera writes them."""
    info = {"device_id": device_id, "public_key": public_key.hex(), "model": model}
    return (json.dumps(info, indent=2, sort_keys=True) + "\n").encode()


def read_device_info(path: Path, *, check_id: bool = True) -> dict[str, str]:
    """Read and check a device.json / DEVICE.json: {device_id, public_key (hex), model}.

    `check_id=False` skips only the check that the device id is the one its key gets
    (`device_id_for`); the vault's verify, which checks the recording's signatures with
    the key and compares the recording's own device id, reads it that way.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_DEVICE_INFO + 1)
    except FileNotFoundError:
        raise IdentityError(f"{path}: missing") from None
    if len(raw) > MAX_DEVICE_INFO:
        raise IdentityError(
            f"{path}: larger than {MAX_DEVICE_INFO} bytes, not a device description"
        )
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IdentityError(f"{path}: not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise IdentityError(f"{path}: not a JSON object")
    info: dict[str, str] = {}
    for key in FIELDS:
        value = obj.get(key)
        if not isinstance(value, str) or not value or len(value) > 128:
            raise IdentityError(f"{path}: {key} missing or not a short string")
        info[key] = value
    if not DEVICE_ID_PATTERN.fullmatch(info["device_id"]):
        raise IdentityError(f"{path}: device_id {info['device_id']!r} is not BC-XXXXXXXX")
    if not _PUBLIC_HEX.fullmatch(info["public_key"]):
        raise IdentityError(f"{path}: public_key is not 64 lowercase hex digits")
    if check_id and device_id_for(bytes.fromhex(info["public_key"])) != info["device_id"]:
        raise IdentityError(f"{path}: device_id does not belong to public_key")
    return info


__all__ = [
    "DEVICE_ID_PATTERN",
    "MAX_DEVICE_INFO",
    "VOLUME_INFO_FILE",
    "IdentityError",
    "device_id_for",
    "device_info_bytes",
    "read_device_info",
]
