"""The daemon: many slots at once, a failing camera, bounded uploads, status, the CLI."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from dock_support import Dock, decrypt_from_store, register
from fake_camera import FakeCamera
from rich.console import Console

from dock.cli import main as dock_main
from dock.daemon import DockDaemon
from dock.daemon_config import DaemonConfig
from dock.ledger import Ledger
from store import FileStore


def config(tmp_path: Path, docks: Dock, **kw: Any) -> DaemonConfig:
    kw.setdefault("live", False)
    kw.setdefault("once", True)
    return DaemonConfig(
        slots=docks.slots,
        store_url=f"file://{tmp_path}/store",
        ledger_path=tmp_path / "state" / "ledger.sqlite",
        settle=0.0,
        site="s",
        **kw,
    )


def test_eight_slots_at_once_one_failing_camera_does_not_stop_the_others(
    tmp_path: Path,
    docks: Dock,
    make_cam: Any,
    ledger: Ledger,
    dock_keys: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cams: list[FakeCamera] = []
    for i in range(8):
        cam = make_cam(f"cam{i}")
        cam.record(2)
        cam.record(1)
        if i != 5:
            register(ledger, cam)  # camera 5 was never registered
        docks.dock(cam, f"slot-{i}")
        cams.append(cam)
    store = FileStore(tmp_path / "store")
    in_flight = peak = 0
    lock = threading.Lock()
    real_put = store.put_file

    def counting_put(*a: Any, **kw: Any) -> Any:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        try:
            return real_put(*a, **kw)
        finally:
            with lock:
                in_flight -= 1

    monkeypatch.setattr(store, "put_file", counting_put)
    out = io.StringIO()
    screen = Console(file=io.StringIO(), width=250, force_terminal=False)
    daemon = DockDaemon(
        config(tmp_path, docks, max_uploads=2, live=True),
        store=store,
        ledger=ledger,
        dock_key=dock_keys.dock,
        out=out,
        console=screen,
    )
    result = daemon.run()
    assert result.exit_code == 1
    lines = sorted(out.getvalue().splitlines())
    assert len(lines) == 8
    for i, cam in enumerate(cams):
        if i == 5:
            assert len(cam.segment_files()) == 3
            refused = f"{cam.device_id}: refused: camera {cam.device_id} is not registered"
            assert any(line.startswith(refused) for line in lines)
        else:
            assert cam.segment_files() == []
            ok = f"{cam.device_id}: all 2 recordings stored, camera released; notes: camera clock"
            assert any(line.startswith(ok) for line in lines)
    assert 1 <= peak <= 2
    # the live view's last frame shows every slot with its final state
    frame = screen.file.getvalue().split("bodycam dock - ")[-1]  # type: ignore[attr-defined]
    for i, cam in enumerate(cams):
        assert f"slot-{i}" in frame and cam.device_id in frame
    assert frame.count(" done ") == 7 and frame.count(" error ") == 1
    rec = sorted(cams[0].plaintexts)[0]
    assert decrypt_from_store(store, "s", cams[0], rec, tmp_path / "out") == cams[0].plaintexts[rec]
    status = ledger.status()
    assert status["segments"] == {"released": 21}
    assert {s["state"] for s in status["slots"]} == {"done", "error"}
    assert sum(1 for c in status["cameras"] if not c["ok"]) == 1


def test_store_outage_keeps_footage_and_retries_with_backoff(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    cam: FakeCamera = make_cam()
    cam.record(2)
    register(ledger, cam)
    docks.dock(cam, "slot-1")
    nas = tmp_path / "nas"
    store = FileStore(nas / "bodycam", create=False)
    out = io.StringIO()
    cfg = config(tmp_path, docks, retry_base=0.0, once_attempts=3)
    daemon = DockDaemon(cfg, store=store, ledger=ledger, dock_key=dock_keys.dock, out=out)
    attempts: list[str] = []
    real_check = store.check

    def check_then_mount() -> None:
        attempts.append("check")
        if len(attempts) == 2:
            (nas / "bodycam").mkdir(parents=True)  # the NAS comes back before the 2nd try
            FileStore(nas / "bodycam").check()  # the store made at first start, marker and all
        real_check()

    store.check = check_then_mount  # type: ignore[method-assign]
    result = daemon.run()
    lines = out.getvalue().splitlines()
    assert "store problem" in lines[0] and "mounted" in lines[0]
    assert lines[-1].startswith(f"{cam.device_id}: all 1 recording stored, camera released")
    assert result.exit_code == 0 and cam.segment_files() == []

    # gone for good: the daemon gives up in --once mode, footage stays on the camera
    cam.record(1)
    docks.undock("slot-1")
    docks.dock(cam, "slot-1")
    dead = FileStore(tmp_path / "gone" / "bodycam", create=False)
    out = io.StringIO()
    result = DockDaemon(cfg, store=dead, ledger=ledger, dock_key=dock_keys.dock, out=out).run()
    assert result.exit_code == 1 and len(cam.segment_files()) == 1
    assert len(out.getvalue().splitlines()) == 3  # three attempts, each reported
    slot = ledger.slots()[0]
    assert slot["state"] == "error" and "gave up" in slot["message"]


def test_cli_register_status_and_roles(
    tmp_path: Path, make_cam: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cam: FakeCamera = make_cam()
    led = str(tmp_path / "l.sqlite")
    device_json = str(cam.volume / "DEVICE.json")
    assert dock_main(["register", device_json, "--role", "privacy-officer", "--ledger", led]) == 1
    assert "only the coordinator may add cameras" in capsys.readouterr().err
    assert (
        dock_main(
            ["register", device_json, "--role", "coordinator", "--by", "anna", "--ledger", led]
        )
        == 0
    )
    assert f"registered camera {cam.device_id}" in capsys.readouterr().out
    other = make_cam("cam2")
    assert (
        dock_main(["register", other.public_key.hex(), "--role", "coordinator", "--ledger", led])
        == 0
    )
    assert other.device_id in capsys.readouterr().out
    assert dock_main(["status", "--json", "--ledger", led]) == 0
    status = json.loads(capsys.readouterr().out)
    assert sorted(status["registered"]) == sorted([cam.device_id, other.device_id])
    assert dock_main(["status", "--ledger", led]) == 0
    assert "registered cameras: 2" in capsys.readouterr().out
    assert (
        dock_main(["unregister", other.device_id, "--role", "cluster-manager", "--ledger", led])
        == 1
    )
    assert dock_main(["unregister", other.device_id, "--role", "coordinator", "--ledger", led]) == 0
    assert dock_main(["status", "--ledger", str(tmp_path / "none.sqlite")]) == 1
    assert "bodycam dock run" in capsys.readouterr().err


def test_a_second_daemon_on_the_same_ledger_is_refused(
    tmp_path: Path, docks: Dock, ledger: Ledger, dock_keys: Any
) -> None:
    import fcntl
    import os

    from dock.daemon_config import DockBusy

    lock_path = f"{ledger.path}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT)
    os.write(fd, b"4242\n")
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a running daemon holds it
    try:
        daemon = DockDaemon(
            config(tmp_path, docks),
            store=FileStore(tmp_path / "store"),
            ledger=ledger,
            dock_key=dock_keys.dock,
            out=io.StringIO(),
        )
        with pytest.raises(DockBusy, match="pid 4242"):
            daemon.run()
    finally:
        os.close(fd)
    result = daemon.run()  # free again
    assert result.reports == []


def test_running_daemon_takes_a_camera_once_the_coordinator_registers_it(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    import time

    cam: FakeCamera = make_cam()
    cam.record(1)
    out = io.StringIO()
    daemon = DockDaemon(
        config(tmp_path, docks, once=False),
        store=FileStore(tmp_path / "st"),
        ledger=ledger,
        dock_key=dock_keys.dock,
        out=out,
    )
    runner = threading.Thread(target=daemon.run, name="test-dock")
    runner.start()
    try:
        docks.dock(cam, "slot-1")

        def wait_for(text: str) -> None:
            deadline = time.monotonic() + 20
            while text not in out.getvalue() and time.monotonic() < deadline:
                time.sleep(0.02)  # polling the daemon's output, not an assertion
            assert text in out.getvalue(), out.getvalue()

        wait_for("is not registered")
        assert len(cam.segment_files()) == 1
        register(ledger, cam)
        wait_for(f"{cam.device_id}: all 1 recording stored, camera released")
        assert cam.segment_files() == []
    finally:
        daemon.request_stop()
        runner.join()


def test_a_camera_that_died_docked_has_its_slot_removed_and_its_files_kept(
    tmp_path: Path,
    docks: Dock,
    make_cam: Any,
    ledger: Ledger,
    dock_keys: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its pty closed with it: the slot's links go, so the slot is free again; no file goes."""
    import os
    import time

    cam: FakeCamera = make_cam()
    cam.record(1)
    register(ledger, cam)
    out = io.StringIO()
    daemon = DockDaemon(
        config(tmp_path, docks, once=False, rescan_interval=0.1),
        store=FileStore(tmp_path / "st"),
        ledger=ledger,
        dock_key=dock_keys.dock,
        out=out,
    )
    runner = threading.Thread(target=daemon.run, name="test-dock")
    caplog.set_level("INFO", logger="dock.daemon")
    runner.start()
    try:
        slot = docks.dock(cam, "slot-1")
        serial = os.readlink(slot / "serial")
        deadline = time.monotonic() + 20
        while "camera released" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)  # polling the daemon's output
        assert "camera released" in out.getvalue(), out.getvalue()
        cam.record(1)  # footage the dock has not taken: it stays on the camera
        docks.servers.pop("slot-1").stop()  # the camera is killed: its pty closes
        while os.path.lexists(slot) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not os.path.lexists(slot)
    finally:
        daemon.request_stop()
        runner.join()
    assert cam.volume.is_dir() and (cam.volume / "DEVICE.json").is_file()
    assert len(cam.segment_files()) == 1
    removed = [r.getMessage() for r in caplog.records if "its camera is gone" in r.getMessage()]
    assert removed == [
        f"slot slot-1: its camera is gone (serial {serial} no longer exists): removed the "
        "slot's links; the camera's files were not touched"
    ]


