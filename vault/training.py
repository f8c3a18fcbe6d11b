"""Training footage: an anonymized copy of an officer's own recording, for learning only.

POLICY.md: learning uses only the officer's own footage, with consent; for wider training
use everyone shown is made fully unrecognizable. The municipality's `[viewing.learning]`
rule says whether a training copy exists at all (`anonymize_for_training`; Heusden and
Utrecht keep learning a viewing without a copy), whether consent is needed and whether
only escalated situations qualify (H2O: `escalated_only`).

Three services, each audited, refusals too:

- `training_consent_record`: the officer concerned records their consent for one
  recording under a reference (their signed form's number). Only that officer can.
- `recording_mark_escalated`: the officer concerned, or someone the learning rule seats
  beside them (coordinator, cluster manager), marks a recording as an escalated
  situation. Marks are never removed.
- `recording_training_export`: the anonymized H.264 MP4 (`vault.anonymize`: faces blurred
  on every frame, no sound), made from the decrypted recording in a private temporary
  folder that is removed afterwards. Never for an access request: that purpose, any hold
  and a consent reference that is an access request's reference are refused.

Consent and escalation are facts the audit log already records with who and when, in its
hash chain: they are read back from there rather than kept a second time in a table that
could drift from it. A consent counts only when recorded before the export.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction

from crypto.errors import FormatError
from crypto.files import sha256_file
from crypto.keys import VaultKey
from crypto.open import decrypt_recording
from store import Store, StoreError
from vault.access import Actor, audit_ok, policy_of, refuse
from vault.anonymize import AnonymizeError, AnonymizeSettings, anonymize_recording
from vault.audit.models import AuditEntry
from vault.audit.services import audit_record
from vault.catalog.custody import _assemble, _workdir  # the same origin-checked assembly
from vault.catalog.models import Hold, Recording
from vault.clock import Clock
from vault.errors import InvalidRequest, OriginRefused
from vault.policy import OFFICER_CONCERNED, ViewingRule
from vault.viewing.rules import _fills, _is_officer_concerned, clean_reference

log = logging.getLogger(__name__)

PURPOSE = "learning"
ACTION = "training.export"
START_ACTION = "training.export.start"
CONSENT_ACTION = "training.consent"
ESCALATION_ACTION = "recording.escalated"


@dataclass(frozen=True)
class TrainingExportResult:
    out: Path
    sha256: str
    frames: int
    faces_tracked: int
    frames_obscured: int
    audio_streams_dropped: int


def _recorded(recording: Recording, action: str) -> list[dict[str, str]]:
    """The details of every successful `action` entry on this recording, oldest first."""
    entries = AuditEntry.objects.filter(
        action=action, target=str(recording), result="ok", municipality=recording.municipality.code
    )
    return [dict(json.loads(e.detail or "{}"), actor=e.actor) for e in entries.order_by("seq")]


def consent_references(recording: Recording) -> list[str]:
    return [d.get("reference", "") for d in _recorded(recording, CONSENT_ACTION)]


def is_escalated(recording: Recording) -> bool:
    return bool(_recorded(recording, ESCALATION_ACTION))


def _access_request_references(recording: Recording) -> set[str]:
    return {
        h.reference.strip().lower()
        for h in Hold.objects.filter(recording=recording, kind=Hold.Kind.ACCESS_REQUEST)
    }


def training_consent_record(
    *, actor: Actor, recording: Recording, reference: str, clock: Clock
) -> None:
    """The officer concerned consents to training use of this recording, where the
    municipality's policy makes training copies at all."""
    ref = clean_reference(reference, "consent reference")
    muni = recording.municipality.code
    rule = _learning_rule(actor, recording, CONSENT_ACTION, clock)
    if not rule.anonymize_for_training:
        # A consent to a copy that can never be made would read, later, as if one could.
        also = (
            f"; to consent to a learning viewing: bodycam vault viewing-consent {recording} "
            "--purpose learning"
            if rule.officer_consent
            else ""
        )
        raise refuse(
            actor=actor,
            action=CONSENT_ACTION,
            municipality=muni,
            target=str(recording),
            purpose=PURPOSE,
            clock=clock,
            reason=f"{_no_training_copies(recording)}, so no consent to one{also}",
        )
    if not _is_officer_concerned(actor, recording):
        raise refuse(
            actor=actor,
            action=CONSENT_ACTION,
            municipality=muni,
            target=str(recording),
            purpose=PURPOSE,
            clock=clock,
            reason="only the officer who made the recording consents to its use",
        )
    if ref.lower() in _access_request_references(recording):
        raise refuse(
            actor=actor,
            action=CONSENT_ACTION,
            municipality=muni,
            target=str(recording),
            purpose=PURPOSE,
            clock=clock,
            reason=f"reference {ref!r} is an access request's: not a consent",
        )
    with transaction.atomic():
        audit_ok(
            actor=actor,
            action=CONSENT_ACTION,
            municipality=muni,
            target=str(recording),
            purpose=PURPOSE,
            clock=clock,
            detail={"reference": ref},
        )
    log.info("%s: training consent %s recorded by %s", recording, ref, actor.username)


