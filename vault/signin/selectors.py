"""Whether a user name is locked for sign-ins from an address: the failures that count.

The rule (LOCKOUT_FAILURES, doubling up to LOCKOUT_MAX_SECONDS) is told in
`vault.signin.services`; here it is read from the failures kept.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings

from vault.clock import Clock
from vault.signin.models import LoginFailure

# More failures than this per name and address cannot lengthen the lock any further.
LOCKOUT_KEPT_PER_SOURCE = 32


def _failures(username: str, remote: str, clock: Clock) -> list[dt.datetime]:
    since = clock.utc() - dt.timedelta(seconds=settings.LOCKOUT_MAX_SECONDS)
    rows = LoginFailure.objects.filter(username=username[:150], remote=remote[:64], at__gte=since)
    return list(rows.order_by("-at").values_list("at", flat=True)[:LOCKOUT_KEPT_PER_SOURCE])


def lock_seconds(failures: int) -> int:
    """How long `failures` recent failures lock a name for one address (0: not locked)."""
    if failures < settings.LOCKOUT_FAILURES:
        return 0
    doublings = min(failures - settings.LOCKOUT_FAILURES, 30)
    return int(min(settings.LOCKOUT_SECONDS * 2**doublings, settings.LOCKOUT_MAX_SECONDS))


def locked_until(username: str, remote: str, clock: Clock) -> dt.datetime | None:
    """Until when `username` is locked for sign-ins from `remote`, or None."""
    times = _failures(username, remote, clock)
    seconds = lock_seconds(len(times))
    if not seconds:
        return None
    until = times[0] + dt.timedelta(seconds=seconds)
    return until if until > clock.utc() else None


def is_locked(username: str, clock: Clock, remote: str = "") -> bool:
    return locked_until(username, remote, clock) is not None
