"""Docked cameras for the dock's tests, built from the real pieces.

`make_camera` gives the shared test camera (tests/fakes/fake_camera.py) as a camera
home provisioned by `firmware.identity` (real Ed25519 device key, DEVICE.json on the
volume), with the real signed event log, recordings sealed by `crypto.seal` with a
real vault key, and a profile that trusts the test dock. It implements
`firmware.services.CameraServices`, so the real `CameraControlServer` serves it on a
real pty. `Dock` puts such cameras into slots the way the simulator does
(`.NAME.tmp` filled, then renamed in whole) and takes them out again.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Any

from fake_camera import FakeCamera

from crypto.keys import VaultKey
from crypto.open import decrypt_recording
from firmware.control import CameraControlServer
from formats.profile import default_profile, derive_profile
from sim.pty import PtySerialPort


def profile_toml(
    dock_keys: list[bytes],
    vault: bytes,
    transfer: str = "mass-storage",
    version: int = 1,
    name: str = "test-site",
) -> bytes:
    """A valid profile's TOML: the embedded default with these keys and changes."""
    base = default_profile(vault_recipients=[vault], trusted_docks=dock_keys)
    changes = {"profile": {"name": name, "version": version}, "transfer": {"mode": transfer}}
    return derive_profile(base, changes, source="test profile")[0]


def make_camera(
    root: Path, name: str, dock_keys: list[bytes], vault: VaultKey, transfer: str = "mass-storage"
) -> FakeCamera:
    """A provisioned camera home in ROOT/NAME whose profile trusts `dock_keys`."""
    raw = profile_toml(dock_keys, vault.public_bytes(), transfer)
    return FakeCamera.provisioned(root / name, raw, vault)


class Dock:
    """Puts cameras into slots (as sim/ does) and serves their control channel on a pty."""

    def __init__(self, slots: Path) -> None:
        self.slots = Path(slots)
        self.slots.mkdir(parents=True, exist_ok=True)
        self.servers: dict[str, CameraControlServer] = {}

    def dock(
        self,
        camera: FakeCamera,
        slot: str,
        *,
        serial: bool = True,
        volume: bool = True,
        server: CameraControlServer | None = None,
    ) -> Path:
        """`server`: the camera's control server (default: the real one for `camera`)."""
        path = None
        if serial:
            server = server or CameraControlServer(camera, PtySerialPort())
            path = server.start()
            self.servers[slot] = server
        tmp = self.slots / f".{slot}.tmp"
        tmp.mkdir()
        if volume:
            os.symlink(camera.volume.resolve(), tmp / "volume")
        if path:
            os.symlink(path, tmp / "serial")
        final = self.slots / slot
        os.rename(tmp, final)
        return final

    def undock(self, slot: str) -> None:
        final = self.slots / slot
        if final.exists():
            shutil.rmtree(final)
        server = self.servers.pop(slot, None)
        if server is not None:
            server.stop()

    def close(self) -> None:
        for slot in list(self.servers):
            self.undock(slot)


def decrypt_from_store(store: Any, site: str, camera: FakeCamera, rec_id: str, dest: Path) -> bytes:
    """Rebuild a recording from the store and decrypt it with the vault key."""
    from store import fetch_recording

    assert camera.vault is not None, "a camera from make_camera() has the vault key"
    folder = fetch_recording(store, site, camera.device_id, rec_id, dest / rec_id)
    out = io.BytesIO()
    decrypt_recording(folder, camera.vault, camera.public_key, out)
    return out.getvalue()


def register(ledger: Any, cam: FakeCamera) -> None:
    ledger.register_device(
        cam.device_id,
        cam.public_key,
        model=cam.model,
        registered_by="test-coordinator",
        role="coordinator",
    )
