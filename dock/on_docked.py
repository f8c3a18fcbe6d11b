"""`dock run --on-docked COMMAND`: a command run after a docking stored something.

Typically the back office's catalog sync. One run at a time, no shell; dockings while it
runs coalesce into one more run, which learns the cameras from `BODYCAM_DOCKED_DEVICES`.
A run longer than its timeout is killed; at stop a running command gets a bounded wait.
"""

from __future__ import annotations

import logging
import os
import subprocess

from formats.clock import Clock

log = logging.getLogger(__name__)


class OnDockedCommand:
    """The --on-docked command of one daemon (nothing to do when `argv` is empty)."""

    def __init__(self, argv: tuple[str, ...], timeout: float, clock: Clock) -> None:
        self.argv = argv
        self.timeout = timeout
        self.clock = clock
        self._running: subprocess.Popen[bytes] | None = None
        self._started = 0.0
        self._pending: list[str] = []  # devices docked since the command last started

    def docked(self, device_id: str) -> None:
        """A docking of `device_id` stored something: run the command (again) for it."""
        if self.argv:
            self._pending.append(device_id)

    def busy(self) -> bool:
        return self._running is not None or bool(self._pending)

    def tick(self) -> None:
        """Reap the command when it ends; start it again if footage came in."""
        if self._running is not None:
            code = self._running.poll()
            if code is None:
                if self.clock.monotonic() - self._started > self.timeout:
                    log.error("--on-docked command ran over %.0f s; killed", self.timeout)
                    self._running.kill()
                    self._running.wait()
                    self._running = None
                return
            if code == 0:
                log.info("--on-docked command done")
            else:
                log.error("--on-docked command failed with exit code %d", code)
            self._running = None
        if not self._pending:
            return
        devices, self._pending = sorted(set(self._pending)), []
        env = {**os.environ, "BODYCAM_DOCKED_DEVICES": " ".join(devices)}
        try:
            self._running = subprocess.Popen(list(self.argv), env=env, stdin=subprocess.DEVNULL)
        except OSError as exc:
            log.error("--on-docked command %r could not start: %s", self.argv[0], exc)
            return
        self._started = self.clock.monotonic()
        log.info("--on-docked command started for %s", ", ".join(devices))

    def finish(self) -> None:
        """At stop: let a running command end (bounded), then stop waiting."""
        if self._running is None:
            return
        try:
            self._running.wait(timeout=min(60.0, self.timeout))
        except subprocess.TimeoutExpired:
            log.error("--on-docked command still running at stop; killed")
            self._running.kill()
            self._running.wait()
        self._running = None
