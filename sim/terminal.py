"""`bodycam device run`: one emulated camera in the terminal, in real time.

Keys: `r` record, `s` stop, `d` dock / undock, `q` quit. On a terminal the keys
act at once (cbreak mode, select on stdin between frames) and a status line
shows state, pre-record buffer filled, recording time, storage free and the
last indicator. When stdin is not a terminal (a script, a pipe, a test) the
same commands are read one per line, plus `wait SECONDS`; end of input quits.
Quitting powers the camera off cleanly (a recording in progress is finished).
"""

from __future__ import annotations

import logging
import os
import select
import termios
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from firmware.camera import Camera
from firmware.state import CameraError, CameraState

log = logging.getLogger(__name__)

STATUS_INTERVAL = 0.25  # seconds between status line refreshes on a terminal
INPUT_POLL = 0.02  # longest wait between two looks at the keyboard
MAX_LINE = 256
HELP = "keys: r record, s stop, d dock/undock, q quit"


def status_line(status: dict[str, Any]) -> str:
    """One line: state, buffer filled, recording time, storage free, indicator."""
    state = str(status["state"]).upper()
    if status.get("fault"):
        state += f" ({status['fault']})"
    rec = float(status.get("recording_seconds") or 0.0)
    minutes, seconds = divmod(int(rec), 60)
    free = status.get("storage_free_bytes")
    free_text = f"{free / 1e6:,.0f} MB" if isinstance(free, int) else "-"
    led = "LED on " if status.get("indicators", {}).get("led") else "LED off"
    last = status.get("indicators", {}).get("last") or ""
    return (
        f"{status.get('device_id') or '-'} {state:<10} "
        f"buffer {float(status.get('buffer_seconds') or 0):5.1f}/"
        f"{float(status.get('buffer_target_seconds') or 0):.0f}s  "
        f"rec {minutes:02d}:{seconds:02d}  free {free_text}  {led}  {last}"
    )


class DeviceSession:
    """Applies terminal commands to a camera; the dock slot is optional."""

    def __init__(
        self,
        camera: Camera,
        out: TextIO,
        *,
        slots: Path | None = None,
        slot_name: str | None = None,
    ) -> None:
        self.camera = camera
        self.out = out
        self.slots = slots
        self.slot_name = slot_name
        self.quit = False

    def command(self, text: str) -> str:
        """Run one command; returns what to tell the user."""
        from sim.docking import publish_slot, withdraw_slot

        cam = self.camera
        cmd = text.strip().lower()
        try:
            if cmd == "r":
                result = cam.press_record()
                return (
                    f"recording {result.recording_id}"
                    if result.accepted
                    else f"record refused: {result.reason}"
                )
            if cmd == "s":
                result = cam.press_stop()
                if not result.accepted:
                    return f"stop refused: {result.reason}"
                summary = result.summary
                if summary is None:
                    return "stopped"
                return (
                    f"stopped {summary.recording_id}: {summary.duration_seconds:.1f} s, "
                    f"pre-roll {summary.prerecord_covered:.1f} s, {len(summary.segments)} "
                    f"segments, {summary.bytes:,} bytes sealed"
                )
            if cmd == "d":
                if cam.state is CameraState.DOCKED:
                    if self.slots is not None and self.slot_name:
                        withdraw_slot(self.slots, self.slot_name)
                    cam.undock()
                    return "undocked"
                cam.dock()
                where = ""
                if self.slots is not None and self.slot_name:
                    slot = publish_slot(self.slots, self.slot_name, cam.volume, cam.serial_path)
                    where = f" in {slot}"
                serial = f", serial {cam.serial_path}" if cam.serial_path else ""
                return f"docked{where}{serial}"
            if cmd == "q":
                self.quit = True
                return "quit"
            if cmd in ("", "h", "?", "help"):
                return HELP
        except (CameraError, OSError, ValueError) as exc:
            return f"{cmd}: {exc}"
        return f"unknown command {text.strip()!r}; {HELP}"

    def close(self) -> None:
        from sim.docking import withdraw_slot

        if self.slots is not None and self.slot_name:
            withdraw_slot(self.slots, self.slot_name)
        if self.camera.state is not CameraState.OFF:
            self.camera.power_off(reason="quit")


