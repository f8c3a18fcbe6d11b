"""What every part of the camera shares: its attributes, the event log, the storage checks.

`CameraBase` declares (in `__init__`) every attribute of a `firmware.camera.Camera` and
the few helpers all its parts use: appending to the signed event log, the free space and
low-water checks of the volume, the camera's time and the frame timestamps. The parts
build on it: firmware.recording (starting and finishing a recording), firmware.capture
(ticking, the capture pipeline, routing packets, faults), firmware.buttons (what a
record or stop press does) and firmware.camera (the `Camera` they make, its lifecycle).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from firmware.camera_clock import CameraClock
from firmware.hardware import Board, Microphone, Sensor, SerialPort, StorageVolume
from firmware.identity import DeviceIdentity
from firmware.pipeline import KeyframeWatch, PreRecordOutput, RecordingOutput
from firmware.recorder import DEFAULT_CHUNK, DEFAULT_RESERVE, RecordingSummary
from firmware.signals import IndicatorPolicy
from firmware.state import CameraError, CameraState, FaultKind, StateMachine, Transition
from formats.eventlog import EventLog
from ringbuffer.packet import TICKS_PER_SECOND, EncodedPacket, frame_pts

if TYPE_CHECKING:
    from crypto.keys import SigningKey
    from firmware.camera import Camera
    from formats.profile import Profile

# One logger for all the camera's parts: its records keep the name they always had.
log = logging.getLogger("firmware.camera")

RECORDINGS_DIR = "recordings"
_EPS = 1e-6


class Encoder(Protocol):
    """What the camera needs of its encoder (firmware.encoder.H264Encoder)."""

    def encode_video(self, frame: Any, frame_number: int) -> list[EncodedPacket]: ...

    def encode_audio(self, samples: Any) -> list[EncodedPacket]: ...


class EncoderFactory(Protocol):
    def __call__(
        self,
        width: int,
        height: int,
        fps: int,
        bitrate_bps: int,
        gop_frames: int,
        *,
        audio: bool,
        sample_rate: int,
    ) -> Encoder: ...


class ControlServer(Protocol):
    """What the camera needs of firmware.control.CameraControlServer."""

    def start(self) -> str: ...

    def stop(self) -> None: ...


# Called as factory(camera, port) with the board's serial port (firmware.hardware.Board):
# firmware.control.CameraControlServer itself is one.
ControlFactory = Callable[["Camera", SerialPort | str], ControlServer]


class CameraOff(CameraError):
    """Something that needs a booted camera was asked of a camera that is off."""


class CameraBase:
    """The attributes and shared helpers of a `Camera` (see firmware.camera)."""

    def __init__(
        self,
        home: Path,
        profile: Profile,
        board: Board,
        *,
        profile_raw: bytes | None = None,
        control_factory: ControlFactory | None = None,
        encoder_factory: EncoderFactory | None = None,
        reserve_bytes: int = DEFAULT_RESERVE,
        chunk_size: int = DEFAULT_CHUNK,
    ) -> None:
        self._home = Path(home)
        self._profile = profile
        self._profile_raw = profile_raw
        self._pending_profile: tuple[bytes, Profile] | None = None
        # Where the profile in force came from: the one the camera was started with, or
        # a slot of the profile store (a flashed profile wins at boot).
        self.profile_source = "built-in"
        self.clean_shutdown: bool | None = None  # known once booted: did the last run end cleanly
        self._board = board
        self._clock = CameraClock(board.clock)
        self._control_factory = control_factory
        self._encoder_factory = encoder_factory
        self._reserve = reserve_bytes
        self._chunk = chunk_size
        self._lock = threading.RLock()
        self._machine = StateMachine(self._on_transition)
        self._identity: DeviceIdentity | None = None
        self._log: EventLog | None = None
        self._storage: StorageVolume | None = None
        self._signals = IndicatorPolicy(None, self._clock, self._event)
        self._sensor: Sensor | None = None
        self._mic: Microphone | None = None
        self._encoder: Encoder | None = None
        self._keyframes: KeyframeWatch | None = None
        self._prerecord: PreRecordOutput | None = None
        self._recording: RecordingOutput | None = None
        self._control: ControlServer | None = None
        self.serial_path: str | None = None
        self.fault: FaultKind | None = None
        self.fault_detail = ""
        self.recordings: list[RecordingSummary] = []
        self.last_recovery: list[Any] = []
        self._base_mono = 0.0
        self._boot_utc = 0.0
        self._boot_offset = 0.0
        self._next_frame = 0
        self._samples_due = 0.0
        self._storage_low_logged = False
        # The pre-record buffer's counters as they were when its pipeline last stopped
        # (a fault, a dock): the status keeps saying what the buffer could not keep.
        self._last_buffer_counters: dict[str, Any] = {}
        self.frames_captured = 0
        self.frames_skipped = 0
        # Where the pipeline's time goes (for benchmarks/camera_bench.py). "recorder" is
        # all of recording (handing packets over plus the worker's time), of which "mux"
        # and "seal" are parts (added per recording). The worker runs beside capture.
        self.stage_seconds = {
            "sensor": 0.0,
            "encoder": 0.0,
            "buffer": 0.0,
            "recorder": 0.0,
            "mux": 0.0,
            "seal": 0.0,
        }

    # --- what the parts read --------------------------------------------------------------

    @property
    def volume(self) -> Path:
        """The camera's flash storage: what USB mass storage exposes to the dock."""
        return self._home / "volume"

    @property
    def recordings_root(self) -> Path:
        return self.volume / RECORDINGS_DIR

    @property
    def state(self) -> CameraState:
        return self._machine.state

    @property
    def identity(self) -> DeviceIdentity:
        if self._identity is None:
            raise CameraOff("the camera has not booted yet: power it on first")
        return self._identity

    @property
    def device_id(self) -> str:
        return self.identity.device_id

    @property
    def device_key(self) -> SigningKey:
        return self.identity.signing_key

    @property
    def fps(self) -> int:
        return int(self._profile.video.fps)

    # --- time -----------------------------------------------------------------------------

    def _now(self) -> float:
        return self._clock.now()

    def _pts_of_frame(self, frame_number: int) -> int:
        return frame_pts(frame_number, self.fps)

    def _pts_to_utc(self, pts: int) -> float:
        return self._boot_utc + (self._clock.offset - self._boot_offset) + pts / TICKS_PER_SECOND

    # --- storage ---------------------------------------------------------------------------

    def _free_bytes(self) -> int:
        return int(self._storage.free_bytes()) if self._storage is not None else 0

    def _capacity_bytes(self) -> int:
        capacity = getattr(self._storage, "capacity_bytes", None)
        if isinstance(capacity, int):
            return capacity
        return int(self._profile.device.storage_capacity_mb) * 1024 * 1024

    def _low_water_bytes(self) -> int:
        return int(self._profile.device.storage_low_water_mb) * 1024 * 1024

    def _check_storage_low(self) -> None:
        if self._storage_low_logged or self._storage is None:
            return
        free = self._free_bytes()
        if free < self._low_water_bytes():
            self._storage_low_logged = True
            self._event("storage_low", free_bytes=free, low_water_bytes=self._low_water_bytes())
            self._signals.signal("beep", "storage low")

    # --- logging ---------------------------------------------------------------------------

    def _on_transition(self, transition: Transition) -> None:
        self._event(
            "state",
            **{"from": transition.from_state.value},
            to=transition.to_state.value,
            action=transition.action.value,
            reason=transition.reason,
        )

    def _events_together(self) -> AbstractContextManager[None]:
        """Events logged inside are flushed to disk once, at the end (EventLog.group)."""
        return self._log.group() if self._log is not None else nullcontext()

    def _event(self, kind: str, **fields: Any) -> None:
        if self._log is None:
            log.debug("event %s while the log is closed: %s", kind, fields)
            return
        self._log.append(kind, **fields)
