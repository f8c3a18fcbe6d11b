"""`bodycam device run`: one emulated camera in the terminal, in real time.

Keys: `r` record, `s` stop, `d` dock / undock, `q` quit. On a terminal the keys
act at once (cbreak mode, select on stdin between frames) and a status line,
cut to the terminal's width and redrawn when it is resized, shows state, the
LED and every signal of the latest moment (for a few seconds), then the pre-roll
buffered (in standby) or the recording time and pre-roll kept (while recording),
storage free in MiB (the unit of the profile's storage_capacity_mb) and, while
docked, the offload and a newly flashed profile. When stdin is not a terminal
(a script, a pipe, a test) the same commands are read one per line, plus
`wait SECONDS`; end of input quits. Quitting powers the camera off cleanly: a
recording in progress is stopped and what was saved is printed. SIGTERM and
SIGHUP (the terminal closed) are a power cut: nothing is finished, and the
next boot says what it recovered.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import termios
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from firmware.camera import Camera
from firmware.state import CameraError, CameraState

log = logging.getLogger(__name__)

STATUS_INTERVAL = 0.25  # seconds between status line refreshes on a terminal
INPUT_POLL = 0.02  # longest wait between two looks at the keyboard
MAX_LINE = 256
HELP = "keys: r record, s stop, d dock/undock, q quit"
# A beep or a vibration is over in a moment: its text stays this long, then goes (a
# "recording stopped" beside "offload done" minutes later says something stale).
SIGNAL_SHOWN_SECONDS = 5.0
MIB = 1 << 20  # the profile's storage_capacity_mb counts MiB: the screen does too


def _indicators(status: dict[str, Any]) -> str:
    """Every signal of the latest moment, grouped by reason: `beep+vibrate: recording started`."""
    indicators = status.get("indicators") or {}
    age = indicators.get("recent_age_seconds")
    if isinstance(age, int | float) and age > SIGNAL_SHOWN_SECONDS:
        return ""
    recent = indicators.get("recent")
    if recent is None:
        recent = [indicators["last"]] if indicators.get("last") else []
    by_reason: dict[str, list[str]] = {}
    for item in recent:
        what, sep, reason = str(item).partition(": ")
        if not sep or what == "led":
            continue  # the LED has its own field
        by_reason.setdefault(reason, []).append(what)
    return "  ".join(f"{'+'.join(whats)}: {reason}" for reason, whats in by_reason.items())


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def status_line(status: dict[str, Any], width: int | None = None, docked: str = "") -> str:
    """One line: state, LED, the signals of the moment, pre-roll or recording time, free.

    `docked` is what the session knows of the offload; `width` cuts the line from the
    right so it never wraps (a wrapped line cannot be redrawn in place): what the
    officer must see at a glance (state, LED, signals) comes first and stays.
    """
    state = str(status["state"]).upper()
    if status.get("fault"):
        state += f" ({status['fault']})"
    parts = [f"{status.get('device_id') or '-'} {state:<10}"]
    parts.append("LED on" if (status.get("indicators") or {}).get("led") else "LED off")
    signals = _indicators(status)
    if signals:
        parts.append(signals)
    target = float(status.get("buffer_target_seconds") or 0)
    if state.startswith("RECORDING"):
        pre = status.get("recording_prerecord_seconds")
        kept = f" + pre-roll {float(pre):.1f}s" if pre is not None else ""
        parts.append(f"rec {_clock(float(status.get('recording_seconds') or 0))}{kept}")
    elif state.startswith("STANDBY"):
        parts.append(f"pre-roll {float(status.get('buffer_seconds') or 0):5.1f}/{target:.0f}s")
    free = status.get("storage_free_bytes")
    parts.append(f"free {free / MIB:,.0f} MiB" if isinstance(free, int) else "free -")
    if docked:
        parts.append(docked)
    pending = status.get("profile_pending")
    if pending:
        parts.append(
            f"new profile {pending.get('profile_name')} v{pending.get('profile_version')} "
            "flashed: applies at undock"
        )
    line = "  ".join(parts)
    if width is not None and len(line) >= width:
        line = line[: max(1, width - 2)] + "~"
    return line


def terminal_width(out: TextIO) -> int | None:
    """Columns of the terminal `out` writes to (asked at every redraw: it follows resizes)."""
    try:
        columns = os.get_terminal_size(out.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return None
    return columns if columns > 0 else None  # 0: a terminal that never said its size


def profile_line(camera: Camera, given: Path | None) -> str:
    """Which profile the camera runs, and whether that is the one given on the command line."""
    status = camera.status()
    ident = status.get("profile") or {}
    name = f"{ident.get('profile_name')} v{ident.get('profile_version')}"
    source = str(status.get("profile_source") or "built-in")
    if source.startswith("flashed"):
        ignored = f"; {given} is not used (a flashed profile wins)" if given else ""
        return f"profile {name}, {source} in {camera.home / 'profiles'}{ignored}"
    return f"profile {name}" + (f" from {given}" if given else "")


def recovery_lines(camera: Camera) -> list[str]:
    """What the boot recovered after an unclean stop (power cut, SIGKILL, SIGTERM)."""
    lines = []
    for report in camera.last_recovery or []:
        rec_id = getattr(report, "recording_id", "?")
        if getattr(report, "removed_recording", False):
            lines.append(f"removed recording {rec_id}: it holds no footage (no segment sealed)")
            continue
        kept = len(getattr(report, "recovered_segments", []) or [])
        lines.append(
            f"recovered recording {rec_id} after an unclean stop "
            f"({kept} segment{'s' if kept != 1 else ''} closed)"
        )
    if not lines and camera.clean_shutdown is False:
        lines.append("the camera was not powered off cleanly last time; nothing to recover")
    return lines


class PowerLost(Exception):
    """SIGTERM or SIGHUP: the camera loses power where it stands."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


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
        # What was on the volume when the camera was docked: the offload is measured
        # against it (the dock removes released recordings from the camera).
        self._docked_with: dict[str, Any] | None = None

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
                return _stopped(result.summary)
            if cmd == "d":
                if cam.state is CameraState.DOCKED:
                    offload = self.offload()
                    if self.slots is not None and self.slot_name:
                        withdraw_slot(self.slots, self.slot_name)
                    pending = cam.status().get("profile_pending")
                    cam.undock()
                    self._docked_with = None
                    applied = ""
                    if pending:
                        applied = (
                            f"; now running the flashed profile {pending.get('profile_name')} "
                            f"v{pending.get('profile_version')}"
                        )
                    return f"undocked ({offload or 'nothing was on the camera'}){applied}"
                message = ""
                if cam.state is CameraState.RECORDING:
                    message = _stopped(cam.press_stop().summary) + "\n"
                cam.dock()
                self._docked_with = _volume_totals(cam)
                where = ""
                if self.slots is not None and self.slot_name:
                    slot = publish_slot(self.slots, self.slot_name, cam.volume, cam.serial_path)
                    where = f" in {slot}"
                serial = f", serial {cam.serial_path}" if cam.serial_path else ""
                return f"{message}docked{where}{serial}"
            if cmd == "q":
                self.quit = True
                return "quit"
            if cmd in ("", "h", "?", "help"):
                return HELP
        except (CameraError, OSError, ValueError) as exc:
            return f"{cmd}: {exc}"
        return f"unknown command {text.strip()!r}; {HELP}"

    def offload(self) -> str:
        """While docked: how much of what was on the camera the dock has taken and released."""
        if self._docked_with is None or self.camera.state is not CameraState.DOCKED:
            return ""
        before = self._docked_with
        now = _volume_totals(self.camera)
        total = int(before["recordings"])
        if total == 0:
            return "offload: nothing on the camera"
        released = max(0, total - int(now["recordings"]))
        if released >= total:
            return f"offload done: {total} recording{'s' if total != 1 else ''} released"
        return (
            f"offload {released}/{total} recordings released, "
            f"{now['bytes'] / MIB:,.1f} MiB still on the camera"
        )

    def status(self, width: int | None = None) -> str:
        return status_line(self.camera.status(), width, docked=self.offload())

    def close(self) -> str:
        """Power off cleanly; what was saved of a recording in progress, if any."""
        from sim.docking import withdraw_slot

        saved = ""
        if self.slots is not None and self.slot_name:
            withdraw_slot(self.slots, self.slot_name)
        if self.camera.state is CameraState.RECORDING:
            try:
                saved = _stopped(self.camera.press_stop().summary)
            except CameraError as exc:
                saved = f"the recording could not be stopped cleanly: {exc}"
        if self.camera.state is not CameraState.OFF:
            self.camera.power_off(reason="quit")
        return saved

    def lose_power(self) -> None:
        """A power cut: nothing is finished; the slot goes (the camera left its dock)."""
        from sim.docking import withdraw_slot

        if self.slots is not None and self.slot_name:
            withdraw_slot(self.slots, self.slot_name)
        if self.camera.state is not CameraState.OFF:
            self.camera.power_cut()


