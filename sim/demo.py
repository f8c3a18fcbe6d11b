"""`make demo`: a demonstration run on embedded defaults."""

from __future__ import annotations

import sys
from pathlib import Path


def run_demo(out_dir: str | Path = "demo-out") -> int:
    """Run the demonstration; returns the process exit code."""
    from ringbuffer.demo import run_demo as run_buffer_demo

    run_buffer_demo(sys.stdout)
    return 0
