"""Camera identity: provisioning on first boot, loading on every later boot.

On first boot the camera makes its Ed25519 device key in `HOME/device.key`
(0600; it never leaves the home), derives its device id from the public key
(`"BC-"` + 8 uppercase hex digits), writes `HOME/device.json`, and exports the
same public information to `HOME/volume/DEVICE.json`, where the dock reads it
to register the camera. A power cut between those steps is finished on the
next boot; a home whose files disagree is refused, never silently replaced.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crypto.files import atomic_write, fsync_dir

if TYPE_CHECKING:
    from crypto.keys import SigningKey

log = logging.getLogger(__name__)

DEVICE_KEY_FILE = "device.key"
DEVICE_INFO_FILE = "device.json"
VOLUME_DIR = "volume"
VOLUME_INFO_FILE = "DEVICE.json"
DEFAULT_MODEL = "BC-SIM-1"
DEVICE_ID_PATTERN = re.compile(r"BC-[0-9A-F]{8}")
_ID_DOMAIN = b"bodycam-device-id-v1\0"
_MAX_INFO = 4096  # bytes of device.json / DEVICE.json the camera or dock will read


class IdentityError(ValueError):
    """The camera home holds an identity that is damaged or does not fit together."""


@dataclass(frozen=True)
class DeviceIdentity:
    """Who the camera is. The signing key stays out of reprs and logs."""

    device_id: str
    public_key: bytes
    model: str
    signing_key: SigningKey = field(repr=False, compare=False)

    def public_info(self) -> dict[str, str]:
        """What device.json and DEVICE.json hold: nothing secret."""
        return {
            "device_id": self.device_id,
            "public_key": self.public_key.hex(),
            "model": self.model,
        }


def device_id_for(public_key: bytes) -> str:
    """The device id a public key gets: "BC-" + 8 uppercase hex of a domain-separated hash."""
    return "BC-" + hashlib.sha256(_ID_DOMAIN + public_key).hexdigest()[:8].upper()


def read_device_info(path: Path) -> dict[str, str]:
    """Read and check a device.json / DEVICE.json (bounded; used by the camera and the dock)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_INFO + 1)
    except FileNotFoundError:
        raise IdentityError(f"{path}: missing") from None
    if len(raw) > _MAX_INFO:
        raise IdentityError(f"{path}: larger than {_MAX_INFO} bytes, not a device description")
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IdentityError(f"{path}: not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise IdentityError(f"{path}: not a JSON object")
    info: dict[str, str] = {}
    for key in ("device_id", "public_key", "model"):
        value = obj.get(key)
        if not isinstance(value, str) or not value or len(value) > 128:
            raise IdentityError(f"{path}: {key} missing or not a short string")
        info[key] = value
    if not DEVICE_ID_PATTERN.fullmatch(info["device_id"]):
        raise IdentityError(f"{path}: device_id {info['device_id']!r} is not BC-XXXXXXXX")
    if not re.fullmatch(r"[0-9a-f]{64}", info["public_key"]):
        raise IdentityError(f"{path}: public_key is not 64 lowercase hex digits")
    if device_id_for(bytes.fromhex(info["public_key"])) != info["device_id"]:
        raise IdentityError(f"{path}: device_id does not belong to public_key")
    return info


def load_or_provision(home: Path, *, model: str = DEFAULT_MODEL) -> tuple[DeviceIdentity, bool]:
    """The camera's identity; made on first boot. Returns (identity, provisioned_now)."""
    from crypto.keys import SigningKey

    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    key_path = home / DEVICE_KEY_FILE
    info_path = home / DEVICE_INFO_FILE
    provisioned = False
    if not key_path.exists():
        if info_path.exists():
            raise IdentityError(
                f"{info_path} exists but {key_path} is missing: this home lost its device "
                "key; re-provision the camera with a new home"
            )
        key = SigningKey.generate(kind="device")
        key.save(key_path)  # 0600, refuses to overwrite
        fsync_dir(home)
        provisioned = True
    else:
        mode = key_path.stat().st_mode & 0o777
        if mode & 0o077:
            raise IdentityError(f"{key_path} is readable by others (mode {mode:o}): chmod 600 it")
        key = SigningKey.load(key_path)
    public = key.public_bytes()
    if info_path.exists():
        info = read_device_info(info_path)
        if not hmac.compare_digest(info["public_key"], public.hex()):
            raise IdentityError(
                f"{info_path} names a different public key than {key_path}: the home is "
                "inconsistent; restore it from backup or re-provision with a new home"
            )
        identity = DeviceIdentity(info["device_id"], public, info["model"], key)
    else:
        # First boot, or a power cut right after the key was made: finish the job.
        identity = DeviceIdentity(device_id_for(public), public, model, key)
        _atomic_write_json(info_path, identity.public_info())
        provisioned = True
    export_public_info(identity, home / VOLUME_DIR)
    if provisioned:
        log.info("provisioned camera %s (model %s)", identity.device_id, identity.model)
    return identity, provisioned


def export_public_info(identity: DeviceIdentity, volume: Path) -> Path:
    """Write DEVICE.json on the volume (if missing or different) for the dock's registration."""
    volume = Path(volume)
    volume.mkdir(parents=True, exist_ok=True)
    path = volume / VOLUME_INFO_FILE
    wanted = identity.public_info()
    try:
        if read_device_info(path) == wanted:
            return path
    except IdentityError:
        pass  # missing or damaged: write it again
    _atomic_write_json(path, wanted)
    return path


def _atomic_write_json(path: Path, obj: dict[str, Any]) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode(), 0o644)
