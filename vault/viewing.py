"""Who may view a recording together, for which purpose: the policy's pair rules.

The web front end's viewing sessions start through `viewing_pair_check`; here are the
rules of POLICY.md as the municipality's policy file sets them: a permitted purpose
(never a forbidden one), two different authenticated people forming a pair the policy
lists for that purpose, the officer's consent recorded first where required, learning
only on the officer's own footage, and the coordinator replaced by the cluster manager
when the coordinator made the recording.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from vault.access import Actor, audit_ok, policy_of, refuse
from vault.catalog.models import Recording
from vault.clock import Clock
from vault.policy import OFFICER_CONCERNED, PURPOSES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairDecision:
    purpose: str
    pair: tuple[str, str]  # the policy's participants the two people filled


def _is_officer_concerned(actor: Actor, recording: Recording) -> bool:
    officer = recording.officer
    return (
        officer is not None
        and officer.user_id is not None
        and actor.user is not None
        and officer.user_id == actor.user.pk
    )


def _involved(role: str, recording: Recording) -> bool:
    """Whether the officer who made the recording holds `role` here (e.g. the coordinator)."""
    from vault.accounts.models import Membership

    officer = recording.officer
    return (
        officer is not None
        and officer.user_id is not None
        and Membership.objects.filter(
            user_id=officer.user_id, municipality=recording.municipality, role=role
        ).exists()
    )


def _fills(actor: Actor, who: str, recording: Recording, substitutes: dict[str, str]) -> bool:
    if who == OFFICER_CONCERNED:
        return _is_officer_concerned(actor, recording)
    if who in substitutes and _involved(who, recording):
        # The coordinator made the recording: the substitute takes the seat, not them.
        who = substitutes[who]
    return who in actor.roles_in(recording.municipality.code) and not (
        _is_officer_concerned(actor, recording) and who != OFFICER_CONCERNED
    )


def viewing_pair_check(
    *,
    recording: Recording,
    purpose: str,
    first: Actor,
    second: Actor,
    officer_consent: bool,
    clock: Clock,
) -> PairDecision:
    muni = recording.municipality
    policy = policy_of(muni)
    target = f"{recording} viewed by {first.username}+{second.username}"

    def no(reason: str) -> Exception:
        return refuse(
            actor=first,
            action="viewing.start",
            municipality=muni.code,
            target=target,
            purpose=purpose,
            reason=reason,
            clock=clock,
        )

    if purpose in policy.forbidden_purposes():
        raise no(f"the {policy.policy.name} policy forbids footage use for {purpose}")
    if purpose not in PURPOSES or purpose not in policy.viewing:
        raise no(f"viewing only for {', '.join(policy.viewing)}")
    if first.user is None or second.user is None or first.user.pk == second.user.pk:
        raise no("always at least two different people view together")
    rule = policy.viewing[purpose]
    if rule.officer_consent and not officer_consent:
        raise no(f"{purpose} viewing needs the officer's recorded consent")
    if rule.own_footage_only and recording.officer is None:
        raise no(
            f"{purpose} viewing only on footage the officer made; this recording has no "
            "assigned officer"
        )
    for a, b in rule.pairs:
        for x, y in ((first, second), (second, first)):
            if _fills(x, a, recording, rule.substitutes) and _fills(
                y, b, recording, rule.substitutes
            ):
                audit_ok(
                    actor=first,
                    action="viewing.pair",
                    municipality=muni.code,
                    target=target,
                    purpose=purpose,
                    clock=clock,
                    detail={"pair": [a, b], "consent": officer_consent},
                )
                return PairDecision(purpose, (a, b))
    raise no(
        f"{first.username} and {second.username} are not a pair the "
        f"{policy.policy.name} policy allows for {purpose} "
        f"({'; '.join('+'.join(p) for p in rule.pairs)})"
    )
