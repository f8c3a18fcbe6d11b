"""The camera's hardware as the firmware sees it: small interfaces, one injected `Board`.

```
board = SimBoard(FastForwardClock())          # sim.board: the simulated hardware
camera = Camera(home, profile, board)         # the firmware never builds hardware itself
```

The firmware talks to hardware only through these protocols; `sim/` implements
them (and a real device would). Some parts can only be opened once the camera
knows what it needs: the sensor needs the picture size and the device id burned
into the picture (known after provisioning, and changed by a flashed profile),
the volume needs its capacity from the profile. The board therefore opens them
on request; the clock is there from the start.

The serial port is the dock's line to the camera's control server
(firmware.control): the board hands out a `SerialPort` (the simulator's is a
pty, sim/pty.py; a device would give its USB gadget's tty as a pyserial URL),
and the server opens a `SerialLine` on it each time it starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from formats.clock import Clock


@runtime_checkable
class SettableClock(Clock, Protocol):
    """The camera's wall clock as the dock sets it (SET_TIME): the hardware clock plus
    `set_time`. `monotonic()` is never moved by it (media timing, session expiry)."""

    def set_time(self, utc: float) -> float:
        """Set the wall clock to `utc`; return the drift (camera time minus `utc`) before."""
        ...


class LineStopped(Exception):
    """Raised by `SerialLine.read`/`write` once the server asked it to stop."""


class LineReset(Exception):
    """Raised by `SerialLine.read`: the connection changed (a client opened or closed the
    port, or the host hung up). Nothing of the previous client's session may survive it."""


class SerialLine(Protocol):
    """An open serial line as the control server uses it (one per server start)."""

    @property
    def name(self) -> str:
        """What a client opens to reach the camera (a device path or pyserial URL)."""
        ...

    def read(self) -> bytes:
        """Some bytes, or b"" after a short wait; raises LineStopped or LineReset."""
        ...

    def write(self, data: bytes) -> None:
        """Send all of `data` (dropped if the client is gone); may raise LineStopped."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class SerialPort(Protocol):
    """The board's serial port to the dock; the control server opens it when it starts."""

    def open_line(self, stop_fd: int) -> SerialLine:
        """Open the line. `stop_fd` becomes readable when the server stops: a read or
        write waiting on the line must then raise LineStopped."""
        ...


class Sensor(Protocol):
    """The image sensor: one picture per frame number, uint8, BGR (H, W, 3) or I420
    planes (H * 3 / 2, W), the two layouts `firmware.encoder.H264Encoder` takes."""

    def capture(self, frame_number: int, capture_utc: float) -> npt.NDArray[np.uint8]: ...


class Microphone(Protocol):
    """Mono float samples in [-1, 1]."""

    def capture(self, n_samples: int) -> npt.NDArray[np.float32]: ...


class IndicatorPanel(Protocol):
    """LED, beeper and vibration motor."""

    def led(self, on: bool, reason: str = "") -> Any: ...

    def beep(self, reason: str) -> Any: ...

    def vibrate(self, reason: str) -> Any: ...


class StorageVolume(Protocol):
    """The device's flash storage (what the dock sees as mass storage)."""

    def free_bytes(self) -> int: ...

    def used_bytes(self) -> int: ...


@dataclass(frozen=True)
class SensorSettings:
    """What the sensor is opened with (from the profile and the device identity)."""

    width: int
    height: int
    device_id: str  # burned into every picture
    night_mode: bool = False


class Board(Protocol):
    """Everything the camera firmware needs of its hardware, in one bundle."""

    @property
    def clock(self) -> Clock: ...

    def open_sensor(self, settings: SensorSettings) -> Sensor:
        """The sensor, configured; called at every standby (a profile may change the size)."""
        ...

    def open_microphone(self, sample_rate: int) -> Microphone: ...

    def open_volume(self, root: Path, capacity_bytes: int) -> StorageVolume:
        """The storage volume mounted at `root` (the camera's files live under it)."""
        ...

    def open_indicators(self, clock: Clock) -> IndicatorPanel: ...

    def serial_port(self) -> SerialPort | str:
        """The dock's serial line for the control server: a port (sim/pty.py in the
        simulator) or a pyserial URL."""
        ...
