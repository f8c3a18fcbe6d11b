"""Viewing pairs per purpose, as each shipped policy sets them (POLICY.md: only for a complaint,
a criminal investigation, an access request or learning; always two people; consent; own
footage; the coordinator replaced when involved)."""

from __future__ import annotations

from typing import Any

import pytest
from vault_support import T0, actor, make_municipalities, make_user

from vault.errors import PermissionRefused


@pytest.fixture
def rec(db: str, clock: Any) -> Any:
    from vault.accounts.models import Municipality, Officer
    from vault.catalog.models import Recording
    from vault.registry.models import Camera

    make_municipalities(["heusden", "utrecht"])
    recs = {}
    for code in ("heusden", "utrecht"):
        muni = Municipality.objects.get(code=code)
        officer = Officer.objects.create(municipality=muni, code=f"boa-{code}", name="O")
        make_user(f"officer-{code}", {code: ["officer"]}, officer=officer)
        cam = Camera.objects.create(
            device_id=f"C-{code}", public_key="0" * 64, municipality=muni, added_by="t", added_at=T0
        )
        recs[code] = Recording.objects.create(
            municipality=muni,
            camera=cam,
            officer=officer,
            site="s",
            device_id=cam.device_id,
            recording_id=f"R-{code}",
            record_pressed_at=T0,
            footage_start_at=T0,
            preroll_seconds=30,
            complete=True,
            recovered=False,
            segment_count=1,
            total_bytes=1,
            header_key="h",
            manifest_key="m",
            retention_ends_at=T0,
            state="stored",
            synced_at=T0,
        )
    for role in (
        "coordinator",
        "cluster_manager",
        "municipal_secretary",
        "privacy_officer",
        "safety_coordinator",
    ):
        make_user(role, {"heusden": [role]})
    for role in ("senior_boa", "staff_member", "privacy_officer"):
        make_user(f"u-{role}", {"utrecht": [role]})
    return recs


def check(rec: Any, purpose: str, a: str, b: str, clock: Any, consent: bool = False) -> Any:
    """The pair check; with `consent`, the officer concerned records their consent first."""
    from vault.viewing.rules import viewing_consent_record, viewing_pair_check

    if consent:
        viewing_consent_record(
            actor=actor(rec.officer.user.username),
            recording=rec,
            purpose=purpose,
            reference="CONSENT-1",
            clock=clock,
        )
    return viewing_pair_check(
        recording=rec,
        purpose=purpose,
        first=actor(a),
        second=actor(b),
        clock=clock,
    )


def test_heusden_complaint_is_the_cluster_manager_with_the_municipal_secretary(
    rec: Any, clock: Any
) -> None:
    r = rec["heusden"]
    assert check(r, "complaint", "municipal_secretary", "cluster_manager", clock).pair == (
        "cluster_manager",
        "municipal_secretary",
    )
    with pytest.raises(PermissionRefused, match="not a pair"):
        check(r, "complaint", "coordinator", "cluster_manager", clock)


def test_two_different_people_always(rec: Any, clock: Any) -> None:
    from vault.audit.models import AuditEntry

    with pytest.raises(PermissionRefused, match="two different people"):
        check(rec["heusden"], "complaint", "cluster_manager", "cluster_manager", clock)
    assert AuditEntry.objects.filter(action="viewing.start", result="refused").count() == 1


def test_viewing_only_for_the_permitted_purposes(rec: Any, clock: Any) -> None:
    with pytest.raises(PermissionRefused, match="forbids footage use for employee_monitoring"):
        check(rec["heusden"], "employee_monitoring", "cluster_manager", "privacy_officer", clock)
    with pytest.raises(PermissionRefused, match="forbids footage use for publication"):
        check(rec["heusden"], "publication", "cluster_manager", "privacy_officer", clock)
    with pytest.raises(PermissionRefused, match="forbids footage use for inspection_evidence"):
        check(rec["utrecht"], "inspection_evidence", "u-senior_boa", "officer-utrecht", clock)
    with pytest.raises(PermissionRefused, match="viewing only for"):
        check(rec["heusden"], "curiosity", "cluster_manager", "privacy_officer", clock)


