"""Simulated microphone: a tone with a slow loudness swing plus noise, as float32 mono.

```
mic = SyntheticMicrophone(sample_rate=48_000)
samples = mic.capture(1600)   # np.ndarray float32, shape (1600,), values in [-1, 1]
```

Consecutive captures continue the waveform without a click (the phase carries over),
so an AAC encoder sees a realistic, continuous signal. The noise is seeded: two
microphones made with the same arguments give the same samples.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

MAX_CAPTURE_SECONDS = 10  # one capture never asks for more than this (bounds memory)


class SyntheticMicrophone:
    """Tone + noise source. `capture(n)` returns the next n samples, float32 in [-1, 1]."""

    def __init__(
        self,
        sample_rate: int = 48_000,
        *,
        tone_hz: float = 440.0,
        amplitude: float = 0.25,
        noise: float = 0.02,
        seed: int = 0,
    ) -> None:
        if not 8_000 <= int(sample_rate) <= 192_000:
            raise ValueError(f"sample_rate {sample_rate} out of range: allowed 8000..192000 Hz")
        if not 0 < tone_hz < sample_rate / 2:
            raise ValueError(f"tone_hz {tone_hz} must be between 0 and half the sample rate")
        if not (0 <= amplitude <= 1 and 0 <= noise <= 1 and amplitude + noise <= 1):
            raise ValueError("amplitude and noise must be >= 0 and add up to at most 1.0")
        self.sample_rate = int(sample_rate)
        self.tone_hz = float(tone_hz)
        self.amplitude = float(amplitude)
        self.noise = float(noise)
        self._rng = np.random.default_rng(seed)
        self._position = 0  # samples delivered so far: the phase of tone and swing

    @property
    def samples_captured(self) -> int:
        return self._position

    def capture(self, n_samples: int) -> npt.NDArray[np.float32]:
        n = int(n_samples)
        limit = MAX_CAPTURE_SECONDS * self.sample_rate
        if not 0 <= n <= limit:
            raise ValueError(f"capture of {n_samples} samples: allowed 0..{limit}")
        t = (self._position + np.arange(n, dtype=np.float64)) / self.sample_rate
        self._position += n
        # A 0.5 Hz loudness swing, so the level is not constant (like speech and traffic).
        swing = 0.6 + 0.4 * np.sin(2 * math.pi * 0.5 * t)
        signal = self.amplitude * swing * np.sin(2 * math.pi * self.tone_hz * t)
        signal += self.noise * self._rng.standard_normal(n)
        return np.clip(signal, -1.0, 1.0).astype(np.float32)

    def __repr__(self) -> str:
        return f"SyntheticMicrophone({self.sample_rate} Hz, tone {self.tone_hz:g} Hz)"
