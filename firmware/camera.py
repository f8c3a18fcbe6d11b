"""The camera: the `Camera` its parts make, what it shows, and its lifecycle (power, dock).

```
camera = Camera(home, profile, SimBoard(FastForwardClock()))  # board: firmware.hardware.Board
camera.power_on()                            # provision (first boot), recover, standby
camera.run_for(45)                           # 45 s of frames into the pre-record buffer
camera.press_record()                        # returns at once; a worker writes the pre-roll
camera.run_for(20); camera.press_stop()      # -> PressResult(summary=RecordingSummary)
camera.dock(); ...; camera.undock(); camera.power_off()
```

The hardware (sensor, microphone, volume, indicators, clock) comes from the
injected board; the firmware never builds it. `Camera` is its parts together, each
a class on `firmware.camera_base.CameraBase` (the attributes they share, the event
log, the storage checks):

- firmware.buttons: what a record or stop press does, and why a press is refused;
- firmware.capture: ticking, the capture pipeline (sensor -> H.264 encoder (+ AAC)
  -> the output the state selects, firmware.pipeline), routing packets, faults;
- firmware.recording: starting and finishing a recording: on a record press the
  buffer's packets go to a new recording output, whose worker thread writes them
  while live packets queue behind them, so the recording has no gap and no
  duplicate at the join and capture never waits for the pre-roll. On stop, the
  packets of the group of pictures in progress are put back into the (now empty)
  buffer, so the next pre-roll starts at a keyframe without losing a frame;
- firmware.camera_clock: the wall clock SET_TIME moves;
- here: the read-only properties, the status, power on/off/cut, dock and undock.

The indicator policy is firmware.signals, the boot steps (event log, recovery,
flashed profile) firmware.boot.

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

from pathlib import Path
from typing import TYPE_CHECKING, Any

from firmware import boot
from firmware.buttons import CameraButtons, PressResult
from firmware.camera_base import (
    RECORDINGS_DIR,
    CameraBase,
    CameraOff,
    ControlFactory,
    ControlServer,
    Encoder,
    EncoderFactory,
    log,
)
from firmware.camera_clock import CameraClock
from firmware.capture import SAMPLE_RATE, CameraCapture
from firmware.hardware import Board, IndicatorPanel, Microphone, Sensor, StorageVolume
from firmware.identity import DEFAULT_MODEL, load_or_provision
from firmware.recorder import Recorder
from firmware.recording import RECORDING_QUEUE_SECONDS, CameraRecording
from firmware.signals import IndicatorPolicy
from firmware.state import Action, CameraState, FaultKind, Transition
from formats.clock import Clock
from formats.eventlog import EventLog
from formats.profile import profile_toml

if TYPE_CHECKING:
    from formats.profile import Profile

FIRMWARE_VERSION = "0.1.0"
PROFILES_DIR = "profiles"

__all__ = [
    "FIRMWARE_VERSION",
    "PROFILES_DIR",
    "RECORDINGS_DIR",
    "RECORDING_QUEUE_SECONDS",
    "SAMPLE_RATE",
    "Camera",
    "CameraClock",
    "CameraOff",
    "Clock",
    "ControlFactory",
    "ControlServer",
    "Encoder",
    "EncoderFactory",
    "IndicatorPanel",
    "Microphone",
    "PressResult",
    "Sensor",
    "StorageVolume",
]


class Camera(CameraButtons, CameraCapture, CameraRecording, CameraBase):
    """One emulated body-worn camera. Thread-safe: the control server calls in from its thread.

    Made as `Camera(home, profile, board, *, profile_raw=None, control_factory=None,
    encoder_factory=None, reserve_bytes=DEFAULT_RESERVE, chunk_size=DEFAULT_CHUNK)`
    (`CameraBase.__init__`).
    """

    model = DEFAULT_MODEL
    firmware_version = FIRMWARE_VERSION

    # --- what the control server (CameraServices) and the sim read -------------------------

    @property
    def home(self) -> Path:
        return self._home

    @property
    def clock(self) -> CameraClock:
        return self._clock

    @property
    def board(self) -> Board:
        return self._board

    @property
    def profile(self) -> Profile:
        return self._profile

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

    def __repr__(self) -> str:
        who = self._identity.device_id if self._identity else "unprovisioned"
        return f"Camera({who}, {self._machine.state.value}, home={str(self._home)!r})"


def _profile_id(profile: Any) -> dict[str, Any]:
    section = getattr(profile, "profile", None)
    return {
        "profile_name": getattr(section, "name", None),
        "profile_version": getattr(section, "version", None),
    }