def test_on_docked_command_runs_once_per_docking_that_stored_footage(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    """`--on-docked` (the back office's catalog sync) runs after footage came in, not idly."""
    import sys

    from store import FileStore

    marker = tmp_path / "docked.txt"
    hook = (
        sys.executable,
        "-c",
        "import os, sys; "
        "open(sys.argv[1], 'a').write(os.environ['BODYCAM_DOCKED_DEVICES'] + '\\n')",
        str(marker),
    )
    a: FakeCamera = make_cam("a")
    b: FakeCamera = make_cam("b")
    for cam in (a, b):
        cam.record(2)
        register(ledger, cam)
    docks.dock(a, "slot-1")
    docks.dock(b, "slot-2")
    store = FileStore(tmp_path / "store")
    cfg = config(tmp_path, docks, on_docked=hook)
    result = DockDaemon(cfg, store=store, ledger=ledger, dock_key=dock_keys.dock).run()
    assert result.exit_code == 0
    runs = marker.read_text().splitlines()
    # one or two runs (the second docking may finish while the first run is going), and
    # every camera named exactly once
    assert sorted(" ".join(runs).split()) == sorted([a.device_id, b.device_id])
    # nothing new on the cameras: the command does not run again
    result = DockDaemon(cfg, store=store, ledger=ledger, dock_key=dock_keys.dock).run()
    assert result.exit_code == 0
    assert marker.read_text().splitlines() == runs


def test_on_docked_command_is_split_like_a_shell_and_an_empty_one_refused() -> None:
    from dock.cli import _command

    assert _command('bodycam vault sync --credentials "/etc/bodycam/a b.json"') == (
        "bodycam",
        "vault",
        "sync",
        "--credentials",
        "/etc/bodycam/a b.json",
    )
    with pytest.raises(ValueError, match="--on-docked needs a command"):
        _command("  ")
    with pytest.raises(ValueError, match="--on-docked"):
        _command('unterminated "quote')
