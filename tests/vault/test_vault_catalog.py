"""Catalog sync, origin against the registry, holds and retention, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from vault_support import T0, Site, actor, make_municipalities, make_user

from crypto.keys import SigningKey
from store import delete_object
from vault.errors import NotFound, OriginRefused, PermissionRefused

DAY = dt.timedelta(days=1)


@pytest.fixture
def office(any_db: str, site: Site, clock: Any) -> dict[str, Any]:
    """Heusden, Utrecht and H2O with a user per needed role, two cameras per municipality."""
    from vault.accounts.services import officer_create
    from vault.registry.services import camera_assign, camera_register, dock_station_add

    make_municipalities(["heusden", "utrecht", "h2o"])
    for code in ("heusden", "utrecht", "heerde", "hattem", "oldebroek"):
        make_user(f"coord-{code}", {code: ["coordinator"]})
        make_user(f"po-{code}", {code: ["privacy_officer"]})
        make_user(f"cm-{code}", {code: ["cluster_manager"]})
    make_user("secretary", {"heusden": ["municipal_secretary"]})
    make_user(
        "timer", {c: ["scheduler"] for c in ("heusden", "utrecht", "heerde", "hattem", "oldebroek")}
    )
    dock_station_add(
        actor=actor("coord-heusden"),
        name="dock-1",
        public_key=site.dock_key.public_bytes(),
        clock=clock,
    )
    for code in ("heusden", "utrecht", "heerde", "hattem", "oldebroek"):
        co = actor(f"coord-{code}")
        officer_create(actor=co, municipality=code, code=f"boa-{code}", name="Officer", clock=clock)
        for n in (1, 2):
            cam = site.camera(f"CAM-{code}-{n}")
            camera_register(
                actor=co,
                municipality=code,
                device_id=cam.device_id,
                public_key=cam.public_hex,
                clock=clock,
            )
        camera_assign(
            actor=co,
            device_id=f"CAM-{code}-1",
            officer_code=f"boa-{code}",
            starts_at=T0 - DAY,
            clock=clock,
        )
    return {}


def _sync(site: Site, clock: Any, who: str = "timer", **kw: Any) -> Any:
    from vault.catalog.services import catalog_sync

    return catalog_sync(actor=actor(who), store=site.store, clock=clock, **kw)


def test_sync_indexes_what_the_docks_stored_and_is_idempotent(
    office: Any, site: Site, clock: Any
) -> None:
    from vault.catalog.models import Recording

    a = site.record("CAM-heusden-1", T0 + dt.timedelta(hours=1), segments=3, preroll=30)
    b = site.record("CAM-heusden-2", T0 + dt.timedelta(hours=2), finish=False)
    site.record("CAM-utrecht-1", T0 + dt.timedelta(hours=3))
    report = _sync(site, clock)
    assert (report.seen, report.added, report.refused, report.problems) == (3, 3, [], [])
    rec = Recording.objects.get(recording_id=a)
    assert rec.municipality.code == "heusden" and rec.officer.code == "boa-heusden"
    assert rec.preroll_seconds == pytest.approx(30.0)
    assert rec.footage_start_at == T0 + dt.timedelta(hours=1) - dt.timedelta(seconds=30)
    assert rec.state == "stored" and rec.complete and rec.segment_count == 3
    assert rec.ingest_dock == "dock-1"
    assert rec.ingested_at == T0 + dt.timedelta(hours=2)
    assert rec.retention_ends_at == T0 + dt.timedelta(hours=1) + 28 * DAY
    assert [s.index for s in rec.segments.all()] == [0, 1, 2]
    assert all(len(s.sha256) == 64 and s.store_key.endswith(s.sha256) for s in rec.segments.all())
    unfinished = Recording.objects.get(recording_id=b)
    assert unfinished.state == "incomplete" and unfinished.officer is None
    again = _sync(site, clock)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 3)
    site.record("CAM-heusden-1", T0 + dt.timedelta(hours=5))
    assert _sync(site, clock).added == 1


def test_sync_resumes_after_an_interruption(
    office: Any, site: Site, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vault.catalog.sync as sync
    from vault.catalog.models import Recording

    for h in range(4):
        site.record("CAM-heusden-1", T0 + dt.timedelta(hours=h))
    real = sync.verify_origin
    calls = {"n": 0}

    def dies_on_third(*a: Any, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("power cut")
        return real(*a, **kw)

    monkeypatch.setattr(sync, "verify_origin", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        _sync(site, clock, commit_every=1)
    assert Recording.objects.count() == 2
    monkeypatch.setattr(sync, "verify_origin", real)
    report = _sync(site, clock)
    assert (report.added, report.unchanged) == (2, 2)


def test_recording_signed_with_an_unregistered_key_is_refused_by_every_command(
    office: Any, site: Site, clock: Any, tmp_path: Path
) -> None:
    from vault.audit.models import AuditEntry
    from vault.catalog.custody import recording_decrypt, recording_verify
    from vault.catalog.models import Recording

    good = site.record("CAM-heusden-1", T0)
    _sync(site, clock)
    rec = Recording.objects.get(recording_id=good)
    po = actor("po-heusden")
    assert recording_verify(actor=po, recording=rec, store=site.store, clock=clock).complete
    # Same device id, re-signed with a fresh key; a DEVICE.json for that key beside it.
    forged = site.record("CAM-heusden-1", T0 + DAY, key=SigningKey.generate(kind="device"))
    report = _sync(site, clock)
    assert len(report.refused) == 1 and forged in report.refused[0]
    assert not Recording.objects.filter(recording_id=forged).exists()
    assert AuditEntry.objects.filter(
        action="catalog.sync", result="refused", target__contains=forged
    ).exists()
    # The catalogued recording's objects replaced by a re-signed copy in the store.
    for key in list(site.store.list(f"s1/CAM-heusden-1/{good}/")):
        delete_object(site.store, key)
    site.record("CAM-heusden-1", T0, key=SigningKey.generate(kind="device"), rec_id=good)
    (site.root / "store" / "s1" / "CAM-heusden-1" / "DEVICE.json").write_text("{}")
    for command in (
        lambda: recording_verify(actor=po, recording=rec, store=site.store, clock=clock),
        lambda: recording_decrypt(
            actor=po,
            recording=rec,
            store=site.store,
            vault_key=site.vault_key,
            out=tmp_path / "x.ts",
            purpose="criminal_investigation",
            clock=clock,
        ),
    ):
        with pytest.raises(OriginRefused, match="not signed by the key the coordinator"):
            command()
    assert not (tmp_path / "x.ts").exists()
    assert (
        AuditEntry.objects.filter(
            result="refused", action="recording.decrypt", target=str(rec)
        ).count()
        == 1
    )
    resync = _sync(site, clock)
    assert len(resync.refused) == 2


def test_purged_exactly_when_retention_ends_not_a_second_before(
    office: Any, site: Site, clock: Any, tmp_path: Path
) -> None:
    from vault.catalog.models import Recording
    from vault.catalog.services import retention_purge

    rid = site.record("CAM-heusden-1", T0)
    _sync(site, clock)
    cache = tmp_path / "cache"
    (cache / "s1" / "CAM-heusden-1" / rid).mkdir(parents=True)
    (cache / "s1" / "CAM-heusden-1" / rid / "recording.ts").write_bytes(b"plain")
    timer = actor("timer")
    clock.set(T0 + 28 * DAY - dt.timedelta(seconds=1))
    assert retention_purge(actor=timer, store=site.store, clock=clock, dry_run=True).due == []
    assert retention_purge(actor=timer, store=site.store, clock=clock).purged == []
    assert list(site.store.list(f"s1/CAM-heusden-1/{rid}/"))
    clock.set(T0 + 28 * DAY)
    dry = retention_purge(actor=timer, store=site.store, clock=clock, dry_run=True)
    assert dry.due == [f"CAM-heusden-1/{rid}"] and dry.purged == []
    assert list(site.store.list(f"s1/CAM-heusden-1/{rid}/"))
    done = retention_purge(actor=timer, store=site.store, clock=clock, cache_dirs=(cache,))
    assert done.purged == [f"CAM-heusden-1/{rid}"]
    assert list(site.store.list(f"s1/CAM-heusden-1/{rid}/")) == []
    assert not (cache / "s1" / "CAM-heusden-1" / rid).exists()
    rec = Recording.objects.get(recording_id=rid)
    assert rec.state == "purged"
    assert rec.tombstone.purged_at == T0 + 28 * DAY and "retention 28 days" in rec.tombstone.rule
    assert rec.tombstone.objects_removed == 5  # header, manifest, 2 segments, ingest record
    assert _sync(site, clock).added == 0  # a tombstone is not brought back
    from vault.catalog.services import hold_place
    from vault.errors import InvalidRequest

    # when it went, in UTC with `Z` as every message a command prints (T0 + 28 days)
    with pytest.raises(InvalidRequest, match=r"was purged on 2026-11-30T08:00:00Z$"):
        hold_place(
            actor=actor("secretary"),
            recording=rec,
            kind="complaint",
            reference="Z-1",
            reason="case",
            store=site.store,
            clock=clock,
        )


HOLDERS = {"access_request": "po-heusden", "complaint": "secretary", "prosecutor": "cm-heusden"}


@pytest.mark.parametrize("kind", sorted(HOLDERS))
def test_each_hold_kind_blocks_the_purge_until_lifted(
    office: Any, site: Site, clock: Any, kind: str
) -> None:
    from vault.catalog.models import Recording
    from vault.catalog.services import hold_lift, hold_place, retention_purge

    rid = site.record("CAM-heusden-1", T0)
    _sync(site, clock)
    rec = Recording.objects.get(recording_id=rid)
    clock.set(T0 + 3 * DAY)
    holder = actor(HOLDERS[kind])
    hold = hold_place(
        actor=holder,
        recording=rec,
        kind=kind,
        reference="Z-1",
        reason="case",
        store=site.store,
        clock=clock,
    )
    keys = list(site.store.list(f"s1/CAM-heusden-1/{rid}/"))
    assert keys and all(site.store.legal_hold(k) for k in keys)
    clock.set(T0 + 90 * DAY)
    timer = actor("timer")
    assert retention_purge(actor=timer, store=site.store, clock=clock).purged == []
    assert list(site.store.list(f"s1/CAM-heusden-1/{rid}/")) == keys
    hold_lift(actor=holder, hold=hold, reason="procedure ended", store=site.store, clock=clock)
    assert not any(site.store.legal_hold(k) for k in keys)
    assert retention_purge(actor=timer, store=site.store, clock=clock).purged == [str(rec)]
    assert Recording.objects.get(pk=rec.pk).state == "purged"


def test_only_the_roles_the_policy_names_place_or_lift_holds(
    office: Any, site: Site, clock: Any
) -> None:
    from vault.audit.models import AuditEntry
    from vault.catalog.models import Recording
    from vault.catalog.services import hold_lift, hold_place

    rid = site.record("CAM-heusden-1", T0)
    _sync(site, clock)
    rec = Recording.objects.get(recording_id=rid)
    with pytest.raises(PermissionRefused, match="only privacy_officer place a access_request"):
        hold_place(
            actor=actor("coord-heusden"),
            recording=rec,
            kind="access_request",
            reference="AV-1",
            reason="r",
            store=site.store,
            clock=clock,
        )
    hold = hold_place(
        actor=actor("cm-heusden"),
        recording=rec,
        kind="complaint",
        reference="K-1",
        reason="r",
        store=site.store,
        clock=clock,
    )
    with pytest.raises(PermissionRefused):
        hold_lift(actor=actor("po-heusden"), hold=hold, reason="r", store=site.store, clock=clock)
    refused = AuditEntry.objects.filter(result="refused", action__startswith="hold.")
    assert {(e.actor, e.action) for e in refused} == {
        ("coord-heusden", "hold.place"),
        ("po-heusden", "hold.lift"),
    }


def test_access_request_window_and_answer_deadline_come_from_the_policy(
    office: Any, site: Site, clock: Any
) -> None:
    from vault.catalog.models import Recording
    from vault.catalog.services import hold_place

    rid = site.record("CAM-heerde-1", T0)
    _sync(site, clock)
    rec = Recording.objects.get(recording_id=rid)
    po = actor("po-heerde")
    clock.set(T0 + 22 * DAY)
    with pytest.raises(PermissionRefused, match="arrived 22 days after the recording.*within 21"):
        hold_place(
            actor=po,
            recording=rec,
            kind="access_request",
            reference="AV-2",
            reason="r",
            store=site.store,
            clock=clock,
        )
    hold = hold_place(
        actor=po,
        recording=rec,
        kind="access_request",
        reference="AV-2",
        reason="r",
        store=site.store,
        clock=clock,
        received_at=T0 + 20 * DAY,
    )
    assert hold.answer_due_at == T0 + 41 * DAY


def test_utrecht_informs_the_officer_of_a_prosecutor_claim_heusden_does_not(
    office: Any, site: Site, clock: Any
) -> None:
    from vault.catalog.models import Notification, Recording
    from vault.catalog.services import hold_place

    u = site.record("CAM-utrecht-1", T0)
    h = site.record("CAM-heusden-1", T0)
    _sync(site, clock)
    hold_place(
        actor=actor("po-utrecht"),
        recording=Recording.objects.get(recording_id=u),
        kind="prosecutor",
        reference="OM-1",
        reason="claim",
        store=site.store,
        clock=clock,
    )
    hold_place(
        actor=actor("po-heusden"),
        recording=Recording.objects.get(recording_id=h),
        kind="prosecutor",
        reference="OM-2",
        reason="claim",
        store=site.store,
        clock=clock,
    )
    notes = list(Notification.objects.all())
    assert [(n.recording.recording_id, n.officer.code, n.event) for n in notes] == [
        (u, "boa-utrecht", "hold.prosecutor")
    ]


def test_h2o_municipalities_see_only_their_own_footage(office: Any, site: Site, clock: Any) -> None:
    from vault.audit.models import AuditEntry
    from vault.catalog.selectors import recording_get, recording_list

    mine = site.record("CAM-heerde-1", T0)
    theirs = site.record("CAM-hattem-1", T0)
    _sync(site, clock)
    po = actor("po-heerde")
    assert [r.recording_id for r in recording_list(actor=po, clock=clock)] == [mine]
    with pytest.raises(NotFound):
        recording_get(actor=po, ref=theirs, clock=clock)
    assert AuditEntry.objects.filter(actor="po-heerde", result="refused", target=theirs).exists()
    assert recording_get(actor=po, ref=f"CAM-heerde-1/{mine}", clock=clock).recording_id == mine


def test_list_filters_and_no_per_officer_lookup_without_a_case(
    office: Any, site: Site, clock: Any
) -> None:
    from vault.catalog.models import Recording
    from vault.catalog.selectors import recording_list
    from vault.catalog.services import hold_place

    a = site.record("CAM-heusden-1", T0)
    b = site.record("CAM-heusden-2", T0 + DAY)
    _sync(site, clock)
    po = actor("po-heusden")
    hold_place(
        actor=po,
        recording=Recording.objects.get(recording_id=b),
        kind="prosecutor",
        reference="OM",
        reason="r",
        store=site.store,
        clock=clock,
    )

    def ids(**kw: Any) -> list[str]:
        return [r.recording_id for r in recording_list(actor=po, clock=clock, **kw)]

    assert ids() == [b, a]
    assert ids(camera="CAM-heusden-1") == [a]
    assert ids(since=T0 + DAY / 2) == [b]
    assert ids(until=T0 + DAY / 2) == [a]
    assert ids(hold="prosecutor") == [b] and ids(hold="none") == [a]
    assert ids(state="stored") == [b, a]
    with pytest.raises(PermissionRefused, match="never to monitor employees"):
        ids(officer="boa-heusden")
    assert ids(officer="boa-heusden", purpose="complaint") == [a]


def test_event_log_pieces_follow_the_footage_schedule(office: Any, site: Site, clock: Any) -> None:
    import hashlib
    import json

    from store import events_key
    from vault.catalog.services import retention_purge

    lines = b"".join(
        json.dumps({"seq": i, "utc": T0.timestamp() + i, "kind": "press"}).encode() + b"\n"
        for i in range(3)
    )
    key = events_key("s1", "CAM-heusden-1", 0, len(lines), hashlib.sha256(lines).hexdigest())
    site.store.put_bytes(key, lines)
    timer = actor("timer")
    clock.set(T0 + 28 * DAY + dt.timedelta(seconds=1))
    assert retention_purge(actor=timer, store=site.store, clock=clock).events_purged == []
    assert list(site.store.list("s1/CAM-heusden-1/events/")) == [key]
    clock.set(T0 + 28 * DAY + dt.timedelta(seconds=2))
    assert retention_purge(actor=timer, store=site.store, clock=clock).events_purged == [key]
    assert list(site.store.list("s1/CAM-heusden-1/events/")) == []


def _event_piece(site: Site, device: str, events: list[dict[str, Any]], offset: int = 0) -> str:
    import hashlib
    import json

    from store import events_key

    lines = b"".join(json.dumps(e).encode() + b"\n" for e in events)
    key = events_key("s1", device, offset, offset + len(lines), hashlib.sha256(lines).hexdigest())
    site.store.put_bytes(key, lines)
    return key


def test_a_hold_keeps_the_event_log_pieces_of_its_recording(
    office: Any, site: Site, clock: Any
) -> None:
    """The piece whose last line releases a held recording is its custody evidence: it
    stays as long as the hold, while pieces about other recordings go on schedule."""
    from vault.catalog.models import Recording
    from vault.catalog.services import hold_lift, hold_place, retention_purge

    rid = site.record("CAM-heusden-1", T0)
    _sync(site, clock)
    rec = Recording.objects.get(recording_id=rid)
    docked = T0.timestamp() + 6 * 3600  # released at the dock hours after the recording
    custody = _event_piece(
        site,
        "CAM-heusden-1",
        [
            {"seq": 1, "utc": docked, "kind": "dock", "fields": {}},
            {
                "seq": 2,
                "utc": docked + 5,
                "kind": "segment_released",
                "fields": {"recording_id": rid, "segment": "seg-000000.bcs"},
            },
        ],
    )
    other = _event_piece(
        site,
        "CAM-heusden-1",
        [{"seq": 3, "utc": docked + 86400, "kind": "press", "fields": {}}],
        offset=1000,
    )
    clock.set(T0 + 3 * DAY)
    hold = hold_place(
        actor=actor("secretary"),
        recording=rec,
        kind="complaint",
        reference="K-9",
        reason="complaint",
        store=site.store,
        clock=clock,
    )
    clock.set(T0 + 90 * DAY)
    timer = actor("timer")
    report = retention_purge(actor=timer, store=site.store, clock=clock)
    assert report.events_purged == [other]
    assert list(site.store.list("s1/CAM-heusden-1/events/")) == [custody]
    assert report.events_held and custody in report.events_held[0]
    hold_lift(actor=actor("secretary"), hold=hold, reason="ended", store=site.store, clock=clock)
    report = retention_purge(actor=timer, store=site.store, clock=clock)
    assert report.events_purged == [custody] and report.purged == [str(rec)]


def test_a_lifted_hold_and_purge_leave_no_empty_hold_folder(
    office: Any, site: Site, clock: Any
) -> None:
    from vault.catalog.models import Recording
    from vault.catalog.services import hold_lift, hold_place, retention_purge

    rid = site.record("CAM-heusden-1", T0)
    _sync(site, clock)
    rec = Recording.objects.get(recording_id=rid)
    clock.set(T0 + 3 * DAY)
    hold = hold_place(
        actor=actor("secretary"),
        recording=rec,
        kind="complaint",
        reference="K-3",
        reason="complaint",
        store=site.store,
        clock=clock,
    )
    holds = site.store.root / ".holds"
    assert (holds / "s1" / "CAM-heusden-1" / rid).is_dir()
    hold_lift(actor=actor("secretary"), hold=hold, reason="ended", store=site.store, clock=clock)
    clock.set(T0 + 90 * DAY)
    assert retention_purge(actor=actor("timer"), store=site.store, clock=clock).purged
    assert not (holds / "s1").exists()  # nothing left that names the recording


def test_objects_arriving_after_the_purge_are_purged_too(
    office: Any, site: Site, clock: Any
) -> None:
    from vault.catalog.models import Recording
    from vault.catalog.services import retention_purge

    rid = site.record("CAM-heusden-1", T0)
    _sync(site, clock)
    prefix = f"s1/CAM-heusden-1/{rid}/"
    copies = {k: site.store.get_bytes(k) for k in site.store.list(prefix)}
    clock.set(T0 + 29 * DAY)
    timer = actor("timer")
    assert retention_purge(actor=timer, store=site.store, clock=clock).purged
    assert list(site.store.list(prefix)) == []
    # a dock offloads the same recording again (a camera that kept it, a restored backup)
    for key, raw in copies.items():
        site.store.put_bytes(key, raw)
    assert _sync(site, clock).added == 0  # the tombstone stays
    report = retention_purge(actor=timer, store=site.store, clock=clock)
    assert report.late and rid in report.late[0]
    assert list(site.store.list(prefix)) == []
    assert Recording.objects.get(recording_id=rid).state == "purged"


def test_a_store_that_locks_longer_than_the_policy_keeps_is_refused(
    office: Any, site: Site, clock: Any
) -> None:
    from store import FileStore
    from vault.catalog.services import retention_purge
    from vault.errors import InvalidRequest

    store = FileStore(site.store.root, retention_days=40)
    with pytest.raises(InvalidRequest, match="locks footage for 40 days.*28-day retention"):
        retention_purge(actor=actor("timer"), store=store, clock=clock)


def test_purge_exits_non_zero_when_something_due_could_not_be_deleted(
    office: Any, site: Site, clock: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse
    from types import SimpleNamespace

    from vault.commands.catalog import cmd_purge

    rid = site.record("CAM-heusden-1", T0)
    _sync(site, clock)
    key = next(iter(site.store.list(f"s1/CAM-heusden-1/{rid}/")))
    site.store.set_legal_hold(key, True)  # the store refuses, whatever the catalog says
    clock.set(T0 + 29 * DAY)
    session = SimpleNamespace(
        actor=actor("timer"),
        store=site.store,
        clock=clock,
        config=SimpleNamespace(cache_dirs=[], path=Path),
    )
    rc = cmd_purge(session, argparse.Namespace(dry_run=False))  # type: ignore[arg-type]
    assert rc == 1
    assert f"KEPT CAM-heusden-1/{rid}" in capsys.readouterr().out
