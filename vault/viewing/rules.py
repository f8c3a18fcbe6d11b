"""Who may view a recording together, for which purpose: the policy's pair rules.

The web front end's viewing sessions start through `viewing_pair_check`; here are the
rules of POLICY.md as the municipality's policy file sets them: a permitted purpose
(never a forbidden one), two different authenticated people forming a pair the policy
lists for that purpose, the officer's consent recorded first where required, learning
only on the officer's own footage, and the coordinator replaced by the cluster manager
when the coordinator made the recording.

Where the policy requires the officer's consent (Utrecht: complaint and learning), the
officer concerned records it beforehand with `viewing_consent_record` (as with
`training.consent`, a fact kept in the audit chain with who and when); the viewing refers
to that entry, and without one it is refused. The viewers cannot give it for the officer.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from django.db import transaction

from vault.access import Actor, audit_ok, policy_of, refuse
from vault.audit.models import AuditEntry
from vault.catalog.models import Recording
from vault.clock import Clock
from vault.errors import InvalidRequest
from vault.policy import OFFICER_CONCERNED, PURPOSES

CONSENT_ACTION = "officer.consent"
TRAINING_CONSENT_ACTION = "training.consent"  # the officer's consent to learning use
MAX_REFERENCE = 100

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairDecision:
    purpose: str
    pair: tuple[str, str]  # the policy's participants the two people filled
    consent: dict[str, object] | None = None  # the officer's consent entry it relies on


@dataclass(frozen=True)
class OfficerConsent:
    seq: int  # the audit entry that records it
    reference: str
    officer: str

    def as_detail(self) -> dict[str, object]:
        return {"entry": self.seq, "reference": self.reference, "officer": self.officer}


def clean_reference(value: str, what: str) -> str:
    """A consent reference or reason as given: 1..MAX_REFERENCE printable characters."""
    ref = (value or "").strip()
    if not ref or len(ref) > MAX_REFERENCE or not ref.isprintable():
        raise InvalidRequest(f"{what} {value!r}: give 1..{MAX_REFERENCE} printable characters")
    return ref


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


def officer_consent_for(recording: Recording, purpose: str) -> OfficerConsent | None:
    """The latest consent the officer concerned recorded for viewing this recording for
    `purpose` (for learning, a training consent counts too); None without one."""
    officer = recording.officer
    if officer is None or officer.user is None:
        return None
    actions = [CONSENT_ACTION]
    if purpose == "learning":
        actions.append(TRAINING_CONSENT_ACTION)
    entry = (
        AuditEntry.objects.filter(
            action__in=actions,
            result="ok",
            municipality=recording.municipality.code,
            target=str(recording),
            purpose=purpose,
            actor=officer.user.get_username(),
        )
        .order_by("-seq")
        .first()
    )
    if entry is None:
        return None
    reference = str(json.loads(entry.detail or "{}").get("reference", ""))
    return OfficerConsent(entry.seq, reference, officer.code)


def viewing_consent_record(
    *, actor: Actor, recording: Recording, purpose: str, reference: str, clock: Clock
) -> OfficerConsent:
    """The officer concerned consents to their recording being viewed for `purpose`."""
    ref = clean_reference(reference, "consent reference")
    muni = recording.municipality.code
    if purpose not in PURPOSES:
        raise InvalidRequest(f"purpose {purpose!r}: one of {', '.join(PURPOSES)}")
    if not _is_officer_concerned(actor, recording):
        raise refuse(
            actor=actor,
            action=CONSENT_ACTION,
            municipality=muni,
            target=str(recording),
            purpose=purpose,
            clock=clock,
            reason="only the officer who made the recording consents to its viewing",
        )
    with transaction.atomic():
        audit_ok(
            actor=actor,
            action=CONSENT_ACTION,
            municipality=muni,
            target=str(recording),
            purpose=purpose,
            clock=clock,
            detail={"reference": ref},
        )
    consent = officer_consent_for(recording, purpose)
    assert consent is not None  # just recorded
    log.info("%s: consent %s to %s viewing recorded by %s", recording, ref, purpose, actor.username)
    return consent


def viewing_pair_check(
    *,
    recording: Recording,
    purpose: str,
    first: Actor,
    second: Actor,
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
    consent = officer_consent_for(recording, purpose) if rule.officer_consent else None
    if rule.officer_consent and consent is None:
        raise no(
            f"{purpose} viewing needs the officer's consent: the officer concerned records "
            "it first (bodycam vault viewing-consent), before the viewing"
        )
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
                    detail={
                        "pair": [a, b],
                        "consent": consent.as_detail() if consent is not None else None,
                    },
                )
                return PairDecision(
                    purpose, (a, b), consent.as_detail() if consent is not None else None
                )
    raise no(
        f"{first.username} and {second.username} are not a pair the "
        f"{policy.policy.name} policy allows for {purpose} "
        f"({'; '.join('+'.join(p) for p in rule.pairs)})"
    )