def _no_training_copies(recording: Recording) -> str:
    """Why a municipality whose learning rule makes no copy refuses training copies."""
    name = policy_of(recording.municipality).policy.name
    return f"the {name} policy makes learning a viewing without a copy: no training copy"


def _seated(actor: Actor, recording: Recording, rule: ViewingRule) -> bool:
    """The officer concerned, or a role the learning rule seats beside them."""
    if _is_officer_concerned(actor, recording):
        return True
    return any(
        _fills(actor, who, recording, rule.substitutes)
        for pair in rule.pairs
        for who in pair
        if who != OFFICER_CONCERNED
    )


def _learning_rule(actor: Actor, recording: Recording, action: str, clock: Clock) -> ViewingRule:
    policy = policy_of(recording.municipality)
    rule = policy.viewing.get(PURPOSE)  # type: ignore[call-overload]
    if rule is None or PURPOSE in policy.forbidden_purposes():
        raise refuse(
            actor=actor,
            action=action,
            municipality=recording.municipality.code,
            target=str(recording),
            purpose=PURPOSE,
            clock=clock,
            reason=f"the {policy.policy.name} policy has no learning use",
        )
    return rule


def recording_mark_escalated(
    *, actor: Actor, recording: Recording, reason: str, clock: Clock
) -> None:
    """Mark the recording as an escalated situation (what H2O's training use needs)."""
    why = clean_reference(reason, "reason")
    rule = _learning_rule(actor, recording, ESCALATION_ACTION, clock)
    if recording.officer is None or not _seated(actor, recording, rule):
        raise refuse(
            actor=actor,
            action=ESCALATION_ACTION,
            municipality=recording.municipality.code,
            target=str(recording),
            purpose=PURPOSE,
            clock=clock,
            reason="only the officer who made the recording, or who the learning "
            "rule seats beside them, marks it escalated",
        )
    with transaction.atomic():
        audit_ok(
            actor=actor,
            action=ESCALATION_ACTION,
            municipality=recording.municipality.code,
            target=str(recording),
            purpose=PURPOSE,
            clock=clock,
            detail={"reason": why},
        )


