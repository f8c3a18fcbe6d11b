"""The simulator's serial port: a pty standing in for the camera's USB serial port.

```
board = SimBoard(clock)                       # its serial_port() is a PtySerialPort
server = CameraControlServer(camera, board.serial_port())
path = server.start()                         # the pty's slave, e.g. /dev/pts/5
link = CameraLink(path)                       # the dock opens it with pyserial
```

`PtySerialPort` implements `firmware.hardware.SerialPort`: every `open_line` makes
a fresh pty, whose master the control server reads and writes. The line tells the
server when the connection changes, as a USB host's would: any open or close of
the slave device (inotify) and the hangup EIO raise `LineReset`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import logging
import os
import select
import struct
import tty

from firmware.hardware import LineReset, LineStopped

log = logging.getLogger(__name__)

# inotify (Linux): open and close events of the pty's slave device, i.e. of the serial port.
_IN_CLOSE_WRITE = 0x00000008
_IN_CLOSE_NOWRITE = 0x00000010
_IN_OPEN = 0x00000020
_INOTIFY_EVENT = struct.Struct("iIII")  # wd, mask, cookie, name length


class _PortWatch:
    """Reports every open and close of a device node (inotify); inert where unavailable.

    A client opening or closing the camera's port is what the connection is: the pty
    itself does not say that a new client took over between two reads, inotify does, in
    order (the open event is queued before the new client's first byte can arrive).
    """

    def __init__(self, path: str) -> None:
        self.fd = -1
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd < 0:
                raise OSError(ctypes.get_errno(), "inotify_init1")
            mask = _IN_OPEN | _IN_CLOSE_WRITE | _IN_CLOSE_NOWRITE
            if libc.inotify_add_watch(fd, os.fsencode(path), mask) < 0:
                os.close(fd)
                raise OSError(ctypes.get_errno(), "inotify_add_watch")
            self.fd = fd
        except (OSError, AttributeError) as exc:  # not Linux, or no inotify left
            log.warning(
                "cannot watch %s for open/close (%s): only hangups end a session", path, exc
            )

    def changed(self) -> str | None:
        """Drain the queued events: None if the port was neither opened nor closed since
        last time, else "open" or "close", whichever happened last."""
        if self.fd < 0:
            return None
        last: str | None = None
        while True:
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                return last
            if not data:
                return last
            offset = 0
            while offset + _INOTIFY_EVENT.size <= len(data):
                _, mask, _, name_len = _INOTIFY_EVENT.unpack_from(data, offset)
                offset += _INOTIFY_EVENT.size + name_len
                if mask & _IN_OPEN:
                    last = "open"
                elif mask & (_IN_CLOSE_WRITE | _IN_CLOSE_NOWRITE):
                    last = "close"

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class PtyLine:
    """The master side of a pty; the slave is what clients open with pyserial.

    The camera does not hold the slave open itself: then the last client's close is a
    hangup the master sees (EIO), like a USB host dropping the line. Together with the
    open/close watch, `read` raises LineReset whenever the connection changed.
    """

    def __init__(self, stop_fd: int) -> None:
        self.master, slave = os.openpty()
        # Raw mode: no echo, no line discipline rewriting 0x0a/0x0d or eating 0x03.
        tty.setraw(slave)
        self.slave_path = os.ttyname(slave)
        os.close(slave)
        self._hung_up = True  # until a client opens the port
        self._reset_seen = False  # an open/close noticed while writing, not yet reported
        self._watch = _PortWatch(self.slave_path)
        flags = fcntl.fcntl(self.master, fcntl.F_GETFL)
        fcntl.fcntl(self.master, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self._stop_fd = stop_fd

    @property
    def name(self) -> str:
        return self.slave_path

    def read(self) -> bytes:
        watched = [self._watch.fd] if self._watch.fd >= 0 else []
        if self._hung_up:
            # No client holds the slave: the master would poll readable (hangup) at once.
            # Wait for an open event (or poll the master now and then without inotify).
            ready, _, _ = select.select([self._stop_fd, *watched], [], [], 0.05)
        else:
            ready, _, _ = select.select([self.master, self._stop_fd, *watched], [], [])
        if self._stop_fd in ready:
            raise LineStopped
        # Open/close events first: they were queued before any byte of a new client.
        if self._port_changed() or self._reset_seen:
            self._reset_seen = False
            raise LineReset
        try:
            data = os.read(self.master, 256 * 1024)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            if not self._hung_up:
                self._hung_up = True
                raise LineReset from None
            return b""
        self._hung_up = False
        return data

    def _port_changed(self) -> bool:
        change = self._watch.changed()
        if change == "open":
            self._hung_up = False  # a client holds the port now: wait on the master again
        return change is not None

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.master, view)
                view = view[n:]
            except BlockingIOError:
                # The client is not reading (or gone): wait for room, but stay stoppable.
                ready, _, _ = select.select([self._stop_fd], [self.master], [], 0.05)
                if self._stop_fd in ready:
                    raise LineStopped from None
                if not ready and self._port_changed():
                    self._reset_seen = True  # reported by the next read
                    return  # the client changed: this answer has nobody to go to
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise
                return  # hung up: the next read reports it

    def close(self) -> None:
        self._watch.close()
        try:
            os.close(self.master)
        except OSError:
            pass


class PtySerialPort:
    """A pty per control-server start (implements `firmware.hardware.SerialPort`)."""

    def open_line(self, stop_fd: int) -> PtyLine:
        return PtyLine(stop_fd)

    def __repr__(self) -> str:
        return "PtySerialPort()"