def test_learning_needs_the_officer_with_consent_on_own_footage(rec: Any, clock: Any) -> None:
    r = rec["heusden"]
    with pytest.raises(PermissionRefused, match="consent"):
        check(r, "learning", "officer-heusden", "coordinator", clock)
    assert check(r, "learning", "officer-heusden", "coordinator", clock, consent=True).pair == (
        "officer_concerned",
        "coordinator",
    )
    with pytest.raises(PermissionRefused, match="not a pair"):
        check(r, "learning", "cluster_manager", "coordinator", clock, consent=True)
    with pytest.raises(PermissionRefused, match="not a pair"):  # not involved: no substitute
        check(r, "learning", "officer-heusden", "cluster_manager", clock, consent=True)


def test_the_cluster_manager_replaces_a_coordinator_who_made_the_recording(
    rec: Any, clock: Any
) -> None:
    from vault.accounts.models import Membership, Municipality

    r = rec["heusden"]
    officer_user = r.officer.user
    Membership.objects.create(
        user=officer_user,
        municipality=Municipality.objects.get(code="heusden"),
        role="coordinator",
        granted_at=T0,
        granted_by="t",
    )
    # The officer who made it is a coordinator: the cluster manager takes the seat.
    with pytest.raises(PermissionRefused, match="not a pair"):
        check(r, "learning", "officer-heusden", "coordinator", clock, consent=True)
    assert check(r, "learning", "officer-heusden", "cluster_manager", clock, consent=True).pair == (
        "officer_concerned",
        "coordinator",
    )


def test_access_request_viewing_has_the_privacy_officer_and_no_copy(rec: Any, clock: Any) -> None:
    from vault.policy import load_policy

    r = rec["heusden"]
    assert check(r, "access_request", "safety_coordinator", "privacy_officer", clock)
    with pytest.raises(PermissionRefused):
        check(r, "access_request", "safety_coordinator", "coordinator", clock)
    assert not load_policy("heusden").viewing["access_request"].copy_allowed


def test_utrecht_officer_concerned_with_a_senior_boa_and_consent_for_a_complaint(
    rec: Any, clock: Any
) -> None:
    r = rec["utrecht"]
    with pytest.raises(PermissionRefused, match="consent"):
        check(r, "complaint", "u-senior_boa", "officer-utrecht", clock)
    assert check(r, "complaint", "u-senior_boa", "officer-utrecht", clock, consent=True)
    with pytest.raises(PermissionRefused):
        check(r, "complaint", "u-senior_boa", "u-staff_member", clock, consent=True)


def test_utrecht_complaint_consent_is_the_officers_own_record_for_that_purpose(
    rec: Any, clock: Any
) -> None:
    from vault.audit.models import AuditEntry
    from vault.viewing.rules import viewing_consent_record, viewing_pair_check

    r = rec["utrecht"]

    def start() -> Any:
        return viewing_pair_check(
            recording=r,
            purpose="complaint",
            first=actor("u-senior_boa"),
            second=actor("officer-utrecht"),
            clock=clock,
        )

    with pytest.raises(PermissionRefused, match="the officer concerned records it first"):
        start()
    with pytest.raises(PermissionRefused, match="only the officer who made the recording"):
        viewing_consent_record(
            actor=actor("u-senior_boa"),
            recording=r,
            purpose="complaint",
            reference="X",
            clock=clock,
        )
    viewing_consent_record(  # consent to learning is not consent to a complaint viewing
        actor=actor("officer-utrecht"), recording=r, purpose="learning", reference="L", clock=clock
    )
    with pytest.raises(PermissionRefused, match="records it first"):
        start()
    consent = viewing_consent_record(
        actor=actor("officer-utrecht"), recording=r, purpose="complaint", reference="K", clock=clock
    )
    assert start().consent == {"entry": consent.seq, "reference": "K", "officer": "boa-utrecht"}
    refused = AuditEntry.objects.filter(result="refused").values_list("action", flat=True)
    assert sorted(refused) == ["officer.consent", "viewing.start", "viewing.start"]
