"""The camera: state machine, buttons and lifecycle (power, dock, faults).

```
camera = Camera(home, profile, SimBoard(FastForwardClock()))  # board: firmware.hardware.Board
camera.power_on()                            # provision (first boot), recover, standby
camera.run_for(45)                           # 45 s of frames into the pre-record buffer
camera.press_record()                        # returns at once; a worker writes the pre-roll
camera.run_for(20); camera.press_stop()      # -> PressResult(summary=RecordingSummary)
camera.dock(); ...; camera.undock(); camera.power_off()
```

The hardware (sensor, microphone, volume, indicators, clock) comes from the
injected board; the firmware never builds it. Per frame tick (from the board's
clock): sensor.capture -> H.264 encoder (+ AAC when the profile has sound) ->
packets -> the output the state selects (firmware.pipeline): in standby the
pre-record buffer; on a record press the buffer's packets go to a new recording
output, whose worker thread writes them while live packets queue behind them,
so the recording has no gap and no duplicate at the join and capture never
waits for the pre-roll. On stop, the packets of the group of pictures in
progress are put back into the (now empty) buffer, so the next pre-roll starts
at a keyframe without losing a frame. The indicator policy is firmware.signals,
the boot steps (event log, recovery, flashed profile) firmware.boot.

Frame numbers (burned into the picture by the sensor, and the source of the
media timestamps: pts = frame number * 90000 / fps) count frame periods since
power-on, also across a dock: frame n is captured at boot time + n / fps.

Every transition and every press, start, stop, indicator, dock, fault and boot
step is a line in the signed event log (formats.eventlog). Illegal actions are
refused: buttons return a `PressResult` with `accepted=False` (a button press
can always happen), the other actions raise `IllegalTransition`. The camera has
no command that plays, decrypts or deletes footage: it holds only the vault's
public keys, and segments leave the volume only through the dock's RELEASE.

The serial control server (firmware.control) plugs in through the attributes
and methods of `firmware.services.CameraServices`, which this class provides:
`device_id`, `model`, `firmware_version`, `device_key`, `home`, `volume`,
`clock` (with `set_time`), `event_log`, `status()`, `active_profile()`,
`on_profile_activated()`. Pass `control_factory=CameraControlServer` and the
camera serves it while docked.
"""

from __future__ import annotations

import logging
import math
import queue
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from firmware import boot
from firmware.hardware import (
    Board,
    IndicatorPanel,
    Microphone,
    Sensor,
    SensorSettings,
    SerialPort,
    StorageVolume,
)
from firmware.identity import DEFAULT_MODEL, DeviceIdentity, load_or_provision
from firmware.pipeline import KeyframeWatch, NoKeyframe, PreRecordOutput, RecordingOutput
from firmware.recorder import (
    DEFAULT_CHUNK,
    DEFAULT_RESERVE,
    Recorder,
    RecordingStorageFull,
    RecordingSummary,
    SegmentSummary,
)
from firmware.signals import IndicatorPolicy
from firmware.state import (
    Action,
    CameraError,
    CameraState,
    FaultKind,
    IllegalTransition,
    StateMachine,
    Transition,
)
from formats.clock import Clock
from formats.eventlog import EventLog
from formats.profile import profile_toml
from ringbuffer.buffer import FrozenPreRoll
from ringbuffer.packet import TICKS_PER_SECOND, TIME_BASE, EncodedPacket, frame_pts

if TYPE_CHECKING:
    from crypto.keys import SigningKey
    from formats.profile import Profile

log = logging.getLogger(__name__)

FIRMWARE_VERSION = "0.1.0"
SAMPLE_RATE = 48_000
RECORDINGS_DIR = "recordings"
PROFILES_DIR = "profiles"
# How far (in frames) the recording worker may fall behind capture before capture waits
# for it: longer than writing a 120 s pre-roll takes, so a press never makes capture wait.
RECORDING_QUEUE_SECONDS = 4
_CAPTURING = (CameraState.STANDBY, CameraState.RECORDING)
_EPS = 1e-6

