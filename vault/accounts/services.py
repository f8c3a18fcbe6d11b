"""Setting up a site and administering users, roles and officers (writes only)."""

from __future__ import annotations

import logging

from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from vault.access import SITE_SCOPE, Actor, audit_ok, authorize, policy_of, refuse
from vault.accounts.models import Membership, Municipality, Officer
from vault.audit.services import audit_record
from vault.clock import Clock
from vault.errors import InvalidRequest, NotFound
from vault.policy import load_policy, policy_reference

log = logging.getLogger(__name__)

SETUP_ACTOR = "site-setup"


def municipality_get(code: str) -> Municipality:
    try:
        return Municipality.objects.get(code=code)
    except Municipality.DoesNotExist:
        raise NotFound(f"no municipality {code!r} on this site") from None


def _check_password(password: str, username: str) -> None:
    try:
        validate_password(password, User(username=username))
    except ValidationError as exc:
        raise InvalidRequest(f"password for {username}: {' '.join(exc.messages)}") from None


@transaction.atomic
def site_setup(
    *, policies: list[str], admin_username: str, admin_password: str, clock: Clock
) -> list[Municipality]:
    """First set-up: municipalities from the policies and one administrator in each.

    Refused once any user exists: from then on administrators manage accounts.
    """
    if User.objects.exists():
        raise InvalidRequest(
            "the site is already set up: an administrator adds users and "
            "municipalities with `bodycam vault user ...`"
        )
    _check_password(admin_password, admin_username)
    made = []
    for name in policies:
        policy = load_policy(name)
        if "administrator" not in policy.roles:
            raise InvalidRequest(f"policy {name} has no administrator role")
        for m in policy.municipality:
            muni, _ = Municipality.objects.get_or_create(
                code=m.code, defaults={"name": m.name, "policy_name": policy_reference(name)}
            )
            made.append(muni)
    user = User.objects.create_user(admin_username, password=admin_password)
    now = clock.utc()
    for muni in made:
        Membership.objects.create(
            user=user,
            municipality=muni,
            role="administrator",
            granted_at=now,
            granted_by=SETUP_ACTOR,
        )
    audit_record(
        actor=SETUP_ACTOR,
        municipality=SITE_SCOPE,  # the site's own job, before any municipality has users
        action="site.setup",
        result="ok",
        clock=clock,
        target=",".join(m.code for m in made),
        detail={"policies": policies, "administrator": admin_username},
    )
    return made


def role_grant(
    *,
    actor: Actor,
    username: str,
    municipality: str,
    role: str,
    clock: Clock,
    password: str | None = None,
) -> Membership:
    """Give `username` a role in a municipality; creates the user when a password is given."""
    muni = municipality_get(municipality)
    target = f"user {username} role {role}"
    authorize(actor=actor, action="user.admin", municipality=muni, clock=clock, target=target)
    if role not in policy_of(muni).roles:
        raise refuse(
            actor=actor,
            action="user.admin",
            municipality=muni.code,
            target=target,
            reason=f"the {muni.code} policy has no role {role!r} (roles: "
            f"{', '.join(policy_of(muni).roles)})",
            clock=clock,
        )
    with transaction.atomic():
        user = User.objects.filter(username=username).first()
        if user is None:
            if password is None:
                raise NotFound(f"no user {username!r}: give a password to create the account")
            _check_password(password, username)
            user = User.objects.create_user(username, password=password)
        membership, created = Membership.objects.get_or_create(
            user=user,
            municipality=muni,
            role=role,
            defaults={"granted_at": clock.utc(), "granted_by": actor.username},
        )
        audit_ok(
            actor=actor,
            action="user.admin",
            municipality=muni.code,
            target=target,
            clock=clock,
            detail={"granted": created},
        )
    return membership


def role_revoke(*, actor: Actor, username: str, municipality: str, role: str, clock: Clock) -> None:
    muni = municipality_get(municipality)
    target = f"user {username} role {role}"
    authorize(actor=actor, action="user.admin", municipality=muni, clock=clock, target=target)
    if username == actor.username and role == "administrator":
        raise InvalidRequest("an administrator cannot revoke their own administrator role")
    with transaction.atomic():
        deleted, _ = Membership.objects.filter(
            user__username=username, municipality=muni, role=role
        ).delete()
        if not deleted:
            raise NotFound(f"{username} has no role {role} in {muni.code}")
        audit_ok(
            actor=actor,
            action="user.admin",
            municipality=muni.code,
            target=target,
            clock=clock,
            detail={"revoked": True},
        )


def password_set(*, actor: Actor, username: str, password: str, clock: Clock) -> None:
    """A user changes their own password, or an administrator of all their municipalities."""
    user = User.objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"no user {username!r}")
    if username != actor.username:
        for m in Municipality.objects.filter(memberships__user=user).distinct():
            authorize(
                actor=actor,
                action="user.admin",
                municipality=m,
                clock=clock,
                target=f"user {username} password",
            )
    _check_password(password, username)
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
        audit_ok(actor=actor, action="user.password", target=f"user {username}", clock=clock)


def officer_create(
    *,
    actor: Actor,
    municipality: str,
    code: str,
    name: str,
    clock: Clock,
    username: str | None = None,
) -> Officer:
    """An officer who wears cameras (coordinator or administrator), optionally with an account."""
    muni = municipality_get(municipality)
    target = f"officer {code}"
    roles = actor.roles_in(muni.code)
    if not ({"coordinator", "administrator"} & roles):
        raise refuse(
            actor=actor,
            action="officer.create",
            municipality=muni.code,
            target=target,
            reason="only the coordinator or an administrator adds officers",
            clock=clock,
        )
    with transaction.atomic():
        user = None
        if username:
            user = User.objects.filter(username=username).first()
            if user is None:
                raise NotFound(f"no user {username!r} to link to officer {code}")
        officer = Officer(municipality=muni, code=code, name=name, user=user)
        try:
            officer.full_clean()
        except ValidationError as exc:
            raise InvalidRequest(f"officer {code}: {'; '.join(exc.messages)}") from None
        officer.save()
        audit_ok(
            actor=actor, action="officer.create", municipality=muni.code, target=target, clock=clock
        )
    return officer
