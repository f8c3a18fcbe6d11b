"""The control channel over a pyserial port: the firmware's own `SerialPort`.

A device serves its control channel on a tty (its USB gadget's serial port) by
pyserial URL; tests also hand in an already open port-like object (a socket, a
lossy wrapper). The simulator's pty is sim/pty.py. `serial_port_for(port)`
turns whichever the caller has into a `firmware.hardware.SerialPort`.
"""

from __future__ import annotations

import logging
import select
from typing import Protocol

from firmware.hardware import LineStopped, SerialPort

log = logging.getLogger(__name__)

READ_TIMEOUT = 0.05  # seconds a read waits, so a stop is noticed promptly


class SerialLike(Protocol):
    """The part of a pyserial port the server and the client use."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def close(self) -> None: ...


class PySerialLine:
    """A `firmware.hardware.SerialLine` on a pyserial port (or a port-like object)."""

    def __init__(self, port: SerialLike, name: str, stop_fd: int, owned: bool) -> None:
        self._port = port
        self._name = name
        self._stop_fd = stop_fd
        self._owned = owned

    @property
    def name(self) -> str:
        return self._name

    def _check_stop(self) -> None:
        ready, _, _ = select.select([self._stop_fd], [], [], 0)
        if ready:
            raise LineStopped

    def read(self) -> bytes:
        self._check_stop()
        waiting = self._port.in_waiting
        data = self._port.read(waiting if waiting else 1)  # blocks at most the port timeout
        self._check_stop()
        return data

    def write(self, data: bytes) -> None:
        self._port.write(data)

    def close(self) -> None:
        if self._owned:
            self._port.close()


class SerialUrlPort:
    """A pyserial URL (`/dev/ttyGS0`, `socket://...`, `loop://`), opened per server start."""

    def __init__(self, url: str) -> None:
        self.url = url

    def open_line(self, stop_fd: int) -> PySerialLine:
        import serial

        opened = serial.serial_for_url(self.url, timeout=READ_TIMEOUT)
        return PySerialLine(opened, self.url, stop_fd, owned=True)

    def __repr__(self) -> str:
        return f"SerialUrlPort({self.url!r})"


class OpenSerialPort:
    """A port object someone else opened (and closes): the server only uses it."""

    def __init__(self, port: SerialLike) -> None:
        self.port = port

    def open_line(self, stop_fd: int) -> PySerialLine:
        return PySerialLine(self.port, repr(self.port), stop_fd, owned=False)

    def __repr__(self) -> str:
        return f"OpenSerialPort({self.port!r})"


def serial_port_for(port: SerialPort | str | SerialLike) -> SerialPort:
    """The `SerialPort` for a board's port, a pyserial URL or an open port-like object."""
    if isinstance(port, str):
        return SerialUrlPort(port)
    if isinstance(port, SerialPort):
        return port
    return OpenSerialPort(port)
