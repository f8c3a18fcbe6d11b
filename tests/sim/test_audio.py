"""sim.audio: continuous, bounded, reproducible float32 samples."""

from __future__ import annotations

import numpy as np
import pytest

from sim.audio import SyntheticMicrophone


def test_samples_are_float32_mono_in_range() -> None:
    samples = SyntheticMicrophone().capture(4800)
    assert samples.dtype == np.float32 and samples.shape == (4800,)
    assert float(np.abs(samples).max()) <= 1.0
    assert float(np.sqrt(np.mean(samples**2))) > 0.05  # not silence


def test_captures_continue_the_waveform() -> None:
    whole = SyntheticMicrophone(noise=0.0).capture(48_000)
    mic = SyntheticMicrophone(noise=0.0)
    parts = np.concatenate([mic.capture(n) for n in (1600, 1, 0, 7399, 39_000)])
    assert np.allclose(parts, whole, atol=1e-6)
    assert mic.samples_captured == 48_000


def test_tone_is_at_its_frequency() -> None:
    samples = SyntheticMicrophone(tone_hz=1000.0, noise=0.01).capture(48_000)
    spectrum = np.abs(np.fft.rfft(samples))
    assert int(np.argmax(spectrum)) == 1000  # 1 Hz bins over one second


def test_same_seed_same_samples() -> None:
    a, b = SyntheticMicrophone(seed=3), SyntheticMicrophone(seed=3)
    assert np.array_equal(a.capture(1000), b.capture(1000))
    assert not np.array_equal(SyntheticMicrophone(seed=4).capture(1000), a.capture(1000))


@pytest.mark.parametrize(
    "kwargs", [{"sample_rate": 100}, {"tone_hz": 30_000.0}, {"amplitude": 0.99, "noise": 0.1}]
)
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SyntheticMicrophone(**kwargs)  # type: ignore[arg-type]


def test_capture_size_is_bounded() -> None:
    mic = SyntheticMicrophone()
    with pytest.raises(ValueError, match="allowed 0..480000"):
        mic.capture(480_001)
    with pytest.raises(ValueError):
        mic.capture(-1)
