"""The web front end's services without a browser: sign-in lock-out, the requests register
and its holds against the purge, viewing sessions (the officer's recorded consent, in memory
only, ended and gone), the watermarked stream (the viewers' mark off the camera's own
stamp, on every part of the picture), footage that cannot be prepared (said and audited), and the
officer's report from the signed event log."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import av
import numpy as np
import pytest
from vault_support import (
    PASSWORD,
    T0,
    Site,
    actor,
    make_municipalities,
    make_ts,
    make_user,
    sound_only_ts,
)

from vault.errors import AuthenticationFailed, InvalidRequest, NotFound, PermissionRefused

DAY = dt.timedelta(days=1)
CAMERA = "BC-1A2B3C4D"  # a device id as cameras make them ("BC-" + 8 hex)
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def camera_ts(size: tuple[int, int], first: int, frames: int, kbps: int) -> bytes:
    """The camera's own MPEG-TS (its encoder and muxer) of the simulated sensor's frames:
    the device id, frame number and time burned in, the frame-counter strip on top."""
    from firmware.encoder import H264Encoder, TsSegmentMuxer
    from sim.sensor import SyntheticSensor

    sensor = SyntheticSensor(*size, CAMERA, pixel_format="yuv420p")
    encoder = H264Encoder(*size, 30, kbps * 1000, 30)
    buf = io.BytesIO()
    mux = TsSegmentMuxer(buf, encoder)
    for n in range(first, first + frames):
        for packet in encoder.encode_video(sensor.capture(n, 1_790_000_000 + n / 30), n):
            mux.write(packet)
    for packet in encoder.flush():
        mux.write(packet)
    mux.close()
    return buf.getvalue()


def decoded(data: bytes, container_format: str | None = None) -> list[np.ndarray]:
    with av.open(io.BytesIO(data), format=container_format) as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]


def camera_stamp(size: tuple[int, int]) -> list[tuple[slice, slice]]:
    """Where the camera's stamp is in its frames: the counter strip across the top, and
    the darkened box with the device id, frame number and time below it at the left."""
    from sim.sensor import SyntheticSensor

    osd = SyntheticSensor(*size, CAMERA)._overlay  # the sensor's own on-screen display
    box_h, box_w = osd.box
    top = osd.picture_top
    return [(slice(0, top), slice(None)), (slice(top, top + box_h), slice(0, box_w))]


def quadrants(size: tuple[int, int]) -> dict[str, tuple[slice, slice]]:
    w, h = size
    top, bottom = slice(0, h // 2), slice(h // 2, h)
    left, right = slice(0, w // 2), slice(w // 2, w)
    return {
        "top left": (top, left),
        "top right": (top, right),
        "bottom left": (bottom, left),
        "bottom right": (bottom, right),
    }


def moved(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pixel: the largest change over the three colours."""
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2)


def viewers_mark() -> Any:
    from vault.viewing.playback import Watermark

    return Watermark.for_viewing(
        ["cees", "sam"], "complaint", T0, f"{CAMERA}/20261102T080000Z", zone=AMSTERDAM
    )


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


