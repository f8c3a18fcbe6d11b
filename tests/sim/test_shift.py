"""Scripted shifts: scenario files, the fast-forward runner, its summary and the CLI."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest

from bodycam_cli import main as bodycam
from crypto.timestamps import utc_text
from crypto.verify import verify_recording
from sim.docking import publish_slot, withdraw_slot
from sim.report import print_summary
from sim.scenario import ScenarioError, load_scenario
from sim.shift import run_shift

SCENARIOS = Path(__file__).resolve().parents[2] / "sim" / "scenarios"

TINY = """\
[shift]
name = "tiny"
end = "0:50"

[[cameras]]
name = "a"
profile = "default"
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
at = 1
camera = "b"
action = "power_on"

[[events]]
at = "0:33"
camera = "a"
action = "record"

[[events]]
at = "0:40"
camera = "a"
action = "stop"

[[events]]
at = 5
camera = "b"
action = "record"

[[events]]
at = "0:11.5"
camera = "b"
action = "power_cut"

[[events]]
at = 20
camera = "b"
action = "stop"

[[events]]
at = 30
camera = "b"
action = "power_on"

[[events]]
at = 45
camera = "b"
action = "dock"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("name", "seconds"), [("heusden", 30), ("utrecht", 120)])
def test_shipped_scenarios_are_valid(name: str, seconds: int) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.toml")
    assert len(scenario.cameras) == 2
    assert all(c.overrides["prerecord"]["seconds"] == seconds for c in scenario.cameras)
    actions = {e.action for e in scenario.events}
    assert {"power_on", "record", "stop", "dock"} <= actions
    assert len([e for e in scenario.events if e.action == "record"]) == 3


def test_tiny_shift_in_fast_forward(tmp_path: Path) -> None:
    out = tmp_path / "out"
    lines: list[str] = []
    result = run_shift(write(tmp_path, TINY), out, progress=lines.append)
    assert result.simulated_seconds == 50
    assert (out / "site-keys" / "vault.key").exists()
    a, b = result.camera("a"), result.camera("b")
    assert a.device_id != b.device_id
    assert len(a.recordings) == 1
    rec = a.recordings[0]
    assert rec.complete and not rec.recovered and not rec.prerecord_short
    assert rec.prerecord_covered is not None and rec.prerecord_covered >= 30
    assert rec.duration_seconds == pytest.approx(rec.prerecord_covered + 7, abs=0.01)
    assert rec.segments == len(verify_recording(rec.path, a.device_public).segments)
    assert rec.bytes > 0
    # b: the power cut left a recording that boot recovered; the later stop was refused.
    assert len(b.recordings) == 1
    cut = b.recordings[0]
    assert cut.complete and cut.recovered and cut.duration_seconds is None
    assert any("stop" in r and "power the camera on" in r for r in b.refused)
    assert any("refused" in line for line in lines)
    summary = json.loads((out / "shift-summary.json").read_text())
    assert [c["name"] for c in summary["cameras"]] == ["a", "b"]
    assert summary["cameras"][0]["recordings"][0]["recording_id"] == rec.recording_id
    assert a.events_logged > 10 and b.events_logged > 10
    buf = io.StringIO()
    print_summary(result, file=buf)
    table = buf.getvalue()
    assert rec.recording_id in table and cut.recording_id in table
    assert "recovered" in table and f"{rec.duration_seconds:.1f} s" in table
    assert rec.started_utc is not None
    assert utc_text(round(rec.started_utc)) in table  # UTC with `Z`, as every command writes


