"""What a record or stop press does, and why a press is refused.

A button press can always happen: it returns a `PressResult`, with `accepted=False` and
the reason when the gesture is not the one the profile maps or the state does not allow
it. A record press checks the room left, starts a recording (firmware.recording) from the
frozen pre-roll and returns at once; a stop press finishes it. Every press is a `button`
line in the event log, and the events of one press reach the disk in one flush.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from firmware.camera_base import _EPS, log
from firmware.capture import CameraCapture
from firmware.recorder import RecordingStorageFull, RecordingSummary
from firmware.recording import CameraRecording
from firmware.state import Action, CameraState, FaultKind, IllegalTransition
from ringbuffer.frozen import FrozenPreRoll
from ringbuffer.packet import EncodedPacket


@dataclass(frozen=True)
class PressResult:
    """What a button press did. Refused presses change nothing and say why."""

    accepted: bool
    state: CameraState
    reason: str
    recording_id: str | None = None
    summary: RecordingSummary | None = None


class CameraButtons(CameraCapture, CameraRecording):
    """The record and stop buttons."""

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

    # --- refusals --------------------------------------------------------------------------

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