@pytest.fixture
def browser_session(
    office: Any, site: Site, clock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """Django's test client signed in as cees, the views on this test's store and clock."""
    from django.test import Client, override_settings

    from vault.web.views import base

    monkeypatch.setattr(base, "CLOCK", clock)
    monkeypatch.setattr(base, "site_store", lambda: site.store)
    monkeypatch.setattr(base, "vault_key", lambda: site.vault_key)
    monkeypatch.setattr(base, "work_dir", lambda: tmp_path / "web-work")
    client = Client()
    client.force_login(actor("cees").user)
    with override_settings(ALLOWED_HOSTS=["testserver"]):
        yield client


def start_form(second: str = "sam") -> dict[str, str]:
    return {"purpose": "complaint", "second_username": second, "second_password": PASSWORD}


def _rec(rec_id: str) -> Any:
    from vault.catalog.models import Recording

    return Recording.objects.select_related("municipality", "officer").get(recording_id=rec_id)


def test_sign_in_locks_a_name_after_repeated_failures_and_unlocks_later(
    office: Any, clock: Any
) -> None:
    from django.conf import settings

    from vault.audit.models import AuditEntry
    from vault.signin.services import AccountLocked, sign_in

    for _ in range(settings.LOCKOUT_FAILURES):
        with pytest.raises(AuthenticationFailed, match="verkeerd wachtwoord"):
            sign_in(username="sam", password="guess", clock=clock)
    with pytest.raises(AccountLocked, match="geblokkeerd"):
        sign_in(username="sam", password=PASSWORD, clock=clock)  # right, but locked
    assert (
        AuditEntry.objects.filter(actor="sam", result="refused").count()
        == settings.LOCKOUT_FAILURES + 1
    )
    clock.advance(seconds=settings.LOCKOUT_SECONDS + 1)
    assert sign_in(username="sam", password=PASSWORD, clock=clock).username == "sam"


def test_failures_from_one_address_do_not_lock_the_name_for_another(
    office: Any, clock: Any
) -> None:
    from django.conf import settings

    from vault.signin.services import AccountLocked, sign_in

    for _ in range(settings.LOCKOUT_FAILURES):
        with pytest.raises(AuthenticationFailed, match="verkeerd wachtwoord"):
            sign_in(username="sam", password="guess", clock=clock, remote="203.0.113.9")
    with pytest.raises(AccountLocked, match="geblokkeerd"):
        sign_in(username="sam", password=PASSWORD, clock=clock, remote="203.0.113.9")
    # The colleague at their own desk signs in (e.g. as the second viewer) all the same.
    assert sign_in(username="sam", password=PASSWORD, clock=clock, remote="10.0.0.7")
    # ... which does not unlock the guesser.
    with pytest.raises(AccountLocked):
        sign_in(username="sam", password=PASSWORD, clock=clock, remote="203.0.113.9")


def test_guessing_from_one_address_waits_longer_after_each_further_failure(
    office: Any, clock: Any
) -> None:
    from django.conf import settings

    from vault.signin.services import AccountLocked, sign_in

    guesser = "203.0.113.9"
    for _ in range(settings.LOCKOUT_FAILURES):
        with pytest.raises(AuthenticationFailed, match="verkeerd wachtwoord"):
            sign_in(username="sam", password="guess", clock=clock, remote=guesser)
    clock.advance(seconds=settings.LOCKOUT_SECONDS + 1)
    with pytest.raises(AuthenticationFailed, match="verkeerd wachtwoord"):
        sign_in(username="sam", password="guess again", clock=clock, remote=guesser)
    # One more failure doubles the wait: after the first wait it is still locked.
    clock.advance(seconds=settings.LOCKOUT_SECONDS + 1)
    with pytest.raises(AccountLocked, match="probeer het over"):
        sign_in(username="sam", password=PASSWORD, clock=clock, remote=guesser)
    clock.advance(seconds=settings.LOCKOUT_SECONDS)
    assert sign_in(username="sam", password=PASSWORD, clock=clock, remote=guesser)


def test_stored_sign_in_failures_are_capped(office: Any, clock: Any) -> None:
    from django.conf import settings
    from django.test import override_settings

    from vault.signin.models import LoginFailure
    from vault.signin.services import sign_in

    with override_settings(LOGIN_FAILURES_KEPT=20):
        for n in range(60):
            with pytest.raises(AuthenticationFailed):
                sign_in(username=f"made-up-{n}", password="x", clock=clock, remote="198.51.100.1")
        assert LoginFailure.objects.count() == 20
        # Failures older than the longest lock can no longer lock anything: forgotten.
        clock.advance(seconds=settings.LOCKOUT_MAX_SECONDS + 1)
        with pytest.raises(AuthenticationFailed):
            sign_in(username="sam", password="x", clock=clock, remote="198.51.100.1")
        assert LoginFailure.objects.count() == 1


def test_a_request_holds_its_recordings_until_closed_and_only_named_roles_handle_it(
    office: Any, site: Site, clock: Any
) -> None:
    from vault.casework.services import request_close, request_decide, request_open
    from vault.catalog.models import Hold, Recording
    from vault.catalog.services import retention_purge

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
    assert case.executed_at == clock.utc()
    report = retention_purge(actor=actor("cees"), store=site.store, clock=clock)
    assert sorted(report.purged) == sorted(str(r) for r in recs)


def test_a_viewing_records_consent_first_streams_from_memory_and_is_gone_when_ended(
    office: Any, site: Site, clock: Any, tmp_path: Path
) -> None:
    from vault.audit.models import AuditEntry
    from vault.viewing import services as viewings
    from vault.viewing.rules import viewing_consent_record

    rec = _rec(office["a"])
    work = tmp_path / "work"
    viewing_consent_record(
        actor=actor("olaf"), recording=rec, purpose="learning", reference="F-1", clock=clock
    )
    v = viewings.viewing_start(
        recording=rec,
        purpose="learning",
        first=actor("cora"),
        second=actor("olaf"),
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
    assert actions == ["viewing.pair", "viewing.start"]
    consent = AuditEntry.objects.get(action="officer.consent")
    assert (consent.actor, consent.purpose) == ("olaf", "learning")
    start = json.loads(AuditEntry.objects.get(action="viewing.start").detail)
    assert start["consent"] == {"entry": consent.seq, "reference": "F-1", "officer": "boa-1"}
    assert list(work.iterdir()) == []  # the sealed copy is gone; plaintext never touched disk
    with pytest.raises(NotFound):
        viewings.viewing_get(viewing_id=v.id, session_key="someone else", clock=clock)
    data = v.media.value()
    with av.open(io.BytesIO(data)) as c:
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    assert len(frames) == 60 and frames[0].shape == (120, 160, 3)
    assert b"moof" in data  # fragmented
    footage = decoded(site.plaintexts[office["a"]], "mpegts")
    assert moved(frames[30], footage[30]).mean() > 10  # the viewers' mark is burned in
    viewings.viewing_seek(viewing_id=v.id, session_key="s1", position=1.5, clock=clock)
    viewings.viewing_end(viewing_id=v.id, session_key="s1", clock=clock)
    assert v.media.size() == 0 and viewings.open_viewings() == 0
    with pytest.raises(NotFound):
        viewings.viewing_get(viewing_id=v.id, session_key="s1", clock=clock)
    assert AuditEntry.objects.filter(action="viewing.end", result="ok").count() == 1


def test_learning_without_consent_or_with_someone_else_is_refused(
    office: Any, site: Site, clock: Any
) -> None:
    from vault.viewing import services as viewings
    from vault.viewing.rules import viewing_consent_record

    rec = _rec(office["a"])
    for first, second, consent, why in (
        ("cora", "olaf", False, "consent"),
        ("cora", "cees", True, "not a pair"),
    ):
        if consent:
            viewing_consent_record(
                actor=actor("olaf"), recording=rec, purpose="learning", reference="F", clock=clock
            )
        with pytest.raises(PermissionRefused, match=why):
            viewings.viewing_start(
                recording=rec,
                purpose="learning",
                first=actor(first),
                second=actor(second),
                session_key="s",
                store=site.store,
                vault_key=site.vault_key,
                clock=clock,
            )
    assert viewings.open_viewings() == 0


def test_footage_without_a_picture_fails_the_start_and_the_page_says_why(
    office: Any, site: Site, clock: Any, browser_session: Any, tmp_path: Path
) -> None:
    from vault.audit.models import AuditEntry
    from vault.catalog.services import catalog_sync
    from vault.viewing import services as viewings

    # Decrypts and verifies, but the MPEG-TS inside holds sound and no video stream.
    rec_id = site.record("CAM-1", T0 + dt.timedelta(hours=3), ts=sound_only_ts())
    catalog_sync(actor=actor("cees"), store=site.store, clock=clock)
    page = browser_session.post(f"/recordings/CAM-1/{rec_id}/view", start_form(), secure=True)
    reason = f"the viewing cannot start: CAM-1/{rec_id}: the recording has no video stream"
    assert page.status_code == 500
    assert f'<p class="error" role="alert">{reason}</p>' in page.content.decode()
    starts = list(AuditEntry.objects.filter(action="viewing.start"))
    assert [(e.actor, e.result) for e in starts] == [("cees", "failed")]
    detail = json.loads(starts[0].detail)
    assert detail["error"] == f"MediaError: CAM-1/{rec_id}: the recording has no video stream"
    assert detail["second"] == "sam" and detail["copy"] is False
    assert starts[0].target == f"CAM-1/{rec_id} viewed by cees+sam"
    assert viewings.open_viewings() == 0
    assert list((tmp_path / "web-work").iterdir()) == []  # nothing decrypted left behind


def test_a_stream_that_fails_while_it_is_encoded_is_audited_and_said_to_the_viewers(
    office: Any, clock: Any, browser_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vault.audit.models import AuditEntry
    from vault.viewing import playback
    from vault.viewing import services as viewings

    # The encoder's bound on the length of any one viewing, lowered below this 60-frame
    # recording: encoding stops part of the way with the error any longer one gets.
    monkeypatch.setattr(playback, "MAX_FRAMES", 40)
    start = browser_session.post(f"/recordings/CAM-1/{office['a']}/view", start_form(), secure=True)
    assert start.status_code == 302, start.content.decode()[:2000]
    url = start["Location"]
    vid = url.rstrip("/").rsplit("/", 1)[1]
    session = browser_session.session.session_key
    v = viewings.viewing_get(viewing_id=vid, session_key=session, clock=clock)
    assert v.media.wait_done(timeout=60) and v.media.frames == 41  # part of the way
    reason = f"the viewing stream could not be prepared: CAM-1/{office['a']}: longer than 40 frames"
    page = browser_session.get(url, secure=True)
    html = page.content.decode()
    assert page.status_code == 200
    assert re.search(rf'<p class="error" role="alert" id="viewing-error">{reason}</p>', html)
    assert "<video" not in html
    for asked in ({}, {"HTTP_RANGE": "bytes=0-"}, {"HTTP_RANGE": "bytes=100-199"}):
        stream = browser_session.get(f"/viewings/{vid}/stream", secure=True, **asked)
        assert stream.status_code == 500 and stream.content.decode() == reason, asked
        assert stream["Cache-Control"] == "no-store"
    status = browser_session.get(f"/viewings/{vid}/status", secure=True)
    assert status.json() == {"done": True, "error": reason}
    assert status["Cache-Control"] == "no-store"
    entries = list(AuditEntry.objects.filter(action__startswith="viewing.").order_by("seq"))
    assert [(e.action, e.result) for e in entries] == [
        ("viewing.second", "ok"),
        ("viewing.pair", "ok"),
        ("viewing.start", "ok"),
        ("viewing.failed", "failed"),  # once, however often the viewers asked
    ]
    assert json.loads(entries[-1].detail)["error"] == f"CAM-1/{office['a']}: longer than 40 frames"
    end = browser_session.post(f"/viewings/{vid}/event", {"event": "end"}, secure=True)
    assert end.status_code == 302
    assert AuditEntry.objects.filter(action="viewing.end", result="ok").count() == 1
    assert browser_session.get(f"/viewings/{vid}/stream", secure=True).status_code == 404
    assert viewings.open_viewings() == 0


def _start(rec_id: str, site: Site, clock: Any, session_key: str = "s1") -> Any:
    from vault.viewing import services as viewings

    return viewings.viewing_start(
        recording=_rec(rec_id),
        purpose="complaint",
        first=actor("cees"),
        second=actor("sam"),
        session_key=session_key,
        store=site.store,
        vault_key=site.vault_key,
        clock=clock,
    )


def test_two_independent_builds_of_one_viewing_are_byte_identical(
    office: Any, site: Site, clock: Any
) -> None:
    """What lets any worker answer any byte range: the stream another worker builds from
    the viewing's row (after reading it back from the database) is the same bytes."""
    from vault.viewing import services as viewings
    from vault.viewing.streams import STREAMS

    v = _start(office["a"], site, clock)
    assert v.media.wait_done(timeout=60) and not v.media.error
    first = v.media.value()
    assert len(first) > 1000 and b"moof" in first
    again = viewings.viewing_stream_bytes(viewing=v, store=site.store, vault_key=site.vault_key)
    assert again == first
    # Another worker: no stream in its memory, only the row.
    STREAMS.clear()
    other = viewings.viewing_get(viewing_id=v.id, session_key="s1", clock=clock)
    assert other.media is None and other.row is not v.row
    media = viewings.viewing_media(viewing=other, store=site.store, vault_key=site.vault_key)
    assert media.wait_done(timeout=60) and not media.error
    assert media.value() == first
    viewings.viewing_end(viewing_id=v.id, session_key="s1", clock=clock)
    assert STREAMS.get(v.id) is None


def test_a_viewing_ended_in_its_row_ends_in_every_worker_and_idle_ones_end_once(
    office: Any, site: Site, clock: Any
) -> None:
    from vault.audit.models import AuditEntry
    from vault.viewing import services as viewings
    from vault.viewing.models import Viewing
    from vault.viewing.streams import STREAMS

    v = _start(office["a"], site, clock)
    assert STREAMS.get(v.id) is not None
    row = Viewing.objects.get(pk=v.id)
    assert (row.first, row.second, row.pair, row.purpose) == (
        "cees",
        "sam",
        ["cluster_manager", "municipal_secretary"],
        "complaint",
    )
    assert row.session_hash != "s1" and len(row.session_hash) == 64  # never the key itself
    # Another worker ends it (the end button there): this worker's copy goes at its next
    # request, and the stream is refused.
    Viewing.objects.filter(pk=v.id).update(ended_at=clock.utc(), ended_reason="ended")
    with pytest.raises(NotFound):
        viewings.viewing_get(viewing_id=v.id, session_key="s1", clock=clock)
    assert STREAMS.get(v.id) is None and v.media.size() == 0
    # Idle: ended by whichever request comes first after 30 minutes, audited once.
    w = _start(office["a"], site, clock, session_key="s2")
    clock.advance(minutes=31)
    for _ in range(2):
        with pytest.raises(NotFound):
            viewings.viewing_get(viewing_id=w.id, session_key="s2", clock=clock)
    ends = AuditEntry.objects.filter(action="viewing.end")
    assert [json.loads(e.detail)["reason"] for e in ends] == ["idle"]
    assert Viewing.objects.get(pk=w.id).ended_reason == "idle"
    assert viewings.open_viewings() == 0 and STREAMS.get(w.id) is None


def test_a_start_while_every_encoder_is_busy_answers_503_with_when_to_try_again(
    office: Any, browser_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vault.audit.models import AuditEntry
    from vault.viewing import services as viewings
    from vault.viewing.streams import EncoderPool

    full = EncoderPool(1)
    assert full.reserve() and not full.reserve()
    monkeypatch.setattr(viewings, "POOL", full)
    page = browser_session.post(f"/recordings/CAM-1/{office['a']}/view", start_form(), secure=True)
    assert page.status_code == 503
    assert page["Retry-After"].isdigit() and 1 <= int(page["Retry-After"]) <= 60
    html = page.content.decode()
    assert f"over {page['Retry-After']} seconde" in html  # Dutch by default
    assert f'href="/recordings/CAM-1/{office["a"]}/"' in html
    start = AuditEntry.objects.get(action="viewing.start")
    assert start.result == "failed" and "ViewingBusy" in json.loads(start.detail)["error"]
    assert viewings.open_viewings() == 0 and full.active() == 1  # nothing taken, nothing lost
    full.release()
    page = browser_session.post(f"/recordings/CAM-1/{office['a']}/view", start_form(), secure=True)
    assert page.status_code == 302


def test_a_growing_stream_being_sent_stops_once_its_row_says_ended(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A long recording's stream is sent as it is encoded; ended through another worker
    meanwhile, the bytes stop at the next look at the row."""
    from vault.viewing.playback import GrowingMedia
    from vault.web.views import viewing as pages

    monkeypatch.setattr(pages, "ROW_CHECK_SECONDS", 0.0)
    media = GrowingMedia()
    media.write(b"x" * (3 * pages.STREAM_CHUNK))
    answers = iter([True, False])
    assert list(pages._grow(media, lambda: next(answers))) == [b"x" * pages.STREAM_CHUNK]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "must be from 1 to 64, got 0"),
        ("many", "must be a whole number from 1 to 64, got many"),
        ("65", "must be from 1 to 64, got 65"),
    ],
)
def test_serve_workers_outside_their_range_are_one_line_naming_it(
    value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from bodycam_cli import main

    with pytest.raises(SystemExit) as exc:
        main(["vault", "serve", "--workers", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.endswith(f"error: argument --workers: {message}\n"), err


@pytest.mark.parametrize("size", [(640, 360), (1920, 1080), (320, 240), (1280, 720)])
def test_the_viewers_mark_leaves_the_camera_stamp_and_covers_every_quadrant(
    size: tuple[int, int],
) -> None:
    from sim.sensor import SyntheticSensor, read_frame_counter
    from vault.viewing.playback import burn_in

    sensor = SyntheticSensor(*size, CAMERA)
    frame = sensor.capture(4321, 1_790_000_000.0)
    marked = burn_in(frame.copy(), viewers_mark(), 12.5)
    for rows, cols in camera_stamp(size):
        assert np.array_equal(marked[rows, cols], frame[rows, cols])
    assert read_frame_counter(marked) == 4321
    # Cropping any part of the picture away leaves the mark in what remains.
    change = moved(marked, frame)
    for name, (rows, cols) in quadrants(size).items():
        share = float((change[rows, cols] > 24).mean())
        assert share > 0.01, f"{name}: {share:.4f} of the pixels carry the mark"
    # Translucent: where the footage differs between two frames, at least 40 % of that
    # difference still shows through the mark (except under the band's own text).
    other = sensor.capture(4381, 1_790_000_002.0)
    footage = moved(other, frame)
    shown = moved(burn_in(other.copy(), viewers_mark(), 14.5), marked)
    sel = footage > 40
    assert sel.mean() > 0.2  # the two frames do differ
    assert float((shown[sel] >= 0.4 * footage[sel] - 2).mean()) > 0.95


@pytest.mark.parametrize("device_id", [CAMERA, "X" * 24])
def test_the_area_kept_clear_holds_the_camera_stamp_at_every_size(device_id: str) -> None:
    from sim.sensor import SyntheticSensor
    from vault.viewing.watermark import camera_stamp_area

    for size in ((64, 48), (160, 120), (320, 180), (640, 480), (1280, 720), (3840, 2160)):
        osd = SyntheticSensor(*size, device_id)._overlay  # the sensor's own on-screen display
        strip, box_bottom, box_right = camera_stamp_area(*size)
        assert strip >= osd.picture_top, size
        assert box_bottom >= min(size[1], osd.picture_top + osd.box[0]), size
        assert box_right >= min(size[0], osd.box[1]), size


@pytest.mark.parametrize(("size", "kbps"), [((640, 360), 1500), ((1920, 1080), 6000)])
def test_the_mark_and_the_camera_stamp_survive_the_viewing_stream(
    size: tuple[int, int], kbps: int
) -> None:
    from sim.sensor import read_frame_counter
    from vault.media import reencode_video
    from vault.viewing.playback import (
        MP4_OPTIONS,
        X264_OPTIONS,
        GrowingMedia,
        burn_in,
        encode_watermarked,
    )

    ts = camera_ts(size, first=900, frames=30, kbps=kbps)
    media = GrowingMedia()
    encode_watermarked(ts, viewers_mark(), media)
    marked = decoded(media.value())
    footage = decoded(ts, "mpegts")
    plain = io.BytesIO()  # the same re-encode without the mark: what the stamp should be
    reencode_video(
        ts,
        plain,
        lambda image, _: image,
        x264_options=X264_OPTIONS,
        mp4_options=MP4_OPTIONS,
    )
    unmarked = decoded(plain.getvalue())
    assert len(marked) == len(unmarked) == len(footage) == 30
    stamp = camera_stamp(size)
    for i, (m, u) in enumerate(zip(marked, unmarked, strict=True)):
        assert read_frame_counter(m) == 900 + i
        for rows, cols in stamp:
            assert moved(m[rows, cols], u[rows, cols]).mean() < 2.0, i
    # Still there after the encode, in every quadrant: where the mark goes on this
    # frame it moved the picture a lot; elsewhere only the encoder's noise.
    k = 15
    where = moved(burn_in(footage[k].copy(), viewers_mark(), 0.5), footage[k]) > 40
    seen = moved(marked[k], footage[k])
    for name, (rows, cols) in quadrants(size).items():
        on, there = where[rows, cols], seen[rows, cols]
        assert on.mean() > 0.01, name
        assert there[on].mean() > 30, name
        assert there[on].mean() > 3 * there[~on].mean(), name


def test_the_officer_report_is_drafted_from_the_event_log_and_only_the_officer_submits(
    office: Any, site: Site, clock: Any, browser_session: Any
) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "web"))
    from web_support import _event_log

    from vault.reports.models import CameraStatus, ShiftReport
    from vault.reports.selectors import unsubmitted
    from vault.reports.services import report_complete, shift_sync

    a = T0 + dt.timedelta(hours=1)
    _event_log(site, "CAM-1", [(office["a"], a.timestamp(), a.timestamp() + 20)])
    result = shift_sync(actor=actor("cees"), store=site.store, clock=clock)
    assert result.drafted == [f"CAM-1/{office['a']}"] and result.problems == []
    rep = ShiftReport.objects.get(recording__recording_id=office["a"])
    assert rep.events_verified and rep.pressed_at == a and rep.preroll_seconds == 30.0
    assert [i["indicator"] for i in rep.indicators] == ["led", "beep", "led"]
    status = CameraStatus.objects.get(device_id="CAM-1")
    assert status.profile_version == "heusden v3" and status.health == "ok"
    # The cameras page and `vault camera list` read it back through one selector.
    from vault.reports.selectors import camera_overview

    (row,) = camera_overview(actor=actor("cora"), clock=clock)
    assert (row.camera.device_id, row.officer.code if row.officer else None) == ("CAM-1", "boa-1")
    assert row.status == status and status.last_docked_at is not None
    page = browser_session.get("/cameras/", secure=True).content.decode()
    assert "<td>boa-1</td>" in page
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
    from vault.reports.pdf import report_pdf

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


def test_the_address_behind_our_proxy_is_the_hop_it_added(office: Any) -> None:
    from django.test import RequestFactory

    from vault.web.views.base import _remote

    rf = RequestFactory()
    proxied = rf.get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9")
    assert _remote(proxied) == "203.0.113.9"  # the client may have written the first one
    direct = rf.get("/", REMOTE_ADDR="198.51.100.4", HTTP_X_FORWARDED_FOR="10.0.0.7")
    assert _remote(direct) == "198.51.100.4"  # not our proxy: its header is not believed
    assert _remote(rf.get("/", REMOTE_ADDR="127.0.0.1")) == "127.0.0.1"


def test_pages_show_times_in_the_municipality_zone_with_the_zone_named(
    browser_session: Any, office: Any, clock: Any
) -> None:
    """Stored in UTC, shown in Europe/Amsterdam (the site's TIME_ZONE) with CET or CEST."""
    from vault.local_time import local_text

    rec = _rec(office["a"])
    assert rec.record_pressed_at == T0 + dt.timedelta(hours=1)  # 09:00 UTC, winter
    page = browser_session.get(f"/recordings/{rec.device_id}/{rec.recording_id}/", secure=True)
    assert page.status_code == 200
    assert "02-11-2026 10:00:00 CET" in page.content.decode()
    summer = dt.datetime(2027, 7, 1, 12, 0, 5, tzinfo=dt.UTC)
    clock.set(summer)
    assert (
        browser_session.get(
            f"/recordings/{rec.device_id}/{rec.recording_id}/", secure=True
        ).status_code
        == 200
    )
    audit = browser_session.get("/audit/", secure=True).content.decode()
    assert "01-07-2027 14:00:05 CEST" in audit, audit
    # the filter's other precisions, and no time at all
    assert local_text(summer, "date") == "01-07-2027"
    assert local_text(summer, "minute") == "01-07-2027 14:00 CEST"
    assert local_text(summer, "time") == "14:00:05 CEST"
    assert local_text(None) == ""


def test_the_viewers_mark_holds_the_start_in_utc_and_in_the_municipality_zone() -> None:
    from vault.viewing.watermark import Watermark

    winter = viewers_mark()  # T0: 08:00 UTC on 2 November
    assert "viewed 2026-11-02T08:00:00Z  |  02-11-2026 09:00:00 CET" in winter.lines
    assert winter.tile.endswith("2026-11-02T08:00:00Z")
    summer = Watermark.for_viewing(
        ["cees", "sam"],
        "complaint",
        dt.datetime(2027, 6, 30, 22, 30, tzinfo=dt.UTC),
        f"{CAMERA}/20270630T220000Z",
        zone=AMSTERDAM,
    )
    assert "viewed 2027-06-30T22:30:00Z  |  01-07-2027 00:30:00 CEST" in summer.lines
    assert len(summer.lines) == len(winter.lines) == 3  # the band keeps its height


def test_a_time_typed_into_a_page_is_read_in_the_municipality_zone(
    browser_session: Any, office: Any
) -> None:
    """The catalog's "From" at 10:00 on 2 November means 10:00 CET (09:00 UTC), the time
    the recording page shows for recording a; read as UTC it would leave a out."""
    a, b = _rec(office["a"]), _rec(office["b"])
    assert (a.record_pressed_at.hour, b.record_pressed_at.hour) == (9, 10)  # UTC
    page = browser_session.get("/recordings/?since=2026-11-02T10:00", secure=True)
    assert page.status_code == 200
    text = page.content.decode()
    assert a.recording_id in text and b.recording_id in text
    page = browser_session.get("/recordings/?since=2026-11-02T10:01", secure=True)
    assert a.recording_id not in page.content.decode()
