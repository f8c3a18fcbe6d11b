"""Child process for the power-cut test: a camera recording in fast-forward until SIGKILL.

Usage: python powercut_child.py HOME PROFILE.toml
Prints "recording <id>" once recording, then records until it is killed.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from firmware.camera import Camera  # noqa: E402
from formats.profile import parse_profile  # noqa: E402
from sim.board import SimBoard  # noqa: E402
from sim.clock import FastForwardClock  # noqa: E402

START = 1_790_000_000.0


def main() -> None:
    home, profile_path = Path(sys.argv[1]), Path(sys.argv[2])
    raw = profile_path.read_bytes()
    camera = Camera(
        home,
        parse_profile(raw, source=str(profile_path)),
        SimBoard(FastForwardClock(START)),
        profile_raw=raw,
    )
    camera.power_on()
    camera.run_for(3)
    result = camera.press_record()
    print(f"recording {result.recording_id}", flush=True)
    while True:
        camera.run_for(0.5)


if __name__ == "__main__":
    main()
