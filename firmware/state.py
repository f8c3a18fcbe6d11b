"""The camera's state machine: which action moves which state where, and why not.

```
 off --power_on--> standby --record--> recording --stop--> standby
 standby/recording/fault --dock--> docked --undock--> standby
 standby/recording --fault--> fault            (storage full, sensor failure)
 any state but off --power_off--> off          (a power cut also ends in off)
```
Everything else is refused with `IllegalTransition`, whose message says what
the officer or operator can do instead. The machine only decides; the camera
(firmware.camera) does the work and logs each transition with time and reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger(__name__)


class CameraState(StrEnum):
    OFF = "off"
    STANDBY = "standby"
    RECORDING = "recording"
    DOCKED = "docked"
    FAULT = "fault"


class Action(StrEnum):
    POWER_ON = "power_on"
    RECORD = "record"
    STOP = "stop"
    DOCK = "dock"
    UNDOCK = "undock"
    FAULT = "fault"
    POWER_OFF = "power_off"


class FaultKind(StrEnum):
    STORAGE_FULL = "storage_full"
    SENSOR_FAILURE = "sensor_failure"
    STORAGE_ERROR = "storage_error"
    ENCODER_FAILURE = "encoder_failure"


class CameraError(Exception):
    """Base of the camera's own errors."""


class IllegalTransition(CameraError, ValueError):
    """An action the camera refuses in its current state (nothing was changed)."""

    def __init__(self, state: CameraState, action: Action, hint: str) -> None:
        super().__init__(f"cannot {action.value.replace('_', ' ')} while {state.value}: {hint}")
        self.state = state
        self.action = action
        self.hint = hint


S, A = CameraState, Action

TRANSITIONS: dict[tuple[CameraState, Action], CameraState] = {
    (S.OFF, A.POWER_ON): S.STANDBY,
    (S.STANDBY, A.RECORD): S.RECORDING,
    (S.RECORDING, A.STOP): S.STANDBY,
    (S.STANDBY, A.DOCK): S.DOCKED,
    (S.RECORDING, A.DOCK): S.DOCKED,  # a camera put in its dock stops recording first
    (S.FAULT, A.DOCK): S.DOCKED,  # the dock is where a full camera gets emptied
    (S.DOCKED, A.UNDOCK): S.STANDBY,
    (S.OFF, A.FAULT): S.FAULT,  # the sensor failed while booting
    (S.STANDBY, A.FAULT): S.FAULT,
    (S.RECORDING, A.FAULT): S.FAULT,
    (S.DOCKED, A.FAULT): S.FAULT,
    (S.STANDBY, A.POWER_OFF): S.OFF,
    (S.RECORDING, A.POWER_OFF): S.OFF,
    (S.DOCKED, A.POWER_OFF): S.OFF,
    (S.FAULT, A.POWER_OFF): S.OFF,
}

# What to do instead, per refused (state, action); a default per state otherwise.
_HINTS: dict[tuple[CameraState, Action], str] = {
    (S.RECORDING, A.RECORD): "the camera is already recording",
    (S.STANDBY, A.STOP): "the camera is not recording",
    (S.DOCKED, A.RECORD): "take the camera out of its dock first",
    (S.DOCKED, A.STOP): "the camera is not recording",
    (S.DOCKED, A.DOCK): "the camera is already docked",
    (S.FAULT, A.RECORD): "the camera has a fault: dock it (storage full) or power-cycle it",
    (S.FAULT, A.STOP): "the camera is not recording (it stopped at the fault)",
    (S.FAULT, A.UNDOCK): "the camera is not docked",
    (S.STANDBY, A.UNDOCK): "the camera is not docked",
    (S.RECORDING, A.UNDOCK): "the camera is not docked",
    (S.FAULT, A.FAULT): "the camera already has a fault",
    (S.OFF, A.POWER_OFF): "the camera is already off",
}
_STATE_HINTS: dict[CameraState, str] = {
    S.OFF: "power the camera on first",
    S.STANDBY: "the camera is already on",
    S.RECORDING: "the camera is already on",
    S.DOCKED: "the camera is already on",
    S.FAULT: "the camera is already on",
}


@dataclass(frozen=True)
class Transition:
    """One accepted state change, as the camera logs it."""

    action: Action
    from_state: CameraState
    to_state: CameraState
    reason: str
    utc: float


def target(state: CameraState, action: Action) -> CameraState:
    """The state `action` leads to from `state`, or IllegalTransition."""
    to = TRANSITIONS.get((state, action))
    if to is None:
        hint = _HINTS.get((state, action)) or _STATE_HINTS[state]
        raise IllegalTransition(state, action, hint)
    return to


class StateMachine:
    """Holds the current state; `move` checks, changes and reports one transition."""

    def __init__(self, on_transition: Callable[[Transition], None] | None = None) -> None:
        self.state = CameraState.OFF
        self._on_transition = on_transition

    def allowed(self, action: Action) -> bool:
        return (self.state, action) in TRANSITIONS

    def check(self, action: Action) -> CameraState:
        return target(self.state, action)

    def move(self, action: Action, reason: str, utc: float) -> Transition:
        to = target(self.state, action)
        transition = Transition(action, self.state, to, reason, utc)
        self.state = to
        log.info("%s -> %s (%s: %s)", transition.from_state, to, action, reason)
        if self._on_transition is not None:
            self._on_transition(transition)
        return transition

    def force_off(self) -> None:
        """A power cut: no transition is logged because nothing runs to log it."""
        self.state = CameraState.OFF
