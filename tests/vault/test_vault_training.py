"""Training copies: only an officer's own footage, consent recorded first, escalated
situations only where the policy says so, everyone made unrecognizable, every step and
every refusal audited, never for an access request."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import av
import cv2
import pytest
from anonymize_support import decode_bgr, make_clip
from export_support import CAMERA, World, make_world, site_home
from vault_support import PASSWORD, T0, actor, make_user

from bodycam_cli import main
from vault.errors import PermissionRefused

CONSENT = "TOESTEMMING-2026-7"


@pytest.fixture
def world(db: str, tmp_path: Path, clock: Any) -> World:
    w = make_world(tmp_path, clock, "h2o")
    make_user("boa7", {w.muni: ["officer"]}, officer=w.officer)
    from vault.accounts.services import officer_create

    other = officer_create(
        actor=actor("setup"), municipality=w.muni, code="boa-8", name="Officer Eight", clock=clock
    )
    make_user("boa8", {w.muni: ["officer"]}, officer=other)
    return w


def export(world: World, who: str, out: Path, recording: Any = None, **kw: Any) -> Any:
    from vault.training import recording_training_export

    args: dict[str, Any] = {"consent_reference": CONSENT}
    args.update(kw)
    return recording_training_export(
        actor=actor(who),
        recording=recording or world.recording,
        store=world.site.store,
        vault_key=world.site.vault_key,
        out=out,
        clock=world.clock,
        **args,
    )


def consent_and_escalate(world: World, recording: Any = None) -> None:
    from vault.training import recording_mark_escalated, training_consent_record

    rec = recording or world.recording
    training_consent_record(
        actor=actor("boa7"), recording=rec, reference=CONSENT, clock=world.clock
    )
    recording_mark_escalated(
        actor=actor("boa7"), recording=rec, reason="verbal threat", clock=world.clock
    )


def entries(action: str, result: str | None = None) -> list[Any]:
    from vault.audit.models import AuditEntry

    qs = AuditEntry.objects.filter(action=action)
    return list(qs.filter(result=result) if result else qs)


def test_officer_gets_own_escalated_footage_with_faces_blurred_and_no_sound(
    world: World, tmp_path: Path
) -> None:
    from vault.anonymize import FaceDetector
    from vault.catalog.models import Recording
    from vault.catalog.services import catalog_sync

    clip = make_clip(tmp_path / "faces.ts", seconds=1.0)
    rid = world.site.record(CAMERA, T0 + dt.timedelta(hours=2), ts=clip.path.read_bytes())
    catalog_sync(actor=actor("setup"), store=world.site.store, clock=world.clock)
    rec = Recording.objects.get(recording_id=rid)
    consent_and_escalate(world, rec)
    work = tmp_path / "work"
    result = export(world, "boa7", tmp_path / "training.mp4", recording=rec, work_dir=work)

    out = tmp_path / "training.mp4"
    assert result.out == out and stat.S_IMODE(out.stat().st_mode) == 0o600
    assert list(work.iterdir()) == []  # the decrypted recording is gone
    with av.open(str(out)) as c:
        assert len(c.streams.audio) == 0 and c.streams.video[0].codec_context.name == "h264"
    detector = FaceDetector()

    def luma(frame: Any) -> Any:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)

    # The anonymizer's own detector on the luma, before and after: faces, then none at all.
    assert sum(bool(detector.detect(luma(f))) for f in decode_bgr(clip.path)) >= clip.frames // 2
    after = decode_bgr(out)
    assert len(after) == clip.frames
    assert [i for i, f in enumerate(after) if detector.detect(luma(f))] == []
    (start,) = entries("training.export.start", "ok")
    (done,) = entries("training.export", "ok")
    detail = json.loads(done.detail)
    assert detail["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest() == result.sha256
    assert detail["consent"] == CONSENT and detail["audio_streams_dropped"] == 1
    assert start.seq < done.seq and done.actor == "boa7" and done.purpose == "learning"


def test_the_coordinator_beside_the_officer_may_make_it_through_the_cli(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BODYCAM_VAULT_PASSWORD", PASSWORD)
    home = site_home(world, tmp_path / "home")
    ref = str(world.recording)
    out = tmp_path / "t.mp4"
    base = ["--home", str(home)]
    argv = [
        "vault",
        "training-export",
        ref,
        *base,
        "--user",
        "u-coordinator",
        "--out",
        str(out),
        "--consent",
        CONSENT,
    ]
    assert main(argv) == 1 and not out.exists()  # no consent yet
    assert (
        main(
            [
                "vault",
                "training-consent",
                ref,
                *base,
                "--user",
                "u-coordinator",
                "--reference",
                CONSENT,
            ]
        )
        == 1
    )  # consent is the officer's own
    assert (
        main(["vault", "training-consent", ref, *base, "--user", "boa7", "--reference", CONSENT])
        == 0
    )
    assert main(argv) == 1 and not out.exists()  # H2O: escalated situations only
    assert (
        main(
            [
                "vault",
                "mark-escalated",
                ref,
                *base,
                "--user",
                "boa7",
                "--reason",
                "physical resistance",
            ]
        )
        == 0
    )
    assert main(argv) == 0 and out.exists()
    refused = [json.loads(e.detail)["reason"] for e in entries("training.export", "refused")]
    assert len(refused) == 2
    assert "consent" in refused[0] and "escalated" in refused[1]
    assert len(entries("training.consent", "refused")) == 1


@pytest.mark.parametrize(
    "who, kw, why",
    [
        ("boa7", {"consent_reference": ""}, "consent must be recorded first"),
        ("boa7", {"consent_reference": "OTHER-1"}, "no consent 'OTHER-1'"),
        ("boa8", {}, "made by that officer or by"),
        ("u-municipal_secretary", {}, "made by that officer or by"),
        ("u-privacy_officer", {}, "made by that officer or by"),
        ("boa7", {"purpose": "access_request"}, "access request is viewing only"),
        ("boa7", {"purpose": "complaint"}, "only for learning"),
        ("boa7", {"hold": True}, "access request is viewing only"),
        ("boa7", {"consent_reference": "AVG-1"}, "is an access request"),
    ],
)
def test_refusals_are_audited_and_leave_no_file(
    world: World, tmp_path: Path, who: str, kw: dict[str, Any], why: str
) -> None:
    from vault.catalog.services import hold_place

    consent_and_escalate(world)
    hold = hold_place(
        actor=actor("u-privacy_officer"),
        recording=world.recording,
        kind="access_request",
        reference="AVG-1",
        reason="citizen asks",
        store=world.site.store,
        clock=world.clock,
        received_at=T0 + dt.timedelta(days=2),
    )
    if kw.pop("hold", False):
        kw["hold_id"] = hold.id
    out = tmp_path / "t.mp4"
    with pytest.raises(PermissionRefused, match=why):
        export(world, who, out, **kw)
    assert not out.exists() and list(tmp_path.glob(".t.mp4*")) == []
    (refusal,) = entries("training.export", "refused")
    assert refusal.actor == who and why in json.loads(refusal.detail)["reason"]
    assert entries("training.export.start") == []


def test_not_escalated_and_a_policy_without_training_copies_are_refused(
    world: World, tmp_path: Path, clock: Any
) -> None:
    from vault.training import training_consent_record

    training_consent_record(
        actor=actor("boa7"), recording=world.recording, reference=CONSENT, clock=clock
    )
    with pytest.raises(PermissionRefused, match="not marked escalated"):
        export(world, "boa7", tmp_path / "t.mp4")
    assert len(entries("training.export", "refused")) == 1


def test_heusden_keeps_learning_a_viewing_without_a_copy(
    db: str,
    tmp_path: Path,
    clock: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from vault.training import consent_references

    w = make_world(tmp_path, clock, "heusden")
    make_user("boa7", {w.muni: ["officer"]}, officer=w.officer)
    monkeypatch.setenv("BODYCAM_VAULT_PASSWORD", PASSWORD)
    home = site_home(w, tmp_path / "home")
    # No consent is recorded to a copy the policy never makes: one line, audited.
    consent = ["vault", "training-consent", str(w.recording), "--home", str(home)]
    assert main([*consent, "--user", "boa7", "--reference", CONSENT]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"bodycam: error: boa7 may not training.consent {w.recording}: the heusden policy "
        "makes learning a viewing without a copy: no training copy, so no consent to one; "
        f"to consent to a learning viewing: bodycam vault viewing-consent {w.recording} "
        "--purpose learning\n"
    )
    assert consent_references(w.recording) == []
    assert len(entries("training.consent", "refused")) == 1
    with pytest.raises(PermissionRefused, match="viewing without a copy"):
        export(w, "boa7", tmp_path / "t.mp4")
    assert len(entries("training.export", "refused")) == 1


def test_the_officer_records_consent_to_a_viewing_through_the_cli(
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from vault.viewing.rules import officer_consent_for

    monkeypatch.setenv("BODYCAM_VAULT_PASSWORD", PASSWORD)
    home = site_home(world, tmp_path / "home")
    ref = str(world.recording)
    base = ["vault", "viewing-consent", ref, "--home", str(home), "--purpose", "learning"]
    assert main([*base, "--user", "u-coordinator", "--reference", "F-1"]) == 1  # not theirs
    assert officer_consent_for(world.recording, "learning") is None
    assert main([*base, "--user", "boa7", "--reference", "F-2"]) == 0
    consent = officer_consent_for(world.recording, "learning")
    assert consent is not None and consent.reference == "F-2"
    assert f"(audit entry {consent.seq})" in capsys.readouterr().out
    assert len(entries("officer.consent", "refused")) == 1
