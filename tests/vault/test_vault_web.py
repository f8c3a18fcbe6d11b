"""The web front end's services without a browser: sign-in lock-out, the requests register
and its holds against the purge, viewing sessions (consent first, in memory only, ended
and gone), the watermarked stream, and the officer's report from the signed event log."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from vault_support import PASSWORD, T0, Site, actor, make_municipalities, make_ts, make_user

from vault.errors import AuthenticationFailed, InvalidRequest, NotFound, PermissionRefused

DAY = dt.timedelta(days=1)


@pytest.fixture
def office(db: str, site: Site, clock: Any) -> dict[str, str]:
    """Heusden: a user per role, officer boa-1 (user olaf) wearing CAM-1, two recordings."""
    from vault.accounts.services import officer_create
    from vault.catalog.services import catalog_sync
    from vault.registry.services import camera_assign, camera_register, dock_station_add

    make_municipalities(["heusden"])
    for name, role in (
        ("cora", "coordinator"),
        ("cees", "cluster_manager"),
        ("priya", "privacy_officer"),
        ("sam", "municipal_secretary"),
        ("saf", "safety_coordinator"),
    ):
        make_user(name, {"heusden": [role]})
    make_user("olaf", {"heusden": ["officer"]})
    co = actor("cora")
    dock_station_add(actor=co, name="dock-1", public_key=site.dock_key.public_bytes(), clock=clock)
    officer_create(
        actor=co, municipality="heusden", code="boa-1", name="Olaf", clock=clock, username="olaf"
    )
    cam = site.camera("CAM-1")
    camera_register(
        actor=co, municipality="heusden", device_id="CAM-1", public_key=cam.public_hex, clock=clock
    )
    camera_assign(
        actor=co, device_id="CAM-1", officer_code="boa-1", starts_at=T0 - DAY, clock=clock
    )
    recs = {
        "a": site.record(
            "CAM-1", T0 + dt.timedelta(hours=1), ts=make_ts(frames=60, size=(160, 120))
        ),
        "b": site.record("CAM-1", T0 + dt.timedelta(hours=2)),
    }
    catalog_sync(actor=actor("cees"), store=site.store, clock=clock)
    return recs


def _rec(rec_id: str) -> Any:
    from vault.catalog.models import Recording

    return Recording.objects.select_related("municipality", "officer").get(recording_id=rec_id)


def test_sign_in_locks_a_name_after_repeated_failures_and_unlocks_later(
    office: Any, clock: Any
) -> None:
    from django.conf import settings

    from vault.audit.models import AuditEntry
    from vault.web.signin import AccountLocked, sign_in

    for _ in range(settings.LOCKOUT_FAILURES):
        with pytest.raises(AuthenticationFailed, match="wrong password"):
            sign_in(username="sam", password="guess", clock=clock)
    with pytest.raises(AccountLocked, match="locked"):
        sign_in(username="sam", password=PASSWORD, clock=clock)  # right, but locked
    assert (
        AuditEntry.objects.filter(actor="sam", result="refused").count()
        == settings.LOCKOUT_FAILURES + 1
    )
    clock.advance(seconds=settings.LOCKOUT_SECONDS + 1)
    assert sign_in(username="sam", password=PASSWORD, clock=clock).username == "sam"


def test_a_request_holds_its_recordings_until_closed_and_only_named_roles_handle_it(
    office: Any, site: Site, clock: Any
) -> None:
    from vault.catalog.models import Hold, Recording
    from vault.catalog.services import retention_purge
    from vault.web.casework import request_close, request_decide, request_open

    muni = _rec(office["a"]).municipality
    recs = [_rec(office["a"]), _rec(office["b"])]
    with pytest.raises(PermissionRefused, match="lets only privacy_officer place"):
        request_open(
            actor=actor("cees"),
            municipality=muni,
            kind="access_request",
            reference="AVG-1",
            description="",
            received_at=T0 + DAY,
            recordings=recs,
            store=site.store,
            clock=clock,
        )
    case = request_open(
        actor=actor("priya"),
        municipality=muni,
        kind="access_request",
        reference="AVG-1",
        description="citizen",
        received_at=T0 + DAY,
        recordings=recs,
        store=site.store,
        clock=clock,
    )
    assert case.holds.filter(lifted_at__isnull=True).count() == 2
    assert case.answer_due_at == T0 + DAY + 21 * DAY and case.within_window is True
    clock.set(T0 + 40 * DAY)
    report = retention_purge(actor=actor("cees"), store=site.store, clock=clock)
    assert report.purged == [] and Recording.objects.filter(state="purged").count() == 0
    with pytest.raises(InvalidRequest, match="record the decision first"):
        request_close(actor=actor("priya"), case=case, reason="done", store=site.store, clock=clock)
    with pytest.raises(PermissionRefused):
        request_decide(actor=actor("cees"), case=case, decision="granted", text="", clock=clock)
    request_decide(
        actor=actor("priya"), case=case, decision="granted", text="in footage", clock=clock
    )
    request_close(actor=actor("priya"), case=case, reason="viewed", store=site.store, clock=clock)
    assert not Hold.objects.filter(lifted_at__isnull=True).exists()
    assert case.executed_at == clock.now()
    report = retention_purge(actor=actor("cees"), store=site.store, clock=clock)
    assert sorted(report.purged) == sorted(str(r) for r in recs)


def test_a_viewing_records_consent_first_streams_from_memory_and_is_gone_when_ended(
    office: Any, site: Site, clock: Any, tmp_path: Path
) -> None:
    from vault.audit.models import AuditEntry
    from vault.web import viewings

    rec = _rec(office["a"])
    work = tmp_path / "work"
    v = viewings.viewing_start(
        recording=rec,
        purpose="learning",
        first=actor("cora"),
        second=actor("olaf"),
        officer_consent=True,
        session_key="s1",
        store=site.store,
        vault_key=site.vault_key,
        clock=clock,
        work_dir=work,
    )
    assert v.media.wait_done(timeout=60) and not v.media.error
    actions = list(
        AuditEntry.objects.filter(action__startswith="viewing.")
        .order_by("seq")
        .values_list("action", flat=True)
    )
    assert actions == ["viewing.consent", "viewing.pair", "viewing.start"]
    assert list(work.iterdir()) == []  # the sealed copy is gone; plaintext never touched disk
    with pytest.raises(NotFound):
        viewings.viewing_get(viewing_id=v.id, session_key="someone else", clock=clock)
    data = v.media.value()
    with av.open(io.BytesIO(data)) as c:
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    assert len(frames) == 60 and frames[0].shape == (120, 160, 3)
    assert b"moof" in data  # fragmented
    top = frames[30][:20]
    assert np.count_nonzero((top > 190).all(axis=2)) > 20  # the burned-in names
    viewings.viewing_seek(viewing_id=v.id, session_key="s1", position=1.5, clock=clock)
    viewings.viewing_end(viewing_id=v.id, session_key="s1", clock=clock)
    assert v.media.size() == 0 and viewings.open_viewings() == 0
    with pytest.raises(NotFound):
        viewings.viewing_get(viewing_id=v.id, session_key="s1", clock=clock)
    assert AuditEntry.objects.filter(action="viewing.end", result="ok").count() == 1


def test_learning_without_consent_or_with_someone_else_is_refused(
    office: Any, site: Site, clock: Any
) -> None:
    from vault.web import viewings

    rec = _rec(office["a"])
    for first, second, consent, why in (
        ("cora", "olaf", False, "consent"),
        ("cora", "cees", True, "not a pair"),
    ):
        with pytest.raises(PermissionRefused, match=why):
            viewings.viewing_start(
                recording=rec,
                purpose="learning",
                first=actor(first),
                second=actor(second),
                officer_consent=consent,
                session_key="s",
                store=site.store,
                vault_key=site.vault_key,
                clock=clock,
            )
    assert viewings.open_viewings() == 0


def test_the_officer_report_is_drafted_from_the_event_log_and_only_the_officer_submits(
    office: Any, site: Site, clock: Any
) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "web"))
    from web_support import _event_log

    from vault.web.models import CameraStatus, ShiftReport
    from vault.web.reports import report_complete, shift_sync, unsubmitted

    a = T0 + dt.timedelta(hours=1)
    _event_log(site, "CAM-1", [(office["a"], a.timestamp(), a.timestamp() + 20)])
    result = shift_sync(actor=actor("cees"), store=site.store, clock=clock)
    assert result.drafted == [f"CAM-1/{office['a']}"] and result.problems == []
    rep = ShiftReport.objects.get(recording__recording_id=office["a"])
    assert rep.events_verified and rep.pressed_at == a and rep.preroll_seconds == 30.0
    assert [i["indicator"] for i in rep.indicators] == ["led", "beep", "led"]
    status = CameraStatus.objects.get(device_id="CAM-1")
    assert status.profile_version == "heusden v3" and status.health == "ok"
    assert list(unsubmitted(actor=actor("olaf"))) == [rep]
    assert list(unsubmitted(actor=actor("cora"))) == [rep]  # flagged to the coordinator too
    assert list(unsubmitted(actor=actor("saf"))) == []
    with pytest.raises(PermissionRefused, match="only the officer"):
        report_complete(
            actor=actor("cora"),
            report=rep,
            reason="x",
            warning_given=True,
            warning_note="",
            bystanders_informed="x",
            submit=True,
            clock=clock,
        )
    with pytest.raises(InvalidRequest, match="why no warning was possible"):
        report_complete(
            actor=actor("olaf"),
            report=rep,
            reason="fight",
            warning_given=False,
            warning_note="",
            bystanders_informed="yes",
            submit=True,
            clock=clock,
        )
    report_complete(
        actor=actor("olaf"),
        report=rep,
        reason="fight",
        warning_given=False,
        warning_note="no time",
        bystanders_informed="yes",
        submit=True,
        clock=clock,
    )
    assert rep.state == "submitted" and list(unsubmitted(actor=actor("cora"))) == []
    from vault.web.reports import report_pdf

    assert report_pdf(rep).startswith(b"%PDF")


def test_the_web_unit_runs_bodycam_vault_serve() -> None:
    import shlex

    from bodycam_cli import build_parser

    unit = Path(__file__).parents[2] / "vault" / "web" / "systemd" / "bodycam-vault-web.service"
    (command,) = [
        ln.split("=", 1)[1] for ln in unit.read_text().splitlines() if ln.startswith("ExecStart=")
    ]
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert args.vault_command == "serve" and args.bind == "127.0.0.1:8000"
    assert not args.local_http  # production: behind the TLS proxy
