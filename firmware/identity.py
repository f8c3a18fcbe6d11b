"""Camera identity: provisioning on first boot, loading on every later boot.

On first boot the camera makes its Ed25519 device key in `HOME/device.key`
(0600; it never leaves the home), derives its device id from the public key
(`"BC-"` + 8 uppercase hex digits), writes `HOME/device.json`, and exports the
same public information to `HOME/volume/DEVICE.json`, where the dock reads it
to register the camera (the format is crypto/device_info.py). A power cut between
those steps is finished on the next boot; a home whose files disagree is refused,
never silently replaced.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from crypto.device_info import (
    VOLUME_INFO_FILE,
    IdentityError,
    device_id_for,
    device_info_bytes,
    read_device_info,
)
from crypto.files import atomic_write, fsync_dir

if TYPE_CHECKING:
    from crypto.keys import SigningKey

log = logging.getLogger(__name__)

DEVICE_KEY_FILE = "device.key"
DEVICE_INFO_FILE = "device.json"
VOLUME_DIR = "volume"
DEFAULT_MODEL = "BC-SIM-1"


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
        _write_info(info_path, identity)
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
    _write_info(path, identity)
    return path


def _write_info(path: Path, identity: DeviceIdentity) -> None:
    data = device_info_bytes(identity.device_id, identity.public_key, identity.model)
    atomic_write(path, data, 0o644)
