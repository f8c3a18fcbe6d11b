"""Role matrix: every action by every role of each shipped policy, allowed or refused as the
policy says, and every refusal in the audit log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from vault_support import T0, Site, actor, make_municipalities, make_user

from crypto.keys import SigningKey
from vault.errors import PermissionRefused
from vault.policy import ACTIONS, HOLD_KINDS, load_policy


def _actions(ctx: dict[str, Any]) -> dict[str, Callable[[Any], Any]]:
    """One call per action, each doing that action on the municipality's test recording."""
    from vault.accounts.services import role_grant
    from vault.audit.selectors import audit_list
    from vault.audit.services import audit_anchor_as, audit_verify_as
    from vault.catalog.custody import recording_decrypt, recording_verify
    from vault.catalog.selectors import recording_detail, recording_list
    from vault.catalog.services import catalog_sync, retention_purge
    from vault.registry.services import (
        camera_assign,
        camera_register,
        camera_remove,
        dock_station_add,
        registry_publish,
    )

    site, clock, muni, rec = ctx["site"], ctx["clock"], ctx["muni"], ctx["recording"]
    out = ctx["tmp"] / "copy.ts"
    return {
        "catalog.list": lambda a: list(recording_list(actor=a, clock=clock)),
        "catalog.show": lambda a: recording_detail(actor=a, ref=rec.recording_id, clock=clock),
        "recording.verify": lambda a: recording_verify(
            actor=a, recording=rec, store=site.store, clock=clock
        ),
        "recording.decrypt": lambda a: recording_decrypt(
            actor=a,
            recording=rec,
            store=site.store,
            vault_key=site.vault_key,
            out=out,
            purpose="criminal_investigation",
            clock=clock,
            overwrite=True,
        ),
        "catalog.sync": lambda a: catalog_sync(actor=a, store=site.store, clock=clock),
        "retention.purge": lambda a: retention_purge(
            actor=a, store=site.store, clock=clock, dry_run=True
        ),
        "camera.register": lambda a: camera_register(
            actor=a,
            municipality=muni,
            device_id=f"NEW-{muni}",
            public_key=SigningKey.generate().public_bytes(),
            clock=clock,
        ),
        "camera.remove": lambda a: camera_remove(actor=a, device_id=f"SPARE-{muni}", clock=clock),
        "camera.assign": lambda a: camera_assign(
            actor=a, device_id=f"CAM-{muni}", officer_code="boa", starts_at=T0, clock=clock
        ),
        "dock.register": lambda a: dock_station_add(
            actor=a, name="dock-x", public_key=SigningKey.generate().public_bytes(), clock=clock
        ),
        "registry.publish": lambda a: registry_publish(
            actor=a, store=site.store, signing_key=site.registry_key, site=site.site, clock=clock
        ),
        "audit.view": lambda a: audit_list(actor=a, clock=clock),
        "audit.verify": lambda a: audit_verify_as(actor=a, store=site.store, clock=clock),
        "audit.anchor": lambda a: audit_anchor_as(
            actor=a, store=site.store, site=site.site, clock=clock
        ),
        "user.admin": lambda a: role_grant(
            actor=a,
            username="someone",
            municipality=muni,
            role="officer",
            password="a long enough secret",
            clock=clock,
        ),
    }


CASES = [(name, role) for name in ("heusden", "utrecht", "h2o") for role in load_policy(name).roles]


@pytest.mark.parametrize("policy_name, role", CASES, ids=[f"{p}-{r}" for p, r in CASES])
def test_role_matrix(db: str, tmp_path: Path, clock: Any, policy_name: str, role: str) -> None:
    from vault.accounts.services import officer_create
    from vault.audit.models import AuditEntry
    from vault.catalog.models import Hold, Recording
    from vault.catalog.services import catalog_sync, hold_place
    from vault.registry.services import camera_register, dock_station_add

    policy = load_policy(policy_name)
    make_municipalities([policy_name])
    muni = policy.municipality_codes[-1]
    site = Site.create(tmp_path / "site")
    setup = "setup-admin"
    make_user(setup, {muni: ["coordinator", "privacy_officer", "scheduler"]})
    boss = actor(setup)
    for dev in (f"CAM-{muni}", f"SPARE-{muni}"):
        camera_register(
            actor=boss,
            municipality=muni,
            device_id=dev,
            public_key=site.camera(dev).public_hex,
            clock=clock,
        )
    dock_station_add(
        actor=boss, name="dock-1", public_key=site.dock_key.public_bytes(), clock=clock
    )
    officer_create(actor=boss, municipality=muni, code="boa", name="Officer", clock=clock)
    rid = site.record(f"CAM-{muni}", T0, ts=None)
    catalog_sync(actor=boss, store=site.store, clock=clock)
    rec = Recording.objects.get(recording_id=rid)
    held = {
        kind: hold_place(
            actor=boss,
            recording=rec,
            kind=kind,
            reference="x",
            reason="y",
            store=site.store,
            clock=clock,
        )
        for kind in HOLD_KINDS
        if "privacy_officer" in policy.hold_roles(kind, "place")
    }
    user = f"user-{role}"
    make_user(user, {muni: [role]})
    who = actor(user)
    ctx = {"site": site, "clock": clock, "muni": muni, "recording": rec, "tmp": tmp_path}
    calls = _actions(ctx)
    assert set(calls) == set(ACTIONS)
    refused_expected = 0
    for action, call in calls.items():
        allowed = policy.allows(role, action)
        before = AuditEntry.objects.filter(actor=user, result="refused").count()
        if allowed:
            call(who)
            assert AuditEntry.objects.filter(actor=user, action=action, result="ok").exists(), (
                action
            )
        else:
            refused_expected += 1
            with pytest.raises(PermissionRefused):
                call(who)
            assert AuditEntry.objects.filter(actor=user, result="refused").count() == before + 1, (
                action
            )
    # Holds: place and lift, per kind, as the policy names the roles.
    from vault.catalog.services import hold_lift

    for kind in HOLD_KINDS:
        can_place = role in policy.hold_roles(kind, "place")
        can_lift = role in policy.hold_roles(kind, "lift")
        if can_place:
            h = hold_place(
                actor=who,
                recording=rec,
                kind=kind,
                reference="r",
                reason="r",
                store=site.store,
                clock=clock,
                received_at=T0 + dt.timedelta(days=1),
            )
        else:
            refused_expected += 1
            with pytest.raises(PermissionRefused):
                hold_place(
                    actor=who,
                    recording=rec,
                    kind=kind,
                    reference="r",
                    reason="r",
                    store=site.store,
                    clock=clock,
                )
            h = held.get(kind) or Hold.objects.create(
                recording=rec, kind=kind, reference="r", reason="r", opened_by=setup, opened_at=T0
            )
        if can_lift:
            hold_lift(actor=who, hold=h, reason="done", store=site.store, clock=clock)
        else:
            refused_expected += 1
            with pytest.raises(PermissionRefused):
                hold_lift(actor=who, hold=h, reason="done", store=site.store, clock=clock)
    refused = AuditEntry.objects.filter(actor=user, result="refused").count()
    assert refused == refused_expected
