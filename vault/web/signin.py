"""Signing in on the web: Django's password check behind a lock-out.

After LOCKOUT_FAILURES failed attempts for one user name within LOCKOUT_SECONDS the
name is locked for LOCKOUT_SECONDS, whatever password comes next (so guessing gains
nothing); every failure and every locked attempt is audited.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction

from vault.access import Actor, audit_ok, authenticate_actor, username_scopes
from vault.audit.services import audit_record
from vault.clock import Clock
from vault.errors import AuthenticationFailed
from vault.web.models import LoginFailure

log = logging.getLogger(__name__)


class AccountLocked(AuthenticationFailed):
    """Too many failed sign-ins for this user name: wait and try again."""


def _window(clock: Clock) -> dt.datetime:
    return clock.now() - dt.timedelta(seconds=settings.LOCKOUT_SECONDS)


def is_locked(username: str, clock: Clock) -> bool:
    recent = LoginFailure.objects.filter(username=username[:150], at__gte=_window(clock))
    return recent.count() >= settings.LOCKOUT_FAILURES


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
    if not name or not password:
        raise AuthenticationFailed("give a user name and a password")
    if is_locked(name, clock):
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
        raise AccountLocked(
            f"{name} is locked after {settings.LOCKOUT_FAILURES} failed sign-ins;"
            f" try again in {settings.LOCKOUT_SECONDS // 60} minutes"
        )
    try:
        actor = authenticate_actor(
            username=name, password=password, clock=clock, municipality=municipality
        )
    except AuthenticationFailed:
        LoginFailure.objects.create(username=name, at=clock.now(), remote=remote[:64])
        raise
    LoginFailure.objects.filter(username=name).delete()
    with transaction.atomic():
        audit_ok(
            actor=actor,
            action=action,
            municipality=municipality,
            clock=clock,
            detail={"remote": remote},
        )
    return actor