@contextmanager
def cbreak(fd: int) -> Iterator[None]:
    """Keys arrive one by one without Enter and without echo; restored on exit."""
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        new = termios.tcgetattr(fd)
        new[3] &= ~termios.ECHO
        termios.tcsetattr(fd, termios.TCSADRAIN, new)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _wait(camera: Camera, fd: int | None, until: float) -> bool:
    """Run frames until `until` (camera monotonic) or until `fd` is readable; True if readable.

    Input is checked with a zero-timeout select between frames and at least every
    INPUT_POLL seconds, so the same loop works on a real and a fast-forward clock.
    """
    clock = camera.clock
    while True:
        if fd is not None and select.select([fd], [], [], 0)[0]:
            return True
        next_due = camera.poll()
        now = clock.monotonic()
        if now >= until:
            return False
        step = min(next_due, until) - now
        if fd is not None:
            step = min(step, INPUT_POLL)
        clock.sleep(max(0.0, step))


def run_interactive(camera: Camera, stdin_fd: int, out: TextIO, session: DeviceSession) -> None:
    """The terminal loop: single keys, a status line redrawn in place."""
    out.write(HELP + "\n")
    with cbreak(stdin_fd):
        while not session.quit:
            deadline = camera.clock.monotonic() + STATUS_INTERVAL
            if _wait(camera, stdin_fd, deadline):
                data = os.read(stdin_fd, 64)
                if not data:
                    break
                for char in data.decode("utf-8", "replace"):
                    message = session.command(char)
                    out.write("\r\x1b[K" + message + "\n")
                    if session.quit:
                        break
            out.write("\r\x1b[K" + status_line(camera.status()))
            out.flush()
    out.write("\n")


def run_lines(camera: Camera, stdin_fd: int, out: TextIO, session: DeviceSession) -> None:
    """Commands one per line (not a terminal); `wait SECONDS` lets time pass."""
    pending = b""
    eof = False
    while not session.quit:
        if b"\n" in pending or (eof and pending):
            raw, _, pending = pending.partition(b"\n")
            _line(camera, out, session, raw.decode("utf-8", "replace")[:MAX_LINE].strip())
            continue
        if eof:
            break
        if _wait(camera, stdin_fd, camera.clock.monotonic() + STATUS_INTERVAL):
            chunk = os.read(stdin_fd, 4096)
            if not chunk:
                eof = True
            pending += chunk
            if len(pending) > 64 * MAX_LINE:
                raise ValueError("input lines too long for camera commands")


def _line(camera: Camera, out: TextIO, session: DeviceSession, line: str) -> None:
    if not line:
        return
    if line.split()[0] == "wait":
        parts = line.split()
        try:
            seconds = float(parts[1])
        except (IndexError, ValueError):
            out.write(f"{line}: wait needs SECONDS\n")
            return
        _wait(camera, None, camera.clock.monotonic() + max(0.0, min(seconds, 3600.0)))
    else:
        out.write(session.command(line) + "\n")
    out.write(status_line(camera.status()) + "\n")
    out.flush()


def run_device(
    camera: Camera,
    *,
    stdin_fd: int,
    out: TextIO,
    slots: Path | None = None,
    slot_name: str | None = None,
) -> int:
    """Boot the camera, take commands until quit or end of input, power off."""
    camera.power_on()
    session = DeviceSession(camera, out, slots=slots, slot_name=slot_name)
    out.write(f"camera {camera.device_id} on, home {camera.home}\n")
    try:
        if os.isatty(stdin_fd):
            run_interactive(camera, stdin_fd, out, session)
        else:
            run_lines(camera, stdin_fd, out, session)
    finally:
        session.close()
    out.write(f"camera {camera.device_id} off; event log {camera.volume}/events/events.jsonl\n")
    out.flush()
    return 0
