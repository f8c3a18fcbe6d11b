"""Starting and finishing a recording: its output and recorder, and what is logged of it.

A record press (firmware.buttons) makes a new `RecordingOutput` (firmware.pipeline)
around a `Recorder` (firmware.recorder) that writes, seals and signs its segments on a
worker thread; each sealed segment is logged by the capture thread. Finishing (a stop
press, a fault, a dock, a power-off) seals what the recording holds, logs its end and
seeds the emptied pre-record buffer with the group of pictures in progress.
"""

from __future__ import annotations

import math
import queue
import secrets
import time
from typing import Any

from firmware.camera_base import CameraBase
from firmware.pipeline import RecordingOutput
from firmware.recorder import Recorder, RecordingSummary, SegmentSummary
from firmware.state import FaultKind
from ringbuffer.packet import TICKS_PER_SECOND

# How far (in frames) the recording worker may fall behind capture before capture waits
# for it: longer than writing a 120 s pre-roll takes, so a press never makes capture wait.
RECORDING_QUEUE_SECONDS = 4


class CameraRecording(CameraBase):
    """Making, sealing and finishing the camera's recordings."""

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
