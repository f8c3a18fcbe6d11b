"""The coordinator's registry: cameras, docking stations, assignments, and its publication.

The back office is the only registry. After every change the coordinator publishes it
(`registry_publish`): a signed document in the store that docks verify and cache
(dock/registry.py). Origin checks in the back office use these rows only, never a
DEVICE.json found beside footage.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import NoReturn

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max

from crypto.keys import SigningKey, check_ed25519_public
from formats.registry import publish_registry
from vault.access import Actor, audit_ok, authorize, authorize_any, refuse
from vault.accounts.selectors import officer_by_code
from vault.accounts.services import municipality_get
from vault.clock import Clock
from vault.errors import InvalidRequest, NotFound
from vault.registry.models import Assignment, Camera, DockStation, RegistryPublication

log = logging.getLogger(__name__)

_DEVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _public_hex(public_key: str | bytes, what: str) -> str:
    try:
        raw = bytes.fromhex(public_key) if isinstance(public_key, str) else bytes(public_key)
        return check_ed25519_public(raw, what).hex()
    except ValueError as exc:
        raise InvalidRequest(f"{what}: {exc}") from None


def camera_register(
    *,
    actor: Actor,
    municipality: str,
    device_id: str,
    public_key: str | bytes,
    clock: Clock,
    model: str = "",
) -> Camera:
    muni = municipality_get(municipality)
    target = f"camera {device_id}"
    authorize(actor=actor, action="camera.register", municipality=muni, clock=clock, target=target)
    if not _DEVICE.fullmatch(device_id):
        raise InvalidRequest(
            f"device id {device_id!r}: letters, digits, '.', '_', '-' (at most 64)"
        )
    public = _public_hex(public_key, f"public key of {device_id}")
    with transaction.atomic():
        active = Camera.objects.filter(device_id=device_id, removed_at__isnull=True).first()
        if active is not None:
            if active.municipality_id != muni.id:
                # Another municipality's camera: neither it nor its key is named here.
                raise refuse(
                    actor=actor,
                    action="camera.register",
                    municipality=muni.code,
                    target=target,
                    clock=clock,
                    reason=f"device id {device_id} cannot be registered to {muni.code}",
                )
            if active.public_key == public:
                return active
            raise InvalidRequest(
                f"{device_id} is registered (key {active.public_key[:16]}...); remove it "
                "first if it was re-provisioned"
            )
        try:
            camera = Camera.objects.create(
                device_id=device_id,
                public_key=public,
                municipality=muni,
                model=model[:64],
                added_by=actor.username,
                added_at=clock.utc(),
            )
        except IntegrityError:
            raise InvalidRequest(f"{device_id} was registered at the same moment") from None
        audit_ok(
            actor=actor,
            action="camera.register",
            municipality=muni.code,
            target=target,
            clock=clock,
            detail={"public_key": public},
        )
    return camera


def _not_registered(
    actor: Actor, action: str, device_id: str, target: str, clock: Clock, *, exists: bool
) -> NoReturn:
    authorize_any(actor=actor, action=action, clock=clock, target=target)
    if exists:
        refuse(
            actor=actor,
            action=action,
            target=target,
            clock=clock,
            reason="camera of another municipality",
        )
    raise NotFound(f"{device_id} is not a registered camera")


def camera_remove(*, actor: Actor, device_id: str, clock: Clock) -> Camera:
    camera = (
        Camera.objects.filter(device_id=device_id, removed_at__isnull=True)
        .select_related("municipality")
        .first()
    )
    target = f"camera {device_id}"
    if camera is None or not actor.roles_in(camera.municipality.code):
        # Another municipality's camera is answered as if it were not registered.
        _not_registered(actor, "camera.remove", device_id, target, clock, exists=camera is not None)
    authorize(
        actor=actor,
        action="camera.remove",
        municipality=camera.municipality,
        clock=clock,
        target=target,
    )
    with transaction.atomic():
        camera.removed_at = clock.utc()
        camera.removed_by = actor.username
        camera.save(update_fields=["removed_at", "removed_by"])
        audit_ok(
            actor=actor,
            action="camera.remove",
            municipality=camera.municipality.code,
            target=target,
            clock=clock,
        )
    return camera


def camera_assign(
    *,
    actor: Actor,
    device_id: str,
    officer_code: str,
    starts_at: dt.datetime,
    clock: Clock,
    ends_at: dt.datetime | None = None,
) -> Assignment:
    """The officer wears the camera from `starts_at`: for a shift (until `ends_at`) or standing."""
    camera = (
        Camera.objects.filter(device_id=device_id, removed_at__isnull=True)
        .select_related("municipality")
        .first()
    )
    target = f"camera {device_id} to officer {officer_code}"
    if camera is None or not actor.roles_in(camera.municipality.code):
        # Another municipality's camera is answered as if it were not registered.
        _not_registered(actor, "camera.assign", device_id, target, clock, exists=camera is not None)
    authorize(
        actor=actor,
        action="camera.assign",
        municipality=camera.municipality,
        clock=clock,
        target=target,
    )
    officer = officer_by_code(municipality=camera.municipality.code, code=officer_code)
    if officer is None:
        raise NotFound(f"no officer {officer_code!r} in {camera.municipality.code}")
    assignment = Assignment(
        camera=camera,
        officer=officer,
        starts_at=starts_at,
        ends_at=ends_at,
        assigned_by=actor.username,
        assigned_at=clock.utc(),
    )
    try:
        assignment.full_clean()
    except ValidationError as exc:
        raise InvalidRequest(f"assignment: {'; '.join(exc.messages)}") from None
    with transaction.atomic():
        assignment.save()
        audit_ok(
            actor=actor,
            action="camera.assign",
            municipality=camera.municipality.code,
            target=target,
            clock=clock,
            detail={"starts_at": starts_at, "ends_at": ends_at},
        )
    return assignment


def dock_station_add(
    *, actor: Actor, name: str, public_key: str | bytes, clock: Clock
) -> DockStation:
    """Trust a docking station's key for the ingest records it signs."""
    munis = authorize_any(actor=actor, action="dock.register", clock=clock, target=f"dock {name}")
    public = _public_hex(public_key, f"public key of dock {name}")
    with transaction.atomic():
        station, created = DockStation.objects.get_or_create(
            public_key=public,
            defaults={"name": name, "added_by": actor.username, "added_at": clock.utc()},
        )
        if created:
            try:
                station.full_clean()
            except ValidationError as exc:
                raise InvalidRequest(f"dock {name}: {'; '.join(exc.messages)}") from None
        audit_ok(
            actor=actor,
            action="dock.register",
            municipality=munis[0].code,
            target=f"dock {name}",
            clock=clock,
            detail={"public_key": public},
        )
    return station


