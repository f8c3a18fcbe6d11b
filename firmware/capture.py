"""Ticking and the capture pipeline: frames in, packets routed, faults on failure.

Per frame tick (from the board's clock): sensor.capture -> H.264 encoder (+ AAC when
the profile has sound) -> packets -> the output the state selects (firmware.pipeline):
in standby the pre-record buffer, while recording the recording output. A frame is
captured at boot time + n / fps; a camera that runs late drops frames instead of
drifting. A sensor, encoder or storage failure is a fault: the recording in progress is
finished, the pipeline stops and the camera stays in fault until docked or power-cycled.
"""

from __future__ import annotations

import math
import time

from firmware.camera_base import _EPS, Encoder, log
from firmware.hardware import SensorSettings
from firmware.pipeline import KeyframeWatch, NoKeyframe, PreRecordOutput
from firmware.recorder import RecordingStorageFull
from firmware.recording import CameraRecording
from firmware.state import Action, CameraState, FaultKind
from ringbuffer.packet import TIME_BASE, EncodedPacket

SAMPLE_RATE = 48_000
_CAPTURING = (CameraState.STANDBY, CameraState.RECORDING)


class CameraCapture(CameraRecording):
    """The clock-driven capture loop, the pipeline it feeds, and faults."""

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

    # --- faults ----------------------------------------------------------------------------

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
