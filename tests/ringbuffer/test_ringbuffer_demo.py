"""The interim `make demo`: five minutes of standby, record pressed, pre-roll described."""

from __future__ import annotations

import io

from ringbuffer.demo import run_demo


def test_demo_prints_a_full_preroll_that_starts_at_a_keyframe() -> None:
    out = io.StringIO()
    run_demo(out)
    text = out.getvalue()
    assert "record pressed at pts 27000000 (300.000 s)" in text
    # 60 s buffer, keyframe every second: the pre-roll is exactly 240 s .. 300 s.
    assert "first timestamp  21600000 (240.000 s)" in text
    assert "last timestamp   26997000 (299.967 s)" in text
    assert "seconds covered  60.000 (configured 60)" in text
    assert "packets          1800" in text
    assert "first packet is a keyframe: yes" in text
    assert "frames in order up to the press: yes" in text
    assert "undersized evictions 0, dropped before a keyframe 0" in text
    byte_line = next(line for line in text.splitlines() if line.strip().startswith("bytes"))
    assert 25_000_000 < int(byte_line.split()[1]) < 35_000_000  # ~4 Mbit/s for 60 s