def _authorize(
    actor: Actor,
    recording: Recording,
    purpose: str,
    consent_reference: str,
    hold_id: int | None,
    clock: Clock,
) -> None:
    """Every rule a training copy must pass; each refusal audited as `training.export`."""
    muni = recording.municipality

    def no(reason: str) -> Exception:
        return refuse(
            actor=actor,
            action=ACTION,
            municipality=muni.code,
            target=str(recording),
            purpose=purpose,
            reason=reason,
            clock=clock,
        )

    if purpose != PURPOSE:
        raise no(
            f"a training copy is only for {PURPOSE}; purpose {purpose!r} gets none"
            + (
                " (an access request is viewing only, no copy)"
                if purpose == "access_request"
                else ""
            )
        )
    if hold_id is not None:
        hold = Hold.objects.filter(pk=hold_id, recording=recording).first()
        kind = hold.kind if hold is not None else "unknown"
        raise no(
            f"hold {hold_id} ({kind}): a training copy is made for no hold or procedure"
            + (
                " (an access request is viewing only, no copy)"
                if kind == Hold.Kind.ACCESS_REQUEST
                else ""
            )
        )
    policy = policy_of(muni)
    rule = _learning_rule(actor, recording, ACTION, clock)
    if not rule.anonymize_for_training:
        raise no(_no_training_copies(recording))
    if recording.officer is None:
        raise no(
            "training uses only the officer's own footage; this recording has no assigned officer"
        )
    if not _seated(actor, recording, rule):
        seats = sorted({w for p in rule.pairs for w in p} - {OFFICER_CONCERNED})
        raise no(
            f"training copies of {recording.officer.code}'s footage are made by that "
            f"officer or by {', '.join(seats)} of their municipality"
        )
    if not consent_reference.strip():
        raise no("the officer's consent must be recorded first (training consent)")
    ref = consent_reference.strip().lower()
    if ref in _access_request_references(recording):
        raise no(
            f"reference {consent_reference!r} is an access request on this recording: "
            "viewing only, no copy"
        )
    if ref not in {r.lower() for r in consent_references(recording)}:
        raise no(f"no consent {consent_reference!r} of the officer recorded for this recording")
    if rule.escalated_only and not is_escalated(recording):
        raise no(
            f"the {policy.policy.name} policy uses only escalated situations for "
            "training; this recording is not marked escalated"
        )


def recording_training_export(
    *,
    actor: Actor,
    recording: Recording,
    store: Store,
    vault_key: VaultKey,
    out: Path,
    consent_reference: str,
    clock: Clock,
    purpose: str = PURPOSE,
    hold_id: int | None = None,
    work_dir: Path | None = None,
    settings: AnonymizeSettings | None = None,
) -> TrainingExportResult:
    """Write the anonymized training copy of `recording` to `out` (a new .mp4 file)."""
    _authorize(actor, recording, purpose, consent_reference or "", hold_id, clock)
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise InvalidRequest(f"{out}: a training copy is an MP4; the name must end in .mp4")
    if out.exists() or out.is_symlink():
        raise InvalidRequest(f"{out} exists: a training copy is never written over a file")
    if not out.parent.is_dir():
        raise InvalidRequest(f"{out.parent} is not a folder")
    muni = recording.municipality.code
    consent = consent_reference.strip()
    with transaction.atomic():
        audit_ok(
            actor=actor,
            action=START_ACTION,
            municipality=muni,
            target=str(recording),
            purpose=purpose,
            clock=clock,
            detail={"consent": consent, "out": out.name},
        )
    try:
        # The plaintext exists only here, in a 0700 folder removed on the way out.
        with _workdir(work_dir) as scratch:
            public = _assemble(store, recording, scratch)
            ts = scratch / "recording.ts"
            fd = os.open(ts, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                decrypt_recording(scratch, vault_key, public, f)
            report = anonymize_recording(ts, out, settings=settings)
    except (OriginRefused, FormatError, StoreError, AnonymizeError, OSError, InvalidRequest) as exc:
        with transaction.atomic():
            audit_record(
                actor=actor.username,
                roles=actor.describe(muni),
                municipality=muni,
                action=ACTION,
                target=str(recording),
                purpose=purpose,
                result="refused" if isinstance(exc, OriginRefused) else "failed",
                clock=clock,
                detail={"error": f"{type(exc).__name__}: {exc}", "consent": consent},
            )
        raise
    digest = sha256_file(out)
    with transaction.atomic():
        audit_ok(
            actor=actor,
            action=ACTION,
            municipality=muni,
            target=str(recording),
            purpose=purpose,
            clock=clock,
            detail={
                "consent": consent,
                "out": out.name,
                "sha256": digest,
                "frames": report.frames,
                "tracks": report.tracks,
                "frames_obscured": report.frames_obscured,
                "audio_streams_dropped": report.audio_streams_dropped,
            },
        )
    log.info(
        "%s: training copy by %s (consent %s), sha256 %s",
        recording,
        actor.username,
        consent,
        digest,
    )
    return TrainingExportResult(
        out,
        digest,
        report.frames,
        report.tracks,
        report.frames_obscured,
        report.audio_streams_dropped,
    )
