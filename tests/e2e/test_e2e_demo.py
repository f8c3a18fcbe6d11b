"""`make demo` end to end: real cameras, a dock daemon over pty serial, a store, the vault.

The one test that runs the whole chain with nothing simulated but the hardware: the
firmware films and seals, the dock authenticates each camera over its control channel,
verifies, stores and releases, and the back office decrypts from the store into an MP4
that plays frame for frame.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from pathlib import Path

import av
import pytest
from e2e_support import assert_consecutive, ffprobe
from shadowing import shadowing_folder

from crypto.keys import SigningKey, VaultKey
from sim.demo import MARKER, DemoError, prepare_out, run_demo
from sim.sensor import read_frame_counter


def test_demo_runs_a_whole_shift_through_the_dock_into_a_playable_mp4(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Run from a folder holding look-alikes of the project's packages (`/srv/bodycam`
    # with its `store/`): the back office's seeding, a child Python, must not import them.
    monkeypatch.chdir(shadowing_folder(tmp_path / "cwd"))
    out = tmp_path / "demo"
    said = io.StringIO()
    caplog.set_level(logging.DEBUG)
    assert run_demo(out, file=said) == 0
    text = said.getvalue()

    # No private key, in any spelling, in the logs, the output or anything written
    # outside the key files themselves (volumes, event logs, ledger, store, vault).
    secrets = _private_keys(out)
    # vault, integrator, dock, two cameras, the back office's registry and export keys
    assert len(secrets) == 7
    spoken = text + caplog.text
    for secret in secrets:
        for form in (secret.hex(), base64.b64encode(secret).decode(), secret.hex().upper()):
            assert form not in spoken
    for path in out.rglob("*"):
        if path.is_file() and not path.name.endswith(".key"):
            data = path.read_bytes()
            for secret in secrets:
                assert secret not in data and secret.hex().encode() not in data, path

    # The back office was seeded with the shift, and says how to open it.
    assert "3 recordings catalogued, 3 shift reports drafted" in text
    assert "bodycam vault serve --home" in text and "cees (cluster_manager)" in text

    # The dock stored and released everything the shift recorded.
    summary = json.loads((out / "shift" / "shift-summary.json").read_text())
    recordings = [r for cam in summary["cameras"] for r in cam["recordings"]]
    assert len(recordings) == 3
    assert sum(r["recovered"] for r in recordings) == 1  # incident 3, cut by the power cut
    segments = sum(r["segments"] for r in recordings)
    stored = [
        p for p in (out / "store").rglob("seg-*") if not {"quarantine", ".holds"} & set(p.parts)
    ]
    assert len(stored) == segments
    for cam in summary["cameras"]:
        volume = Path(cam["home"]) / "volume"
        assert not list(volume.rglob("seg-*.bcs")), f"{cam['name']} kept segments"
        assert f"{cam['device_id']}: all " in text and "camera released" in text

    # Every recording went through the back office into an MP4 that starts at 0 s.
    mp4s = sorted((out / "vault").glob("*.mp4"))
    assert [m.stem for m in mp4s] == sorted(r["recording_id"] for r in recordings)
    for mp4 in mp4s:
        assert f"-> vault/{mp4.name}" in text
        info = ffprobe(mp4)
        assert float(info["format"]["start_time"]) == 0.0, mp4.name
    # Incident 1: every frame, pre-roll included, in order; sound from the press on.
    first = next(r for r in recordings if r["complete"] and not r["recovered"])
    mp4 = out / "vault" / f"{first['recording_id']}.mp4"
    info = ffprobe(mp4)
    kinds = sorted(s["codec_type"] for s in info["streams"])
    assert kinds == ["audio", "video"]
    assert float(info["format"]["duration"]) == pytest.approx(60.0, abs=0.2)  # 30 s + 30 s
    audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
    assert float(audio["start_time"]) == pytest.approx(30.0, abs=0.1)  # no pre-roll sound
    counters = []
    with av.open(str(mp4)) as container:
        for frame in container.decode(video=0):
            counters.append(read_frame_counter(frame.to_ndarray(format="bgr24")))
    assert len(counters) == 1800
    assert_consecutive(counters)
    # One package for the prosecutor, proven against the originals with the vault key.
    assert (out / "vault" / "export-OM-DEMO-1.zip").is_file()
    assert "recording.mp4 is the decryption of the originals" in text
    assert f"OK {out / 'vault' / 'export-OM-DEMO-1.zip'}" in text
    assert not list((out / "vault").glob("*.partial")) and not list((out / "vault").glob("*.ts"))


def _private_keys(out: Path) -> list[bytes]:
    keys: list[bytes] = []
    for path in sorted(out.rglob("*.key")):
        if path.name == "vault.key":
            keys.append(VaultKey.load(path).private_bytes())
        else:
            keys.append(SigningKey.load(path).seed_bytes())
    return keys


def test_demo_replaces_its_own_folder_and_refuses_any_other(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    prepare_out(mine)
    (mine / "old").write_text("from the last run")
    prepare_out(mine)
    assert sorted(p.name for p in mine.iterdir()) == [MARKER]

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep me")
    with pytest.raises(DemoError, match="not made by the demo"):
        prepare_out(theirs)
    assert (theirs / "notes.txt").read_text() == "keep me"
