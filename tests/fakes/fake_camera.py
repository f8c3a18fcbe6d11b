"""The one fake camera for tests of the control channel and the dock, built from real pieces.

`FakeCamera` implements `firmware.services.CameraServices` (mypy checks it, below)
with real Ed25519 keys, a real home and volume on disk, the real signed event log
and a settable clock; it has no video pipeline. The serial tests build it from a
bare key (`FakeCamera(device_id=..., device_key=..., home=..., boot_profile=...)`);
the dock's tests use `FakeCamera.provisioned(home, boot_profile, vault)`, a camera
home provisioned by `firmware.identity` (DEVICE.json on the volume) whose
`record()` seals recordings with `crypto.seal` for the vault key.

Imported as `fake_camera`: tests/fakes is on pytest's `pythonpath` and mypy's
`mypy_path` (pyproject.toml).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crypto.format import segment_name
from crypto.keys import SigningKey, VaultKey
from crypto.seal import RecordingSealer
from firmware.identity import DeviceIdentity, load_or_provision
from formats.eventlog import EventLog, events_path, verify_event_log
from formats.profile import Profile, parse_profile

if TYPE_CHECKING:
    from firmware.hardware import SettableClock
    from firmware.services import CameraServices

T0 = 1_790_000_000.0
SEG_PLAIN = 6000  # plaintext bytes per sealed segment: small keeps the tests fast
CHUNK = 1024


class FakeClock:
    """A manual clock with the SET_TIME hook (implements firmware.hardware.SettableClock).

    `monotonic()` (session expiry) moves only with `advance()` and `sleep()`, never
    with SET_TIME.
    """

    def __init__(self, start: float = T0) -> None:
        self.t = start
        self.elapsed = 0.0

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.elapsed

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.t += seconds
        self.elapsed += seconds

    def set_time(self, utc: float) -> float:
        drift = self.t - utc
        self.t = utc
        return drift


@dataclass
class FakeCamera:
    """CameraServices for tests: real keys and files, no video pipeline."""

    device_id: str
    device_key: SigningKey
    home: Path
    boot_profile: bytes
    model: str = "BC-SIM-1"
    firmware_version: str = "0.1.0-test"
    clock: FakeClock = field(default_factory=FakeClock)
    vault: VaultKey | None = None  # needed by record()
    identity: DeviceIdentity | None = None  # set by provisioned()
    activated: list[bytes] = field(default_factory=list)
    plaintexts: dict[str, bytes] = field(default_factory=dict)
    segment_names: dict[str, list[str]] = field(default_factory=dict)
    _counter: int = 0

    def __post_init__(self) -> None:
        self.event_log = EventLog(events_path(self.volume), self.device_key, self.clock)

    @classmethod
    def provisioned(cls, home: Path, boot_profile: bytes, vault: VaultKey) -> FakeCamera:
        """A camera home provisioned by firmware.identity, with an empty recordings folder."""
        identity, _ = load_or_provision(home)
        (home / "volume" / "recordings").mkdir(parents=True, exist_ok=True)
        camera = cls(
            device_id=identity.device_id,
            device_key=identity.signing_key,
            home=home,
            boot_profile=boot_profile,
            vault=vault,
            identity=identity,
        )
        camera.event_log.append("power_on")
        return camera

    # --- CameraServices -------------------------------------------------------------------

    @property
    def volume(self) -> Path:
        return self.home / "volume"

    def status(self) -> dict[str, Any]:
        # A Path is not JSON: the server must still answer (it shows it as text).
        return {"state": "docked", "charging": True, "path": self.home}

    def active_profile(self) -> tuple[bytes, Profile]:
        return self.boot_profile, parse_profile(self.boot_profile, source="boot profile")

    def on_profile_activated(self, raw: bytes, profile: Profile) -> None:
        self.activated.append(raw)

    # --- for the tests --------------------------------------------------------------------

    @property
    def public_key(self) -> bytes:
        return self.device_key.public_bytes()

    @property
    def recordings(self) -> Path:
        return self.volume / "recordings"

    @property
    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """What the camera's signed event log holds, checked with its device key."""
        report = verify_event_log(events_path(self.volume), self.device_key.public_bytes())
        return [(e.kind, e.fields) for e in report.events]

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]

    def close(self) -> None:
        self.event_log.close()

    def add_file(self, recording_id: str, name: str, data: bytes) -> Path:
        """Put a file on the volume as it is (not sealed)."""
        path = self.recordings / recording_id / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def record(
        self, segments: int = 3, *, finish: bool = True, size: int = SEG_PLAIN, chunk: int = CHUNK
    ) -> str:
        """Seal a recording of `segments` segments of random plaintext; returns its id."""
        if self.vault is None:
            raise ValueError("record() seals for a vault key: build the camera with vault=")
        self._counter += 1
        started = self.clock.now()
        rec_id = f"20261122T1815{self._counter:02d}Z-{os.urandom(2).hex()}"
        sealer = RecordingSealer(
            self.recordings / rec_id,
            self.device_id,
            rec_id,
            self.device_key,
            [self.vault.public_bytes()],
            started,
            chunk_size=chunk,
        )
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
        self.segment_names[rec_id] = [segment_name(i) for i in range(segments)]
        self.event_log.append("record_stop", recording_id=rec_id)
        self.clock.t += 60
        return rec_id

    def segment_files(self) -> list[Path]:
        return sorted(self.recordings.glob("*/seg-*.bcs"))


if TYPE_CHECKING:
    # mypy checks the fakes against the real interfaces: a drift fails `make lint`.
    def _fake_clock_is_a_settable_clock(clock: FakeClock) -> SettableClock:
        return clock

    def _fake_camera_is_camera_services(camera: FakeCamera) -> CameraServices:
        return camera
