"""What the officer sees in `bodycam device run`: the real command in a real pty.

Recording time and pre-roll while recording, every signal of the moment, the line cut
to the terminal's width (and re-cut on a resize), what quitting saved; SIGTERM/SIGHUP
as a power cut reported by the next boot; a docked camera's screen when a profile is
flashed, which profile a later boot runs; a killed docked camera's slot removed.
"""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest
from test_shift_device_terminal import ROOT, SMALL, _bodycam, _read_until, profile_bytes

from crypto.format import SEG_HEADER_MAX, TAG_SIZE
from crypto.keys import SigningKey, VaultKey, write_public_key
from firmware.recorder import DEFAULT_CHUNK
from formats.profile import default_profile, derive_profile


def _set_width(fd: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))


class Screen:
    """`bodycam device run ARGS` on a pty; `seen` is everything it wrote."""

    def __init__(self, args: list[str], columns: int = 200) -> None:
        self.master, slave = pty.openpty()
        _set_width(self.master, columns)
        self.proc = subprocess.Popen(
            _bodycam("device", "run", *args),
            stdin=slave,
            stdout=slave,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
        os.close(slave)
        self.seen = bytearray()

    def until(self, wanted: bytes, after: int = 0) -> None:
        """Read until `wanted` appears in what was written from offset `after` on."""
        if after == 0:
            _read_until(self.master, wanted, self.seen)
            return
        tail = bytearray(self.seen[after:])
        _read_until(self.master, wanted, tail)
        self.seen[after:] = tail

    def key(self, char: bytes) -> None:
        os.write(self.master, char)

    def status_lines(self, after: int = 0) -> list[str]:
        """The status lines redrawn in place since offset `after` of `seen`."""
        text = bytes(self.seen[after:]).decode("utf-8", "replace")
        return [part.split("\r")[0].split("\n")[0] for part in text.split("\r\x1b[K")[1:]]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        os.close(self.master)


def _profile(tmp_path: Path, raw: bytes | None = None) -> Path:
    path = tmp_path / "profile.toml"
    path.write_bytes(raw or profile_bytes())
    return path


def test_recording_screen_resize_and_quit_while_recording(tmp_path: Path) -> None:
    profile = _profile(tmp_path)
    screen = Screen(["--profile", str(profile), "--home", str(tmp_path / "home")])
    try:
        screen.until(b"pre-roll ")  # standby: the pre-roll buffer filling
        screen.key(b"r")
        screen.until(b"+ pre-roll ")
        # The default profile beeps and vibrates at a start: both show, not just the last.
        screen.until(b"beep+vibrate: recording started")
        wide = [line for line in screen.status_lines() if "RECORDING" in line]
        assert wide and all("buffer" not in line for line in wide)
        assert any(" rec 00:0" in line and "LED on" in line for line in wide)
        mark = len(screen.seen)
        _set_width(screen.master, 50)
        screen.proc.send_signal(signal.SIGWINCH)
        screen.until(b"~", after=mark)  # a line cut to the new width
        narrow = [line for line in screen.status_lines(mark) if "RECORDING" in line]
        assert narrow and all(len(line) < 50 for line in narrow[-3:])
        assert narrow[-1].endswith("~")  # cut, not wrapped
        assert "LED on" in narrow[-1]  # cut from the right: the LED stays in sight
        screen.key(b"q")
        assert screen.proc.wait(timeout=30) == 0
        screen.until(b" off; event log")
    finally:
        screen.close()
    text = screen.seen.decode("utf-8", "replace")
    assert "quit while recording: stopped 20" in text and "bytes sealed" in text
    assert len(list((tmp_path / "home" / "volume" / "recordings").iterdir())) == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_terminal_closed_is_a_power_cut_and_the_next_boot_says_what_it_recovered(
    tmp_path: Path, sig: signal.Signals
) -> None:
    profile = _profile(tmp_path)
    args = ["--profile", str(profile), "--home", str(tmp_path / "home")]
    proc = subprocess.Popen(
        _bodycam("device", "run", *args),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(b"r\nwait 1.5\nwait 120\n")
        proc.stdin.flush()
        seen = bytearray()
        _read_until(proc.stdout.fileno(), b"rec 00:01", seen)
        rec_id = seen.split(b"recording ", 1)[1].split(b"\n", 1)[0].decode()
        # Cut once a whole chunk is sealed on the volume: footage for the next boot to
        # recover (a recording cut before its first chunk holds none and is removed).
        folder = tmp_path / "home" / "volume" / "recordings" / rec_id
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
            p.stat().st_size > SEG_HEADER_MAX + DEFAULT_CHUNK + TAG_SIZE
            for p in folder.glob("seg-000000.bcs*")
        ):
            time.sleep(0.05)
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 128 + sig
        out = seen + proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert f"lost power ({sig.name})".encode() in out
    assert b"quit while recording" not in out  # nothing was finished
    again = subprocess.run(
        _bodycam("device", "run", *args),
        input="q\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert f"recovered recording {rec_id} after an unclean stop" in again.stdout


def test_docked_screen_shows_a_flashed_profile_and_a_killed_camera_leaves_no_slot(
    tmp_path: Path,
) -> None:
    from dock.link import CameraLink
    from firmware.identity import read_device_info
    from formats.profile_sign import sign_profile

    dock, integrator = SigningKey.generate("dock"), SigningKey.generate("integrator")
    base = default_profile(
        vault_recipients=[VaultKey.generate().public_bytes().hex()],
        trusted_docks=[dock.public_bytes().hex()],
    )
    raw1 = derive_profile(base, SMALL, source="test")[0]
    raw2 = derive_profile(
        base, {**SMALL, "profile": {"name": "heusden-test", "version": 7}}, source="test"
    )[0]
    profile = _profile(tmp_path, raw1)
    home, slots = tmp_path / "home", tmp_path / "slots"
    public = tmp_path / "integrator.pub"
    write_public_key(public, integrator.public_bytes(), "integrator")
    provisioned = subprocess.run(
        _bodycam("device", "provision", "--home", str(home), "--integrator-key", str(public)),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert provisioned.returncode == 0, provisioned.stderr
    args = ["--profile", str(profile), "--home", str(home), "--slots", str(slots)]
    args += ["--slot-name", "cam"]

    screen = Screen(args)
    try:
        screen.until(b"pre-roll ")
        screen.key(b"r")
        screen.until(b"+ pre-roll ")
        screen.key(b"d")  # docking stops the recording and says what was saved
        screen.until(b"offload 0/1 recordings released")
        serial = os.readlink(slots / "cam" / "serial")
        info = read_device_info(home / "volume" / "DEVICE.json")
        device_public = bytes.fromhex(info["public_key"])
        link = CameraLink(serial, timeout=2.0, retries=2)
        try:
            link.hello()
            link.auth(dock, device_public)
            link.profile_flash(raw2, sign_profile(raw2, integrator).to_bytes())
        finally:
            link.close()
        screen.until(b"new profile heusden-test v7 flashed: applies at undock")
        screen.key(b"d")
        screen.until(b"now running the flashed profile heusden-test v7")
        mark = len(screen.seen)
        screen.key(b"d")
        screen.until(b"docked in", after=mark)
        screen.proc.kill()  # no chance to withdraw the slot
        screen.proc.wait()
    finally:
        screen.close()
    text = screen.seen.decode("utf-8", "replace")
    assert "docked in" in text and "stopped 20" in text
    assert os.path.islink(slots / "cam" / "serial") and not (slots / "cam" / "serial").exists()

    again = subprocess.run(
        _bodycam("device", "run", *args),
        input="q\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert f"removed dock slot {slots / 'cam'}: its camera is gone" in again.stderr
    assert not (slots / "cam").exists()
    # The flashed profile runs, and the screen says the one on the command line does not.
    assert "profile heusden-test v7, flashed (slot a)" in again.stdout
    assert f"{profile} is not used (a flashed profile wins)" in again.stdout


@pytest.mark.parametrize("name", ["../elsewhere", "a/b", ".hidden", ""])
def test_slot_name_with_a_separator_is_refused_up_front(tmp_path: Path, name: str) -> None:
    profile = _profile(tmp_path)
    done = subprocess.run(
        _bodycam(
            "device",
            "run",
            "--profile",
            str(profile),
            "--home",
            str(tmp_path / "h"),
            "--slots",
            str(tmp_path / "slots"),
            "--slot-name",
            name,
        ),
        input="q\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("bodycam: error: --slot-name") and "refused" in done.stderr
    assert not (tmp_path / "h").exists() and not (tmp_path / "slots").exists()


def test_docked_screen_follows_the_offload_to_the_release(tmp_path: Path) -> None:
    """A real dock run takes and releases the recording; the camera's screen follows it."""
    import io

    from crypto.keys import init_site_keys
    from firmware.camera import Camera
    from firmware.control import CameraControlServer
    from formats.profile import parse_profile
    from sim.board import SimBoard
    from sim.clock import FastForwardClock
    from sim.docking import ingest_docked
    from sim.terminal import DeviceSession

    site = init_site_keys(tmp_path / "keys")
    base = default_profile(vault_recipients=[site.vault.hex()], trusted_docks=[site.dock.hex()])
    raw = derive_profile(base, SMALL, source="test")[0]
    cam = Camera(
        tmp_path / "home",
        parse_profile(raw, source="test"),
        SimBoard(FastForwardClock()),
        profile_raw=raw,
        control_factory=CameraControlServer,
    )
    slots = tmp_path / "slots"
    session = DeviceSession(cam, io.StringIO(), slots=slots, slot_name="s1")
    cam.power_on()
    try:
        cam.run_for(5)
        assert session.command("r").startswith("recording 20")
        cam.run_for(6)
        docked = session.command("d")  # docking stops the recording first
        assert "stopped 20" in docked and f"docked in {slots / 's1'}" in docked
        assert session.offload().startswith("offload 0/1 recordings released, ")
        assert "offload 0/1" in session.status()
        assert "recording stopped" in session.status()  # the signal of this moment
        result = ingest_docked(
            {cam.device_id: cam},
            slots,
            tmp_path / "ledger.sqlite",
            (tmp_path / "store").as_uri(),
            tmp_path / "keys",
            out=io.StringIO(),
        )
        assert result.exit_code == 0
        assert session.offload() == "offload done: 1 recording released"
        assert "offload done" in session.status()
        cam.run_for(6)  # the stop's beep is long over: its text goes, the offload stays
        line = session.status()
        assert "offload done" in line and "recording stopped" not in line
        assert " MiB" in line and " MB" not in line
        assert session.command("d") == "undocked (offload done: 1 recording released)"
    finally:
        session.close()
