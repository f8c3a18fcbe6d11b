"""The camera state machine on its own: every (state, action) pair is decided, none crashes."""

from __future__ import annotations

import itertools

import pytest

from firmware.state import (
    TRANSITIONS,
    Action,
    CameraState,
    IllegalTransition,
    StateMachine,
    Transition,
    target,
)

S, A = CameraState, Action


def test_the_documented_paths() -> None:
    seen: list[Transition] = []
    machine = StateMachine(seen.append)
    for action in (A.POWER_ON, A.RECORD, A.STOP, A.DOCK, A.UNDOCK, A.RECORD, A.FAULT, A.DOCK):
        machine.move(action, "test", 1.0)
    assert machine.state is S.DOCKED
    assert [(t.from_state, t.to_state) for t in seen] == [
        (S.OFF, S.STANDBY),
        (S.STANDBY, S.RECORDING),
        (S.RECORDING, S.STANDBY),
        (S.STANDBY, S.DOCKED),
        (S.DOCKED, S.STANDBY),
        (S.STANDBY, S.RECORDING),
        (S.RECORDING, S.FAULT),
        (S.FAULT, S.DOCKED),
    ]
    machine.move(A.POWER_OFF, "test", 2.0)
    assert machine.state is S.OFF


@pytest.mark.parametrize(("state", "action"), list(itertools.product(S, A)))
def test_every_pair_is_either_allowed_or_refused_with_a_hint(
    state: CameraState, action: Action
) -> None:
    if (state, action) in TRANSITIONS:
        assert target(state, action) is TRANSITIONS[(state, action)]
        return
    machine = StateMachine()
    machine.state = state
    with pytest.raises(IllegalTransition) as info:
        machine.move(action, "test", 0.0)
    assert machine.state is state  # nothing changed
    assert info.value.state is state and info.value.action is action
    assert str(info.value).startswith(f"cannot {action.value.replace('_', ' ')} while")
    assert info.value.hint


@pytest.mark.parametrize(
    ("state", "action", "hint"),
    [
        (S.RECORDING, A.RECORD, "already recording"),
        (S.DOCKED, A.RECORD, "out of its dock"),
        (S.OFF, A.RECORD, "power the camera on"),
        (S.FAULT, A.RECORD, "dock it"),
        (S.STANDBY, A.POWER_ON, "already on"),
    ],
)
def test_refusals_say_what_to_do(state: CameraState, action: Action, hint: str) -> None:
    with pytest.raises(IllegalTransition, match=hint):
        target(state, action)


def test_no_transition_leaves_off_except_power_on_and_boot_fault() -> None:
    assert {a for (s, a) in TRANSITIONS if s is S.OFF} == {A.POWER_ON, A.FAULT}
    assert all(to is not S.RECORDING for (s, _), to in TRANSITIONS.items() if s is not S.STANDBY)
