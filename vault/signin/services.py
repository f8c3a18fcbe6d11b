"""Signing in on the web: Django's password check behind a lock-out.

The lock-out is kept per user name *and* source address: LOCKOUT_FAILURES failed
attempts for a name from one address lock that name for that address only, for
LOCKOUT_SECONDS after the last failure, whatever password comes next (so guessing
gains nothing). Every further failure from there doubles the wait, up to
LOCKOUT_MAX_SECONDS. A stranger typing wrong passwords for a colleague's name thus
slows only themselves: the colleague signs in from their own desk (and can still be
the second viewer) while the guesser waits.

Failures are stored only as long as they can matter (LOCKOUT_MAX_SECONDS), at most
LOCKOUT_KEPT_PER_SOURCE per name and address, and at most LOGIN_FAILURES_KEPT in all
(the oldest go first), so made-up names cannot grow the table without bound. Every
failure and every locked attempt is audited.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext, ngettext

from vault.access import Actor, audit_ok, authenticate_actor, username_scopes
from vault.audit.services import audit_record
from vault.clock import Clock
from vault.errors import AuthenticationFailed
from vault.signin.models import LoginFailure
from vault.signin.selectors import LOCKOUT_KEPT_PER_SOURCE, locked_until

log = logging.getLogger(__name__)


class AccountLocked(AuthenticationFailed):
    """Too many failed sign-ins for this user name from this address: wait and try again."""


def _record_failure(name: str, remote: str, clock: Clock) -> None:
    now = clock.utc()
    LoginFailure.objects.create(username=name, at=now, remote=remote)
    # Forget what can no longer lock anything, then keep the table bounded.
    LoginFailure.objects.filter(
        at__lt=now - dt.timedelta(seconds=settings.LOCKOUT_MAX_SECONDS)
    ).delete()
    mine = LoginFailure.objects.filter(username=name, remote=remote).order_by("-id")
    cut = list(
        mine.values_list("id", flat=True)[LOCKOUT_KEPT_PER_SOURCE - 1 : LOCKOUT_KEPT_PER_SOURCE]
    )
    if cut:
        mine.filter(id__lt=cut[0]).delete()
    everyone = LoginFailure.objects.order_by("-id").values_list("id", flat=True)
    kept = settings.LOGIN_FAILURES_KEPT
    cut = list(everyone[kept - 1 : kept])
    if cut:
        LoginFailure.objects.filter(id__lt=cut[0]).delete()


def sign_in(
    *,
    username: str,
    password: str,
    clock: Clock,
    remote: str = "",
    action: str = "auth.login",
    municipality: str = "",
) -> Actor:
    """The authenticated actor, or AccountLocked / AuthenticationFailed (both audited).

    Audited in `municipality` when given (a second viewer signing in at one of its
    recordings), else in the municipalities of the user named.
    """
    name = username.strip()[:150]
    source = remote[:64]
    if not name or not password:
        raise AuthenticationFailed(gettext("give a user name and a password"))
    until = locked_until(name, source, clock)
    if until is not None:
        with transaction.atomic():
            for scope in [municipality] if municipality else username_scopes(name):
                audit_record(
                    actor=name,
                    municipality=scope,
                    action=action,
                    result="refused",
                    clock=clock,
                    detail={"reason": "locked after repeated failures", "remote": remote},
                )
        minutes = max(1, -(-int((until - clock.utc()).total_seconds()) // 60))
        raise AccountLocked(
            ngettext(
                "%(name)s is locked for sign-ins from this address after repeated failed"
                " sign-ins; try again in %(minutes)d minute",
                "%(name)s is locked for sign-ins from this address after repeated failed"
                " sign-ins; try again in %(minutes)d minutes",
                minutes,
            )
            % {"name": name, "minutes": minutes}
        )
    try:
        actor = authenticate_actor(
            username=name, password=password, clock=clock, municipality=municipality
        )
    except AuthenticationFailed:
        _record_failure(name, source, clock)
        # Said on the page in the reader's language (the audit entry keeps its own words).
        raise AuthenticationFailed(
            gettext("user %(name)r: unknown, inactive or wrong password") % {"name": name}
        ) from None
    # Only this address's failures: a right password here does not unlock a guesser elsewhere.
    LoginFailure.objects.filter(username=name, remote=source).delete()
    with transaction.atomic():
        audit_ok(
            actor=actor,
            action=action,
            municipality=municipality,
            clock=clock,
            detail={"remote": remote},
        )
    return actor
