"""The simulated camera board: the hardware bundle `firmware.camera.Camera` is given.

```
board = SimBoard(FastForwardClock())                    # everything simulated
board = SimBoard(RealClock(), sensor=FileSensor(...))   # swap one part (a test, a demo)
camera = Camera(home, profile, board)
```

Each part is the simulator's (synthetic sensor and microphone, a directory volume,
the indicator panel, a pty as the serial port: sim/pty.py) unless one is passed
in, which then wins every time the firmware opens that part.
"""

from __future__ import annotations

import logging
from pathlib import Path

from firmware.hardware import (
    IndicatorPanel,
    Microphone,
    Sensor,
    SensorSettings,
    SerialPort,
    StorageVolume,
)
from formats.clock import Clock
from sim.audio import SyntheticMicrophone
from sim.indicators import Indicators
from sim.pty import PtySerialPort
from sim.sensor import SyntheticSensor
from sim.volume import DirectoryVolume

log = logging.getLogger(__name__)


class SimBoard:
    """Simulated hardware for one camera (implements `firmware.hardware.Board`)."""

    def __init__(
        self,
        clock: Clock,
        *,
        sensor: Sensor | None = None,
        microphone: Microphone | None = None,
        storage: StorageVolume | None = None,
        indicators: IndicatorPanel | None = None,
        serial_port: SerialPort | str | None = None,
    ) -> None:
        self._clock = clock
        self._sensor = sensor
        self._microphone = microphone
        self._storage = storage
        self._indicators = indicators
        self._serial_port: SerialPort | str = (
            serial_port if serial_port is not None else PtySerialPort()
        )

    @property
    def clock(self) -> Clock:
        return self._clock

    def open_sensor(self, settings: SensorSettings) -> Sensor:
        if self._sensor is not None:
            return self._sensor
        # I420 straight from the sensor: the encoder takes the planes without a conversion.
        return SyntheticSensor(
            settings.width,
            settings.height,
            settings.device_id,
            night_mode=settings.night_mode,
            pixel_format="yuv420p",
        )

    def open_microphone(self, sample_rate: int) -> Microphone:
        if self._microphone is not None:
            return self._microphone
        return SyntheticMicrophone(sample_rate=sample_rate)

    def open_volume(self, root: Path, capacity_bytes: int) -> StorageVolume:
        if self._storage is not None:
            return self._storage
        return DirectoryVolume(root, capacity_bytes)

    def open_indicators(self, clock: Clock) -> IndicatorPanel:
        if self._indicators is not None:
            return self._indicators
        return Indicators(clock=clock)

    def serial_port(self) -> SerialPort | str:
        # The pty port makes a fresh pty at every control-server start (each dock).
        return self._serial_port

    def __repr__(self) -> str:
        return f"SimBoard({self._clock!r})"
