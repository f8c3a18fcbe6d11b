"""Docked cameras for the dock's tests, built from the real pieces.

`SimCamera` is a camera home provisioned by `firmware.identity` (real Ed25519 device
key, DEVICE.json on the volume), the real signed event log, recordings sealed by
`crypto.seal` with a real vault key, and a profile that trusts the test dock. It
implements `firmware.control.CameraServices`, so the real `CameraControlServer`
serves it on a real pty. `Dock` puts such cameras into slots the way the simulator
does (`.NAME.tmp` filled, then renamed in whole) and takes them out again.
"""

from __future__ import annotations

import io
import os
import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from crypto.keys import SigningKey, VaultKey
from crypto.open import decrypt_recording
from crypto.seal import RecordingSealer
from firmware.control import CameraControlServer
from firmware.eventlog import EventLog, events_path
from firmware.identity import DeviceIdentity, load_or_provision
from firmware.profile import default_profile, derive_profile

T0 = 1_790_000_000.0
SEG_PLAIN = 6000  # plaintext bytes per segment: small keeps the tests fast
CHUNK = 1024


def profile_toml(dock_keys: list[bytes], vault: bytes, transfer: str = "mass-storage",
                 version: int = 1, name: str = "test-site") -> bytes:
    """A valid profile's TOML: the embedded default with these keys and changes."""
    base = default_profile(vault_recipients=[vault], trusted_docks=dock_keys)
    changes = {"profile": {"name": name, "version": version}, "transfer": {"mode": transfer}}
    return derive_profile(base, changes, source="test profile")[0]


def _namespace(value: Any) -> Any:
    if isinstance(value, dict):
        return SimpleNamespace(**{k: _namespace(v) for k, v in value.items()})
    return value


def parse_profile(raw: bytes) -> Any:
    """The typed profile (firmware.profile), or the same TOML as attributes without it."""
    try:
        from firmware.profile import parse_profile as parse
    except ModuleNotFoundError:
        return _namespace(tomllib.loads(raw.decode()))
    return parse(raw, source="boot profile")


class CameraClock:
    def __init__(self, start: float = T0) -> None:
        self.t = start
        self.elapsed = 0.0

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.elapsed

    def set_time(self, utc: float) -> float:
        drift = self.t - utc
        self.t = utc
        return drift


@dataclass
class SimCamera:
    """A camera home with sealed recordings; CameraServices for the control server."""

    home: Path
    identity: DeviceIdentity
    boot_profile: bytes
    vault: VaultKey
    model: str = "BC-SIM-1"
    firmware_version: str = "0.1.0-test"
    clock: CameraClock = field(default_factory=CameraClock)
    activated: list[bytes] = field(default_factory=list)
    plaintexts: dict[str, bytes] = field(default_factory=dict)
    segment_names: dict[str, list[str]] = field(default_factory=dict)
    _counter: int = 0

    def __post_init__(self) -> None:
        self.event_log = EventLog(events_path(self.volume), self.identity.signing_key, self.clock)
        self.event_log.append("power_on")

    @property
    def device_id(self) -> str:
        return self.identity.device_id

    @property
    def device_key(self) -> SigningKey:
        return self.identity.signing_key

    @property
    def public_key(self) -> bytes:
        return self.identity.public_key

    @property
    def volume(self) -> Path:
        return self.home / "volume"

    @property
    def recordings(self) -> Path:
        return self.volume / "recordings"

    def status(self) -> dict[str, Any]:
        return {"state": "docked", "charging": True}

    def active_profile(self) -> tuple[bytes, Any]:
        return self.boot_profile, parse_profile(self.boot_profile)

    def on_profile_activated(self, raw: bytes, profile: Any) -> None:
        self.activated.append(raw)

    def close(self) -> None:
        self.event_log.close()

    def record(self, segments: int = 3, *, finish: bool = True, size: int = SEG_PLAIN,
               chunk: int = CHUNK) -> str:
        """Seal a recording of `segments` segments of random plaintext; returns its id."""
        self._counter += 1
        started = self.clock.now()
        rec_id = f"20261122T1815{self._counter:02d}Z-{os.urandom(2).hex()}"
        sealer = RecordingSealer(self.recordings / rec_id, self.device_id, rec_id,
                                 self.device_key, [self.vault.public_bytes()], started,
                                 chunk_size=chunk)
        plain = bytearray()
        for i in range(segments):
            data = os.urandom(size)
            seg = sealer.begin_segment(i, "video/mp2t", i * 900_000, started + 10 * i)
            seg.write(data)
            seg.close()
            plain += data
        if finish:
            sealer.finish(started + 10 * segments)
        else:
            sealer.wipe()
        self.plaintexts[rec_id] = bytes(plain)
        self.segment_names[rec_id] = [f"seg-{i:06d}.bcs" for i in range(segments)]
        self.event_log.append("record_stop", recording_id=rec_id)
        self.clock.t += 60
        return rec_id

    def segment_files(self) -> list[Path]:
        return sorted(self.recordings.glob("*/seg-*.bcs"))


def make_camera(root: Path, name: str, dock_keys: list[bytes], vault: VaultKey,
                transfer: str = "mass-storage") -> SimCamera:
    identity, _ = load_or_provision(root / name)
    (root / name / "volume" / "recordings").mkdir(parents=True, exist_ok=True)
    return SimCamera(root / name, identity, profile_toml(dock_keys, vault.public_bytes(),
                                                         transfer), vault)


class Dock:
    """Puts cameras into slots (as sim/ does) and serves their control channel on a pty."""

    def __init__(self, slots: Path) -> None:
        self.slots = Path(slots)
        self.slots.mkdir(parents=True, exist_ok=True)
        self.servers: dict[str, CameraControlServer] = {}

    def dock(self, camera: SimCamera, slot: str, *, serial: bool = True,
             volume: bool = True, server: CameraControlServer | None = None) -> Path:
        """`server`: the camera's control server (default: the real one for `camera`)."""
        path = None
        if serial:
            server = server or CameraControlServer(camera)
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


def decrypt_from_store(store: Any, site: str, camera: SimCamera, rec_id: str,
                       dest: Path) -> bytes:
    """Rebuild a recording from the store and decrypt it with the vault key."""
    from dock.store import fetch_recording

    folder = fetch_recording(store, site, camera.device_id, rec_id, dest / rec_id)
    out = io.BytesIO()
    decrypt_recording(folder, camera.vault, camera.public_key, out)
    return out.getvalue()


def register(ledger: Any, cam: SimCamera) -> None:
    ledger.register_device(cam.device_id, cam.public_key, model=cam.model,
                           registered_by="test-coordinator", role="coordinator")
