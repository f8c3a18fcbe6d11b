"""`python -m dock` with kill and pause points for crash tests (see fault_support.py).

Usage: python dock_fault_child.py run --slots ... (the arguments of `dock`)

Environment:
- BODYCAM_TEST_KILL=op:n      SIGKILL this process right after the n-th call of `op`
                              (link, fsync, replace, unlink): the effect of the call is
                              on disk, the step after it never runs;
- BODYCAM_TEST_PAUSE_DIR=DIR  with BODYCAM_TEST_KILL=pause-put:n: before the n-th S3
                              upload, write DIR/put-n.held and wait until the test removes
                              it (at most 60 s), so the test can act while it is held;
- BODYCAM_DOCK_FAULT=point:n  SIGKILL at the n-th time the dock reaches one of its own
                              fault points (dock/faults.py); only this wrapper reads it,
                              the shipped `python -m dock` ignores it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

FAULT_ENV = "BODYCAM_DOCK_FAULT"

_lock = threading.Lock()
_hits: dict[str, int] = {}


def _count(op: str) -> int:
    with _lock:
        _hits[op] = _hits.get(op, 0) + 1
        return _hits[op]


def _kill_after(op: str, nth: int, real: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if _count(op) == nth:
            sys.stderr.write(f"fault injection: killing the dock after {op} #{nth}\n")
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    return wrapper


def _pause_before_put(nth: int, folder: Path) -> None:
    from store import S3Store

    real = S3Store._upload

    def upload(self: Any, *args: Any, **kwargs: Any) -> Any:
        hit = _count("put")
        if hit == nth:
            marker = folder / f"put-{hit}.held"
            marker.write_text(str(os.getpid()))
            deadline = time.monotonic() + 60
            while marker.exists() and time.monotonic() < deadline:
                time.sleep(0.01)  # held until the test lets go
        return real(self, *args, **kwargs)

    S3Store._upload = upload  # type: ignore[method-assign]


def _install_dock_fault(spec: str) -> None:
    from dock.faults import set_fault_hook

    point, _, n = spec.partition(":")
    nth = int(n or 1)

    def hook(name: str) -> None:
        if name == point and _count(f"fault:{name}") == nth:
            sys.stderr.write(f"fault injection: killing the dock at {name} (hit {nth})\n")
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    set_fault_hook(hook)


def install() -> None:
    fault = os.environ.get(FAULT_ENV, "")
    if fault:
        _install_dock_fault(fault)
    spec = os.environ.get("BODYCAM_TEST_KILL", "")
    if not spec:
        return
    op, _, n = spec.partition(":")
    nth = int(n or 1)
    if op == "pause-put":
        _pause_before_put(nth, Path(os.environ["BODYCAM_TEST_PAUSE_DIR"]))
        return
    if op not in ("link", "fsync", "replace", "unlink"):
        raise SystemExit(f"unknown kill point {op!r}")
    setattr(os, op, _kill_after(op, nth, getattr(os, op)))


if __name__ == "__main__":
    install()
    from dock.cli import main

    sys.exit(main())
