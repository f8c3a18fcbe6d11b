"""What a role may see (issue 20, round two): a recording's chain of custody only as far as
the policy shows the audit, audit entries only of the auditor's own municipality, the
officer's consent recorded by the officer (never ticked by the viewers), another
municipality's footage and cameras answered as if they did not exist, a
Content-Security-Policy on every page, and a request for another session's viewing
audited as refused."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from test_vault_web import browser_session, office, start_form  # noqa: F401 (fixtures)
from vault_support import PASSWORD, T0, actor, make_municipalities, make_user

from vault.errors import InvalidRequest, NotFound, PermissionRefused


def _rec(rec_id: str) -> Any:
    from vault.catalog.models import Recording

    return Recording.objects.select_related("municipality", "officer").get(recording_id=rec_id)


def _client(username: str, signed_in: Any) -> Any:
    """Another browser signed in as `username` (next to the `browser_session` one)."""
    from django.test import Client

    client = Client()
    client.force_login(actor(username).user)
    return client


def _entry(action: str, target: str, clock: Any, purpose: str = "", muni: str = "heusden") -> Any:
    from vault.audit.services import audit_record

    return audit_record(
        actor="cees",
        municipality=muni,
        action=action,
        target=target,
        purpose=purpose,
        result="ok",
        clock=clock,
    )


# --- 2: the recording page's chain of custody --------------------------------------------------


def test_the_recording_page_shows_casework_custody_only_to_roles_that_see_the_audit(
    office: dict[str, str],  # noqa: F811
    browser_session: Any,  # noqa: F811
    clock: Any,
) -> None:
    rec = _rec(office["a"])
    _entry("recording.verify", str(rec), clock)
    _entry("viewing.start", f"{rec} viewed by cees+sam", clock, purpose="complaint")
    _entry("recording.export", str(rec), clock, purpose="criminal_investigation")
    _entry("hold.place", str(rec), clock, purpose="prosecutor")
    url = f"/recordings/{rec.device_id}/{rec.recording_id}/"

    saf = _client("saf", browser_session)  # safety coordinator: no audit.view
    assert saf.get("/audit/", secure=True).status_code == 403
    page = saf.get(url, secure=True)
    html = page.content.decode()
    assert page.status_code == 200
    assert "recording.verify" in html  # how it is kept: shown
    for casework in ("viewing.start", "recording.export", "hold.place", "criminal_investigation"):
        assert casework not in html, casework

    page = browser_session.get(url, secure=True)  # the cluster manager sees the audit
    html = page.content.decode()
    for action in ("recording.verify", "viewing.start", "recording.export", "hold.place"):
        assert action in html, action


def test_the_custody_selector_keeps_another_municipalitys_entries_out(
    office: dict[str, str],  # noqa: F811
    clock: Any,
) -> None:
    from vault.catalog.selectors import recording_custody

    rec = _rec(office["a"])
    _entry("recording.verify", str(rec), clock)
    _entry("catalog.show", str(rec), clock, muni="")  # e.g. a refused look from elsewhere
    seen = recording_custody(actor=actor("cees"), recording=rec)
    assert seen.complete and [e.action for e in seen.entries] == ["recording.verify"]
    limited = recording_custody(actor=actor("saf"), recording=rec)
    assert not limited.complete and [e.action for e in limited.entries] == ["recording.verify"]


# --- 3: every audit entry belongs to a municipality --------------------------------------------


@pytest.fixture
def two_towns(office: dict[str, str]) -> None:  # noqa: F811
    make_municipalities(["utrecht"])
    make_user("ute", {"utrecht": ["privacy_officer"]})
    make_user("uma", {"utrecht": ["senior_boa"]})


def test_an_auditor_sees_only_entries_of_their_own_municipality(
    two_towns: None, clock: Any
) -> None:
    from vault.audit.models import AuditEntry
    from vault.audit.selectors import audit_list
    from vault.audit.services import audit_record, audit_verify
    from vault.catalog.selectors import recording_list
    from vault.signin.services import sign_in

    # Written before entries carried a municipality: it stays as it is and still verifies.
    legacy = audit_record(
        actor="uma", action="auth.login", result="ok", clock=clock, detail={"remote": "10.9.9.9"}
    )
    assert legacy.municipality == ""
    with pytest.raises(Exception, match="verkeerd wachtwoord"):
        sign_in(username="uma", password="guess", clock=clock, remote="10.1.2.3")
    sign_in(username="uma", password=PASSWORD, clock=clock, remote="10.1.2.3")
    list(recording_list(actor=actor("ute"), clock=clock))
    with pytest.raises(Exception, match="verkeerd wachtwoord"):
        sign_in(username="nobody", password="guess", clock=clock, remote="10.4.4.4")

    new = AuditEntry.objects.filter(seq__gt=legacy.seq)
    assert not new.filter(municipality="").exists()  # every new entry has one
    assert set(new.filter(actor="uma").values_list("municipality", flat=True)) == {"utrecht"}
    heusden = audit_list(actor=actor("priya"), clock=clock, limit=500)
    assert not [e for e in heusden if e.actor in ("uma", "ute", "nobody")]
    assert not [e for e in heusden if "10.1.2.3" in e.detail or "10.9.9.9" in e.detail]
    utrecht = audit_list(actor=actor("ute"), clock=clock, limit=500)
    mine = {(e.actor, e.action, e.result) for e in utrecht}
    assert {("uma", "auth.login", "ok"), ("uma", "auth.login", "refused")} <= mine
    assert ("ute", "catalog.list", "ok") in mine
    assert legacy.seq in {e.seq for e in utrecht}  # the old entry, by its actor's town
    assert not [e for e in utrecht if e.actor in ("cees", "priya", "nobody")]
    assert audit_verify().ok


def test_a_second_viewers_sign_in_belongs_to_the_recordings_municipality(
    office: dict[str, str],  # noqa: F811
    browser_session: Any,  # noqa: F811
    two_towns: None,
) -> None:
    from vault.audit.models import AuditEntry

    rec = _rec(office["a"])
    page = browser_session.post(
        f"/recordings/CAM-1/{rec.recording_id}/view", start_form("uma"), secure=True
    )
    assert page.status_code == 403  # not a pair: but her sign-in is Heusden's business
    second = AuditEntry.objects.get(action="viewing.second", actor="uma")
    assert second.municipality == "heusden"


# --- 4: the officer's consent is the officer's record ------------------------------------------


def test_a_ticked_consent_box_no_longer_starts_a_viewing_that_needs_the_officers_consent(
    office: dict[str, str],  # noqa: F811
    browser_session: Any,  # noqa: F811
    clock: Any,
) -> None:
    from vault.audit.models import AuditEntry
    from vault.viewing import services as viewings

    rec = _rec(office["a"])
    cora = _client("cora", browser_session)
    url = f"/recordings/CAM-1/{rec.recording_id}/view"
    form = {
        "purpose": "learning",
        "second_username": "olaf",
        "second_password": PASSWORD,
        "officer_consent": "yes",  # what the viewers used to tick
    }
    page = cora.post(url, form, secure=True)
    assert page.status_code == 403, page.status_code
    assert "the officer concerned records it first" in page.content.decode()
    refused = AuditEntry.objects.get(action="viewing.start", result="refused")
    assert "records it first" in json.loads(refused.detail)["reason"]
    assert viewings.open_viewings() == 0

    from vault.viewing.rules import viewing_consent_record

    with pytest.raises(PermissionRefused, match="only the officer who made the recording"):
        viewing_consent_record(
            actor=actor("cora"), recording=rec, purpose="learning", reference="F-9", clock=clock
        )
    consent = viewing_consent_record(
        actor=actor("olaf"), recording=rec, purpose="learning", reference="F-7", clock=clock
    )
    page = cora.post(url, {k: v for k, v in form.items() if k != "officer_consent"}, secure=True)
    assert page.status_code == 302, page.content.decode()[:2000]
    start = AuditEntry.objects.get(action="viewing.start", result="ok")
    assert json.loads(start.detail)["consent"] == {
        "entry": consent.seq,
        "reference": "F-7",
        "officer": "boa-1",
    }
    vid = page["Location"].rstrip("/").rsplit("/", 1)[1]
    cora.post(f"/viewings/{vid}/event", {"event": "end"}, secure=True)
    assert viewings.open_viewings() == 0


# --- 10: another municipality's footage and cameras do not exist -------------------------------


@pytest.fixture
def twins(db: str, clock: Any) -> dict[str, Any]:
    """The same recording id on a Heusden and a Utrecht camera; one id only in Utrecht."""
    from vault.accounts.models import Municipality
    from vault.catalog.models import Recording
    from vault.registry.models import Camera

    make_municipalities(["heusden", "utrecht"])
    make_user("cora", {"heusden": ["coordinator"]})
    made: dict[str, Any] = {}
    for code, rec_ids in (("heusden", ["R-1"]), ("utrecht", ["R-1", "R-2"])):
        muni = Municipality.objects.get(code=code)
        cam = Camera.objects.create(
            device_id=f"C-{code}",
            public_key="ab" * 32,
            municipality=muni,
            added_by="t",
            added_at=T0,
        )
        made[code] = cam
        for rec_id in rec_ids:
            Recording.objects.create(
                municipality=muni,
                camera=cam,
                site="s",
                device_id=cam.device_id,
                recording_id=rec_id,
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
    return made


def test_an_id_shared_with_another_municipalitys_recording_is_not_ambiguous(
    twins: dict[str, Any], clock: Any
) -> None:
    from vault.audit.models import AuditEntry
    from vault.catalog.selectors import recording_get

    r = recording_get(actor=actor("cora"), ref="R-1", clock=clock)
    assert (r.device_id, r.municipality.code) == ("C-heusden", "heusden")
    answers = []
    for ref in ("R-2", "R-3", "C-utrecht/R-1"):  # Utrecht's, nobody's, Utrecht's
        with pytest.raises(NotFound) as info:
            recording_get(actor=actor("cora"), ref=ref, clock=clock)
        answers.append(str(info.value).replace(ref, "REF"))
    assert len(set(answers)) == 1 and "utrecht" not in answers[0]
    refused = AuditEntry.objects.filter(result="refused", action="catalog.show")
    assert sorted(e.target for e in refused) == ["C-utrecht/R-1", "R-2"]
    assert {e.municipality for e in refused} == {"heusden"}


def test_the_registry_does_not_name_another_municipalitys_camera(
    twins: dict[str, Any], clock: Any
) -> None:
    from vault.registry.services import camera_assign, camera_register, camera_remove

    with pytest.raises(PermissionRefused) as info:
        camera_register(
            actor=actor("cora"),
            municipality="heusden",
            device_id="C-utrecht",
            public_key="cd" * 32,
            clock=clock,
        )
    said = str(info.value).replace("C-utrecht", "the id")
    assert "utrecht" not in said and "abab" not in said, said
    for gone in ("C-utrecht", "C-nowhere"):
        with pytest.raises(NotFound, match=f"^{gone} is not a registered camera$"):
            camera_remove(actor=actor("cora"), device_id=gone, clock=clock)
        with pytest.raises(NotFound, match=f"^{gone} is not a registered camera$"):
            camera_assign(
                actor=actor("cora"), device_id=gone, officer_code="x", starts_at=T0, clock=clock
            )
    assert twins["utrecht"].__class__.objects.get(device_id="C-utrecht").removed_at is None
    with pytest.raises(InvalidRequest, match="is registered"):  # one's own: said plainly
        camera_register(
            actor=actor("cora"),
            municipality="heusden",
            device_id="C-heusden",
            public_key="cd" * 32,
            clock=clock,
        )


# --- 11: Content-Security-Policy ----------------------------------------------------------------


def test_every_page_carries_a_content_security_policy_without_inline_code(
    office: dict[str, str],  # noqa: F811
    browser_session: Any,  # noqa: F811
) -> None:
    from django.test import Client

    rec = _rec(office["a"])
    paths = ["/recordings/", f"/recordings/CAM-1/{rec.recording_id}/", "/audit/", "/cameras/"]
    answers = [Client().get("/login/", secure=True)]
    answers += [browser_session.get(p, secure=True) for p in paths]
    answers.append(browser_session.get("/viewings/nothing-here/", secure=True))  # a 404 too
    for resp in answers:
        csp = resp["Content-Security-Policy"]
        rules = dict((part.split()[0], part.split()[1:]) for part in csp.split(";") if part.strip())
        assert rules["default-src"] == ["'none'"]
        assert rules["script-src"] == ["'self'"] and rules["style-src"] == ["'self'"]
        assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
        assert rules["frame-ancestors"] == ["'none'"]


# --- 12: someone else's viewing ------------------------------------------------------------------


def test_asking_for_another_sessions_viewing_is_audited_as_refused_without_telling(
    office: dict[str, str],  # noqa: F811
    browser_session: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    from vault.audit.models import AuditEntry

    start = browser_session.post(f"/recordings/CAM-1/{office['a']}/view", start_form(), secure=True)
    assert start.status_code == 302, start.content.decode()[:2000]
    real = start["Location"].rstrip("/").rsplit("/", 1)[1]
    made_up = secrets.token_urlsafe(16)
    sam = _client("sam", browser_session)  # the second viewer, in another browser
    seen: dict[str, list[tuple[int, bytes]]] = {}
    for vid in (real, made_up):
        before = AuditEntry.objects.count()
        seen[vid] = [
            (r.status_code, r.content)
            for r in (
                sam.get(f"/viewings/{vid}/stream", secure=True),
                sam.get(f"/viewings/{vid}/", secure=True),
            )
        ]
        assert [s for s, _ in seen[vid]] == [404, 404]
        new = list(AuditEntry.objects.filter(seq__gt=before).order_by("seq"))
        assert [(e.actor, e.action, e.result, e.municipality) for e in new] == [
            ("sam", "viewing.access", "refused", "heusden")
        ] * 2
        assert [e.target for e in new] == [f"viewing {vid}"] * 2
        assert {json.loads(e.detail)["reason"] for e in new} == {
            "no such viewing open in this session"
        }
    assert seen[real] == seen[made_up]  # the same answer, whether the id exists or not
    assert browser_session.get(f"/viewings/{real}/", secure=True).status_code == 200
    browser_session.post(f"/viewings/{real}/event", {"event": "end"}, secure=True)