def _stopped(summary: Any) -> str:
    if summary is None:
        return "stopped"
    return (
        f"stopped {summary.recording_id}: saved {summary.duration_seconds:.1f} s, "
        f"pre-roll {summary.prerecord_covered:.1f} s, {len(summary.segments)} "
        f"segments, {summary.bytes:,} bytes sealed"
    )


def _volume_totals(camera: Camera) -> dict[str, Any]:
    from firmware.volume_files import storage_summary

    return storage_summary(camera.volume, 0)


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
        try:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        except termios.error:  # the terminal is gone (closed window): nothing to restore
            log.info("terminal closed before its settings could be restored")


def _wait(camera: Camera, fd: int | None, until: float) -> bool:
    """Run frames until `until` (camera monotonic) or until `fd` is readable; True if readable.

    Input is checked with a zero-timeout select between frames and at least every
    INPUT_POLL seconds, so the same loop works on a real and a fast-forward clock.
    """
    clock = camera.clock
    while True:
        _check_power()
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
                    out.write("\r\x1b[K" + message.replace("\n", "\r\n") + "\n")
                    if session.quit:
                        break
            out.write("\r\x1b[K" + session.status(terminal_width(out)))
            out.flush()
    out.write("\r\x1b[K")


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
    out.write(session.status() + "\n")
    out.flush()


