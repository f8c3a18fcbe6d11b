"""Named points in the dock where its crash tests cut in: inert in the shipped program.

The points sit in the narrow windows between two durable steps, where a crash is
hardest to reach by timing. `fault_point(name)` does nothing unless a hook was set
with `set_fault_hook` -- which only the tests do, in the process they start
(tests/dock/dock_fault_child.py kills itself with SIGKILL at a chosen point). Nothing
in the environment of the shipped dock can make it stop at one of these points.

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

from collections.abc import Callable

FaultHook = Callable[[str], None]

_hook: FaultHook | None = None


def set_fault_hook(hook: FaultHook | None) -> None:
    """Call `hook(name)` at every fault point from now on (None: back to no-ops)."""
    global _hook
    _hook = hook


def fault_point(name: str) -> None:
    """A named point between two durable steps: no-op unless a test set a hook."""
    hook = _hook
    if hook is not None:
        hook(name)
