"""Crash injection for the dock's kill -9 tests: SIGKILL at a named point, inert unless asked.

`BODYCAM_DOCK_FAULT=<point>:<n>` makes the dock kill itself (SIGKILL, no cleanup,
exactly like `kill -9`) the n-th time it reaches `<point>` (n defaults to 1). Without
the variable every call is a no-op costing one environment lookup. The points sit in
the narrow windows between two durable steps, where a crash is hardest to reach by
timing:

| point | where |
| --- | --- |
| `after-store` | a segment is durable in the store, the ledger does not know yet |
| `after-ledger` | the ledger says stored, RELEASE not sent yet |
| `after-release` | the camera deleted the segment, the ledger does not know yet |
| `store-linked` | file store: the object has its final name, its staging name is not unlinked |
| `s3-put-sent` | S3: the PUT went out and was answered, nothing after it ran |
| `events-stored` | an event log piece is stored, its end offset not recorded |
"""

from __future__ import annotations

import logging
import os
import signal
import threading

log = logging.getLogger(__name__)

FAULT_ENV = "BODYCAM_DOCK_FAULT"

_lock = threading.Lock()
_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Kill this process (SIGKILL) here when BODYCAM_DOCK_FAULT names this point and count."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        hit = _hits[name]
    if hit == int(nth or 1):
        log.critical("fault injection: killing the dock at %s (hit %d)", name, hit)
        os.kill(os.getpid(), signal.SIGKILL)
