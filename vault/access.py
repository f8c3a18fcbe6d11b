"""Who is acting, and whether the municipality's policy lets them: the one gate of every service.

An `Actor` is an authenticated back-office user with their roles per municipality.
`authorize` asks the policy of the municipality concerned; a refusal is written to the
audit log in its own transaction (it must survive the caller's rollback) and raised
as `PermissionRefused`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.db import transaction

from vault.accounts.models import Membership, Municipality
from vault.audit.services import audit_record
from vault.clock import Clock
from vault.errors import AuthenticationFailed, PermissionRefused
from vault.policy import Policy, load_policy

log = logging.getLogger(__name__)

# Where an entry of someone without any municipality belongs (the site's set-up, a sign-in
# under an unknown name): not a slug, so never a municipality's code, and so shown to no
# municipality's auditor.
SITE_SCOPE = "(site)"


@dataclass(frozen=True)
class Actor:
    user: User | None  # None only for the site's set-up before any user exists
    username: str
    roles: dict[str, frozenset[str]] = field(default_factory=dict)  # municipality -> roles

    def roles_in(self, municipality: str) -> frozenset[str]:
        return self.roles.get(municipality, frozenset())

    def describe(self, municipality: str | None = None) -> str:
        if municipality is not None:
            return ",".join(sorted(self.roles_in(municipality)))
        return ";".join(f"{m}:{','.join(sorted(r))}" for m, r in sorted(self.roles.items()))


def actor_for(user: User) -> Actor:
    roles: dict[str, set[str]] = {}
    for m in Membership.objects.filter(user=user).select_related("municipality"):
        roles.setdefault(m.municipality.code, set()).add(m.role)
    return Actor(user, user.get_username(), {k: frozenset(v) for k, v in roles.items()})


def audit_scopes(actor: Actor) -> list[str]:
    """The municipalities an entry about this actor belongs to (the site's when none)."""
    return sorted(code for code, roles in actor.roles.items() if roles) or [SITE_SCOPE]


def username_scopes(username: str) -> list[str]:
    """`audit_scopes` for a user name given at sign-in (the site's when it is unknown)."""
    codes = Membership.objects.filter(user__username=username).values_list(
        "municipality__code", flat=True
    )
    return sorted(set(codes)) or [SITE_SCOPE]


def authenticate_actor(
    *, username: str, password: str, clock: Clock, municipality: str = ""
) -> Actor:
    """Django's password check; a failure is audited and raises AuthenticationFailed.

    The failure belongs to `municipality` when the sign-in happens inside its business
    (the second viewer at one of its recordings), else to the named user's municipalities.
    """
    user = authenticate(username=username, password=password)
    if user is None or not isinstance(user, User):
        with transaction.atomic():
            for scope in [municipality] if municipality else username_scopes(username[:150]):
                audit_record(
                    actor=username[:150],
                    municipality=scope,
                    action="auth.login",
                    result="refused",
                    clock=clock,
                    detail={"reason": "unknown user or wrong password"},
                )
        raise AuthenticationFailed(f"user {username!r}: unknown, inactive or wrong password")
    return actor_for(user)


def policy_of(municipality: Municipality) -> Policy:
    return load_policy(municipality.policy_name)


def _refuse(
    actor: Actor,
    action: str,
    municipality: str,
    target: str,
    purpose: str,
    reason: str,
    clock: Clock,
) -> PermissionRefused:
    with transaction.atomic():
        for scope in [municipality] if municipality else audit_scopes(actor):
            audit_record(
                actor=actor.username,
                roles=actor.describe(scope if scope in actor.roles else None),
                municipality=scope,
                action=action,
                target=target,
                purpose=purpose,
                result="refused",
                clock=clock,
                detail={"reason": reason},
            )
    log.warning("refused: %s %s %s: %s", actor.username, action, target, reason)
    return PermissionRefused(
        f"{actor.username} may not {action}{' ' + target if target else ''}: {reason}"
    )


def refuse(
    *,
    actor: Actor,
    action: str,
    municipality: str = "",
    target: str = "",
    purpose: str = "",
    reason: str,
    clock: Clock,
) -> PermissionRefused:
    """Audit a refusal and return the exception for the caller to raise."""
    return _refuse(actor, action, municipality, target, purpose, reason, clock)


def allowed_roles(actor: Actor, municipality: Municipality, action: str) -> list[str]:
    policy = policy_of(municipality)
    return sorted(r for r in actor.roles_in(municipality.code) if policy.allows(r, action))


# The back office's sections (the web pages' menu). A section is open to an actor when a
# policy of their municipalities allows its `action` to one of their roles (what the
# section's selector asks `authorize_any`), or when they hold one of its `roles`. The menu
# and the views both ask `may_open`, so a link is shown exactly when its page answers.
SHIFT_REPORT_READERS = ("coordinator", "cluster_manager")  # who the reports are submitted to


@dataclass(frozen=True)
class Section:
    action: str = ""
    roles: frozenset[str] = frozenset()


SECTIONS: dict[str, Section] = {
    "catalog": Section(action="catalog.list"),
    "requests": Section(action="catalog.list"),
    "reports": Section(roles=frozenset({"officer", *SHIFT_REPORT_READERS})),
    "cameras": Section(action="catalog.list"),
    "audit": Section(action="audit.view"),
}
SECTION_ACTIONS = frozenset(rule.action for rule in SECTIONS.values() if rule.action)


def open_sections(actor: Actor) -> list[str]:
    """The sections the actor may open, in menu order."""
    mine = list(Municipality.objects.filter(code__in=list(actor.roles)))
    actions = {a for m in mine for a in SECTION_ACTIONS if allowed_roles(actor, m, a)}
    held = {r for roles in actor.roles.values() for r in roles}
    return [
        name
        for name, rule in SECTIONS.items()
        if rule.roles & held or (rule.action and rule.action in actions)
    ]


def may_open(actor: Actor, section: str) -> bool:
    """Whether the actor's menu shows `section` and its page lets them in."""
    return section in open_sections(actor)


def section_authorize(*, actor: Actor, section: str, clock: Clock) -> None:
    """Refuse (audited) whoever may not open `section`: the rule the menu is built from."""
    if section not in open_sections(actor):
        rule = SECTIONS[section]
        raise refuse(
            actor=actor,
            action=rule.action or f"{section}.list",
            target=section,
            clock=clock,
            reason="the policies of your municipalities let none of your roles "
            f"({actor.describe() or 'none'}) open {section}",
        )


def landing_section(*, actor: Actor, clock: Clock) -> str:
    """The page a user lands on after signing in: the catalog where their roles open it,
    else the first section they may open (the officer's: his shift reports); a user whose
    roles open none is refused, audited."""
    sections = open_sections(actor)
    if "catalog" in sections:
        return "catalog"
    if sections:
        return sections[0]
    raise refuse(
        actor=actor,
        action="catalog.list",
        clock=clock,
        reason=f"your roles ({actor.describe() or 'none'}) open none of the back office's pages",
    )


def authorize(
    *,
    actor: Actor,
    action: str,
    municipality: Municipality,
    clock: Clock,
    target: str = "",
    purpose: str = "",
) -> list[str]:
    """The roles that allow `action` here; audited refusal when there are none."""
    roles = allowed_roles(actor, municipality, action)
    if not roles:
        have = sorted(actor.roles_in(municipality.code)) or ["none"]
        raise _refuse(
            actor,
            action,
            municipality.code,
            target,
            purpose,
            f"the {municipality.code} policy allows it to none of your roles ({', '.join(have)})",
            clock,
        )
    return roles


def authorize_any(
    *,
    actor: Actor,
    action: str,
    clock: Clock,
    target: str = "",
    municipalities: Iterable[Municipality] | None = None,
) -> list[Municipality]:
    """The municipalities where the actor may do `action` (at least one, else refused)."""
    found = [
        m
        for m in (municipalities if municipalities is not None else Municipality.objects.all())
        if allowed_roles(actor, m, action)
    ]
    if not found:
        raise _refuse(
            actor,
            action,
            "",
            target,
            "",
            f"no municipality's policy allows it to your roles ({actor.describe() or 'none'})",
            clock,
        )
    return found


def authorize_hold(
    *, actor: Actor, kind: str, which: str, municipality: Municipality, clock: Clock, target: str
) -> list[str]:
    policy = policy_of(municipality)
    roles = sorted(set(policy.hold_roles(kind, which)) & actor.roles_in(municipality.code))  # type: ignore[arg-type]
    if not roles:
        raise _refuse(
            actor,
            f"hold.{which}",
            municipality.code,
            target,
            kind,
            f"the {municipality.code} policy lets only "
            f"{', '.join(policy.hold_roles(kind, which))} {which} a {kind} hold",  # type: ignore[arg-type]
            clock,
        )
    return roles


def audit_ok(
    *,
    actor: Actor,
    action: str,
    clock: Clock,
    municipality: str = "",
    target: str = "",
    purpose: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    """Record what the actor did; without `municipality`, in each of the actor's own."""
    for scope in [municipality] if municipality else audit_scopes(actor):
        audit_record(
            actor=actor.username,
            roles=actor.describe(scope if scope in actor.roles else None),
            municipality=scope,
            action=action,
            target=target,
            purpose=purpose,
            result="ok",
            clock=clock,
            detail=detail,
        )