def test_shift_reuses_given_site_keys(tmp_path: Path) -> None:
    from crypto.keys import init_site_keys

    keys = init_site_keys(tmp_path / "keys")
    scenario = TINY.replace('end = "0:50"', "end = 3")
    scenario = scenario[: scenario.index('[[events]]\nat = "0:33"')]
    result = run_shift(write(tmp_path, scenario), tmp_path / "out", keys_dir=tmp_path / "keys")
    assert result.keys_dir == keys.directory
    assert not (tmp_path / "out" / "site-keys").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('action = "dock"', 'action = "play"'), "events.8.action"),
        (('camera = "b"\naction = "dock"', 'camera = "z"\naction = "dock"'), "'z' is not one"),
        (("at = 45", "at = -1"), "events.8.at"),
        (("at = 45", 'at = "soon"'), "not seconds"),
        (('name = "tiny"', 'name = "tiny"\ncolour = "red"'), "shift.colour"),
        (('name = "b"', 'name = "a"'), "names must be unique"),
        (("[shift]", "[shift\n"), "not TOML"),
    ],
)
def test_bad_scenarios_name_the_field(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    text = TINY.replace(*change, 1)
    with pytest.raises(ScenarioError, match=message):
        load_scenario(write(tmp_path, text))


def test_a_profile_given_as_scenario_is_named_in_one_short_line() -> None:
    root = Path(__file__).resolve().parents[2]
    path = root / "profiles" / "heusden.toml"
    with pytest.raises(ScenarioError) as exc:
        load_scenario(path)
    message = str(exc.value)
    assert message.startswith(f"{path}: this is a camera profile, not a shift scenario")
    assert "\n" not in message and len(message) < 300


def test_bad_profile_override_is_reported(tmp_path: Path) -> None:
    from formats.profile import ProfileError

    text = TINY.replace("prerecord = { seconds = 30 }", "prerecord = { seconds = 7 }", 1)
    with pytest.raises(ProfileError, match="seconds"):
        run_shift(write(tmp_path, text), tmp_path / "out")


def test_cli_sim_shift_prints_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = write(tmp_path, TINY)
    assert bodycam(["sim", "shift", str(scenario), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "Shift tiny: 2 recordings" in out
    assert "event log verified" in out
    assert bodycam(["sim", "shift", str(tmp_path / "missing.toml"), "--out", str(tmp_path)]) == 1
    assert "missing.toml" in capsys.readouterr().err


def test_slots_are_published_whole_and_withdrawn(tmp_path: Path) -> None:
    volume = tmp_path / "home" / "volume"
    volume.mkdir(parents=True)
    slots = tmp_path / "slots"
    slot = publish_slot(slots, "cam-1", volume, "/dev/pts/99")
    assert sorted(p.name for p in slots.iterdir()) == ["cam-1"]
    assert (slot / "volume").resolve() == volume.resolve()
    assert str((slot / "serial").readlink()) == "/dev/pts/99"
    with pytest.raises(FileExistsError, match="undock"):
        publish_slot(slots, "cam-1", volume, None)
    withdraw_slot(slots, "cam-1")
    assert list(slots.iterdir()) == []
    assert volume.exists()  # only the links went


def test_realtime_speed_runs_on_the_wall_clock(tmp_path: Path) -> None:
    text = """\
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
    result = run_shift(write(tmp_path, text), tmp_path / "out", speed="realtime")
    assert result.wall_seconds >= 1.6  # it waited for the wall clock, not fast-forward
    (rec,) = result.camera("a").recordings
    assert rec.complete and rec.prerecord_short
    # Footage time follows the wall clock: about 1 s live, never more than the run took.
    assert rec.duration_seconds is not None and 0.5 <= rec.duration_seconds <= result.wall_seconds


def test_cli_sim_shift_docks_into_a_store_at_the_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = write(tmp_path, TINY + '\n[[events]]\nat = 46\ncamera = "a"\naction = "dock"\n')
    out, store = tmp_path / "out", tmp_path / "store"
    args = ["sim", "shift", str(scenario), "--out", str(out), "--dock-store", f"file://{store}"]
    assert bodycam(args) == 0
    assert "camera released" in capsys.readouterr().err
    summary = json.loads((out / "shift-summary.json").read_text())
    held = sum(r["segments"] for cam in summary["cameras"] for r in cam["recordings"])
    assert held > 0
    assert len([p for p in store.rglob("seg-*") if "quarantine" not in p.parts]) == held
    assert not list(out.rglob("volume/recordings/*/seg-*.bcs"))


def test_cli_sim_shift_refuses_a_bad_store_before_the_shift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = write(tmp_path, TINY)
    out = tmp_path / "out"
    args = ["sim", "shift", str(scenario), "--out", str(out), "--dock-store", "ftp://nowhere/x"]
    assert bodycam(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("bodycam: error:") and "ftp" in err and "\n" not in err
    assert not (out / "cameras").exists()


def test_the_camera_and_simulator_log_in_utc_with_z_on_a_machine_in_amsterdam(
    tmp_path: Path,
) -> None:
    """`bodycam -v sim shift` in its own process with TZ=Europe/Amsterdam: every log line
    (the cameras' firmware, the simulator, the sealing) starts with the UTC time and `Z`."""
    import os
    import re
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[2]
    scenario = write(tmp_path, TINY)
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "bodycam_cli", "-v", "sim", "shift", str(scenario)]
        + ["--out", str(tmp_path / "out")],
        cwd=root,
        env=dict(os.environ, TZ="Europe/Amsterdam"),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    loggers = set()
    for line in lines:
        m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z (\S+) [A-Z]+ ", line)
        assert m, line
        at = dt.datetime.fromisoformat(m.group(1)).replace(tzinfo=dt.UTC)
        assert abs(at.timestamp() - time.time()) < 300, line
        loggers.add(m.group(2).split(".")[0])
    assert {"firmware", "sim"} <= loggers, lines