__all__ = [
    "Camera",
    "CameraClock",
    "CameraOff",
    "Clock",
    "IndicatorPanel",
    "Microphone",
    "PressResult",
    "Sensor",
    "StorageVolume",
]


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


class CameraClock:
    """The camera's wall clock: the hardware clock plus the offset SET_TIME applies.

    Media timing uses `monotonic()`, which SET_TIME never moves.
    """

    def __init__(self, base: Clock) -> None:
        self._base = base
        self._offset = 0.0

    @property
    def base(self) -> Clock:
        return self._base

    @property
    def offset(self) -> float:
        return self._offset

    def now(self) -> float:
        return self._base.now() + self._offset

    def monotonic(self) -> float:
        return self._base.monotonic()

    def sleep(self, seconds: float) -> None:
        self._base.sleep(seconds)

    def set_time(self, utc: float) -> float:
        """Set the wall clock to `utc`; returns the drift (camera time minus `utc`) before."""
        drift = self.now() - float(utc)
        self._offset -= drift
        return drift


@dataclass(frozen=True)
class PressResult:
    """What a button press did. Refused presses change nothing and say why."""

    accepted: bool
    state: CameraState
    reason: str
    recording_id: str | None = None
    summary: RecordingSummary | None = None


class Camera:
    """One emulated body-worn camera. Thread-safe: the control server calls in from its thread."""

    model = DEFAULT_MODEL
    firmware_version = FIRMWARE_VERSION

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

    # --- what the control server (CameraServices) and the sim read -------------------------

    @property
    def home(self) -> Path:
        return self._home

    @property
    def volume(self) -> Path:
        """The camera's flash storage: what USB mass storage exposes to the dock."""
        return self._home / "volume"

    @property
    def recordings_root(self) -> Path:
        return self.volume / RECORDINGS_DIR

    @property
    def clock(self) -> CameraClock:
        return self._clock

    @property
    def board(self) -> Board:
        return self._board

    @property
    def state(self) -> CameraState:
        return self._machine.state

    @property
    def profile(self) -> Profile:
        return self._profile

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
    def device_public(self) -> bytes:
        return self.identity.public_key

    @property
    def event_log(self) -> EventLog:
        if self._log is None:
            raise CameraOff("the event log is closed while the camera is off")
        return self._log

    @property
    def storage(self) -> StorageVolume:
        if self._storage is None:
            raise CameraOff("the camera has not booted yet: power it on first")
        return self._storage

    @property
    def indicators(self) -> IndicatorPanel | None:
        return self._signals.panel

    @property
    def recorder(self) -> Recorder | None:
        return self._recording.recorder if self._recording is not None else None

    @property
    def fps(self) -> int:
        return int(self._profile.video.fps)

    @property
    def boot_utc(self) -> float:
        """Wall time of frame 0 of this power-on (frame n was captured at boot_utc + n/fps)."""
        return self._boot_utc

    def active_profile(self) -> tuple[bytes, Profile]:
        """The profile in force as (TOML bytes, parsed)."""
        with self._lock:
            if self._profile_raw is None:
                self._profile_raw = profile_toml(self._profile)
            return self._profile_raw, self._profile

    def on_profile_activated(self, raw: bytes, profile: Profile) -> None:
        """A flashed profile was committed: it takes effect at the next standby (undock/boot)."""
        with self._lock:
            self._pending_profile = (raw, profile)
            self._event("profile_pending", **_profile_id(profile))

    def log_event(self, kind: str, **fields: Any) -> None:
        """Append to the event log (for the control server and the sim)."""
        self._event(kind, **fields)

    def status(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot for the terminal, the shift runner and the dock."""
        with self._lock:
            state = self._machine.state
            rec = self._recording.summary if self._recording is not None else None
            buffer_seconds = 0.0
            prerecord = self._last_buffer_counters
            if self._prerecord is not None:
                prerecord = self._prerecord.counters()
                if state is CameraState.STANDBY:
                    buffer_seconds = self._prerecord.span_seconds
            free = capacity = None
            if self._storage is not None:
                free = int(self._storage.free_bytes())
                capacity = self._capacity_bytes()
            return {
                "state": state.value,
                "device_id": self._identity.device_id if self._identity else None,
                "utc": self._clock.now(),
                "fault": self.fault.value if self.fault else None,
                "fault_detail": self.fault_detail or None,
                "recording_id": rec.recording_id if rec else None,
                "recording_seconds": round(self._recording_seconds(), 3),
                "recording_prerecord_seconds": round(rec.prerecord_covered, 3) if rec else None,
                "buffer_seconds": round(buffer_seconds, 3),
                "buffer_target_seconds": float(self._profile.prerecord.seconds),
                "prerecord_buffer": prerecord,
                "storage_free_bytes": free,
                "storage_capacity_bytes": capacity,
                "storage_low": bool(free is not None and free < self._low_water_bytes()),
                "charging": state is CameraState.DOCKED,
                "indicators": {
                    "led": self._signals.led_on,
                    "last": self._signals.last,
                    "recent": list(self._signals.recent),
                    "recent_age_seconds": (
                        None if (age := self._signals.recent_age()) is None else round(age, 3)
                    ),
                },
                "profile": _profile_id(self._profile),
                "profile_source": self.profile_source,
                "profile_pending": (
                    _profile_id(self._pending_profile[1]) if self._pending_profile else None
                ),
                "frames_captured": self.frames_captured,
                "recordings": len(self.recordings),
                "serial": self.serial_path,
            }

    # --- lifecycle -----------------------------------------------------------------------

    def power_on(self) -> Transition:
        """Boot: provision or load the identity, open the log, recover, start standby.

        Returns the transition to standby, or to fault when the sensor does not come up.
        """
        with self._lock:
            self._machine.check(Action.POWER_ON)
            identity, provisioned = load_or_provision(self._home, model=self.model)
            self._identity = identity
            stored = boot.load_flashed_profile(self._home / PROFILES_DIR)
            if stored is not None:
                self._profile, self._profile_raw = stored.profile, stored.raw
                self.profile_source = f"flashed (slot {stored.slot})"
            self._pending_profile = None
            self._log, reset = boot.open_event_log(self.volume, self.device_key, self._clock)
            if reset is not None:
                self._event("event_log_reset", **reset)
            if provisioned:
                self._event("provisioned", **identity.public_info())
            self._storage = self._board.open_volume(self.volume, self._capacity_bytes())
            self._signals = IndicatorPolicy(
                self._board.open_indicators(self._clock), self._clock, self._event
            )
            last = self._log.last_kind
            self.clean_shutdown = last in (None, "power_off")
            self._event(
                "boot",
                firmware=self.firmware_version,
                model=self.model,
                device_id=identity.device_id,
                clean_shutdown=last in (None, "power_off"),
                previous_event=last,
                event_log_repaired_bytes=self._log.repaired_bytes,
                **_profile_id(self._profile),
            )
            self.last_recovery = boot.recover(self.recordings_root, self.device_key, self._event)
            boot.load_ciphers()
            self.fault, self.fault_detail = None, ""
            self._base_mono = self._clock.monotonic()
            self._boot_utc = self._clock.now()
            self._boot_offset = self._clock.offset
            self._next_frame = 0
            try:
                self._start_pipeline()
            except Exception as exc:  # the sensor (hardware) failed to come up
                log.exception("pipeline failed to start at boot")
                fault = self._machine.move(
                    Action.FAULT, f"sensor failure at boot: {exc}", self._now()
                )
                self._enter_fault(FaultKind.SENSOR_FAILURE, str(exc))
                return fault
            # Frame 0 is due now that the encoder is up (its start-up time is not footage).
            self._base_mono = self._clock.monotonic()
            self._boot_utc = self._clock.now()
            self._next_frame = 0
            transition = self._machine.move(Action.POWER_ON, "power on", self._now())
            self._check_storage_low()
            return transition

    def power_off(self, reason: str = "power button") -> Transition:
        """Clean shutdown: finish a recording in progress, log, close everything."""
        self._stop_control()
        with self._lock:
            self._machine.check(Action.POWER_OFF)
            if self._recording is not None:
                self._finish_recording(f"power off: {reason}")
            self._stop_pipeline()
            self._signals.led(False, "power off")
            transition = self._machine.move(Action.POWER_OFF, reason, self._now())
            self._event("power_off", reason=reason)
            self._close_event_log()
            return transition

    def power_cut(self) -> None:
        """Simulate losing power: nothing more is written, nothing is finished or logged.

        What the volume holds is exactly what was durable at this moment; the next
        power_on recovers it.
        """
        self._stop_control()
        with self._lock:
            if self._recording is not None:
                self._recording.abandon()
                self._recording = None
            self._encoder = self._prerecord = self._keyframes = None
            self._sensor = self._mic = None
            self._signals.led_on = False
            if self._log is not None:
                self._log.close()  # every appended line is already fsynced
                self._log = None
            self._machine.force_off()
            log.info("power cut")

    def dock(self) -> Transition:
        """Put the camera in its dock: stop recording, buffer off, charging, serve serial."""
        with self._lock:
            self._machine.check(Action.DOCK)
            if self._recording is not None:
                self._finish_recording("docked")
            self._stop_pipeline()
            self._signals.led(False, "docked")
            transition = self._machine.move(Action.DOCK, "placed in dock", self._now())
            self._event("dock", charging=True)
            self.fault, self.fault_detail = None, ""
            if self._control_factory is not None and self._control is None:
                try:
                    server = self._control_factory(self, self._board.serial_port())
                    self.serial_path = server.start()
                except Exception as exc:  # docked without serial: mass storage still works
                    log.exception("the control channel did not start")
                    self._event("serial_failed", error=str(exc))
                else:
                    self._control = server
                    self._event("serial_up", port=self.serial_path)
            return transition

    def undock(self) -> Transition:
        """Take the camera out of its dock: stop serving serial, apply a new profile, standby."""
        with self._lock:
            self._machine.check(Action.UNDOCK)
        self._stop_control()
        with self._lock:
            self._machine.check(Action.UNDOCK)
            self._apply_pending_profile()
            self._event("undock")
            self._start_pipeline()
            transition = self._machine.move(Action.UNDOCK, "taken from dock", self._now())
            if self._free_bytes() < self._reserve + self._chunk:
                self._fault(FaultKind.STORAGE_FULL, "storage still full after docking")
            else:
                self._storage_low_logged = False
                self._check_storage_low()
            return transition

    # --- buttons -------------------------------------------------------------------------

    def press_record(self, gesture: str | None = None) -> PressResult:
        """The officer presses record (`gesture`: "press"/"long-press"; default the mapped one).

        Returns at once: the pre-roll is written by the recording output's worker while
        capture goes on (see firmware.pipeline). The events of the press (button, state,
        recording, indicators) reach the disk together, in one flush.
        """
        with self._lock, self._events_together():
            mapped = str(self._profile.buttons.record)
            gesture = gesture or mapped
            refusal = self._button_refusal("record", gesture, mapped, Action.RECORD)
            if refusal is not None:
                return refusal
            if self._free_bytes() < self._reserve + 2 * self._chunk:
                self._fault(FaultKind.STORAGE_FULL, "no room for a new recording")
                return self._refused("record", gesture, "storage full: dock the camera to offload")
            utc = self._now()
            t0 = time.perf_counter()
            try:
                recording = self._new_recording(utc)
            except OSError as exc:
                full = isinstance(exc, RecordingStorageFull)
                self._fault(FaultKind.STORAGE_FULL if full else FaultKind.STORAGE_ERROR, str(exc))
                return self._refused("record", gesture, f"cannot start a recording: {exc}")
            self._machine.move(Action.RECORD, "record pressed", utc)
            live_pts = self._pts_of_frame(self._next_frame)
            pre: FrozenPreRoll | list[EncodedPacket] = (
                self._prerecord.take_preroll() if self._prerecord is not None else []
            )
            counters = self._prerecord.counters() if self._prerecord is not None else {}
            recording.start(pre, live_pts)
            self._recording = recording
            self.stage_seconds["recorder"] += time.perf_counter() - t0
            summary = recording.summary
            on_for = self._clock.monotonic() - self._base_mono
            covered = summary.prerecord_covered
            short_reason = None
            if summary.prerecord_short:
                short_reason = (
                    f"camera on for {on_for:.1f} s"
                    if on_for + _EPS < summary.prerecord_configured
                    else "buffer refilling after a recording, dock or boot"
                )
            self._event(
                "record_start",
                recording_id=summary.recording_id,
                prerecord_configured=summary.prerecord_configured,
                prerecord_covered=round(covered, 3),
                prerecord_short=summary.prerecord_short,
                prerecord_short_reason=short_reason,
                prerecord_buffer=counters,
                first_pts=summary.first_pts,
                live_pts=live_pts,
                audio=bool(self._profile.recording.audio),
            )
            if summary.prerecord_short:
                log.info(
                    "pre-roll %.1f s of %s s configured (%s)",
                    covered,
                    summary.prerecord_configured,
                    short_reason,
                )
            self._signals.recording_started(self._profile)
            return PressResult(True, self.state, "recording", summary.recording_id, summary)

    def press_stop(self, gesture: str | None = None) -> PressResult:
        """The officer stops the recording (the profile may require a long press)."""
        with self._lock, self._events_together():
            mapped = str(self._profile.buttons.stop)
            gesture = gesture or mapped
            refusal = self._button_refusal("stop", gesture, mapped, Action.STOP)
            if refusal is not None:
                return refusal
            summary = self._finish_recording("stop pressed")
            if self._machine.state is CameraState.RECORDING:
                self._machine.move(Action.STOP, "stop pressed", self._now())
            return PressResult(
                True, self.state, "stopped", summary.recording_id if summary else None, summary
            )

    # --- time ----------------------------------------------------------------------------

    def tick(self, frames: int = 1) -> None:
        """Let `frames` frame periods pass (capturing when the camera is on)."""
        self.run_for(frames / self.fps)

    def run_for(self, seconds: float) -> None:
        """Run the camera for `seconds` of its clock (instant with a fast-forward clock)."""
        end = self._clock.monotonic() + seconds
        while True:
            with self._lock:
                if self._machine.state not in _CAPTURING:
                    break
                due = self._due(self._next_frame)
                if due >= end - _EPS:
                    break
            self._wait_until(due)
            with self._lock:
                if self._machine.state in _CAPTURING:
                    self._capture_frame()
        self._wait_until(end)

    def poll(self) -> float:
        """Capture every frame that is due by now; returns the monotonic time the next is due.

        For real-time loops that serve several cameras or a terminal between frames.
        """
        with self._lock:
            if self._machine.state not in _CAPTURING:
                return self._clock.monotonic() + 1.0 / self.fps
            now = self._clock.monotonic()
            while self._due(self._next_frame) <= now + _EPS:
                self._capture_frame()
                if self._machine.state not in _CAPTURING:
                    break
            return self._due(self._next_frame)

    def _due(self, frame_number: int) -> float:
        return self._base_mono + frame_number / self.fps

    def _wait_until(self, deadline: float) -> None:
        delay = deadline - self._clock.monotonic()
        if delay > 0:
            self._clock.sleep(delay)

    def _now(self) -> float:
        return self._clock.now()

    # --- the pipeline --------------------------------------------------------------------

    def _start_pipeline(self) -> None:
        from ringbuffer import PreRecordBuffer

        p = self._profile
        audio = bool(p.recording.audio or p.prerecord.audio)
        bitrate = int(p.video.bitrate_kbps) * 1000
        make_encoder = self._encoder_factory or _h264_encoder
        self._encoder = make_encoder(
            int(p.video.width),
            int(p.video.height),
            int(p.video.fps),
            bitrate,
            int(p.video.gop_frames),
            audio=audio,
            sample_rate=SAMPLE_RATE,
        )
        self._keyframes = KeyframeWatch(int(p.video.gop_frames))
        buffer = PreRecordBuffer(
            seconds=int(p.prerecord.seconds), time_base=TIME_BASE, bitrate_bps=bitrate
        )
        self._prerecord = PreRecordOutput(buffer, keep_audio=bool(p.prerecord.audio))
        self._sensor = self._board.open_sensor(
            SensorSettings(
                int(p.video.width), int(p.video.height), self.device_id, bool(p.video.night_mode)
            )
        )
        self._mic = self._board.open_microphone(SAMPLE_RATE) if audio else None
        # Frame numbers count frame periods since boot, also across a dock.
        now = self._clock.monotonic()
        self._next_frame = max(
            self._next_frame, math.ceil((now - self._base_mono) * self.fps - _EPS)
        )
        self._samples_due = 0.0

    def _stop_pipeline(self) -> None:
        if self._prerecord is not None:
            self._report_buffer()
            self._last_buffer_counters = self._prerecord.counters()
            self._prerecord.clear()
        self._encoder = self._prerecord = self._keyframes = None
        self._sensor = self._mic = None

    def _capture_frame(self) -> None:
        n = self._next_frame
        now = self._clock.monotonic()
        if now - self._due(n) > 1.0 / self.fps + _EPS:
            # Real time and late (a slow machine): drop frames instead of drifting.
            late = int((now - self._base_mono) * self.fps + _EPS)
            self.frames_skipped += late - n
            n = late
        utc = self._boot_utc + (self._clock.offset - self._boot_offset) + n / self.fps
        t0 = time.perf_counter()
        try:
            assert self._sensor is not None
            frame = self._sensor.capture(n, utc)
        except Exception as exc:  # any hardware failure of the sensor is a fault, not a crash
            self.stage_seconds["sensor"] += time.perf_counter() - t0
            self._next_frame = n + 1
            self._fault(FaultKind.SENSOR_FAILURE, f"sensor failed at frame {n}: {exc}")
            return
        t1 = time.perf_counter()
        assert self._encoder is not None and self._keyframes is not None
        packets = list(self._encoder.encode_video(frame, n))
        if self._mic is not None:
            self._samples_due += SAMPLE_RATE / self.fps
            count = int(self._samples_due)
            self._samples_due -= count
            if count:
                packets.extend(self._encoder.encode_audio(self._mic.capture(count)))
        t2 = time.perf_counter()
        self.stage_seconds["sensor"] += t1 - t0
        self.stage_seconds["encoder"] += t2 - t1
        self._next_frame = n + 1
        self.frames_captured += 1
        try:
            self._keyframes.check(packets)
        except NoKeyframe as exc:
            self._fault(FaultKind.ENCODER_FAILURE, str(exc))
            return
        self._route(packets)
        if self._recording is not None:
            self._signals.reminder(self._profile)

    def _route(self, packets: list[EncodedPacket]) -> None:
        state = self._machine.state
        if state is CameraState.RECORDING and self._recording is not None:
            t0 = time.perf_counter()
            recording = self._recording
            try:
                recording.write(packets)
            except RecordingStorageFull as exc:
                self._fault(FaultKind.STORAGE_FULL, str(exc))
            except OSError as exc:
                self._fault(FaultKind.STORAGE_ERROR, f"writing the recording failed: {exc}")
            finally:
                self.stage_seconds["recorder"] += time.perf_counter() - t0
            if self._recording is recording:
                self._log_sealed(recording)
        elif state is CameraState.STANDBY and self._prerecord is not None:
            t0 = time.perf_counter()
            self._prerecord.write(packets)
            self.stage_seconds["buffer"] += time.perf_counter() - t0
            self._report_buffer()

    def _report_buffer(self) -> None:
        """What the pre-record buffer would not keep reaches the event log (1, 10, 100 ...)."""
        assert self._prerecord is not None
        for report in self._prerecord.reports():
            self._event(report.kind, **report.fields)

    def _pts_of_frame(self, frame_number: int) -> int:
        return frame_pts(frame_number, self.fps)

    def _pts_to_utc(self, pts: int) -> float:
        return self._boot_utc + (self._clock.offset - self._boot_offset) + pts / TICKS_PER_SECOND

    # --- recording -----------------------------------------------------------------------

    def _new_recording(self, utc: float) -> RecordingOutput:
        from firmware.encoder import TsSegmentMuxer

        recipients = [bytes.fromhex(str(k)) for k in self._profile.keys.vault_recipients]
        # The muxer takes its streams' parameters from the encoder (an H264Encoder).
        encoder: Any = self._encoder
        for _ in range(16):
            recording_id = (
                time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(math.floor(utc + 1e-3)))
                + "-"
                + secrets.token_hex(2)
            )
            if not (self.recordings_root / recording_id).exists():
                break
        sealed: queue.SimpleQueue[SegmentSummary] = queue.SimpleQueue()
        recorder = Recorder(
            recordings_root=self.recordings_root,
            device_id=self.device_id,
            recording_id=recording_id,
            signer=self.device_key,
            vault_recipients=recipients,
            started_utc=utc,
            mux_factory=lambda sink: TsSegmentMuxer(sink, encoder),
            pts_to_utc=self._pts_to_utc,
            prerecord_configured=float(self._profile.prerecord.seconds),
            segment_seconds=float(self._profile.recording.segment_seconds),
            volume=self._storage,
            reserve_bytes=self._reserve,
            chunk_size=self._chunk,
            # Called on the recording worker: only queued here, logged by the capture thread.
            on_segment=sealed.put,
        )
        return RecordingOutput(
            recorder,
            sealed,
            keep_audio=bool(self._profile.recording.audio),
            carry_audio=bool(self._profile.prerecord.audio),
            max_pending_frames=RECORDING_QUEUE_SECONDS * self.fps,
        )

    def _log_sealed(self, recording: RecordingOutput) -> None:
        for seg in recording.sealed():
            self._event(
                "segment_sealed",
                recording_id=recording.summary.recording_id,
                index=seg.index,
                name=seg.name,
                size=seg.size,
                sha256=seg.sha256,
                seconds=round(seg.seconds, 3),
            )
            self._check_storage_low()

    def _finish_recording(self, reason: str) -> RecordingSummary | None:
        """Seal what the recording holds and log its end; does not move the state."""
        recording = self._recording
        if recording is None:
            return None
        t0 = time.perf_counter()
        recorder = recording.recorder
        try:
            summary = recording.finish(self._now(), reason)
        except OSError as exc:
            # The volume failed under us: what was sealed stays; recovery at boot closes it.
            recorder.abandon()
            summary = recorder.summary
            summary.stop_reason = f"{reason}; could not finish: {exc}"
            self._event("fault", fault=FaultKind.STORAGE_ERROR.value, detail=str(exc))
        self._recording = None
        self.stage_seconds["recorder"] += time.perf_counter() - t0 + recording.worker_seconds
        self.stage_seconds["mux"] += recorder.mux_seconds
        self.stage_seconds["seal"] += recorder.seal_seconds
        self._log_sealed(recording)
        self.recordings.append(summary)
        self._event(
            "record_stop",
            recording_id=summary.recording_id,
            reason=reason,
            duration_seconds=round(summary.duration_seconds, 3),
            prerecord_covered=round(summary.prerecord_covered, 3),
            segments=len(summary.segments),
            bytes=summary.bytes,
            complete=summary.complete,
        )
        self._signals.recording_stopped(self._profile)
        # Seed the emptied buffer with the group of pictures in progress: the next
        # pre-roll starts at a keyframe and no frame is lost between two recordings.
        if self._prerecord is not None:
            self._prerecord.write(recording.carry)
        return summary

    def _recording_seconds(self) -> float:
        if self._recording is None:
            return 0.0
        live_pts = self._recording.summary.live_pts
        if live_pts is None:
            return 0.0
        return max(0.0, (self._pts_of_frame(self._next_frame) - live_pts) / TICKS_PER_SECOND)

    # --- faults, storage ------------------------------------------------------------------

    def _fault(self, kind: FaultKind, detail: str) -> None:
        if self._machine.state is CameraState.RECORDING and self._recording is not None:
            self._finish_recording(f"fault: {kind.value}")
        if self._machine.allowed(Action.FAULT):
            self._machine.move(Action.FAULT, f"{kind.value}: {detail}", self._now())
        self._enter_fault(kind, detail)

    def _enter_fault(self, kind: FaultKind, detail: str) -> None:
        self.fault, self.fault_detail = kind, detail
        self._stop_pipeline()
        self._event("fault", fault=kind.value, detail=detail)
        log.warning("camera fault %s: %s", kind.value, detail)
        self._signals.fault()

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

    # --- buttons: refusals ----------------------------------------------------------------

    def _button_refusal(
        self, button: str, gesture: str, mapped: str, action: Action
    ) -> PressResult | None:
        if gesture != mapped:
            return self._refused(button, gesture, f"{button} needs a {mapped} on this camera")
        try:
            self._machine.check(action)
        except IllegalTransition as exc:
            return self._refused(button, gesture, exc.hint)
        self._event("button", button=button, gesture=gesture, accepted=True)
        return None

    def _refused(self, button: str, gesture: str, reason: str) -> PressResult:
        if self._log is not None:
            self._event("button", button=button, gesture=gesture, accepted=False, reason=reason)
        log.info("%s %s refused: %s", button, gesture, reason)
        return PressResult(False, self._machine.state, reason)

    # --- boot and control helpers ---------------------------------------------------------

    def _close_event_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def _apply_pending_profile(self) -> None:
        if self._pending_profile is None:
            return
        raw, profile = self._pending_profile
        self._pending_profile = None
        self._profile, self._profile_raw = profile, raw
        self.profile_source = "flashed"
        self._event("profile_applied", **_profile_id(profile))

    def _stop_control(self) -> None:
        # Outside the camera lock: the server thread may be waiting for it in status().
        with self._lock:
            server, self._control = self._control, None
            path, self.serial_path = self.serial_path, None
        if server is not None:
            server.stop()
            with self._lock:
                if self._log is not None:
                    self._event("serial_down", port=path)

    # --- logging --------------------------------------------------------------------------

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

    def __repr__(self) -> str:
        who = self._identity.device_id if self._identity else "unprovisioned"
        return f"Camera({who}, {self._machine.state.value}, home={str(self._home)!r})"


def _h264_encoder(
    width: int,
    height: int,
    fps: int,
    bitrate_bps: int,
    gop_frames: int,
    *,
    audio: bool,
    sample_rate: int,
) -> Encoder:
    from firmware.encoder import H264Encoder

    return H264Encoder(
        width, height, fps, bitrate_bps, gop_frames, audio=audio, sample_rate=sample_rate
    )


def _profile_id(profile: Any) -> dict[str, Any]:
    section = getattr(profile, "profile", None)
    return {
        "profile_name": getattr(section, "name", None),
        "profile_version": getattr(section, "version", None),
    }
