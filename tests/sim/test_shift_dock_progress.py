"""`sim shift` as a dock operator sees it: progress while a real-time shift runs, and a
final table that counts what a dock already took off the cameras."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from bodycam_cli import main as bodycam
from sim.report import ShiftResult, camera_result, print_summary
from sim.shift import run_shift

QUICK = """\
[shift]
name = "quick"
end = 1.6

[[cameras]]
name = "a"
[cameras.overrides]
recording = { audio = false, segment_seconds = 2 }
video = { width = 160, height = 120, fps = 10, gop_frames = 10, bitrate_kbps = 300 }

[[events]]
at = 0
camera = "a"
action = "power_on"

[[events]]
at = 0.5
camera = "a"
action = "record"

[[events]]
at = 1.5
camera = "a"
action = "stop"
"""

DOCKED = """\
[shift]
name = "docked"
end = 30

[[cameras]]
name = "a"
[cameras.overrides]
prerecord = { seconds = 30 }
recording = { audio = false, segment_seconds = 4 }
video = { width = 160, height = 120, fps = 10, gop_frames = 10, bitrate_kbps = 300 }

[[cameras]]
name = "b"
[cameras.overrides]
prerecord = { seconds = 30 }
recording = { audio = false, segment_seconds = 4 }
video = { width = 160, height = 120, fps = 10, gop_frames = 10, bitrate_kbps = 300 }

[[events]]
at = 0
camera = "a"
action = "power_on"

[[events]]
at = 0
camera = "b"
action = "power_on"

[[events]]
at = 5
camera = "a"
action = "record"

[[events]]
at = 15
camera = "a"
action = "stop"

[[events]]
at = 6
camera = "b"
action = "record"

[[events]]
at = 12
camera = "b"
action = "stop"

[[events]]
at = 20
camera = "a"
action = "dock"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    return path


def test_a_realtime_shift_reports_each_camera_while_it_runs(tmp_path: Path) -> None:
    lines: list[str] = []
    run_shift(
        write(tmp_path, QUICK),
        tmp_path / "out",
        speed="realtime",
        progress=lines.append,
        tick_seconds=0.5,
    )
    # between the record (0.5 s) and the stop (1.5 s) a status line says it is recording
    record = next(i for i, line in enumerate(lines) if line.endswith("a: record: recording"))
    stop = next(i for i, line in enumerate(lines) if "a: stop:" in line)
    assert "0:00:01.0 of 0:00:01.6: a recording" in lines[record + 1 : stop]
    assert lines[0] == "0:00:00.0 a: power_on: standby"


def test_cli_realtime_shift_prints_its_events_as_they_happen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        bodycam(
            [
                "sim",
                "shift",
                str(write(tmp_path, QUICK)),
                "--out",
                str(tmp_path / "o"),
                "--speed",
                "realtime",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err.splitlines()
    assert "shift 0:00:00.5 a: record: recording" in err
    assert "shift 0:00:01.5 a: stop: standby" in err


def test_a_docked_camera_names_the_dock_command_with_its_options(tmp_path: Path) -> None:
    from firmware.control import CameraControlServer

    lines: list[str] = []
    slots = tmp_path / "slots"
    run_shift(
        write(tmp_path, DOCKED),
        tmp_path / "out",
        slots=slots,
        control_factory=CameraControlServer,
        progress=lines.append,
    )
    (docked,) = [line for line in lines if "a: dock:" in line]
    assert docked.endswith(
        f"(slot {slots / 'a'}: `bodycam dock run --slots {slots} --store URL` takes it)"
    )


def test_the_final_table_counts_recordings_the_dock_already_took(tmp_path: Path) -> None:
    from firmware.control import CameraControlServer
    from sim.docking import ingest_docked

    out = tmp_path / "out"
    slots = out / "dock" / "slots"
    store = tmp_path / "store"
    after: list[Any] = []

    def dock_then_look(cameras: dict[str, Any]) -> None:
        report = ingest_docked(
            cameras,
            slots,
            out / "dock" / "ledger.sqlite",
            f"file://{store}",
            out / "site-keys",
            out=io.StringIO(),
        )
        assert report.exit_code == 0
        after.extend(camera_result(name, cam, []) for name, cam in cameras.items())

    held = run_shift(
        write(tmp_path, DOCKED),
        out,
        slots=slots,
        control_factory=CameraControlServer,
        at_end=dock_then_look,
    )
    (before,) = held.camera("a").recordings
    assert before.segments > 0 and before.docked_segments == 0
    a, b = after
    (taken,) = a.recordings  # the camera removed the folder, its event log still tells
    assert not taken.path.exists()
    assert taken.taken_by_dock and taken.docked_segments == before.segments
    assert taken.recording_id == before.recording_id
    assert taken.duration_seconds == before.duration_seconds
    (kept,) = b.recordings  # b never docked
    assert kept.docked_segments == 0 and not kept.taken_by_dock and kept.path.exists()
    result = ShiftResult(held.scenario, out, held.keys_dir, held.simulated_seconds, 1.0, after)
    assert result.docked_segments == before.segments
    buf = io.StringIO()
    print_summary(result, file=buf)
    table = buf.getvalue()
    assert "2 recordings" in table
    assert f"({before.segments} segments already taken by the dock, 1 of them whole)" in table
    assert "taken by the dock" in table.split(taken.recording_id)[1].splitlines()[0]