def registry_publish(
    *, actor: Actor, store: object, signing_key: SigningKey, site: str, clock: Clock
) -> RegistryPublication:
    """Sign every active camera of the site into the next registry version, into the store."""
    munis = authorize_any(
        actor=actor, action="registry.publish", clock=clock, target="camera registry"
    )
    with transaction.atomic():
        version = (RegistryPublication.objects.aggregate(v=Max("version"))["v"] or 0) + 1
        cameras = [
            {
                "device_id": c.device_id,
                "public_key": c.public_key,
                "municipality": c.municipality.code,
                "model": c.model,
            }
            for c in Camera.objects.filter(removed_at__isnull=True)
            .select_related("municipality")
            .order_by("device_id")
        ]
        now = clock.utc()
        key, sha = publish_registry(
            store,  # type: ignore[arg-type]
            signing_key,
            version=version,
            site=site,
            cameras=cameras,
            now=now.timestamp(),
        )
        pub = RegistryPublication.objects.create(
            version=version,
            store_key=key,
            sha256=sha,
            cameras=len(cameras),
            published_by=actor.username,
            published_at=now,
        )
        audit_ok(
            actor=actor,
            action="registry.publish",
            municipality=munis[0].code,
            target=f"registry v{version}",
            clock=clock,
            detail={"key": key, "cameras": len(cameras)},
        )
    return pub