def run_device(
    camera: Camera,
    *,
    stdin_fd: int,
    out: TextIO,
    slots: Path | None = None,
    slot_name: str | None = None,
    profile_path: Path | None = None,
) -> int:
    """Boot the camera, take commands until quit or end of input, power off.

    SIGTERM and SIGHUP cut the power (exit status 128 + signal): the camera does not
    finish anything, exactly as if its battery were pulled; the next boot recovers.
    """
    camera.power_on()
    session = DeviceSession(camera, out, slots=slots, slot_name=slot_name)
    out.write(f"camera {camera.device_id} on, home {camera.home}\n")
    out.write(profile_line(camera, profile_path) + "\n")
    for line in recovery_lines(camera):
        out.write(line + "\n")
    out.flush()

    saved_handlers = _catch_power_signals()
    try:
        try:
            if os.isatty(stdin_fd):
                run_interactive(camera, stdin_fd, out, session)
            else:
                run_lines(camera, stdin_fd, out, session)
            _check_power()  # the loop may have ended on the closed terminal, not on `q`
        except (PowerLost, OSError):
            if not _power_signal:
                raise
            # A closed terminal fails reads and writes once SIGHUP is on its way: the
            # signal, not the I/O error, is what happened.
            signum = _power_signal[0]
            session.lose_power()
            _say(
                out,
                f"\r\ncamera {camera.device_id} lost power "
                f"({signal.Signals(signum).name}): nothing was finished; the next "
                "boot recovers what was recorded\n",
            )
            return 128 + signum
        saved = session.close()
    finally:
        for sig, handler in saved_handlers.items():
            signal.signal(sig, handler)
        if camera.state is not CameraState.OFF:  # an unexpected error: still power off
            session.close()
    if saved:
        out.write(f"quit while recording: {saved}\n")
    out.write(f"camera {camera.device_id} off; event log {camera.volume}/events/events.jsonl\n")
    out.flush()
    return 0


_power_signal: list[int] = []  # set by the signal handler, acted on between frames


def _on_power_signal(signum: int, frame: FrameType | None) -> None:
    # Only noted here: the loop raises PowerLost between two frames, never inside the
    # camera's own code (a half-run frame would be a state no real power cut leaves).
    _power_signal.append(signum)


def _catch_power_signals() -> dict[int, Any]:
    """SIGTERM and SIGHUP become a power cut (only the main thread can catch signals)."""
    import threading

    _power_signal.clear()
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, _on_power_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}


def _check_power() -> None:
    if _power_signal:
        raise PowerLost(_power_signal[0])


def _say(out: TextIO, text: str) -> None:
    """Write what the user should see, if the terminal is still there (after SIGHUP it is not)."""
    try:
        out.write(text)
        out.flush()
    except (OSError, ValueError):
        log.info("%s", text.strip())
